"""Paranoid Pirate liveness (zguide): alive, suspect after one silent interval, dead after
LIVENESS silent intervals. Pure: the caller passes the time."""
from __future__ import annotations

from protocol.timing import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS

UP, SUSPECT, DEAD = "up", "suspect", "dead"


class Liveness:
    def __init__(self, now: float, interval_s: float = HEARTBEAT_INTERVAL_S, liveness: int = HEARTBEAT_LIVENESS):
        self.interval_s = interval_s
        self.liveness = liveness
        self.last_seen = now

    def beat(self, now: float) -> None:
        self.last_seen = now

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.last_seen)

    def state(self, now: float) -> str:
        age = self.age_s(now)
        if age <= self.interval_s * 1.5:
            return UP
        if age <= self.interval_s * self.liveness:
            return SUSPECT
        return DEAD
