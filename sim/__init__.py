"""The memory protocol run in one process: N nodes and the coordinator's pure services on a
seeded, replayable network with virtual time, its invariants checked after every message
(docs/simulator.md). Nothing of the project imports it but its tests; `numa-emu sim` runs
`python -m numa_emu.sim`."""
