"""bench_direct (issue 12): a task's local reads and writes through the direct path (shared
memory, protocol/directpath.py), against a bare pyzmq round trip and a bare shared-memory lookup and
read measured in the same run.

    .venv/bin/python benchmarks/bench_direct.py [--count 20000] [--mib 64]

(a) Baselines: a bare pyzmq round trip (DEALER -> ROUTER over ipc, a mem.access-sized msgpack
    envelope; _common.echo_server), and a bare shared-memory read in plain Python: a page-table
    entry looked up in a memfd, its seqlock and the frame's generation checked, 8 bytes read.
(b) A task on CPU 0 of default-4n: Region.read(off, 8) and Region.write(off, 8 bytes) on a
    present local page with vm.direct_access=1, the same with vm.direct_access=0 (the message
    path), and a read of a page on node 1 (a remote read: always a message). Interleaved blocks,
    medians. Targets: read ≤ 0.03× (a) and ≤ 4× the bare shared-memory read; write ≤ 0.05× (a).
    And a 4 KiB read of a page of a file mapped read-only whose replica is on the task's node
    (target ≤ 0.04× (a)); an 8-byte write of an shm page and a 4 KiB write of a file page
    through a writable mapping, both masters on node 0 and the task holding their grants
    (target ≤ 0.05× (a), the write's), and the shm write by message.
(c) Bulk: Region.write and Region.read of a whole --mib region of present local pages (GiB/s,
    target ≥ 1), against the host copying the same bytes between two of its own mappings; and
    the first touch Region.touch(fill=0xFF) of a fresh region (pages/s, ≥ 100k).
"""
from __future__ import annotations

import argparse
import mmap
import os
import subprocess
import sys
import time

import _common as bc
import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol import directmap as dm
from numa_emu.protocol.messages import control as cm

PAGE = 4096
# A task on node 1 writes file 'seeded' there (its master), then leaves: a reader on node 0 gets a replica.
SEED_FILE = """
import numa_emu
with numa_emu.attach(1) as t:
    f = t.open("seeded", create=True, size=4096)
    f.pwrite(0, b"\\x07" * 4096)
    f.fsync()
"""
ACCESS_ENVELOPE = {"kind": "mem.access", "id": 0, "task_id": 1, "vaddr": 0x7F0000000000 + 4088, "length": 8,
                   "data": None}


