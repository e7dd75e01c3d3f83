"""The protocol version and the tag frame that carries it (zguide MDP, jupyter_client).

Every message starts with the tag frame, so a receiver rejects an incompatible peer before it
tries to decode anything else.
"""
from __future__ import annotations

PROTOCOL_NAME = b"NUMAEMU"
PROTOCOL_VERSION = 1
TAG = PROTOCOL_NAME + b"/" + str(PROTOCOL_VERSION).encode()


def describe_tag(tag: bytes) -> str:
    """A readable form of a tag frame for error messages."""
    try:
        return tag.decode("ascii") if tag.isascii() and len(tag) <= 32 else repr(tag[:32])
    except UnicodeDecodeError:  # pragma: no cover - isascii() guards this
        return repr(tag[:32])
