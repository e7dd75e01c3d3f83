"""The [workloads.NAME] tables of an experiment file: a built-in workload, its options checked by
its own argument parser (as `numa-emu workload NAME` would parse them), or the user's own command
(a list: `command = ["python", "mine.py", "--size", "{size}"]`), and a sysctl grid swept with it
only (settings.py). `c` is the file's checker (spec._Check): errors name file and key.

A command's `{NAME}` placeholders take the configuration's value of grid parameter NAME when the
run starts; "python" (or "python3") first is the runner's own interpreter, so the script can
import numa_emu; it runs in the experiment file's folder, so relative paths are resolved there.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.topology import Topology

from numa_emu.experiments import settings
from numa_emu.workloads import runner as workload_runner

_WORKLOAD = {"command", "options", "description", settings.TABLE}
# options the placement and the runner decide, and the ones a workload sets for its own partner
# tasks (prodcons' consumer, the racer's workers): none may differ from its default here
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
PYTHONS = ("python", "python3")
_RESERVED_OPTIONS = ("cpu", "cluster", "role", "ready_fd", "free_fd", "team_index", "run_id", "go_fd", "stop_fd",
                     "published_fd")


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    command: str  # a built-in workload, or "" for the user's own `script`
    options: tuple[str, ...] = ()
    sysctl: tuple[tuple[str, tuple], ...] = ()  # (key, values) swept with this workload only
    script: tuple[str, ...] = ()  # the user's command, placeholders not yet substituted

    def placeholders(self) -> list[str]:
        """The grid parameters the command names, in order."""
        return list(dict.fromkeys(m for part in self.script for m in PLACEHOLDER.findall(part)))

    def argv(self, python: str, values: dict | None = None) -> list[str]:
        """The process's argv for a configuration's `values`; NumaEmuError (EINVAL) naming a
        placeholder the grid has no value for."""
        if not self.script:
            return [python, "-m", workload_runner.BUILTIN[self.command], *self.options]
        values = values or {}

        def value(m: re.Match) -> str:
            name = m.group(1)
            if values.get(name) is None:
                known = ", ".join(k for k, v in values.items() if v is not None)
                raise NumaEmuError(ErrorCode.EINVAL, f"command placeholder {{{name}}} is not a grid parameter "
                                                     f"of this configuration (grid: {known})")
            return _text(values[name])

        argv = [PLACEHOLDER.sub(value, part) for part in self.script]
        return [python, *argv[1:]] if argv[0] in PYTHONS else argv


def _text(value: Any) -> str:
    """A grid value in a command line: 4.0 -> "4", 0.5 -> "0.5", words as they are."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise ValueError(message)


def _options(c, key: str, value: Any) -> list[str]:
    if isinstance(value, list):
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise c.fail(key, "expected a list of strings and numbers")
        return [str(v) for v in value]
    out: list[str] = []
    for k, v in c.table(value, key).items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            out.append(flag)
        elif v is False:
            continue
        elif isinstance(v, (str, int, float)):
            out += [flag, str(v)]
        else:
            raise c.fail(f"{key}.{k}", f"expected a string, number or boolean, got {settings.show(v)}")
    return out


def _merge_options(base: Any, over: Any) -> Any:
    return {**base, **over} if isinstance(base, dict) and isinstance(over, dict) else over


def workload(c, name: str, raw: Any, quick_raw: dict | None, topologies: list[Topology]) -> WorkloadSpec:
    key = f"workloads.{name}"
    c.table(raw, key, _WORKLOAD)
    sysctl_raw, skey = raw.get(settings.TABLE, {}), f"{key}.{settings.TABLE}"
    if quick_raw is not None and settings.TABLE in quick_raw:
        sysctl_raw, skey = settings.merged(sysctl_raw, quick_raw[settings.TABLE]), f"quick.{key}.{settings.TABLE}"
    sysctl = settings.swept(c, sysctl_raw, skey, topologies)
    if isinstance(raw.get("command"), list):
        return WorkloadSpec(name, "", (), tuple(sysctl.items()), _script(c, f"{key}.command", raw, quick_raw))
    command = c.string(raw.get("command", name), f"{key}.command")
    if command not in workload_runner.BUILTIN:
        raise c.fail(f"{key}.command", f"no built-in workload '{command}' (built-in: {', '.join(workload_runner.BUILTIN)})")
    options = raw.get("options", [])
    okey = f"{key}.options"
    if quick_raw is not None and "options" in quick_raw:
        options, okey = _merge_options(options, quick_raw["options"]), f"quick.{key}.options"
    argv = _options(c, okey, options)
    parser = workload_runner.build_parser(command, _RaisingParser)
    try:
        parsed = parser.parse_args(argv)
    except ValueError as exc:
        raise c.fail(okey, f"{command}: {exc}") from None
    defaults = parser.parse_args([])
    for dest in _RESERVED_OPTIONS:
        if getattr(parsed, dest, None) != getattr(defaults, dest, None):
            raise c.fail(okey, f"--{dest.replace('_', '-')} is set by the placement and the runner, not here")
    return WorkloadSpec(name, command, tuple(argv), tuple(sysctl.items()))


def _script(c, key: str, raw: dict, quick_raw: dict | None) -> tuple[str, ...]:
    """The user's command: a non-empty list of strings and numbers, arguments in it (no options)."""
    parts = raw["command"]
    if not parts or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in parts):
        raise c.fail(key, "expected a non-empty list of strings and numbers, "
                          "e.g. [\"python\", \"mine.py\", \"{size}\"]")
    if not str(parts[0]).strip():
        raise c.fail(f"{key}[0]", "the program is empty")
    table = key.rsplit(".", 1)[0]
    for where, given in ((f"{table}.options", raw), (f"quick.{table}.options", quick_raw or {})):
        if "options" in given:
            raise c.fail(where, "a command list takes its arguments in the list itself")
    return tuple(str(v) for v in parts)
