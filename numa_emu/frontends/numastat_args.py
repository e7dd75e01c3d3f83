"""numastat(8) command-line parsing: ``numastat [-c] [-m] [-n] [-p <PID>|<pattern>] [-s[<node>]]
[-v] [-V] [-z] [ <PID>|<pattern>... ]``.

Place in numa-emu: ``numa-emu numastat`` hands its argv here and gets back what numastat.c's
``main()`` would have decided.  Source: numactl/numactl ``numastat.c`` (v2.0.19): glibc
getopt_long with the option string ``cmnp:s::vVz?`` and the long option ``--help``, so options
may come anywhere (GNU permutation, ``--`` ends them, ``POSIXLY_CORRECT`` stops at the first
operand), ``-p`` takes the rest of its word or the next word, ``-s`` only the rest of its word.
``-V`` prints the version and exits 0 where it is met; a bad option or ``-?`` prints getopt's
message (if any) and the usage on stderr and exits 1 where it is met.  ``-p`` arguments met
before that have already been searched (a pattern that matches nothing prints its message),
so they are returned alongside the stop.

numa-emu's own long options mix in: ``--name CLUSTER``, ``--json``, and ``--help``, which shows
numa-emu's help (exit 0) instead of numastat's usage (exit 1).  Compatibility mode is
numastat.c's ``argc == 1``: no argument at all apart from ``--name``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from numa_emu.frontends import FrontendExit

PROG = "numastat"
VERSION = "20130723"  # numastat.c display_version_and_exit()
# numastat prints the day its binary was compiled (__DATE__); ours is the day this front end was.
BUILD_DATE = "Dec  5 2026"

NUMASTAT_USAGE = (
    f"Usage: {PROG} [-c] [-m] [-n] [-p <PID>|<pattern>] [-s[<node>]] [-v] [-V] [-z] [ <PID>|<pattern>... ]\n"
    "-c to minimize column widths\n"
    "-m to show meminfo-like system-wide memory usage\n"
    "-n to show the numastat statistics info\n"
    "-p <PID>|<pattern> to show process info\n"
    "-s[<node>] to sort data by total column or <node>\n"
    "-v to make some reports more verbose\n"
    f"-V to show the {PROG} code version\n"
    "-z to skip rows and columns of zeros\n"
)
VERSION_LINE = f"{PROG} version: {VERSION}: {BUILD_DATE}\n"

_LONG = ("help", "json", "name")  # getopt_long accepts any unambiguous prefix


class NumastatStop(FrontendExit):
    """numastat exits where the option was met: -V (0), a bad option or -? (1)."""


@dataclass
class NumastatArgs:
    """What numastat.c's option loop leaves behind."""

    p_specs: list[str] = field(default_factory=list)  # -p arguments, in order (searched as met)
    operands: list[str] = field(default_factory=list)  # PIDs/patterns after the options
    compress: bool = False  # -c
    show_zero: bool = True  # -z clears it
    sort: bool = False  # -s
    sort_node: int = -1  # -sN
    verbose: bool = False  # -v
    system: bool = False  # -m
    numastat: bool = False  # -n
    json: bool = False  # ours
    name: str | None = None  # ours
    help: bool = False  # ours: --help stops the parse
    stop: NumastatStop | None = None  # -V, -? or a bad option, met after p_specs
    words: int = 0  # numastat's own arguments (argc - 1); 0 is compatibility mode

    @property
    def compat(self) -> bool:
        return self.words == 0 and not self.json


def all_digits(text: str) -> bool:
    """numastat.c all_digits(): true for the empty string too."""
    return all("0" <= ch <= "9" for ch in text)


def c_atoi(text: str) -> int:
    """atoi() of a string all_digits() accepted ('' is 0)."""
    return int(text) if text else 0


def _bad(message: str) -> NumastatStop:
    return NumastatStop(message.rstrip("\n"), [(2, message), (2, NUMASTAT_USAGE)], exit_code=1)


def _long(out: NumastatArgs, argv: Sequence[str], i: int) -> int:
    """One ``--word``; returns the index of the next argument."""
    body = argv[i][2:]
    name, eq, value = body.partition("=")
    matches = [o for o in _LONG if o == name] or [o for o in _LONG if o.startswith(name)]
    if not matches:
        out.stop = _bad(f"{PROG}: unrecognized option '--{body}'\n")
        return i + 1
    option = matches[0]
    if option != "name":
        if eq:
            out.stop = _bad(f"{PROG}: option '--{option}' doesn't allow an argument\n")
        elif option == "help":
            out.help = True
        else:
            out.json = True
        return i + 1
    if not eq:
        if i + 1 >= len(argv):
            out.stop = _bad(f"{PROG}: option '--name' requires an argument\n")
            return i + 1
        i += 1
        value = argv[i]
    out.name = value
    return i + 1


def _short(out: NumastatArgs, argv: Sequence[str], i: int) -> int:
    """One ``-xyz`` word; returns the index of the next argument."""
    arg = argv[i]
    for k in range(1, len(arg)):
        ch, rest = arg[k], arg[k + 1 :]
        if ch == "p":
            if not rest:
                if i + 1 >= len(argv):
                    out.stop = _bad(f"{PROG}: option requires an argument -- 'p'\n")
                    return i + 1
                i += 1
                rest = argv[i]
                out.words += 1
            out.p_specs.append(rest)
            break
        if ch == "s":
            out.sort = True
            if rest and all_digits(rest):
                out.sort_node = c_atoi(rest)
            break
        if ch in "cmnvz":
            setattr(out, {"c": "compress", "m": "system", "n": "numastat", "v": "verbose"}.get(ch, "show_zero"),
                    ch != "z")
        elif ch == "V":
            out.stop = NumastatStop("version", [(1, VERSION_LINE)], exit_code=0)
            break
        elif ch == "?":
            out.stop = _bad("")
            break
        else:
            out.stop = _bad(f"{PROG}: invalid option -- '{ch}'\n")
            break
    return i + 1


def parse_numastat_args(argv: Sequence[str], environ: dict[str, str] | None = None) -> NumastatArgs:
    """Parse numastat's argv (without the program name) up to its end or the first stop."""
    posixly = "POSIXLY_CORRECT" in (os.environ if environ is None else environ)
    out = NumastatArgs()
    i = 0
    while i < len(argv) and out.stop is None and not out.help:
        arg = argv[i]
        if arg == "--":
            out.words += len(argv) - i
            out.operands.extend(argv[i + 1 :])
            break
        if not arg.startswith("-") or arg == "-":
            if posixly:
                out.words += len(argv) - i
                out.operands.extend(argv[i:])
                break
            out.words += 1
            out.operands.append(arg)
            i += 1
            continue
        if arg.startswith("--"):
            # numastat never sees ours (--name, --json); --help and bad ones stop the parse
            i = _long(out, argv, i)
            continue
        out.words += 1
        i = _short(out, argv, i)
    return out
