"""The names messages are routed by: a node's is "node:N" (its routing id on every connection it
makes, and the destination name a reactor resolves to its endpoint); the coordinator's is
"coordinator". Written here only, for the coordinator, the nodes, the reactor and the client.
"""
from __future__ import annotations

COORDINATOR = "coordinator"
NODE_PREFIX = "node:"
NODE_PREFIX_BYTES = NODE_PREFIX.encode()  # a routing id as it arrives: hot paths compare bytes


def node_dest(node: int) -> str:
    """The routing name of node `node`."""
    return f"{NODE_PREFIX}{node}"


def node_of(name: str | bytes) -> int:
    """The node a routing name names; ValueError when it names none ("node:x", "coordinator")."""
    text = name.decode() if isinstance(name, bytes) else name
    if not text.startswith(NODE_PREFIX):
        raise ValueError(f"{text!r} is not a node's routing name")
    return int(text[len(NODE_PREFIX):])
