"""Built-in workloads: programs that run as tasks of a cluster through the client API.

Each one is a plain function over an attached `numa_emu.Task` (or attaches one itself), so the
CLI, experiments and tests run the same code.

- ``memhog``: numactl's memhog(8): map, mbind, memset to 0xff in 10 MiB chunks, one dot each
  (`numa-emu memhog`).
- ``chase``, ``stream``, ``prodcons`` and their ``runner``: measurement workloads
  (`numa-emu workload NAME`).
- ``kbuild``: a kernel build's page-cache pattern, tasks on every node reading one shared tree
  (read-only mappings, pread) and writing a little: what replication saves.
- ``writeshare``: readers on every node against a writer of the same pages: the replicate/zap
  thrashing, the back-off and the mode filters, and (with vm.unsafe_unreplicate=1) stale reads.
- ``numa01``, ``numa02``, ``numa02_SMT``: autonuma-benchmark's, for automatic NUMA balancing: tasks
  hammering memory first touch put on the wrong node (numa02) or one buffer shared across two
  nodes (numa01); locality per round. ``autonuma`` holds what they share.
- ``racer``: the start line of those two: a leader spawns worker tasks on other CPUs, starts them
  together and gathers their lines and the cluster's counters over the run.
"""
