"""`numa_emu.report(**metrics)`: the result line of a workload script run by an experiment
(docs/experiment-format.md#your-own-workload-script): one JSON object on stdout, flushed, whose
keys become columns of results.csv."""
from __future__ import annotations

import json
import sys


def report(**metrics) -> None:
    """Print `metrics` as one JSON line on stdout (the experiment runner reads the last such line).

    Values must be JSON-serialisable (numbers, strings, booleans, lists, dicts); TypeError otherwise."""
    print(json.dumps(metrics, sort_keys=False), file=sys.stdout, flush=True)
