"""A fixed-length array of numbers whose untouched stretches take no memory, for page tables: a
reservation (mmap of 256 GiB) costs nothing until its pages are touched, and unmapping it costs
what was touched. Entries live in chunks of CHUNK, each allocated on the first write of a value
other than the default; reads of a missing chunk give the default."""
from __future__ import annotations

from array import array
from typing import Iterable, Iterator

_SHIFT = 12
CHUNK = 1 << _SHIFT  # entries per chunk: 16 MiB of 4 KiB pages, 8-16 KiB per array once touched
_MASK = CHUNK - 1


class SparseArray:
    __slots__ = ("typecode", "length", "default", "chunks")

    def __init__(self, typecode: str, length: int, default: int = 0):
        self.typecode = typecode
        self.length = length
        self.default = default
        self.chunks: dict[int, array] = {}  # chunk index -> its entries (the last chunk may be shorter)

    def __len__(self) -> int:
        return self.length

    def _chunk_len(self, ci: int) -> int:
        return min(CHUNK, self.length - ci * CHUNK)

    def _new_chunk(self, ci: int) -> array:
        chunk = self.chunks[ci] = array(self.typecode, [self.default]) * self._chunk_len(ci)
        return chunk

    def _index(self, i: int) -> int:
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} outside a sparse array of {self.length}")
        return i

    def _span(self, s: slice) -> tuple[int, int]:
        start, stop, step = s.indices(self.length)
        if step != 1:
            raise ValueError("a sparse array takes slices of step 1 only")
        return start, max(start, stop)

    def __getitem__(self, i: int | slice) -> int | array:
        if i.__class__ is int and 0 <= i < self.length:  # the page-table hot path first
            chunk = self.chunks.get(i >> _SHIFT)
            return self.default if chunk is None else chunk[i & _MASK]
        if isinstance(i, slice):
            start, stop = self._span(i)
            out = array(self.typecode)
            pos = start
            while pos < stop:
                ci, lo = divmod(pos, CHUNK)
                n = min(stop - pos, CHUNK - lo)
                chunk = self.chunks.get(ci)
                out.extend(chunk[lo:lo + n] if chunk is not None else array(self.typecode, [self.default]) * n)
                pos += n
            return out
        i = self._index(i)
        chunk = self.chunks.get(i // CHUNK)
        return self.default if chunk is None else chunk[i % CHUNK]

    def __setitem__(self, i: int | slice, value) -> None:
        if i.__class__ is int and 0 <= i < self.length:
            chunk = self.chunks.get(i >> _SHIFT)
            if chunk is not None:
                chunk[i & _MASK] = value
                return
        if isinstance(i, slice):
            start, stop = self._span(i)
            values = array(self.typecode, value)
            if len(values) != stop - start:
                raise ValueError(f"cannot assign {len(values)} entries to a slice of {stop - start}")
            pos = start
            while pos < stop:
                ci, lo = divmod(pos, CHUNK)
                n = min(stop - pos, CHUNK - lo)
                part = values[pos - start:pos - start + n]
                chunk = self.chunks.get(ci)
                if chunk is None and part.count(self.default) < n:
                    chunk = self._new_chunk(ci)
                if chunk is not None:
                    chunk[lo:lo + n] = part
                pos += n
            return
        i = self._index(i)
        ci = i // CHUNK
        chunk = self.chunks.get(ci)
        if chunk is None:
            if value == self.default:
                return
            chunk = self._new_chunk(ci)
        chunk[i - ci * CHUNK] = value

    def __iter__(self) -> Iterator[int]:
        """Every entry, the untouched ones too: O(length); page-table code uses items()."""
        for ci in range(-(-self.length // CHUNK)):
            chunk = self.chunks.get(ci)
            yield from chunk if chunk is not None else [self.default] * self._chunk_len(ci)

    def items(self, start: int = 0) -> list[tuple[int, int]]:
        """(index, value) of every entry from `start` that is not the default, in order. A list:
        the caller may change the array while it walks it."""
        out = []
        default = self.default
        for ci in sorted(self.chunks):
            base = ci * CHUNK
            if base + CHUNK <= start:
                continue
            out.extend((base + j, v) for j, v in enumerate(self.chunks[ci]) if v != default and base + j >= start)
        return out

    def count(self, value: int) -> int:
        if value == self.default:
            return self.length - sum(len(c) - c.count(value) for c in self.chunks.values())
        return sum(c.count(value) for c in self.chunks.values())

    def __contains__(self, value: int) -> bool:
        return self.count(value) > 0 if value == self.default else any(value in c for c in self.chunks.values())

    def split(self, at: int) -> "SparseArray":
        """Cut at entry `at`: this keeps [0, at), the tail [at, length) is returned."""
        if not 0 <= at <= self.length:
            raise IndexError(f"cannot split a sparse array of {self.length} at {at}")
        tail = SparseArray(self.typecode, self.length - at, self.default)
        for i, v in self.items(at):
            tail[i - at] = v
        for ci in [ci for ci in self.chunks if ci * CHUNK >= at]:
            del self.chunks[ci]
        ci, lo = divmod(at, CHUNK)
        if ci in self.chunks:
            del self.chunks[ci][lo:]
        self.length = at
        return tail

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseArray):
            return NotImplemented
        return ((self.typecode, self.length, self.default) == (other.typecode, other.length, other.default)
                and self.items() == other.items())

    def __repr__(self) -> str:
        return f"SparseArray({self.typecode!r}, {self.length}, touched chunks {sorted(self.chunks)})"

    def to_wire(self) -> list:
        """[[chunk index, raw bytes], ...]: only the touched chunks."""
        return [[ci, chunk.tobytes()] for ci, chunk in sorted(self.chunks.items())]

    @classmethod
    def from_wire(cls, typecode: str, length: int, default: int, chunks: Iterable) -> "SparseArray":
        """The inverse of to_wire; ValueError when a chunk does not fit the length."""
        out = cls(typecode, length, default)
        for ci, raw in chunks:
            if not isinstance(ci, int) or not 0 <= ci * CHUNK < length or ci in out.chunks:
                raise ValueError(f"chunk {ci!r} is outside an array of {length}")
            chunk = array(typecode)
            chunk.frombytes(raw)
            if len(chunk) != out._chunk_len(ci):
                raise ValueError(f"chunk {ci} holds {len(chunk)} entries, not {out._chunk_len(ci)}")
            out.chunks[ci] = chunk
        return out
