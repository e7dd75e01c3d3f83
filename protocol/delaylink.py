"""The delaying link's stamp (`real` mode, docs/design.md#real-injection): the trailing frame of a held message.

A sender appends HOLD_TAG + (hold seconds, its CLOCK_MONOTONIC at sending in ns, its host key);
the receiver holds the message until the send instant plus the hold. Every process of one host
reads the same CLOCK_MONOTONIC (time.monotonic_ns), so the stamp is comparable as it is between
processes with the same host key; from another host it is comparable once that host's clock
offset is known (estimate_offset: the coordinator measures each host's agent at start, and
every node learns the offsets with its peers), else the hold runs from the arrival. HOST_KEY
names the clock: the kernel's boot id (a fresh random UUID at every boot, proc(5)
/proc/sys/kernel/random/boot_id), else a hash of the host name, together with the time namespace
(time_namespaces(7): its own CLOCK_MONOTONIC offset) and $NUMA_EMU_HOST when set (a fake host of a
test: a clock of its own as far as the link can tell).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import hashlib
import os
import socket
import struct
import time

from numa_emu.protocol.hosts import HOST_ENV

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
HOLD_TAG = b"NUMAEMU-HOLD:"
_HOLD = struct.Struct("<dqQ")  # hold (s), send instant (CLOCK_MONOTONIC ns), host key
HOLD_FRAME_BYTES = len(HOLD_TAG) + _HOLD.size
MAX_HOLD_S = 10.0
# Sleeping overshoots by 15-95 us here and is accurate only from about 1 ms: a process holding a
# message sleeps until this long before the message is due, and spins the rest (busy poll).
SPIN_S = 0.0012
CLOCK_ROUNDS = 8  # round trips for another clock's offset (estimate_offset: the fastest one counts)


def host_key() -> int:
    """A 64-bit key equal in every process of this host since its boot, different elsewhere."""
    try:
        with open(_BOOT_ID, "rb") as f:
            text = f.read().strip()
    except OSError:
        text = b"host:" + socket.gethostname().encode()
    try:
        text += b"|" + os.readlink("/proc/self/ns/time").encode()
    except OSError:
        pass  # no time namespaces: one clock per boot
    text += b"|" + os.environ.get(HOST_ENV, "").encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


HOST_KEY = host_key()


def stamp(hold_s: float) -> bytes:
    """The trailing frame of a message to be held `hold_s` seconds from now."""
    return HOLD_TAG + _HOLD.pack(hold_s, time.monotonic_ns(), HOST_KEY)


def is_stamp(frame: bytes) -> bool:
    return len(frame) == HOLD_FRAME_BYTES and frame[:len(HOLD_TAG)] == HOLD_TAG


def read_stamp(frame: bytes, now_ns: int, host: int = HOST_KEY,
               offsets: Mapping[int, int] | None = None) -> tuple[float, int | None]:
    """(hold in seconds, send instant in ns of our clock or None) of a stamp frame received at
    `now_ns`. The hold is clamped to [0, MAX_HOLD_S] (NaN: 0). `offsets`: host key -> that host's
    clock minus ours (ns). The send instant is None when it cannot be used: another host's clock
    whose offset is unknown, or a stamp from the future or from too long ago (an offset estimated
    a little high puts a stamp a little in the future: the hold then runs from the arrival)."""
    hold_s, sent_ns, key = _HOLD.unpack_from(frame, len(HOLD_TAG))
    hold_s = min(hold_s, MAX_HOLD_S) if hold_s > 0 else 0.0
    if key != host:
        offset = offsets.get(key) if offsets else None
        if offset is None:
            return hold_s, None
        sent_ns -= offset
    if not 0 <= now_ns - sent_ns <= MAX_HOLD_S * 1e9:
        return hold_s, None
    return hold_s, sent_ns


def estimate_offset(samples: Iterable[tuple[int, int, int]]) -> tuple[int, int]:
    """Another clock's offset from ours as NTP estimates it, from round trips (t0 sent by our
    clock, t the other clock's reading when it answered, t1 received by ours), all in ns:
    (offset = other minus ours, round trip) of the fastest round trip, where the answer's
    instant is least uncertain; the true offset lies within half that round trip of it.
    ValueError without samples."""
    t0, t, t1 = min(samples, key=lambda s: s[2] - s[0])
    return t - (t0 + t1) // 2, t1 - t0


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
