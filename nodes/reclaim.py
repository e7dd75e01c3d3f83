"""Reclaim of clean page-cache pages on this node (mm/vmscan.c, much simplified).

This node's page-cache frames sit on two lists, oldest first: its replicas
(`core.replica_frames`) and the masters of file pages it holds (`core.cache_frames`). Shm pages
and private pages are never on them: there is no swap, so only what the store can give back is
reclaimable. Reclaim walks the replicas first (the master survives, so dropping one costs only a
copy on the next read), then the masters; each list is a clock: a frame read or written since the
last look (FramePool.referenced, the accessed bit) gets its bit cleared and a second chance at the
young end, any other is taken. The directory home of each victim drops it under the page lock
(dir.reclaim in nodes/replication.py: a trylock, so reclaim never waits on a page lock; mappings
shot down, a dirty master written back first, a master's replicas with it); its next access
reads it from the store again.

When: direct reclaim, in the allocation (and kswapd, below). An allocation walks its whole
zonelist first and reclaims only when every node it may use is full, then in the zonelist's
order (Linux with zone_reclaim_mode 0, the default: fall back to another node before reclaiming
the local one), retrying on each node after its reclaim (nodes.core.NodeCore.allocate). A
replica's allocation (on the reader's node only) reclaims other replicas only: a replica is
optional, and a master evicted for it would leave memory elsewhere unused while this node
thrashes. Counted on this node as /proc/vmstat does: pgscan_direct (frames looked at),
pgsteal_direct (frames freed, including the replicas elsewhere that a dropped master took
along); replicas dropped count pgreplicazap_reclaim where they lived. kswapd (a timer of the
node's server) keeps a few frames free in the background by dropping replicas only, counted
pgscan_kswapd / pgsteal_kswapd.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from numa_emu.nodes.core import Capture, NodeCore, directory_home
from numa_emu.protocol.effects import Call, Future, Spawn
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.routing import node_dest

Key = tuple[str, int]
SWAP_CLUSTER_MAX = 32  # a direct reclaim frees at least this many frames when it can (mm/vmscan.c)


def clock_victims(pages: OrderedDict[int, Key], referenced: bytearray, want: int,
                  busy: Container[int] = ()) -> tuple[list[tuple[int, Key]], int]:
    """Up to `want` frames of `pages` to reclaim, oldest first, and how many were scanned.

    Every frame looked at moves to the young end: a referenced one has its bit cleared (its second
    chance), an unreferenced one is taken (it stays there if its reclaim fails). Frames in `busy`
    (being reclaimed already) are passed over unscanned. Each frame is looked at at most twice."""
    victims: list[tuple[int, Key]] = []
    taken: set[int] = set()
    scanned = 0
    for _ in range(2 * len(pages)):
        if len(victims) >= want:
            break
        frame, key = next(iter(pages.items()))
        pages.move_to_end(frame)
        if frame in busy or frame in taken:
            continue
        scanned += 1
        if referenced[frame]:
            referenced[frame] = 0
            continue
        victims.append((frame, key))
        taken.add(frame)
    return victims, scanned


class Reclaim:
    def __init__(self, core: NodeCore):
        self.core = core
        self.busy: set[int] = set()  # frames whose dir.reclaim is on its way
        self._kswapd_running = False

    def kswapd(self):
        """Below the low watermark, drop replicas until it is met again (the master of each stays,
        so nothing has to be read back from the store). Started by a timer, outside every handler;
        one run at a time."""
        c = self.core
        low = max(2, c.pool.frames // 32)
        if self._kswapd_running or c.pool.free >= low or not c.replica_frames:
            return 0
        self._kswapd_running = True
        try:
            return (yield from self.shrink(low - c.pool.free, "kswapd", replicas_only=True))
        finally:
            self._kswapd_running = False

    def shrink(self, want: int, kind: str = "direct", replicas_only: bool = False, capture: Capture | None = None):
        """Reclaim at least `want` frames of this node (a cluster of SWAP_CLUSTER_MAX when the
        pool is big enough), replicas first (or only); returns how many frames of this node were
        freed. `capture`: the allocation that reclaims, which keeps up to its `want` of them as
        they are freed (nodes.core.Capture); the others go back to the pool."""
        c = self.core
        target = max(want, min(SWAP_CLUSTER_MAX, c.pool.frames // 16))
        freed = 0
        for pages in (c.replica_frames,) if replicas_only else (c.replica_frames, c.cache_frames):
            while freed < target:
                victims, scanned = clock_victims(pages, c.pool.referenced, target - freed, self.busy)
                c.events[f"pgscan_{kind}"] += scanned
                if not victims:
                    break
                dropped = yield from self._drop(victims, kind, capture)
                freed += dropped
                if not dropped:
                    break  # every victim was locked or gone: look again on the next allocation
        return freed

    def _drop(self, victims: list[tuple[int, Key]], kind: str, capture: Capture | None = None):
        """Ask each victim's directory home to drop it (one dir.reclaim per home, all at once);
        the number of this node's frames freed. Each freed victim goes to `capture` (when given)
        the moment its free arrives, before any other allocation here can take it."""
        c = self.core
        replicas = {frame for frame, _key in victims if frame in c.replica_frames}
        page_of = dict(victims)
        by_home: dict[int, list] = {}
        for frame, (obj, idx) in victims:
            by_home.setdefault(directory_home(obj, idx, c.n_nodes, c.shardless), []).append([obj, idx, frame])
            self.busy.add(frame)
            if capture is not None:
                c.capturing[frame] = capture
        try:
            answers = []
            for home, pages in by_home.items():
                answer = Future()
                yield Spawn(self._ask(home, pc.DirReclaim(node=c.node_id, pages=pages), answer))
                answers.append(answer)
            dropped = 0
            for answer in answers:
                reply = yield answer
                if reply is not None:
                    ours = [f for f in reply.dropped if f in page_of]  # only what was asked counts
                    dropped += len(ours)
                    c.events[f"pgsteal_{kind}"] += max(0, int(reply.freed))
                    if c.trace.on:
                        for frame in ours:
                            obj, idx = page_of[frame]
                            c.trace.emit("reclaim", obj=obj, idx=idx, frame=frame, replica=frame in replicas,
                                         by=kind)
        finally:
            self.busy.difference_update(frame for frame, _key in victims)
            if capture is not None:
                for frame, _key in victims:  # those not freed (locked, gone): no longer waited for
                    if c.capturing.get(frame) is capture:
                        del c.capturing[frame]
        return dropped

    def _ask(self, home: int, msg: pc.DirReclaim, answer: Future):
        """The directory's answer into `answer`; None when `home` is dead or silent (its pages stay)."""
        try:
            reply = yield Call(node_dest(home), msg)
        except NumaEmuError as exc:
            if exc.code not in (ErrorCode.ENODEV, ErrorCode.ETIMEDOUT):
                answer.set_exception(exc)
                return
            reply = None
        except Exception as exc:  # noqa: BLE001 - handed on whole to the waiting reclaim
            answer.set_exception(exc)
            return
        answer.set_result(reply)
