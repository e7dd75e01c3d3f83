"""Argument parsing for the front ends that imitate numactl's tools.

Place in numa-emu: ``numa-emu numactl``, ``numa-emu memhog`` and
``numa-emu migratepages`` accept the real tools' command lines.  These modules turn an
argv list into a plain request (policy, nodes, CPUs, command) or raise an exception
that carries exactly what the real tool would print and its exit status, so the CLI
only has to write the text and exit.  Pure functions: no sockets, no processes.

- ``numactl_args``: numactl(8) options and libnuma's node/CPU string syntax.
- ``memhog_args``: memhog(8) ``[-fFILE] [-rNUM] [-H] size[kmg] [policy [nodeset]]``.
- ``migratepages_args``: migratepages(8) ``pid from-nodes to-nodes``.
"""
