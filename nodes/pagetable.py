"""A task's address space on its home node: regions (VMAs) with compact per-page arrays.

Each region holds, per page, the node and frame of the copy mapped (node -1: not present), the
frame's generation when it was mapped, and a dirty byte. Arrays, not objects, and sparse ones
(nodes.sparsearray): only touched stretches are allocated, so a reservation costs nothing until
touched (an untouched 256 GiB mmap took 768 MB and 2 s to unmap with dense arrays), and a
touched million pages cost about 12 MB. Walk a region's present pages with `region.node.items()`,
never over range(npages).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from numa_emu.nodes.sparsearray import SparseArray
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import Policy

ANON, SHM, FILE = "anon", "shm", "file"
# Node values of a page that is unmapped but not gone (nodes.migration): MIGRATING while a direct
# migration copies a private page (seen only under the task's lock, and by the lock-free fast
# path, which then takes the slow path and waits); MIGCACHE after mbind MOVE|LAZY until the next
# touch (a private page keeps its frame in the migration cache, a shared one stays in the page
# cache). The task's `away` map holds the node the page is on, for `where` and the fault.
MIGRATING, MIGCACHE = -2, -3
# Node value of a private page only read so far: mapped to the shared zero page, no frame of its
# own (mm/memory.c do_anonymous_page). Its first write allocates by the policy in force then.
ZEROPAGE = -4
MMAP_BASE = 0x7F0000000000  # where the first region of a task goes, as Linux's mmap_base region
# The per-page arrays of a region, in field order: (typecode, value of an untouched page).
_ARRAYS = (("h", -1), ("I", 0), ("I", 0), ("B", 0), ("B", 0))


@dataclass
class Region:
    start: int  # bytes, page aligned
    npages: int
    kind: str  # ANON or SHM
    name: str | None = None  # shm object name
    obj_offset: int = 0  # first page's index in the shm object
    policy: Policy | None = None  # mbind policy; None: the task policy applies
    node: SparseArray = field(default_factory=lambda: SparseArray("h", 0, -1))
    frame: SparseArray = field(default_factory=lambda: SparseArray("I", 0))
    gen: SparseArray = field(default_factory=lambda: SparseArray("I", 0))
    dirty: SparseArray = field(default_factory=lambda: SparseArray("B", 0))
    wr: SparseArray = field(default_factory=lambda: SparseArray("B", 0))  # shared pages: mapped writable (1) or not
    writable: bool = True  # the region's protection (a file mapped read-only: False)
    exec: bool = False
    map_id: int = 0  # the mmap call it came from (pieces split by mbind share it)

    @property
    def obj(self) -> str:
        """The directory object of a shared region's pages (shm:NAME or file:NAME)."""
        return f"{self.kind}:{self.name}"

    @classmethod
    def new(cls, start: int, npages: int, kind: str, name: str | None = None, obj_offset: int = 0) -> "Region":
        return cls(start, npages, kind, name, obj_offset, None, *(SparseArray(code, npages, default)
                                                                   for code, default in _ARRAYS))

    def end(self, page_size: int) -> int:
        return self.start + self.npages * page_size

    def split(self, at_page: int) -> "Region":
        """Cut this region at page `at_page`; this keeps the head, the tail is returned."""
        tail = Region(0, self.npages - at_page, self.kind, self.name, self.obj_offset + at_page, self.policy,
                      self.node.split(at_page), self.frame.split(at_page), self.gen.split(at_page),
                      self.dirty.split(at_page), self.wr.split(at_page), self.writable, self.exec, self.map_id)
        self.npages = at_page
        return tail

    def present_pages(self) -> int:
        """Pages with a frame of their own (the zero page is nobody's: numa_maps leaves it out)."""
        return self.npages - self.node.count(-1) - self.node.count(ZEROPAGE)

    def to_wire(self) -> dict:
        """The region as msgpack-able data: each array's touched chunks as raw bytes (a task moving home)."""
        return {"start": self.start, "npages": self.npages, "kind": self.kind, "name": self.name,
                "obj_offset": self.obj_offset, "policy": self.policy.to_wire() if self.policy else None,
                "node": self.node.to_wire(), "frame": self.frame.to_wire(), "gen": self.gen.to_wire(),
                "dirty": self.dirty.to_wire(), "wr": self.wr.to_wire(), "writable": self.writable, "exec": self.exec,
                "map_id": self.map_id}

    @classmethod
    def from_wire(cls, d: dict) -> "Region":
        npages = d["npages"]
        if not isinstance(npages, int) or npages <= 0:
            raise NumaEmuError(ErrorCode.EINVAL, f"region at {d['start']!r}: {npages!r} pages")
        try:
            arrays = [SparseArray.from_wire(code, npages, default, d[key])
                      for key, (code, default) in zip(("node", "frame", "gen", "dirty", "wr"), _ARRAYS)]
        except ValueError as exc:
            raise NumaEmuError(ErrorCode.EINVAL, f"region at {d['start']!r}: {exc}") from None
        return cls(d["start"], npages, d["kind"], d["name"], d["obj_offset"],
                   Policy.from_wire(d["policy"]) if d["policy"] else None, *arrays, d["writable"], d["exec"],
                   d["map_id"])


