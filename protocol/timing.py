"""Every timing constant of numa-emu, in seconds, in one place.

Heartbeats follow the Paranoid Pirate pattern of the zguide (liveness 3): a peer silent for one
interval is suspect, silent for LIVENESS intervals is dead.
"""
from __future__ import annotations

# A killed node is reported at once by its fork server, and a dead coordinator closes every node's
# parent-alive pipe: heartbeats only have to catch a hung process, so they tolerate a loaded
# 2-core machine (a whole idle cluster was once declared dead at 3 x 0.25 s under load 7+).
HEARTBEAT_INTERVAL_S = 0.4
HEARTBEAT_LIVENESS = 5  # intervals of silence before a peer is declared dead (2 s; < 3 s)
# A node that hears nothing from its coordinator for this long exits (docs/conventions.md#no-orphans; < 5 s).
COORDINATOR_SILENCE_EXIT_S = 4.0

NODE_READY_TIMEOUT_S = 60.0  # `up` gives up when the nodes are not ready by then
CLIENT_TIMEOUT_S = 5.0  # default deadline of a CLI or task request
PEER_CALL_TIMEOUT_S = 5.0  # default deadline of a node-to-node request
MIGRATE_CALL_TIMEOUT_S = 120.0  # a migration of many pages (migratepages, cpuset memory_migrate) takes a while
SHUTDOWN_GRACE_S = 3.0  # after a shutdown message, before SIGTERM
TERM_GRACE_S = 2.0  # after SIGTERM, before SIGKILL
CHILD_POLL_INTERVAL_S = 0.1  # how often the coordinator reaps its node processes
