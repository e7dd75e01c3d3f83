"""A task's address space on its home node: regions (VMAs) with compact per-page arrays.

Each region holds, per page, the node and frame of the copy mapped (node -1: not present), the
frame's generation when it was mapped, and a dirty byte. Arrays, not objects: a task of a
million pages costs about 11 MB here, and the layout can later move into a shared-memory
segment that the task reads directly with a seqlock (docs/design.md#where-it-goes-next).
"""
from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

from protocol.errors import ErrorCode, NumaEmuError
from protocol.policy import Policy

ANON, SHM, FILE = "anon", "shm", "file"
# Node values of a page that is unmapped but not gone (nodes.migration): MIGRATING while a direct
# migration copies a private page (seen only under the task's lock, and by the lock-free fast
# path, which then takes the slow path and waits); MIGCACHE after mbind MOVE|LAZY until the next
# touch (a private page keeps its frame in the migration cache, a shared one stays in the page
# cache). The task's `away` map holds the node the page is on, for `where` and the fault.
MIGRATING, MIGCACHE = -2, -3
MMAP_BASE = 0x7F0000000000  # where the first region of a task goes, as Linux's mmap_base region


@dataclass
class Region:
    start: int  # bytes, page aligned
    npages: int
    kind: str  # ANON or SHM
    name: str | None = None  # shm object name
    obj_offset: int = 0  # first page's index in the shm object
    policy: Policy | None = None  # mbind policy; None: the task policy applies
    node: array = field(default_factory=lambda: array("h"))
    frame: array = field(default_factory=lambda: array("I"))
    gen: array = field(default_factory=lambda: array("I"))
    dirty: bytearray = field(default_factory=bytearray)
    wr: bytearray = field(default_factory=bytearray)  # shared pages: mapped writable (1) or read-only (0)
    writable: bool = True  # the region's protection (a file mapped read-only: False)
    exec: bool = False
    map_id: int = 0  # the mmap call it came from (pieces split by mbind share it)

    @property
    def obj(self) -> str:
        """The directory object of a shared region's pages (shm:NAME or file:NAME)."""
        return f"{self.kind}:{self.name}"

    @classmethod
    def new(cls, start: int, npages: int, kind: str, name: str | None = None, obj_offset: int = 0) -> "Region":
        return cls(start, npages, kind, name, obj_offset, None, array("h", [-1]) * npages,
                   array("I", bytes(4 * npages)), array("I", bytes(4 * npages)), bytearray(npages), bytearray(npages))

    def end(self, page_size: int) -> int:
        return self.start + self.npages * page_size

    def split(self, at_page: int) -> "Region":
        """Cut this region at page `at_page`; this keeps the head, the tail is returned."""
        tail = Region(0, self.npages - at_page, self.kind, self.name, self.obj_offset + at_page, self.policy,
                      self.node[at_page:], self.frame[at_page:], self.gen[at_page:], self.dirty[at_page:],
                      self.wr[at_page:], self.writable, self.exec, self.map_id)
        del self.node[at_page:], self.frame[at_page:], self.gen[at_page:], self.dirty[at_page:], self.wr[at_page:]
        self.npages = at_page
        return tail

    def present_pages(self) -> int:
        return self.npages - self.node.count(-1)

    def to_wire(self) -> dict:
        """The region as msgpack-able data: arrays as their raw bytes (a task moving home)."""
        return {"start": self.start, "npages": self.npages, "kind": self.kind, "name": self.name,
                "obj_offset": self.obj_offset, "policy": self.policy.to_wire() if self.policy else None,
                "node": self.node.tobytes(), "frame": self.frame.tobytes(), "gen": self.gen.tobytes(),
                "dirty": bytes(self.dirty), "wr": bytes(self.wr), "writable": self.writable, "exec": self.exec,
                "map_id": self.map_id}

    @classmethod
    def from_wire(cls, d: dict) -> "Region":
        arrays = {}
        for key, code in (("node", "h"), ("frame", "I"), ("gen", "I")):
            a = array(code)
            a.frombytes(d[key])
            arrays[key] = a
        region = cls(d["start"], d["npages"], d["kind"], d["name"], d["obj_offset"],
                     Policy.from_wire(d["policy"]) if d["policy"] else None, arrays["node"], arrays["frame"],
                     arrays["gen"], bytearray(d["dirty"]), bytearray(d["wr"]), d["writable"], d["exec"], d["map_id"])
        if not (len(region.node) == len(region.frame) == len(region.gen) == len(region.dirty) == len(region.wr)
                == region.npages):
            raise NumaEmuError(ErrorCode.EINVAL, f"region at {region.start:#x}: arrays do not hold {region.npages} pages")
        return region


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
