"""Every timing constant of numa-emu, in seconds, in one place.

Heartbeats follow the Paranoid Pirate pattern of the zguide: a peer silent for one interval is
suspect; it is dead when its process is gone, or after SILENT_DEAD_S of silence.
"""
from __future__ import annotations

# A killed node is reported at once by its fork server, and a dead coordinator closes every node's
# parent-alive pipe: heartbeats only have to catch a hung process. Silence alone is not death: a
# node stopped for 5 s, or a coordinator stopped for 5 s, once cost the cluster its nodes.
HEARTBEAT_INTERVAL_S = 0.4
# A node whose process lives but has been silent this long is hung: it is declared dead (and
# killed, so that the state is true). A node without a parent-alive pipe (not started by our fork
# server) exits after hearing nothing from its coordinator for as long.
SILENT_DEAD_S = 30.0
# The coordinator's own loop not turning for this long (SIGSTOP, swap) is its pause, not its
# nodes' silence: that gap is not counted against them.
OWN_PAUSE_S = 1.0

NODE_READY_TIMEOUT_S = 60.0  # `up` gives up when the nodes are not ready by then
# Deadlines shrink along a chain, so that the error of the process that did not answer reaches
# the one who asked before that one's own deadline: a task hears "node 3 did not answer ...",
# not its own timeout. CLI or task -> coordinator or node -> node.
CLIENT_TIMEOUT_S = 5.0  # default deadline of a CLI or task request
# A task whose request to its home node has had no reply this long asks the coordinator whether
# that node died (then EIO at once, not at its deadline); again after twice as long each time, up
# to SILENCE_PROBE_MAX_S. One small coordinator request per probe: a slow request pays little.
SILENCE_PROBE_FIRST_S = 0.1
SILENCE_PROBE_MAX_S = 1.0
DAEMON_CALL_TIMEOUT_S = 4.5  # default deadline of the coordinator's requests to a node
PEER_CALL_TIMEOUT_S = 4.0  # default deadline of a node-to-node request
MIGRATE_CALL_TIMEOUT_S = 120.0  # a migration of many pages (migratepages, cpuset memory_migrate) takes a while
# A node's call to another node is sent again with the same id when no reply came this soon, then
# after twice as long each time up to PEER_RETRY_MAX_S (protocol.peercalls). A call may wait behind
# others for a page lock, each of which may have lost a message: the first re-send comes soon (a
# round trip here takes 0.1-1 ms), so a lost message costs tens of milliseconds, not a deadline.
PEER_RETRY_FIRST_S = 0.025
PEER_RETRY_MAX_S = 0.5
# How long a node remembers a peer's request and its reply: past the longest deadline a re-send
# runs in, plus the longest fault delay (protocol.limits.FAULT_DELAY_MS).
SERVED_AGE_S = MIGRATE_CALL_TIMEOUT_S + 15.0
SHUTDOWN_GRACE_S = 3.0  # after a shutdown message, before SIGTERM
TERM_GRACE_S = 2.0  # after SIGTERM, before SIGKILL
CHILD_POLL_INTERVAL_S = 0.1  # how often the coordinator reaps its node processes
