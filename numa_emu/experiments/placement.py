"""Placements of an experiment: the CPU a workload runs on and the memory policy it starts with.

A placement is numactl options ("--interleave=all", "--membind=2 --cpunodebind=0"), parsed by
numactl's own front-end parser, or an explicit mode and node list, plus an optional CPU. A
placement is pinned by default (one CPU: the given one, else the first, as `taskset -c N`); with
`pinned = false` it names no CPU, the coordinator places the task (the least loaded, lowest CPU
within any -N/-C binding) and NUMA balancing may move it toward its memory. It becomes the
environment that `numa_emu.attach()` reads (NUMA_EMU_CPU, NUMA_EMU_POLICY, NUMA_EMU_CPUNODEBIND,
NUMA_EMU_PHYSCPUBIND), exactly what `numa-emu numactl` would hand its command, checked against
the topology the way libnuma checks node strings (strictly).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.nodemask import format_nodelist, parse_nodelist
from numa_emu.protocol.policy import Mode, make_policy, parse_mode_name
from numa_emu.protocol.topology import Topology


@dataclass(frozen=True)
class Placement:
    """Where a workload runs and how its memory is placed."""

    name: str
    cpu: int | None = None
    policy: str | None = None  # numactl options, e.g. "--interleave=all"
    mode: str | None = None  # or an explicit policy word ...
    nodes: str | None = None  # ... and node list ("0-1")
    description: str = ""
    pinned: bool = True  # False: no CPU of its own, the task may move (NUMA balancing's task placement)

    def label(self) -> str:
        if self.policy:
            text = self.policy
        else:
            text = f"{self.mode} {self.nodes or ''}".strip() if self.mode else "default policy"
        return text if self.pinned else f"{text}, unpinned"

    def environment(self, topology: Topology) -> dict[str, str]:
        """The task's environment on `topology`; NumaEmuError (EINVAL) when it cannot be met."""
        from numa_emu import api

        env: dict[str, str] = {}
        allowed = frozenset(n.id for n in topology.nodes if n.mem_bytes > 0)
        mode, nodes = Mode.DEFAULT, frozenset()
        if self.policy is not None:
            request = numactl_request(self.policy, topology, allowed)
            if request.policy is not None:
                mode = parse_mode_name(request.policy)
                nodes = request.nodes if mode not in (Mode.LOCAL, Mode.DEFAULT) else frozenset()
            if request.cpunodebind is not None:
                env[api.ENV_NODEBIND] = format_nodelist(request.cpunodebind)
            if request.physcpubind is not None:
                env[api.ENV_CPUBIND] = format_nodelist(request.physcpubind)
        elif self.mode is not None:
            mode = parse_mode_name(self.mode)
            nodes = parse_nodelist(self.nodes or "")
        if mode != Mode.DEFAULT or nodes:
            policy = make_policy(mode, nodes, allowed=allowed, possible=topology.node_ids, strict=True)
            env[api.ENV_POLICY] = json.dumps(policy.to_wire())
        cpu = self.cpu
        if cpu is None and self.pinned and not (api.ENV_NODEBIND in env or api.ENV_CPUBIND in env):
            cpu = topology.cpus[0]
        if cpu is not None:
            topology.node_of_cpu(cpu)  # EINVAL naming the CPUs the machine has
            env[api.ENV_CPU] = str(cpu)
        return env

    def problem(self, topology: Topology) -> tuple[str, str] | None:
        """(the key at fault: cpu, mode, nodes or policy; why) if this placement cannot run on `topology`."""
        steps = [("cpu", lambda: self.cpu is None or topology.node_of_cpu(self.cpu))]
        if self.mode is not None:
            steps += [("mode", lambda: parse_mode_name(self.mode)), ("nodes", lambda: parse_nodelist(self.nodes or ""))]
        last = "policy" if self.policy is not None else "nodes" if self.mode is not None else "cpu"
        steps.append((last, lambda: self.environment(topology)))
        for key, step in steps:
            try:
                step()
            except NumaEmuError as exc:
                return key, exc.message
        return None


def numactl_request(text: str, topology: Topology, allowed: frozenset[int]):
    """numactl's reading of the options in `text` on `topology`'s root cpuset."""
    from numa_emu.frontends.numactl_args import NumactlUsageError, parse_numactl_args

    cpus = frozenset(topology.cpus)
    try:
        request = parse_numactl_args([*text.split(), "--", "true"], possible=topology.node_ids, allowed=allowed,
                                     cpus_allowed=cpus, node_of_cpu={c: topology.node_of_cpu(c) for c in cpus})
    except NumactlUsageError as exc:
        reason = (str(exc).strip().splitlines() or ["invalid options"])[0]
        raise NumaEmuError(ErrorCode.EINVAL, f"numactl options '{text}': {reason}") from None
    if request.show or request.hardware or request.version or request.command != ("true",):
        raise NumaEmuError(ErrorCode.EINVAL, f"numactl options '{text}': only policy and binding options belong here")
    return request
