"""Typed messages: one class per kind, registered by kind, requests paired with their replies.

A message class is a dataclass decorated with @message; its fields are the envelope's fields.
Decoding checks that the envelope has exactly the declared fields with the declared types, so a
handler never sees a malformed message (docs/conventions.md#typed-messages).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

REGISTRY: dict[str, type["Message"]] = {}
_UNKNOWN: frozenset[type] = frozenset()  # what Message.from_wire finds for a field the message does not have

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


_NAMES: dict[str, Any] = {"int": int, "float": float, "str": str, "bytes": bytes, "bool": bool, "list": list,
                          "dict": dict, "Any": Any}


def _accepted_from_text(text: str) -> tuple[type, ...]:
    """Types of a field annotated with a string such as 'int | None' or 'list' (the annotations
    of our message modules, under `from __future__ import annotations`): parsed directly, because
    typing.get_type_hints costs tens of milliseconds at every daemon's start-up."""
    out: tuple[type, ...] = ()
    for part in text.split("|"):
        name = part.strip().split("[", 1)[0]
        if name == "None":
            out += (type(None),)
        elif name in _NAMES:
            out += _SIMPLE_TYPES[_NAMES[name]]
        else:
            raise TypeError(f"unsupported message field type {text!r}")
    return out


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
    _exact: ClassVar[dict[str, frozenset[type] | None]] = {}  # field -> exact types allowed (None: any)
    _required: ClassVar[frozenset[str]] = frozenset()
    _defaults: ClassVar[dict[str, Any]] = {}
    id: int = 0

    def to_wire(self) -> dict[str, Any]:
        env: dict[str, Any] = {"kind": self.kind}
        env.update(self.__dict__)  # a message's instance dict holds exactly its fields
        return env

    @classmethod
    def from_wire(cls, env: dict[str, Any]) -> "Message":
        """Build from a decoded envelope, which it consumes (its `kind` is removed). msgpack yields
        exact builtin types only, so exact-type lookups check fields (and keep bool apart from
        int) at memory speed."""
        env.pop("kind", None)
        exact = cls._exact
        for name, value in env.items():
            allowed = exact.get(name, _UNKNOWN)  # one lookup per field: this runs for every message
            if allowed is not None and type(value) not in allowed:
                if allowed is _UNKNOWN:
                    extra = sorted(map(str, env.keys() - exact.keys()))
                    raise NumaEmuError(ErrorCode.EINVAL, f"{cls.kind}: unknown field(s) {', '.join(extra)}")
                accepted = next(t for n, t, _ in cls._fields if n == name)
                raise NumaEmuError(
                    ErrorCode.EINVAL,
                    f"{cls.kind}: field '{name}' has type {type(value).__name__}, "
                    f"expected {'/'.join(t.__name__ for t in accepted)}",
                )
        msg = object.__new__(cls)  # the dataclass __init__ would only repeat what was checked
        if len(env) != len(exact):  # every field named is known (above): so some are left to their defaults
            if not cls._required <= env.keys():
                missing = sorted(cls._required - env.keys())
                raise NumaEmuError(ErrorCode.EINVAL, f"{cls.kind}: missing field '{missing[0]}'")
            msg.__dict__.update(cls._defaults)
        msg.__dict__.update(env)
        return msg


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
    fields = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        accepted = _accepted_from_text(f.type) if isinstance(f.type, str) else _accepted_types(f.type)
        fields.append((f.name, accepted, required))
    cls._fields = tuple(fields)
    cls._exact = {name: (None if accepted == (object,) else frozenset(accepted)) for name, accepted, _ in fields}
    cls._required = frozenset(name for name, _, required in fields if required)
    defaults = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # pragma: no cover - no message uses one
            raise TypeError(f"{cls.__name__}.{f.name}: messages take plain defaults only")
    cls._defaults = defaults
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
