"""memtoy's command language, parsed: one line of text -> one frozen command object.

Place in numa-emu: `numa-emu memtoy` (numa_emu/cli/memtoy.py) reads lines; this module turns each
into a dataclass below without any cluster in sight; numa_emu/memtoy/executor.py carries it out
against an attached Task. The grammar is Lee Schermerhorn's memtoy (HP, `commands.c`, 2005-2007;
docs/linux-semantics.md#memtoy), and so are these rules:

- a command may be abbreviated to any unique prefix (`wh` is `where`);
- sizes are numbers with an optional k, m, g or p suffix, p meaning pages of the task's page size;
  any other unit protocol.units.parse_size knows ("64KiB", "0x1000") works too;
- an `<off> <len>` pair is recognised by its leading digit; `<len>` `*` or 0 runs to the end of
  the segment;
- a policy is default, preferred, bind, interleaved, local or noop (or any prefix of those, or a
  numactl/kernel spelling such as interleave), followed by `+move[+all][+lazy]` for mbind;
- a node list is required except for default, local and noop; `*` means every allowed node for
  interleaved and local allocation for preferred. Node lists take the kernel list format
  ("0-2,5"), a superset of memtoy's comma list.

Every error is a ParseError whose text is one line without the `memtoy:` prefix. The command
objects live in numa_emu/memtoy/parsed.py and are importable from here too.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.nodemask import parse_nodelist
from numa_emu.protocol.policy import MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, Mode, parse_mode_name
from numa_emu.protocol.units import parse_duration_s, parse_size

from numa_emu.memtoy import helptext
from numa_emu.memtoy.parsed import (Anon, Command, File, Help, Map, Mbind, MemtoyError, Migrate, Mpol, Numa,
                                    ParseError, Pid, PolicyArg, Quit, Range, Remove, Shmem, Show, Snooze, Time,
                                    Touch, Unmap, Where)

__all__ = ["parse", "resolve_command", "parse_size_arg", "parse_node_list", "COMMAND_NAMES", "PARSERS",
           "MemtoyError", "ParseError", "Range", "PolicyArg", "Anon", "Shmem", "File", "Map", "Unmap", "Remove",
           "Touch", "Mbind", "Where", "Mpol", "Migrate", "Show", "Snooze", "Help", "Numa", "Pid", "Time", "Quit",
           "Command"]


# ---- argument scanning -----------------------------------------------------------------------

class _Args:
    """The words after the command name, consumed left to right."""

    def __init__(self, name: str, words: list[str], page_size: int, n_nodes: int | None):
        self.name, self.words, self.page_size, self.n_nodes = name, words, page_size, n_nodes
        self.pos = 0

    def error(self, message: str) -> ParseError:
        return ParseError(f"{self.name}: {message}")

    def usage_error(self, message: str) -> ParseError:
        return ParseError(f"{self.name}: {message} (usage: {helptext.USAGE[self.name]})")

    def peek(self) -> str | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def optional(self) -> str | None:
        word = self.peek()
        if word is not None:
            self.pos += 1
        return word

    def take(self, what: str) -> str:
        word = self.optional()
        if word is None:
            raise self.usage_error(f"missing {what}")
        return word

    def rest(self) -> list[str]:
        words, self.pos = self.words[self.pos:], len(self.words)
        return words

    def done(self) -> None:
        if self.pos < len(self.words):
            raise self.usage_error(f"unexpected argument '{self.words[self.pos]}'")

    def size(self, text: str, what: str) -> int:
        return parse_size_arg(text, self.page_size, what, self.name)


_PAGES_RE = r"(0x[0-9a-f]+|\d+)p"


def parse_size_arg(text: str, page_size: int, what: str = "size", command: str | None = None) -> int:
    """A memtoy size in bytes: "16p" (pages), "4k", "1m", "2g", "0x1000", "64KiB"."""
    match = re.fullmatch(_PAGES_RE, text, re.IGNORECASE)
    if match:
        digits = match[1]
        return (int(digits, 16) if digits.lower().startswith("0x") else int(digits)) * page_size
    try:
        return parse_size(text)
    except NumaEmuError:
        where = f"{command}: " if command else ""
        raise ParseError(f"{where}bad {what} '{text}': expected a number with an optional k, m, g "
                         f"or p (pages) suffix") from None


def parse_node_list(text: str, n_nodes: int | None = None, command: str | None = None) -> frozenset[int]:
    """A non-empty node list ("1", "0,2", "0-3"); with n_nodes, every id must exist."""
    where = f"{command}: " if command else ""
    try:
        nodes = parse_nodelist(text)
    except NumaEmuError as exc:
        raise ParseError(f"{where}bad node list '{text}': {exc.message.split(': ', 1)[-1]}") from None
    if not nodes:
        raise ParseError(f"{where}bad node list '{text}': no node in it")
    if n_nodes is not None and max(nodes) >= n_nodes:
        raise ParseError(f"{where}bad node list '{text}': node ids must be <= {n_nodes - 1}")
    return nodes


def _range(args: _Args) -> Range | None:
    word = args.peek()
    if word is None or not word[0].isdigit():
        return None
    offset = args.size(args.take("<off>"), "offset")
    length_word = args.optional()
    if length_word is None:
        raise args.usage_error("expected <len> after <off>")
    length = 0 if length_word == "*" else args.size(length_word, "length")
    return Range(offset, length)


def _is_prefix(word: str, of: str) -> bool:
    return bool(word) and of.startswith(word.lower())


def _share(args: _Args, word: str) -> bool:
    if _is_prefix(word, "shared"):
        return True
    if _is_prefix(word, "private"):
        return False
    raise args.usage_error(f"segment share must be 'private' or 'shared', not '{word}'")


# ---- policies --------------------------------------------------------------------------------

_POLICY_WORDS = ("default", "preferred", "bind", "interleaved", "local", "noop")
_STAR_MODES = (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE, Mode.PREFERRED)


def _policy_mode(args: _Args, word: str) -> Mode | None:
    lower = word.lower()
    if lower == "noop":
        return None
    try:
        return parse_mode_name(lower)
    except NumaEmuError:
        pass
    matches = [p for p in _POLICY_WORDS if p.startswith(lower)]
    if len(matches) == 1:
        return None if matches[0] == "noop" else parse_mode_name(matches[0])
    raise args.error(f"unrecognized policy '{word}' (one of {', '.join(_POLICY_WORDS)})")


def _mbind_flags(args: _Args, words: list[str]) -> int:
    """memtoy's `+move[+all][+lazy]` modifiers (get_mbind_flags), as MPOL_MF_* bits."""
    if not words:
        return 0
    first = words[0].lower()
    if first == "shared":
        raise args.error("'+shared' comes right after the policy word")
    if first != "move":
        if first in ("all", "lazy"):
            raise args.error(f"expected 'move' before '+{words[0]}'")
        raise args.error(f"unrecognized mbind flag '+{words[0]}' (expected +move[+all][+lazy])")
    flags = MPOL_MF_MOVE
    for word in words[1:]:
        if word.lower() == "all":
            flags = (flags & ~MPOL_MF_MOVE) | MPOL_MF_MOVE_ALL
        elif word.lower() == "lazy":
            flags |= MPOL_MF_LAZY
        else:
            raise args.error(f"expected 'all' or 'lazy' after '+move', not '+{word}'")
    return flags


