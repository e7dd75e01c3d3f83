"""A node's memory: one real mapping of pages x page_size bytes, and its frame allocator.

The mapping is a memfd, committed lazily, so a node's resident memory grows only with the
frames that are touched; tasks of this node map the same memfd for their direct path
(protocol/directmap.py has the layout: the frames, then versions, generations and referenced
bytes). Per-frame metadata lives in flat arrays (a version, a generation counter and a state byte
per frame), never one Python object per page: 14 bytes a frame, 3.5 MiB for a 1 GiB node at
most (what lives in the memfd is committed as it is touched).
Frames never used yet are handed out from a bump pointer, so start-up costs nothing whatever the
pool's size; freed frames are recycled from a stack.

The generation of a frame is bumped every time it is freed; a mapping records the generation it
was made with, so a stale mapping (one that outlived a shootdown) is detectable (docs/protocol.md#invariants).
Every read or write of a frame sets its referenced byte (the hardware's accessed bit): reclaim's
clock clears it and gives the page a second chance (nodes/reclaim.py).

A frame a task's direct write may still be writing (its entry was cleared while the task held its
write lock: nodes/directmap.py) is held: freed, it gets its new generation but stays out of the
free list (state HELD, still counted as used) until the last hold on it is let go.
"""
from __future__ import annotations

import mmap
import os
from array import array

from numa_emu.protocol import directmap as dm
from numa_emu.protocol.errors import ErrorCode, NumaEmuError

FREE, USED, HELD = 0, 1, 2  # HELD: freed, but kept from reuse while a direct write may land in it
_STABLE_TRIES = 64  # a direct write of a page takes a microsecond or so; a longer one is waited for by the caller


