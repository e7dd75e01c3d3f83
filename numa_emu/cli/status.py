"""Show a cluster: each node's pid, state, frames total/free, heartbeat age and uptime.

--json prints {"cluster", "state", "coordinator": {pid, endpoint, uptime_s},
"nodes": [{id, pid, state, endpoint, frames_total, frames_free, heartbeat_age_s, uptime_s, exit_code}]}.
"""
from __future__ import annotations

import argparse
import json

from numa_emu import cluster
from numa_emu.cli.common import add_json_option, add_name_option, running_cluster


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    add_json_option(p)


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    st = cluster.status(info)
    if args.json:
        print(json.dumps({"cluster": st.cluster, "state": st.state, "coordinator": st.coordinator,
                          "nodes": st.nodes}, indent=2))
        return 0
    c = st.coordinator
    print(f"cluster {st.cluster}: {st.state}, {len(st.nodes)} nodes, coordinator pid {c['pid']} "
          f"({c['endpoint']}), uptime {c['uptime_s']:.1f}s")
    print(f"{'node':>4} {'pid':>7} {'state':<8} {'frames free/total':>19} {'heartbeat':>9} {'uptime':>9}")
    for n in st.nodes:
        frames = f"{n['frames_free']}/{n['frames_total']}"
        print(f"{n['id']:>4} {n['pid']:>7} {n['state']:<8} {frames:>19} {_fmt_s(n['heartbeat_age_s']):>9} "
              f"{_fmt_s(n['uptime_s']):>9}")
    return 0