def _policy(args: _Args, *, with_flags: bool) -> tuple[PolicyArg, int, bool]:
    """`<policy>[+shared][+move[+all][+lazy]] [<nodes>]`: the policy, the MPOL_MF_* flags and
    whether it is the shared policy of a file; flags may also follow the word after a blank."""
    text = args.take("<policy>")
    while (args.peek() or "").startswith("+"):
        text += args.take("<policy>")
    word, *flag_words = text.split("+")
    mode = _policy_mode(args, word)
    if flag_words and not with_flags:
        raise args.error("+shared, +move, +all and +lazy modify mbind only")
    shared = bool(flag_words) and flag_words[0].lower() == "shared"
    flags = _mbind_flags(args, flag_words[shared:])
    name = "noop" if mode is None else word.lower()
    nodes_word = args.optional()
    if mode in (None, Mode.DEFAULT, Mode.LOCAL):
        if nodes_word is not None:
            raise args.usage_error(f"policy '{name}' takes no node list, got '{nodes_word}'")
        return PolicyArg(mode), flags, shared
    if nodes_word is None:
        raise args.usage_error(f"missing <nodes> for policy '{name}'")
    if nodes_word == "*":
        if mode not in _STAR_MODES:
            raise args.error("'*' is valid only for the interleaved and preferred policies")
        # preferred with an empty mask is local allocation (set_mempolicy(2), docs/linux-semantics.md#policies)
        return PolicyArg(mode, all_allowed=mode != Mode.PREFERRED), flags, shared
    return PolicyArg(mode, parse_node_list(nodes_word, args.n_nodes, args.name)), flags, shared


# ---- one parser per command ------------------------------------------------------------------

def _anon(args: _Args) -> Anon:
    seg = args.take("<seg>")
    size = args.size(args.take("<size>"), "size")
    word = args.optional()
    return Anon(seg, size, _share(args, word) if word is not None else False)


