"""Page locks for handler coroutines: a handler that finds the lock held yields a Future and is
resumed, holding the lock, when the holder releases it (FIFO hand-off, no barging)."""
from __future__ import annotations

from collections import deque

from numa_emu.protocol.effects import Future


class PageLock:
    __slots__ = ("held", "waiters")

    def __init__(self) -> None:
        self.held = False
        self.waiters: deque[Future] = deque()

    def acquire(self):
        """`yield from lock.acquire()` inside a handler generator."""
        if not self.held:
            self.held = True
            return
        fut = Future()
        self.waiters.append(fut)
        yield fut  # resumed with the lock handed over

    def release(self) -> None:
        if self.waiters:
            self.waiters.popleft().set_result(None)
        else:
            self.held = False
