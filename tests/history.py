"""The history checker of docs/protocol.md#invariants (3): a read returns the bytes of the last write that
completed before the read began, or of a write that overlapped the read. Writes to a page come
from one writer, one after the other (sequence numbers 1, 2, ...; 0 is the initial content)."""
from __future__ import annotations

import bisect


def violations(writes: list[list[int]], reads: list[list[int]]) -> list[str]:
    """writes and reads: [page, seq, start_ns, end_ns]. Returns a description of each bad read."""
    by_page: dict[int, list[tuple[int, int, int]]] = {}
    for page, seq, start, end in writes:
        by_page.setdefault(page, []).append((seq, start, end))
    for ws in by_page.values():
        ws.sort()
    ends_of = {page: [w[2] for w in ws] for page, ws in by_page.items()}  # once per page: long logs stay fast
    bad = []
    for page, seq, start, end in reads:
        ws = by_page.get(page, [])
        ends = ends_of.get(page, [])
        completed = bisect.bisect_left(ends, start)  # writes 1..completed ended before the read began
        floor = ws[completed - 1][0] if completed else 0
        if seq < floor:
            bad.append(f"page {page}: read seq {seq} at {start}, but seq {floor} had completed before")
        elif seq > 0 and (seq > len(ws) or ws[seq - 1][1] > end):
            bad.append(f"page {page}: read seq {seq} that had not started when the read ended at {end}")
    return bad