def _shmem(args: _Args) -> Shmem:
    seg = args.take("<seg>")
    size = args.size(args.take("<size>"), "size")
    if args.peek() is not None and _is_prefix(args.peek(), "huge"):
        raise args.error("huge pages are not emulated")
    return Shmem(seg, size)


def _file(args: _Args) -> File:
    path = args.take("<path>")
    rng = _range(args)
    word = args.optional()
    return File(path, rng, _share(args, word) if word is not None else False)


def _map(args: _Args) -> Map:
    seg = args.take("<seg>")
    if args.peek() is not None and args.peek()[0].isdigit():
        raise args.error("<off> <len> apply to file segments only")
    word = args.optional()
    return Map(seg, None if word is None else _share(args, word))


def _touch(args: _Args) -> Touch:
    seg = args.take("<seg>")
    rng = _range(args)
    word = args.optional()
    if word is not None and not (_is_prefix(word, "read") or _is_prefix(word, "write")):
        raise args.usage_error(f"access must be 'read' or 'write', not '{word}'")
    return Touch(seg, rng, word is not None and _is_prefix(word, "write"))


def _mbind(args: _Args) -> Mbind:
    seg = args.take("<seg>")
    rng = _range(args)
    policy, flags, shared = _policy(args, with_flags=True)
    if policy.mode is None and not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        raise args.error("policy 'noop' keeps the policy: use it with +move")
    if shared and (policy.mode is None or flags):
        raise args.error("+shared sets a file's shared policy: it takes a policy and no +move")
    return Mbind(seg, policy, rng, flags, shared)


def _mpol(args: _Args) -> Mpol:
    if args.peek() is None:
        return Mpol()
    policy, _, _ = _policy(args, with_flags=False)
    if policy.mode is None:
        raise args.error("policy 'noop' applies to mbind +move only")
    return Mpol(policy)


def _migrate(args: _Args) -> Migrate:
    to_nodes = parse_node_list(args.take("<to-nodes>"), args.n_nodes, args.name)
    from_word = args.optional()
    return Migrate(to_nodes, None if from_word is None else parse_node_list(from_word, args.n_nodes, args.name))


def _snooze(args: _Args) -> Snooze:
    word = args.take("<seconds>")
    try:
        return Snooze(parse_duration_s(word))
    except NumaEmuError:
        raise args.usage_error(f"bad time '{word}': expected seconds, or a number with ms, us or s") from None


def _help(args: _Args) -> Help:
    word = args.optional()
    return Help(None if word is None else resolve_command(word))


def _unsupported(args: _Args):
    args.rest()
    raise args.error(helptext.UNSUPPORTED[args.name])


PARSERS: dict[str, Callable[[_Args], object]] = {
    "anon": _anon, "shmem": _shmem, "file": _file,
    "map": _map, "unmap": lambda a: Unmap(a.take("<seg>")),
    "remove": lambda a: Remove((a.take("<seg>"), *a.rest())),
    "touch": _touch, "mbind": _mbind, "where": lambda a: Where(a.take("<seg>"), _range(a)),
    "mpol": _mpol, "migrate": _migrate, "numa": lambda a: Numa(), "show": lambda a: Show(a.optional()),
    "pid": lambda a: Pid(), "time": lambda a: Time(), "snooze": _snooze,
    "help": _help, "man": _help, "quit": lambda a: Quit(), "exit": lambda a: Quit(),
    **{name: _unsupported for name in helptext.UNSUPPORTED},
}

COMMAND_NAMES = tuple(sorted(PARSERS))


def resolve_command(word: str) -> str:
    """The full command name for `word`: itself, `?` for help, or a unique prefix."""
    lower = word.lower()
    if lower == "?":
        return "help"
    if lower in PARSERS:
        return lower
    matches = [name for name in COMMAND_NAMES if name.startswith(lower)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ParseError(f"ambiguous command '{word}': {', '.join(matches)}")
    raise ParseError(f"unrecognized command '{word}' (type 'help' for the list)")


def parse(line: str, *, page_size: int = 4096, n_nodes: int | None = None) -> Command | None:
    """The command on `line`, or None for a blank line or a `#` comment; ParseError otherwise.

    `page_size` gives the `p` suffix its meaning; with `n_nodes`, node ids must be below it."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("/"):
        raise ParseError("commands for child sessions (/<child> ...) are not emulated: "
                         "start another numa-emu memtoy instead")
    word, *words = text.split()
    name = resolve_command(word)
    args = _Args(name, words, page_size, n_nodes)
    command = PARSERS[name](args)
    args.done()
    return command