class FramePool:
    def __init__(self, frames: int, page_size: int):
        if frames <= 0 or page_size <= 0:
            raise NumaEmuError(ErrorCode.EINVAL, f"frame pool needs frames > 0 and page size > 0, got {frames}, {page_size}")
        self.frames = frames
        self.page_size = page_size
        # CLOEXEC: only this process holds it; a task opens it anew through /proc (fd below)
        self.fd = os.memfd_create(f"numa-emu-pool-{frames}x{page_size}", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, dm.pool_bytes(frames, page_size))
        self.mem = mmap.mmap(self.fd, dm.pool_bytes(frames, page_size))
        self.view = memoryview(self.mem)
        gens = dm.generations_offset(frames, page_size)
        self.generation = self.view[gens:gens + 4 * frames].cast("I")
        vers = dm.versions_offset(frames, page_size)
        # two halves a frame (2 * frame + dm.NODE_HALF or dm.TASK_HALF), each odd while its writer writes
        self.version = self.view[vers:vers + 8 * frames].cast("I")
        self.versions = self.view[vers:vers + 8 * frames].cast("Q")  # both halves at once, as readers check them
        self.referenced = self.view[dm.referenced_offset(frames, page_size):]
        self.state = bytearray(frames)
        self._recycled = array("I")
        self._holds: dict[int, int] = {}  # frame -> how many holds keep it from reuse once freed
        self.held = 0  # frames freed but not reusable yet (state HELD)
        self._next_unused = 0
        self.used = 0
        self._zero = bytes(page_size)

    @property
    def free(self) -> int:
        return self.frames - self.used

    def alloc(self) -> int:
        """A zeroed frame, or ENOMEM."""
        if self._recycled:
            frame = self._recycled.pop()
            off = frame * self.page_size
            self.mem[off:off + self.page_size] = self._zero
        elif self._next_unused < self.frames:
            frame = self._next_unused  # never touched: the kernel hands it over zeroed
            self._next_unused += 1
        else:
            raise NumaEmuError(ErrorCode.ENOMEM, f"no free frame ({self.frames} of {self.frames} in use)")
        self.state[frame] = USED
        self.referenced[frame] = 0
        self.used += 1
        return frame

    def free_frame(self, frame: int) -> None:
        self.check(frame)
        if self.state[frame] != USED:
            raise NumaEmuError(ErrorCode.EINVAL, f"frame {frame} is not in use")
        self.generation[frame] = (self.generation[frame] + 1) & 0xFFFFFFFF
        if frame in self._holds:  # a direct write may still land in it: reused only once let go
            self.state[frame] = HELD
            self.held += 1
            return
        self.state[frame] = FREE
        self._recycled.append(frame)
        self.used -= 1

    def take_back(self, frame: int) -> bool:
        """A frame `free_frame` has just freed, in use again at once (zeroed) for the allocation
        whose reclaim freed it (nodes.core.Capture); False when a hold keeps it from reuse."""
        if self.state[frame] != FREE:
            return False
        if self._recycled and self._recycled[-1] == frame:
            self._recycled.pop()
        else:
            self._recycled.remove(frame)
        off = frame * self.page_size
        self.mem[off:off + self.page_size] = self._zero
        self.state[frame] = USED
        self.referenced[frame] = 0
        self.used += 1
        return True

    def hold(self, frames: list[int]) -> None:
        """Keep these frames from reuse, freed or not, until `let_go` (a direct write may land in them)."""
        holds = self._holds
        for frame in frames:
            holds[frame] = holds.get(frame, 0) + 1

    def let_go(self, frames: list[int]) -> None:
        """Undo one `hold` of each frame; a frame freed meanwhile and held no more becomes free."""
        holds = self._holds
        for frame in frames:
            left = holds[frame] - 1
            if left:
                holds[frame] = left
                continue
            del holds[frame]
            if self.state[frame] == HELD:
                self.state[frame] = FREE
                self._recycled.append(frame)
                self.held -= 1
                self.used -= 1

    def check(self, frame: int) -> None:
        """EINVAL for a frame number outside the pool."""
        if not 0 <= frame < self.frames:
            raise NumaEmuError(ErrorCode.EINVAL, f"frame {frame} out of range 0..{self.frames - 1}")

    def read(self, frame: int, offset: int = 0, length: int | None = None) -> bytes:
        self.check(frame)
        self.referenced[frame] = 1
        base = frame * self.page_size
        end = base + (self.page_size if length is None else offset + length)
        return self.mem[base + offset:end]

    def read_stable(self, frame: int, offset: int = 0, length: int | None = None) -> bytes | None:
        """read(), but never in the middle of a task's direct write of the frame (a shared page
        whose write grant a task of this node holds): None if one stayed under way through a few
        tries (the caller waits a little and asks again)."""
        versions = self.versions
        for _ in range(_STABLE_TRIES):
            version = versions[frame]
            if version & dm.ODD:
                continue
            data = self.read(frame, offset, length)
            if versions[frame] == version:
                return data
        return None

    def write(self, frame: int, offset: int, data: bytes) -> None:
        self.check(frame)
        if offset < 0 or offset + len(data) > self.page_size:
            raise NumaEmuError(ErrorCode.EINVAL, f"write of {len(data)} bytes at {offset} crosses the page")
        self.referenced[frame] = 1
        base = frame * self.page_size + offset
        half = 2 * frame + dm.NODE_HALF
        version = self.version[half]
        self.version[half] = (version + 1) & 0xFFFFFFFF  # a task's direct read overlapping it copies again
        self.mem[base:base + len(data)] = data
        self.version[half] = (version + 2) & 0xFFFFFFFF

    def end_task_write(self, frame: int) -> None:
        """The task that held `frame`'s direct-write grant can no longer be writing it (its lock
        was had, or it died): a write it left half done (killed inside it) leaves the task half odd,
        which would send every later reader to the message path; evened here."""
        half = 2 * frame + dm.TASK_HALF
        if self.version[half] & 1:
            self.version[half] = (self.version[half] + 1) & 0xFFFFFFFF

    def is_held(self, frame: int) -> bool:
        """A direct write may still land in `frame` (its writer's entry was cleared without its lock)."""
        return frame in self._holds

    def close(self) -> None:
        self.generation.release()
        self.version.release()
        self.versions.release()
        self.referenced.release()
        self.view.release()
        self.mem.close()
        os.close(self.fd)
