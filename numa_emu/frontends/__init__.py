"""Argument parsing for the front ends that imitate numactl's tools.

Place in numa-emu: ``numa-emu numactl``, ``numa-emu memhog`` and
``numa-emu migratepages`` accept the real tools' command lines.  These modules turn an
argv list into a plain request (policy, nodes, CPUs, command) or raise an exception
that carries exactly what the real tool would print and its exit status, so the CLI
only has to write the text and exit.  Pure functions: no sockets, no processes.

- ``libnuma``: libnuma's node/CPU string syntax and C ``strtoul``, shared by all three.
- ``numactl_args``: numactl(8) options.
- ``memhog_args``: memhog(8) ``[-fFILE] [-rNUM] [-H] size[kmg] [policy [nodeset]]``.
- ``migratepages_args``: migratepages(8) ``pid from-nodes to-nodes``.
- ``numastat_args``: numastat(8) ``-c -m -n -p -s[N] -v -V -z`` (getopt_long, GNU permutation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO


class FrontendExit(Exception):
    """A front end stops with ``exit_code`` after writing ``segments`` in order.

    ``segments`` is a sequence of (fd, text) with fd 1 = stdout and 2 = stderr: the
    tools interleave the two streams (numactl prints ``<X> is invalid`` on stdout
    between libnuma's warning and the usage on stderr).  ``stdout``/``stderr`` are
    each stream's full text; ``str(exc)`` is the message without the usage text.
    """

    def __init__(self, message: str, segments: Sequence[tuple[int, str]] = (), *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.segments = tuple((fd, text) for fd, text in segments if text)
        self.exit_code = exit_code

    @property
    def stdout(self) -> str:
        return "".join(text for fd, text in self.segments if fd == 1)

    @property
    def stderr(self) -> str:
        return "".join(text for fd, text in self.segments if fd == 2)

    def write(self, stdout: TextIO, stderr: TextIO) -> None:
        """Write the segments to the two streams in order, flushing at each switch."""
        for fd, text in self.segments:
            stream = stdout if fd == 1 else stderr
            stream.write(text)
            stream.flush()
