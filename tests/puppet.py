"""A task driven by a test or a benchmark (tests/helpers.py Puppet): attaches at a CPU, then runs
one JSON command per stdin line and answers one JSON line: {"ok": result, "s": seconds} or
{"error": ERRNO, "message": ..., "s": seconds}, where `s` is the time of the API call alone,
measured here (the arguments are prepared before the clock starts).

    python tests/puppet.py CPU [HOME]   (CPU "any": the coordinator picks, and the task is not
                                         pinned; HOME only names the cluster's home for leak scans)
"""
from __future__ import annotations

import json
import sys
import time

import numa_emu


def main() -> None:
    task = numa_emu.attach(cpu=None if sys.argv[1] == "any" else int(sys.argv[1]))
    files: dict = {}
    regions: dict = {}

    def data(c: dict) -> bytes:  # hex `data`, or `length` copies of `byte`
        return bytes.fromhex(c["data"]) if "data" in c else bytes([c["byte"]]) * c["length"]

    # op -> (the API call, its arguments, what to keep of its result)
    prep = {
        "open": lambda c: (task.open, (c["name"],), {"create": c.get("create", False), "size": c.get("size")}),
        "map": lambda c: (task.mmap_file, (files[c["name"]],), {"writable": c.get("writable", True),
                                                                 "exec": c.get("exec", False)}),
        "mmap": lambda c: (task.mmap, (c["length"],), {"shared": c.get("shared", False), "name": c.get("name")}),
        "read": lambda c: (regions[c["as"]].read, (c["offset"], c["length"]), {}),
        "write": lambda c: (regions[c["as"]].write, (c["offset"], data(c)), {}),
        "where": lambda c: (regions[c["as"]].where, (), {}),
        "mbind": lambda c: (regions[c["as"]].mbind, (c["mode"], c["nodes"]), {}),
        "touch": lambda c: (regions[c["as"]].touch, (), {"fill": c.get("fill")}),
        "pread": lambda c: (files[c["name"]].pread, (c["offset"], c["length"]), {}),
        "pwrite": lambda c: (files[c["name"]].pwrite, (c["offset"], data(c)), {}),
        "fsync": lambda c: (files[c["name"]].fsync, (), {}),
        "truncate": lambda c: (files[c["name"]].truncate, (c["size"],), {}),
        "munmap": lambda c: (regions.pop(c["as"]).munmap, (), {}),
        "clock": lambda c: (task.clock_ns, (), {}),
        "node": lambda c: ((lambda: task.node), (), {}),
        "info": lambda c: (task.info, (), {}),
        "policy": lambda c: (task.set_mempolicy, (c["mode"], c.get("nodes")), {}),
        "migrate_pages": lambda c: (task.migrate_pages, (c["old"], c["new"]), {}),
        "detach": lambda c: (task.detach, (), {}),
        # (reads, writes) its direct path served so far: [0, 0] before it has one
        "direct": lambda c: ((lambda: list(task._dpath.counts()) if task._dpath is not None else [0, 0]), (), {}),
    }
    clock = time.perf_counter
    print(json.dumps({"ok": task.node}), flush=True)
    for line in sys.stdin:
        t0 = clock()
        try:
            cmd = json.loads(line)
            fn, args, kwargs = prep[cmd["op"]](cmd)
            t0 = clock()
            out = fn(*args, **kwargs)
            dt = clock() - t0
            if cmd["op"] == "open":
                files[cmd["name"]] = out
                out = out.size
            elif cmd["op"] in ("map", "mmap"):
                regions[cmd["as"]] = out
                out = out.vaddr
            elif cmd["op"] == "touch":
                out = out.pages
            elif isinstance(out, bytes):
                out = out.hex()
            elif not isinstance(out, (int, str, list, dict, type(None))):
                out = str(out)
            answer = {"ok": out, "s": dt}
        except numa_emu.NumaEmuError as exc:
            answer = {"error": exc.errno_name, "message": exc.message, "s": clock() - t0}
        except (KeyError, TypeError, ValueError) as exc:
            answer = {"error": "EINVAL", "message": f"bad puppet command {line.strip()!r}: {exc!r}", "s": 0.0}
        print(json.dumps(answer), flush=True)
    task.detach()


if __name__ == "__main__":
    main()
