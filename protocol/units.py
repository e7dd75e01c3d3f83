"""Unit strings: sizes ("256MiB"), durations ("120ns") and bandwidths ("34GB/s").

Part of ``protocol/``: every size, duration or bandwidth a person types (topology files,
CLI options, experiment files) goes through one function here, so "4k" means the same
thing everywhere. Stdlib only; importing this module costs next to nothing.

Conventions (why they differ):

- Sizes are binary, as in numactl/memhog (``util.c`` ``memsize``: k = 1024) and the
  kernel's ``memparse``: "4k", "4K", "4KiB" and "4kb" are all 4096 bytes.
- Bandwidths follow the tools that publish them (Intel MLC, STREAM, vendor sheets): "GB/s"
  is 10^9 bytes per second, "GiB/s" is 2^30. We keep bandwidth in MiB/s, the unit libvirt
  and QEMU HMAT tables use (docs/machines.md#vendor-models).
- Durations are kept in nanoseconds (``latency_ns``) or seconds (``timeout_s``).
"""
from __future__ import annotations

import math
import re

from numa_emu.protocol.errors import einval

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB
PIB = 1024 * TIB

_SIZE_MULTIPLIERS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": TIB, "p": PIB}
# Regular expressions stay strings until first use (re caches them): importing is cheap.
_SIZE_RE = r"(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmgtp]?)(?:i?b)?"
_HEX_RE = r"0x[0-9a-f]+"
_SIZE_HELP = "expected a number with an optional unit (k, M, G, T; KiB, MiB ...)"

_DURATION_NS = {"ns": 1.0, "us": 1e3, "\u00b5s": 1e3, "\u03bcs": 1e3, "ms": 1e6, "s": 1e9}
_NUMBER = r"(?P<num>[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)"
_DURATION_RE = _NUMBER + r"\s*(?P<unit>ns|us|\u00b5s|\u03bcs|ms|s)?"
_DURATION_HELP = "expected a number with an optional unit (ns, us, ms, s)"

# Bytes per second of each bandwidth unit; the result is divided by MIB.
_BANDWIDTH_BYTES = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": KIB, "mib": MIB, "gib": GIB, "tib": TIB,
}
_BANDWIDTH_RE = _NUMBER + r"\s*(?:(?P<unit>(?:[kmgt]i?)?b)(?:/s|ps))?"
_BANDWIDTH_HELP = "expected a number with a unit (800MB/s, 34GB/s, 100MiB/s) or bare MiB/s"



