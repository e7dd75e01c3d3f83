"""The one codec: msgpack configured once, frames as docs/design.md#wire lays them out.

Frames on the wire: [routing ids..., TAG, envelope]. The envelope is one msgpack map with `kind`,
`id`, `reply_to` on replies, and the kind's fields; page contents are msgpack bin values inside
it (measured: at 4 KiB one msgpack frame is as fast as a raw zero-copy frame). No pickle, ever.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

import msgpack

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import REGISTRY, ErrorReply, Message, Reply
from numa_emu.protocol.version import PROTOCOL_NAME, TAG, describe_tag

log = logging.getLogger(__name__)

# Larger than any batch we send (a batch of 4096 pages of 4 KiB is 16 MiB), smaller than what
# would hurt a node that receives it.
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024


class WireError(NumaEmuError):
    """Frames that could not be decoded. `request_id` is set when an id could still be read,
    so that the receiver can answer the sender."""

    def __init__(self, code: ErrorCode, message: str, request_id: int | None = None):
        super().__init__(code, message)
        self.request_id = request_id


# One Packer per thread, kept: msgpack.packb makes a new one at every call (0.7 us against 0.45 us
# for an envelope here); a Packer clears itself after each pack, also after a failed one.
_packers = threading.local()


def pack(obj: Any) -> bytes:
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(obj)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def encode(msg: Message) -> list[bytes]:
    """The frames of `msg`, without routing ids; EINVAL when a value cannot be packed (an
    integer beyond 64 bits, text that is not UTF-8), so that a caller learns it as any error."""
    try:
        return [TAG, pack(msg.to_wire())]
    except (OverflowError, ValueError, TypeError) as exc:
        raise NumaEmuError(ErrorCode.EINVAL, f"{msg.kind} cannot be packed: {exc.__class__.__name__}: {exc}") from None


def encode_reply(reply: Reply, request_id: int, stats: Counter[str]) -> list[bytes]:
    """The frames of `reply` to request `request_id`. A reply that cannot be packed (a value
    beyond what msgpack holds, text that is not UTF-8, a handler's bug) becomes an EIO error
    reply and a log line: the requester learns of it, the process goes on serving."""
    try:
        reply.reply_to = request_id
        return encode(reply)
    except Exception as exc:
        kind = getattr(reply, "kind", type(reply).__name__)
        log.exception("the %s reply to request %s could not be packed", kind, request_id)
        stats["replies_unpackable"] += 1
        why = exc.message if isinstance(exc, NumaEmuError) else f"{kind} cannot be packed: {exc.__class__.__name__}: {exc}"
        why = why[:200].encode("utf-8", "replace").decode("utf-8")
        return encode(ErrorReply(code=ErrorCode.EIO.value, reply_to=request_id, message=f"internal error: {why}"))


def decode(frames: list[bytes]) -> Message:
    """A message from its frames (routing ids already removed); WireError when malformed."""
    if len(frames) < 2:
        raise WireError(
            ErrorCode.EPROTO,
            f"truncated message: expected a version tag frame and an envelope, got {len(frames)} frame(s)",
        )
    tag, body = frames[0], frames[1]
    if tag != TAG:
        if tag.startswith(PROTOCOL_NAME + b"/"):
            raise WireError(
                ErrorCode.EPROTO,
                f"protocol version mismatch: peer speaks {describe_tag(tag)}, "
                f"this process speaks {TAG.decode()}; run the same numa-emu version on both sides",
            )
        raise WireError(
            ErrorCode.EPROTO,
            f"not a numa-emu message: first frame is {describe_tag(tag)}, expected {TAG.decode()}",
        )
    if len(body) > MAX_ENVELOPE_BYTES:
        raise WireError(
            ErrorCode.EMSGSIZE,
            f"message of {len(body)} bytes exceeds the limit of {MAX_ENVELOPE_BYTES} bytes; split the batch",
        )
    try:
        env = unpack(body)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        detail = f": {exc}" if str(exc) else ""
        raise WireError(ErrorCode.EINVAL, f"malformed envelope ({exc.__class__.__name__}{detail})") from None
    if not isinstance(env, dict):
        raise WireError(ErrorCode.EINVAL, f"malformed envelope: expected a map, got {type(env).__name__}")
    # the request id is read before from_wire consumes the envelope, but only looked at on errors
    request_id = env.get("id")
    kind = env.get("kind")
    if not isinstance(kind, str):
        raise WireError(ErrorCode.EINVAL, "malformed envelope: no 'kind' string", _int_or_none(request_id))
    cls = REGISTRY.get(kind)
    if cls is None:
        raise WireError(ErrorCode.EINVAL, f"unknown message kind {kind[:64]!r}", _int_or_none(request_id))
    try:
        return cls.from_wire(env)
    except NumaEmuError as exc:
        raise WireError(exc.code, exc.message, _int_or_none(request_id)) from None
    except (TypeError, ValueError) as exc:
        raise WireError(ErrorCode.EINVAL, f"{kind}: {exc}", _int_or_none(request_id)) from None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
