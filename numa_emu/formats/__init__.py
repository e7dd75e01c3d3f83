"""The kernel's and numactl's text formats, as pure functions from plain data to strings.

Place in numa-emu: the CLI (``numa-emu numastat``, ``vmstat``, ``hardware``,
per-task ``numa_maps``) gathers counters and topology from the coordinator and the
nodes, then hands plain dicts and lists to these modules, which reproduce the real
tools' output byte for byte so that scripts written for a real machine (LTP,
numactl's own ``test/regress``) parse numa-emu's output unchanged.  Nothing here
opens a socket, starts a process or reads a clock.

- ``numastat``: numastat(8) without arguments, ``-n``, ``-m``, ``-p PID`` and ``-c``/``-z``/``-s``/``-v``,
  plus a JSON shape; ``numastat_table``: numastat.c's table engine they share.
- ``vmstat``: ``/proc/vmstat`` lines and the per-node to system-wide counter names.
- ``hardware``: ``numactl --hardware``, ``numactl --show`` and our fallback-order listing.
- ``numa_maps``: one ``/proc/PID/numa_maps`` line and the kernel's policy string.
"""
