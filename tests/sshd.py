"""An OpenSSH server for the ssh launcher's tests: on loopback addresses only, on a free port, with
a host key and a user key made for the test and its own sshd_config; stopped by its recorded pid.
No packet leaves the machine, and the system's ssh configuration is never read or changed."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class Sshd:
    proc: subprocess.Popen
    port: int
    folder: Path

    @property
    def ssh_opts(self) -> list[str]:
        """What `numa-emu up --ssh-opt` passes to reach it: this key, this known_hosts, nothing else."""
        return ["-F", "/dev/null", "-p", str(self.port), "-i", str(self.folder / "id"),
                "-o", f"UserKnownHostsFile={self.folder / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # sshd -D: our child, its pid recorded by Popen
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def missing() -> str | None:
    """Why no sshd can run here, or None."""
    if not os.path.exists(SSHD) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return "OpenSSH (openssh-server, openssh-client) is not installed; .ci/run installs it"
    if os.geteuid() != 0 and not os.path.isdir("/run/sshd"):
        return "sshd needs /run/sshd, which only root can make"
    return None


def _free_port(addresses: list[str]) -> int:
    while True:
        probe = socket.socket()
        probe.bind((addresses[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        try:  # free on every address we listen on
            for address in addresses[1:]:
                other = socket.socket()
                try:
                    other.bind((address, port))
                finally:
                    other.close()
            return port
        except OSError:
            continue


def start(folder: Path, addresses: list[str], timeout_s: float = 15.0) -> Sshd:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for key in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "id.pub").read_text())
    port = _free_port(addresses)
    host_pub = " ".join((folder / "host_key.pub").read_text().split()[:2])
    (folder / "known_hosts").write_text(",".join(f"[{a}]:{port}" for a in addresses) + f" {host_pub}\n")
    config = folder / "sshd_config"
    config.write_text("\n".join([
        *(f"ListenAddress {a}:{port}" for a in addresses),
        f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        f"PidFile {folder / 'sshd.pid'}",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password", "X11Forwarding no",
        "AllowTcpForwarding no", "PermitTunnel no", "LogLevel ERROR", "",
    ]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege-separation folder (Debian's unit makes it)
    log = open(folder / "sshd.log", "ab")
    try:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)
    finally:
        log.close()
    server = Sshd(proc, port, folder)
    deadline = time.monotonic() + timeout_s
    while True:  # poll until it accepts on every address
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: {(folder / 'sshd.log').read_text()[-500:]}")
        try:
            for address in addresses:
                socket.create_connection((address, port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"sshd did not listen within {timeout_s} s") from None
            time.sleep(0.05)
