"""The two ways memtoy reads commands: a script (a file, or stdin when it is not a terminal)
and an interactive shell (Python's cmd module, readline history and completion).

A failed command prints one line on stderr and the session goes on, in both. A script tells at
the end which lines failed and returns 1 (memtoy stopped at the first error with status 4; we
run on so that one script run reports every bad line). End of input is quit.
"""
from __future__ import annotations

import cmd
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from numa_emu.memtoy import commands
from numa_emu.memtoy.parsed import MemtoyError
from numa_emu.memtoy.executor import Memtoy

PROMPT = "memtoy> "
HISTORY_FILE = ".memtoy_history"  # in $NUMA_EMU_HOME
HISTORY_LENGTH = 1000


def _flush(*streams: TextIO) -> None:
    for stream in streams:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def run_script(toy: Memtoy, lines: Iterable[str], source: str, *, err: TextIO | None = None,
               echo: bool = False) -> int:
    """Run every line; 0 if all succeeded, else 1 after naming the lines that failed."""
    err = err if err is not None else sys.stderr
    failed: list[int] = []
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if echo and text and not text.startswith("#"):
            print(f"{PROMPT}{text}", file=toy.out)
        try:
            stop = toy.run_line(line)
        except MemtoyError as exc:
            failed.append(lineno)
            print(f"memtoy: {source}:{lineno}: {exc}", file=err)
            stop = False
        _flush(toy.out, err)
        if stop:
            break
    if failed:
        where = ", ".join(map(str, failed))
        print(f"memtoy: {source}: {len(failed)} command{'s' if len(failed) > 1 else ''} failed "
              f"(line{'s' if len(failed) > 1 else ''} {where})", file=err)
        return 1
    return 0


class Shell(cmd.Cmd):
    """The interactive loop: every line goes to the memtoy parser, not to do_* methods."""

    prompt = PROMPT

    def __init__(self, toy: Memtoy, *, history: Path | None = None, intro: str | None = None,
                 err: TextIO | None = None):
        super().__init__()
        self.toy = toy
        self.history = history
        self.intro = intro
        self.err = err if err is not None else sys.stderr

    # cmd.Cmd hooks --------------------------------------------------------------------------
    def onecmd(self, line: str) -> bool:
        if line == "EOF":  # cmd.Cmd's word for end of input
            print(file=self.stdout)
            return True
        try:
            return self.toy.run_line(line)
        except MemtoyError as exc:
            print(f"memtoy: {exc}", file=self.err)
            return False
        finally:
            _flush(self.stdout, self.err)

    def emptyline(self) -> bool:  # cmd.Cmd would repeat the last command
        return False

    def completenames(self, text: str, *ignored) -> list[str]:
        return [name for name in commands.COMMAND_NAMES if name.startswith(text.lower())]

    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        words = self.toy.segments.names() + ["read", "write", "private", "shared", "default", "preferred",
                                             "bind", "interleaved", "local", "noop"]
        return [w for w in words if w.startswith(text)]

    # the loop -------------------------------------------------------------------------------
    def run(self) -> int:
        readline = _readline()
        if readline is not None and self.history is not None:
            try:
                readline.read_history_file(self.history)
            except OSError:
                pass
            readline.set_history_length(HISTORY_LENGTH)
        try:
            while True:
                try:
                    self.cmdloop()
                    return 0
                except KeyboardInterrupt:  # Ctrl-C drops the line or stops a snooze, as a shell does
                    print("^C", file=self.stdout)
                    self.intro = None  # cmdloop prints it on every entry
        finally:
            if readline is not None and self.history is not None:
                try:
                    readline.write_history_file(self.history)
                except OSError as exc:
                    print(f"memtoy: cannot save history to {self.history}: {exc.strerror}", file=self.err)


def _readline():
    try:
        import readline
    except ImportError:  # not on every platform; the shell works without history
        return None
    return readline
