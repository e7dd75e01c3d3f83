"""Experiments: a TOML file names a topology, a parameter grid, placements and workloads; the
runner executes every configuration on real clusters and writes CSV, JSON and plots.

- ``spec``: load and validate the file (file and key named in every error), expand the grid;
  ``workloadspec`` its [workloads.*] tables (built-ins or the user's commands), ``settings`` its
  sysctl grids and jitter.
- ``placement``: numactl-like placements turned into a task's environment.
- ``runner``: clusters, latency and sysctl changes, workload processes, counters; stops everything
  it starts.
- ``output``: results.csv, results.json, PNG plots and the terminal table.
"""
