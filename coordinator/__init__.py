"""The coordinator process: supervision of the nodes, cluster state, tasks, cpusets and policy.

It is never on the path of an ordinary memory access. Imports protocol only, never nodes.
"""
