"""Show a cluster: each node's pid, state, frames total/free, heartbeat age and uptime.
The cluster is `up`, or `degraded` while a node is dead (the rest keeps serving).

--json prints {"cluster", "state", "coordinator": {pid, endpoint, uptime_s, host, tcp_endpoint},
"nodes": [{id, pid, state, host, endpoint, tcp_endpoint, frames_total, frames_free, heartbeat_age_s, uptime_s, exit_code}],
"tasks": [{task_id, pid, comm, cpu, node, cpuset, pages: {node: n}, clock_ns, faults}]}.
The tasks are the attached workload processes with their virtual time.
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


def _tasks(info: cluster.ClusterInfo) -> list[dict]:
    """Attached tasks with their pages by node and virtual time (from their home nodes)."""
    from numa_emu.protocol.messages import tasks as tm

    with info.client() as client:
        tasks = client.call(tm.TaskList()).tasks
        per_node = client.call(tm.ClusterStats()).nodes if tasks else {}
    usage = {tid: u for node in per_node.values() for tid, u in node["tasks"].items()}
    out = []
    for t in tasks:
        u = usage.get(t["task_id"], {})
        out.append({k: t[k] for k in ("task_id", "pid", "comm", "cpu", "node", "cpuset")}
                   | {"pages": u.get("pages", {}), "clock_ns": u.get("clock_ns", 0), "faults": u.get("faults", 0)})
    return out


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    st = cluster.status(info)
    tasks = _tasks(info) if st.state in ("up", "degraded") else []
    if args.json:
        print(json.dumps({"cluster": st.cluster, "state": st.state, "coordinator": st.coordinator,
                          "nodes": st.nodes, "tasks": tasks}, indent=2))
        return 0
    c = st.coordinator
    dead = [str(n["id"]) for n in st.nodes if n["state"] == "dead"]
    state = f"{st.state} (dead: node {' '.join(dead)})" if dead else st.state
    print(f"cluster {st.cluster}: {state}, {len(st.nodes)} nodes, coordinator pid {c['pid']} "
          f"({c['endpoint']}), uptime {c['uptime_s']:.1f}s")
    # the host column only on a cluster of several hosts (the pid is that host's)
    width = max((len(n.get("host") or "") for n in st.nodes), default=0)
    host = (lambda text: f" {text:<{max(width, 4)}}") if width else (lambda text: "")
    print(f"{'node':>4} {'pid':>7}{host('host')} {'state':<8} {'frames free/total':>19} {'heartbeat':>9} {'uptime':>9}")
    for n in st.nodes:
        frames = f"{n['frames_free']}/{n['frames_total']}"
        print(f"{n['id']:>4} {n['pid']:>7}{host(n.get('host') or '-')} {n['state']:<8} {frames:>19} "
              f"{_fmt_s(n['heartbeat_age_s']):>9} {_fmt_s(n['uptime_s']):>9}")
    if tasks:
        print(f"{'task':>7} {'comm':<16} {'cpu':>4} {'node':>4} {'pages by node':<24} {'virtual time':>14}")
        for t in tasks:
            pages = " ".join(f"N{n}={c}" for n, c in sorted(t["pages"].items())) or "-"
            print(f"{t['task_id']:>7} {t['comm'][:16]:<16} {t['cpu']:>4} {t['node']:>4} {pages:<24} {t['clock_ns']:>12}ns")
    return 0