def _is_plain_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_size(text: str | int) -> int:
    """Return a size in bytes from ``text``: 4096, "4k", "4KiB", "1.5GiB", "0x1000".

    Units are binary (k = 1024) whatever their spelling; a fraction is allowed when the
    result is a whole number of bytes. Zero is allowed; callers check positivity.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise einval(f"invalid size '{text}': must not be negative")
        return text
    if not isinstance(text, str):
        raise einval(f"invalid size {text!r}: {_SIZE_HELP}")
    stripped = text.strip()
    if re.fullmatch(_HEX_RE, stripped, re.IGNORECASE):
        if len(stripped) > 34:
            raise einval(f"invalid size '{text[:50]}': too large")
        return int(stripped, 16)
    match = re.fullmatch(_SIZE_RE, stripped, re.IGNORECASE)
    if match is None:
        raise einval(f"invalid size '{text}': {_SIZE_HELP}")
    multiplier = _SIZE_MULTIPLIERS[match["unit"].lower()]
    number = match["num"]
    if len(number) > 40:  # beyond any memory; int() of thousands of digits raises ValueError
        raise einval(f"invalid size '{text[:50]}': too large")
    if "." not in number:
        return int(number) * multiplier
    whole, _, frac = number.partition(".")
    numerator = int(whole or "0") * 10 ** len(frac) + int(frac or "0")
    n_bytes, remainder = divmod(numerator * multiplier, 10 ** len(frac))
    if remainder:
        raise einval(f"invalid size '{text}': not a whole number of bytes")
    return n_bytes


def format_size(n_bytes: int, *, exact: bool = True) -> str:
    """Format a byte count with the largest binary unit: "4KiB", "256MiB", "1.5GiB".

    With ``exact`` (the default) the text parses back to exactly ``n_bytes`` (at most two
    decimals, else a smaller unit); without it the value is rounded to two decimals, for
    display.
    """
    if not isinstance(n_bytes, int) or isinstance(n_bytes, bool) or n_bytes < 0:
        raise einval(f"invalid size {n_bytes!r}: expected a non-negative integer of bytes")
    for name, unit in (("PiB", PIB), ("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n_bytes < unit:
            continue
        if n_bytes % unit == 0:
            return f"{n_bytes // unit}{name}"
        if not exact or (n_bytes * 100) % unit == 0:
            return f"{_trim(n_bytes / unit, 2)}{name}"
    return f"{n_bytes}B"


def _trim(value: float, decimals: int) -> str:
    """Format ``value`` with at most ``decimals`` decimals and no trailing zeros."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _parse_number_with_unit(text: str | int | float, regex: str, scale: dict[str, float],
                            default_unit: str, what: str, helptext: str) -> float:
    """Shared parser: a non-negative finite number times the scale of its unit."""
    if _is_plain_number(text):
        value = float(text) * scale[default_unit]
    elif isinstance(text, str):
        match = re.fullmatch(regex, text.strip(), re.IGNORECASE)
        if match is None:
            raise einval(f"invalid {what} '{text}': {helptext}")
        unit = (match["unit"] or default_unit).lower()
        value = float(match["num"]) * scale[unit]
    else:
        raise einval(f"invalid {what} {text!r}: {helptext}")
    if not math.isfinite(value) or value < 0:
        raise einval(f"invalid {what} '{text}': must be a finite, non-negative number")
    return value


def parse_duration_ns(text: str | int | float) -> float:
    """Return a duration in nanoseconds: "120ns", "1.5us", "1µs", "2ms", "1s"; bare = ns."""
    return _parse_number_with_unit(text, _DURATION_RE, _DURATION_NS, "ns", "duration",
                                   _DURATION_HELP)


def parse_duration_s(text: str | int | float) -> float:
    """Return a duration in seconds: "5s", "250ms", "1.5us"; a bare number is seconds."""
    return _parse_number_with_unit(text, _DURATION_RE, _DURATION_NS, "s", "duration",
                                   _DURATION_HELP) / 1e9


def format_duration_ns(ns: float) -> str:
    """Format nanoseconds with the largest unit that keeps the value >= 1: "1.5us", "2ms"."""
    if not _is_plain_number(ns) or not math.isfinite(ns) or ns < 0:
        raise einval(f"invalid duration {ns!r}: expected a finite, non-negative number of ns")
    for name, unit in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= unit:
            return f"{_trim(ns / unit, 3)}{name}"
    return f"{_trim(float(ns), 3)}ns"


def parse_bandwidth_mib_s(text: str | int | float) -> float:
    """Return a bandwidth in MiB/s: "34GB/s" (10^9 B/s), "800MB/s", "100MiB/s"; bare = MiB/s."""
    scale = {unit: n_bytes / MIB for unit, n_bytes in _BANDWIDTH_BYTES.items()}
    scale[""] = 1.0  # a bare number is already MiB/s
    return _parse_number_with_unit(text, _BANDWIDTH_RE, scale, "", "bandwidth", _BANDWIDTH_HELP)


def format_bandwidth_mib_s(mib_s: float) -> str:
    """Format MiB/s the way vendors print it: "34GB/s", "17.6GB/s", "800MB/s" (decimal units)."""
    if not _is_plain_number(mib_s) or not math.isfinite(mib_s) or mib_s < 0:
        raise einval(f"invalid bandwidth {mib_s!r}: expected a finite, non-negative MiB/s")
    bytes_s = mib_s * MIB
    for name, unit in (("TB/s", 1e12), ("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if bytes_s >= unit:
            return f"{_trim(bytes_s / unit, 2)}{name}"
    return f"{_trim(bytes_s, 2)}B/s"
