"""memtoy for numa-emu: Lee Schermerhorn's memory toy (HP, 2005-2007) as one task of a cluster.

Define segments, map them, set their policy, touch them and ask where their pages went, from a
shell, a script or a pipe (`numa-emu memtoy`, numa_emu/cli/memtoy.py). The pieces:

    commands.py   the command language: text -> command objects (pure)
    parsed.py     the command objects and MemtoyError, the one error of a session
    helptext.py   usage and help of every command (data)
    segments.py   the segment table, ranges and output formats (pure)
    executor.py   runs a command object against an attached numa_emu Task
    shell.py      the script runner and the interactive cmd/readline shell
"""
from numa_emu.memtoy.commands import parse
from numa_emu.memtoy.parsed import MemtoyError, ParseError

__all__ = ["MemtoyError", "ParseError", "parse"]
