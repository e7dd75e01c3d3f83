"""Typed messages: one class per kind, registered by kind, requests paired with their replies.

A message class is a dataclass decorated with @message; its fields are the envelope's fields.
Decoding checks that the envelope has exactly the declared fields with the declared types, so a
handler never sees a malformed message (STYLE.md guideline 2).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar

from protocol.errors import ErrorCode, NumaEmuError

REGISTRY: dict[str, type["Message"]] = {}

_SIMPLE_TYPES: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    str: (str,),
    bytes: (bytes,),
    bool: (bool,),
    list: (list, tuple),
    dict: (dict,),
    Any: (object,),
}


def _accepted_types(annotation: Any) -> tuple[type, ...]:
    """Python types that msgpack may hand us for a field annotated `annotation`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: tuple[type, ...] = ()
        for arg in typing.get_args(annotation):
            out += (type(None),) if arg is type(None) else _accepted_types(arg)
        return out
    if origin is not None:
        annotation = origin
    try:
        return _SIMPLE_TYPES[annotation]
    except KeyError:
        raise TypeError(f"unsupported message field type {annotation!r}") from None


@dataclasses.dataclass(kw_only=True)
class Message:
    """Base of every message. `id` is the request id (0 on notices that need none)."""

    kind: ClassVar[str] = ""
    _fields: ClassVar[tuple[tuple[str, tuple[type, ...], bool], ...]] = ()
    id: int = 0

    def to_wire(self) -> dict[str, Any]:
        env: dict[str, Any] = {"kind": self.kind}
        for name, _types, _required in self._fields:
            env[name] = getattr(self, name)
        return env

    @classmethod
    def from_wire(cls, env: dict[str, Any]) -> "Message":
        values = {}
        for name, accepted, required in cls._fields:
            if name in env:
                value = env[name]
                if not isinstance(value, accepted) or (
                    isinstance(value, bool) and bool not in accepted and accepted != (object,)
                ):
                    raise NumaEmuError(
                        ErrorCode.EINVAL,
                        f"{cls.kind}: field '{name}' has type {type(value).__name__}, "
                        f"expected {'/'.join(t.__name__ for t in accepted)}",
                    )
                values[name] = value
            elif required:
                raise NumaEmuError(ErrorCode.EINVAL, f"{cls.kind}: missing field '{name}'")
        extra = env.keys() - values.keys() - {"kind"} - {n for n, _, _ in cls._fields}
        if extra:
            raise NumaEmuError(
                ErrorCode.EINVAL, f"{cls.kind}: unknown field(s) {', '.join(sorted(map(str, extra)))}"
            )
        return cls(**values)


class Request(Message):
    """A message that gets exactly one reply: `reply` on success, ErrorReply otherwise."""

    reply: ClassVar[type["Reply"]]


@dataclasses.dataclass(kw_only=True)
class Reply(Message):
    reply_to: int = 0


class Notice(Message):
    """A one-way message (heartbeats): never answered."""


def message(cls: type) -> type:
    """Make `cls` a dataclass message and register it under its kind."""
    kind = cls.__dict__.get("kind")
    if not kind or not isinstance(kind, str):
        raise TypeError(f"{cls.__name__} needs a 'kind' class attribute")
    if kind in REGISTRY:
        raise TypeError(f"message kind {kind!r} registered twice")
    cls = dataclasses.dataclass(kw_only=True)(cls)
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields.append((f.name, _accepted_types(hints[f.name]), required))
    cls._fields = tuple(fields)
    REGISTRY[kind] = cls
    return cls


@message
class Ok(Reply):
    """The reply of a request that returns nothing but success."""

    kind = "ok"


@message
class ErrorReply(Reply):
    """The reply to any request that failed: an errno-style code and a readable message."""

    kind = "error"
    code: str = ErrorCode.EIO.value
    message: str = ""

    def to_exception(self) -> NumaEmuError:
        try:
            return NumaEmuError(ErrorCode(self.code), self.message)
        except ValueError:
            return NumaEmuError(ErrorCode.EIO, f"{self.code}: {self.message}")
