"""Heartbeat liveness after the zguide's Paranoid Pirate: up, suspect after one silent interval.
Silence alone makes a peer dead only after a long grace: a paused process (SIGSTOP, a debugger, a
loaded host) comes back, and the death of a local process is learnt from its exit instead.
Pure: the caller passes the time."""
from __future__ import annotations

from numa_emu.protocol.timing import HEARTBEAT_INTERVAL_S, SILENT_DEAD_S

UP, SUSPECT, DEAD = "up", "suspect", "dead"


class Liveness:
    def __init__(self, now: float, interval_s: float = HEARTBEAT_INTERVAL_S, dead_after_s: float = SILENT_DEAD_S):
        self.interval_s = interval_s
        self.dead_after_s = dead_after_s
        self.last_seen = now

    def beat(self, now: float) -> None:
        self.last_seen = now

    def excuse(self, gap_s: float, now: float) -> None:
        """Do not count the last `gap_s` of silence: the observer itself was not running then."""
        self.last_seen = min(now, self.last_seen + gap_s)

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.last_seen)

    def state(self, now: float) -> str:
        age = self.age_s(now)
        if age <= self.interval_s * 1.5:
            return UP
        if age <= self.dead_after_s:
            return SUSPECT
        return DEAD