class AddressSpace:
    """The regions of one task, sorted by start address."""

    def __init__(self, page_size: int):
        self.page_size = page_size
        self.regions: list[Region] = []
        self._starts: list[int] = []
        self.next_vaddr = MMAP_BASE
        self.maps_made = 0

    def _reindex(self) -> None:
        self.regions.sort(key=lambda r: r.start)
        self._starts = [r.start for r in self.regions]

    def map(self, npages: int, kind: str, name: str | None = None, obj_offset: int = 0) -> Region:
        region = Region.new(self.next_vaddr, npages, kind, name, obj_offset)
        self.maps_made += 1
        region.map_id = self.maps_made
        self.next_vaddr += (npages + 1) * self.page_size  # a guard page between regions
        self.regions.append(region)
        self._reindex()
        return region

    def find(self, vaddr: int) -> Region:
        i = bisect.bisect_right(self._starts, vaddr) - 1
        if i >= 0:
            region = self.regions[i]
            if vaddr < region.end(self.page_size):
                return region
        raise NumaEmuError(ErrorCode.EFAULT, f"address {vaddr:#x} is outside every region of the task")

    def range(self, vaddr: int, length: int) -> list[tuple[Region, int, int]]:
        """(region, first page, last page + 1) pieces covering [vaddr, vaddr+length); EFAULT on a hole."""
        if length <= 0:
            raise NumaEmuError(ErrorCode.EINVAL, f"length must be positive, got {length}")
        pieces, pos, end = [], vaddr, vaddr + length
        while pos < end:
            region = self.find(pos)
            first = (pos - region.start) // self.page_size
            stop = min(end, region.end(self.page_size))
            last = (stop - 1 - region.start) // self.page_size + 1
            pieces.append((region, first, last))
            pos = stop
        return pieces

    def isolate(self, vaddr: int, length: int) -> list[Region]:
        """Split regions so that [vaddr, vaddr+length) is made of whole regions (mbind, munmap)."""
        ps = self.page_size
        if vaddr % ps:
            raise NumaEmuError(ErrorCode.EINVAL, f"address {vaddr:#x} is not page aligned")
        end = vaddr + -(-length // ps) * ps
        out = []
        for region, first, last in self.range(vaddr, end - vaddr):
            if first > 0:
                region = self._insert(region.split(first), region.start + first * ps)
                last -= first
            if last < region.npages:
                self._insert(region.split(last), region.start + last * ps)
            out.append(region)
        return out

    def _insert(self, region: Region, start: int) -> Region:
        region.start = start
        self.regions.append(region)
        self._reindex()
        return region

    def remove(self, regions: list[Region]) -> None:
        ids = {id(r) for r in regions}
        self.regions = [r for r in self.regions if id(r) not in ids]
        self._reindex()

    def to_wire(self) -> dict:
        return {"page_size": self.page_size, "next_vaddr": self.next_vaddr, "maps_made": self.maps_made,
                "regions": [r.to_wire() for r in self.regions]}

    @classmethod
    def from_wire(cls, d: dict) -> "AddressSpace":
        space = cls(d["page_size"])
        space.next_vaddr, space.maps_made = d["next_vaddr"], d["maps_made"]
        space.regions = [Region.from_wire(r) for r in d["regions"]]
        space._reindex()
        return space