class BareShm:
    """The floor of a direct read in Python: one entry of a page table in a memfd (seqlock, tag,
    frame, generation), the frame's generation in the pool, 8 bytes copied out."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("bench-direct", os.MFD_CLOEXEC)
        frames = 16
        os.ftruncate(self.fd, dm.TABLE_BYTES + dm.pool_bytes(frames, PAGE))
        self.mem = mmap.mmap(self.fd, dm.TABLE_BYTES + dm.pool_bytes(frames, PAGE))
        self.q = memoryview(self.mem)[:dm.TABLE_BYTES].cast("Q")
        self.pool = memoryview(self.mem)[dm.TABLE_BYTES:]
        goff = dm.generations_offset(frames, PAGE)
        self.gens = self.pool[goff:goff + 4 * frames].cast("I")
        self.vpn = 0x7F0000000
        base = dm.entry_base(self.vpn)
        self.q[base + 1], self.q[base + 2], self.q[base + 3] = self.vpn + 1, 3, dm.PRESENT

    def read(self) -> bytes:
        q, vpn = self.q, self.vpn
        base = dm.entry_base(vpn)
        seq = q[base]
        if q[base + 1] != vpn + 1:
            raise AssertionError
        fw = q[base + 2]
        frame, gen = fw & 0xFFFFFFFF, fw >> 32
        data = self.pool[frame * PAGE + 4088:frame * PAGE + 4096].tobytes()
        if self.gens[frame] != gen or q[base] != seq:
            raise AssertionError
        return data

    def close(self) -> None:
        for v in (self.q, self.gens, self.pool):
            v.release()
        self.mem.close()
        os.close(self.fd)


def set_direct(cluster: Cluster, on: int) -> None:
    client = cluster.client()
    try:
        client.call(cm.SysctlSet(values={cm.DIRECT_ACCESS_KEY: str(on)}))
    finally:
        client.close()


def single_ops(home, count: int) -> tuple[list[list[object]], dict]:
    with bc.echo_server(home) as echo_endpoint, Cluster("default-4n", name="direct") as cluster:
        echo = bc.EchoClient(echo_endpoint)
        bare = BareShm()
        seeder = subprocess.run([sys.executable, "-c", SEED_FILE], env=dict(os.environ, NUMA_EMU_CLUSTER="direct"),
                                check=True, capture_output=True)
        assert seeder.returncode == 0
        task = numa_emu.attach(0, cluster="direct")
        try:
            mapped = task.mmap_file(task.open("seeded"), writable=False)
            mapped.read(0, PAGE)
            assert mapped.read(0, PAGE) == b"\x07" * PAGE and task._dpath.counts()[0] == 1, "no replica read direct"
            local = task.mmap(PAGE)
            local.write(0, b"\x01")
            shm_page = task.mmap(PAGE, shared=True, name="bench-shm")
            shm_page.write(0, b"\x01")  # the write fault: node 0 is the page's writer, this task holds its grant
            writable = task.mmap_file(task.open("bench-file", create=True, size=PAGE))
            writable.write(0, b"\x01")
            page = b"\x03" * PAGE
            remote = task.mmap(PAGE)
            remote.mbind("bind", [1])
            remote.write(0, b"\x01")
            assert local.where() == [0] and remote.where() == [1] and shm_page.where() == [0] and writable.where() == [0]
            data = b"\x02" * 8
            ops = {"bare": lambda: echo.round_trips(ACCESS_ENVELOPE, 1), "shm": bare.read,
                   "read": lambda: local.read(PAGE - 8, 8), "write": lambda: local.write(PAGE - 8, data),
                   "replica": lambda: mapped.read(0, PAGE), "shm_write": lambda: shm_page.write(PAGE - 8, data),
                   "file_write": lambda: writable.write(0, page)}
            writes = task._dpath.counts()[1]
            samples = bc.interleaved(ops, count)
            assert task._dpath.counts()[1] - writes >= 3 * count, "shared writes were not direct"
            set_direct(cluster, 0)
            msg = bc.interleaved({"bare2": lambda: echo.round_trips(ACCESS_ENVELOPE, 1),
                                  "msg_read": lambda: local.read(PAGE - 8, 8),
                                  "msg_write": lambda: local.write(PAGE - 8, data),
                                  "msg_shm_write": lambda: shm_page.write(PAGE - 8, data),
                                  "remote": lambda: remote.read(PAGE - 8, 8)}, max(1000, count // 10))
            samples.update(msg)
        finally:
            task.detach()
            echo.close()
            bare.close()
    base, shm = bc.median(samples["bare"]), bc.median(samples["shm"])
    base2 = bc.median(samples["bare2"])
    rows = []
    for kind, label, ref, target in (
            ("bare", "(a) bare pyzmq round trip (baseline)", base, None),
            ("shm", "(a) bare shared-memory lookup + 8-byte read", base, None),
            ("read", "(b) Region.read(off, 8), local, direct", base, 0.03),
            ("write", "(b) Region.write(off, 8 bytes), local, direct", base, 0.05),
            ("replica", "(b) 4 KiB read of a local replica (file mapping), direct", base, 0.04),
            ("shm_write", "(b) Region.write(off, 8 bytes), shm page, direct", base, 0.05),
            ("file_write", "(b) 4 KiB write of a file page (writable mapping), direct", base, 0.05),
            ("bare2", "(a) bare pyzmq round trip, second block", base2, None),
            ("msg_read", "(b) Region.read(off, 8), local, vm.direct_access=0", base2, None),
            ("msg_write", "(b) Region.write(off, 8), local, vm.direct_access=0", base2, None),
            ("msg_shm_write", "(b) Region.write(off, 8), shm page, vm.direct_access=0", base2, None),
            ("remote", "(b) Region.read(off, 8), page on node 1 (message)", base2, None)):
        s = samples[kind]
        med = bc.median(s)
        extra = f"{med / shm:.1f}× shm" if kind in ("read", "write", "shm_write") else ""
        rows.append([label, *bc.sample_cells(s), bc.ratio(med, ref), extra, f"≤ {target:g}×" if target else "",
                     bc.verdict(med / ref <= target if target else None)])
    return rows, samples


def bulk(mib: int) -> list[list[object]]:
    length = mib << 20
    shm_length = min(mib, 16) << 20  # its first write is messages: 4096 pages take a few seconds
    rows = []
    with Cluster("default-4n", name="bulk") as _cluster:
        task = numa_emu.attach(0, cluster="bulk")
        try:
            region = task.mmap(length)
            t0 = time.perf_counter()
            region.touch(fill=0xFF)
            touch_s = time.perf_counter() - t0
            data = os.urandom(1 << 20) * mib
            t0 = time.perf_counter()
            region.write(0, data)
            write_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            back = region.read(0, length)
            read_s = time.perf_counter() - t0
            assert back == data
            shared = task.mmap(shm_length, shared=True, name="bulk-shm")
            for off in range(0, shm_length, 1 << 20):  # by message, a directory round trip a page: a MiB at a time
                shared.write(off, data[off:off + (1 << 20)])  # node 0 becomes the pages' writer, this task their grants' holder
            writes, shm_data = task._dpath.q[dm.H_WRITES], data[:shm_length]
            shared.write(0, shm_data)  # direct, and maps the pages into this process, as the touch did above
            t0 = time.perf_counter()
            shared.write(0, shm_data)
            shm_write_s = time.perf_counter() - t0
            assert task._dpath.q[dm.H_WRITES] == writes + 2, "the shm writes were not direct"
            counts = task._dpath.q[dm.H_READS], task._dpath.q[dm.H_WRITES]
        finally:
            task.detach()
    gib = length / (1 << 30)
    host_s, fill_s = host_copy(data)
    rate, host_rate = length // PAGE / touch_s, length // PAGE / fill_s
    rows.append([f"Region.touch(fill=0xFF), fresh {mib} MiB", f"{rate:,.0f} pages/s ({rate / host_rate:.2f}× the host's fill)",
                 "≥ 100,000", bc.verdict(rate >= 100_000)])
    rows.append([f"host: a fresh {mib} MiB memfd mapping filled with 0xFF (baseline)", f"{host_rate:,.0f} pages/s", "", ""])
    rows.append([f"Region.write of {mib} MiB, present local pages",
                 f"{gib / write_s:.2f} GiB/s ({host_s / write_s:.2f}× the host's copy)", "≥ 1", bc.verdict(gib / write_s >= 1)])
    rows.append([f"Region.write of {shm_length >> 20} MiB, shm pages (grants held)",
                 f"{shm_length / (1 << 30) / shm_write_s:.2f} GiB/s "
                 f"({host_s * shm_length / length / shm_write_s:.2f}× the host's copy)", "≥ 1",
                 bc.verdict(shm_length / (1 << 30) / shm_write_s >= 1)])
    rows.append([f"Region.read of {mib} MiB, present local pages",
                 f"{gib / read_s:.2f} GiB/s ({host_s / read_s:.2f}× the host's copy)", "≥ 1", bc.verdict(gib / read_s >= 1)])
    rows.append([f"host: {mib} MiB copied into a mapping and back out (baseline)", f"{gib / host_s:.2f} GiB/s each way",
                 "", ""])
    rows.append(["direct reads, writes of the task (its page table's counters)", f"{counts[0]}, {counts[1]}", "", ""])
    return rows


def host_copy(data: bytes) -> tuple[float, float]:
    """Seconds the host takes to copy `data` into a fresh shared mapping and out again (one way),
    and to fill another fresh one with 0xFF (the floor of a first touch: a fault and a fill per page)."""
    fd = os.memfd_create("bench-direct-host", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, 2 * len(data))
        with mmap.mmap(fd, 2 * len(data)) as m:
            t0 = time.perf_counter()
            m[:len(data)] = data
            back = m[:len(data)]
            dt = time.perf_counter() - t0
            assert back == data
            ff = b"\xff" * len(data)
            t0 = time.perf_counter()
            m[len(data):] = ff
            fill = time.perf_counter() - t0
    finally:
        os.close(fd)
    return dt / 2, fill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="timed calls per kind in (a) and (b)")
    parser.add_argument("--mib", type=int, default=64, help="region size of (c)")
    args = parser.parse_args()
    bc.setup()
    t0 = time.monotonic()
    with bc.temp_home() as home:
        caption = bc.host_info()
        ops, _ = single_ops(home, args.count)
        bulks = bulk(args.mib)
    bc.table("(a)+(b) one small access seen by the task (interleaved blocks)",
             ["operation", *bc.SAMPLE_COLUMNS, "ratio to (a)", "", "target", ""], ops, caption=caption)
    bc.table("(c) bulk access and first touch (default-4n, task on CPU 0)", ["operation", "rate", "target", ""], bulks,
             caption=f"whole benchmark: {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
