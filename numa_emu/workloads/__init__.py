"""Built-in workloads: programs that run as tasks of a cluster through the client API.

Each one is a plain function over an attached `numa_emu.Task` (or attaches one itself), so the
CLI, experiments and tests run the same code.

- ``memhog``: numactl's memhog(8): map, mbind, memset to 0xff in 10 MiB chunks, one dot each
  (`numa-emu memhog`).
- ``chase``, ``stream``, ``prodcons`` and their ``runner``: measurement workloads
  (`numa-emu workload NAME`).
"""
