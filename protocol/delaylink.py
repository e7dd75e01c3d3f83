"""The delaying link's stamp (`real` mode, docs/design.md#real-injection): the trailing frame of a held message.

A sender appends HOLD_TAG + (hold seconds, its CLOCK_MONOTONIC at sending in ns, its host key);
the receiver holds the message until the send instant plus the hold. Every process of one host
reads the same CLOCK_MONOTONIC (time.monotonic_ns), so the stamp is comparable only between
processes with the same host key; from another host (docs/design.md#where-it-goes-next) the hold runs from
the arrival instead. HOST_KEY names the clock: the kernel's boot id (a fresh random UUID at
every boot, proc(5) /proc/sys/kernel/random/boot_id), else a hash of the host name. A process in
its own time namespace (time_namespaces(7)) shares the boot id but not the clock's offset;
numa-emu never starts its processes that way.
"""
from __future__ import annotations

import hashlib
import socket
import struct
import time

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
HOLD_TAG = b"NUMAEMU-HOLD:"
_HOLD = struct.Struct("<dqQ")  # hold (s), send instant (CLOCK_MONOTONIC ns), host key
HOLD_FRAME_BYTES = len(HOLD_TAG) + _HOLD.size
MAX_HOLD_S = 10.0
# Sleeping overshoots by 15-95 us here and is accurate only from about 1 ms: a process holding a
# message sleeps until this long before the message is due, and spins the rest (busy poll).
SPIN_S = 0.0012


def host_key() -> int:
    """A 64-bit key equal in every process of this host since its boot, different elsewhere."""
    try:
        with open(_BOOT_ID, "rb") as f:
            text = f.read().strip()
    except OSError:
        text = b"host:" + socket.gethostname().encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


HOST_KEY = host_key()


def stamp(hold_s: float) -> bytes:
    """The trailing frame of a message to be held `hold_s` seconds from now."""
    return HOLD_TAG + _HOLD.pack(hold_s, time.monotonic_ns(), HOST_KEY)


def is_stamp(frame: bytes) -> bool:
    return len(frame) == HOLD_FRAME_BYTES and frame[:len(HOLD_TAG)] == HOLD_TAG


def read_stamp(frame: bytes, now_ns: int, host: int = HOST_KEY) -> tuple[float, int | None]:
    """(hold in seconds, send instant in ns or None) of a stamp frame received at `now_ns`. The
    hold is clamped to [0, MAX_HOLD_S] (NaN: 0). The send instant is None when it cannot be used:
    another host's clock, or a stamp from the future or from too long ago; then the hold runs
    from the arrival."""
    hold_s, sent_ns, key = _HOLD.unpack_from(frame, len(HOLD_TAG))
    hold_s = min(hold_s, MAX_HOLD_S) if hold_s > 0 else 0.0
    if key != host or not 0 <= now_ns - sent_ns <= MAX_HOLD_S * 1e9:
        return hold_s, None
    return hold_s, sent_ns


def wait_until(due: float) -> None:
    """Block until time.monotonic() reaches `due`: sleep to SPIN_S before it, spin the rest (for a
    synchronous client that holds a reply; a reactor spins in its loop instead)."""
    remaining = due - time.monotonic()
    if remaining > SPIN_S:
        time.sleep(remaining - SPIN_S)
    while time.monotonic() < due:
        pass


def due_s(hold_s: float, sent_ns: int | None, now_ns: int) -> float:
    """When a held message is due, in time.monotonic() seconds."""
    return (now_ns if sent_ns is None else sent_ns) * 1e-9 + hold_s
