"""A task driven by a test: attaches at a CPU, then runs one JSON command per stdin line and
answers one JSON line ({"ok": result} or {"error": ERRNO, "message": ...}). Lets one test play
several tasks on several nodes without writing a script per scenario."""
from __future__ import annotations

import json
import sys

import numa_emu


def main() -> None:
    task = numa_emu.attach(cpu=int(sys.argv[1]))
    files: dict = {}
    regions: dict = {}
    ops = {
        "open": lambda c: files.setdefault(c["name"], task.open(c["name"], create=c.get("create", False),
                                                                size=c.get("size"))).size,
        "map": lambda c: regions.setdefault(c["as"], task.mmap_file(files[c["name"]], writable=c.get("writable", True),
                                                                    exec=c.get("exec", False))).vaddr,
        "mmap": lambda c: regions.setdefault(c["as"], task.mmap(c["length"], shared=c.get("shared", False),
                                                               name=c.get("name"))).vaddr,
        "read": lambda c: regions[c["as"]].read(c["offset"], c["length"]).hex(),
        "write": lambda c: regions[c["as"]].write(c["offset"], bytes.fromhex(c["data"])),
        "where": lambda c: regions[c["as"]].where(),
        "mbind": lambda c: regions[c["as"]].mbind(c["mode"], c["nodes"]),
        "touch": lambda c: regions[c["as"]].touch(fill=c.get("fill")).pages,
        "pread": lambda c: files[c["name"]].pread(c["offset"], c["length"]).hex(),
        "pwrite": lambda c: files[c["name"]].pwrite(c["offset"], bytes.fromhex(c["data"])),
        "fsync": lambda c: files[c["name"]].fsync(),
        "truncate": lambda c: files[c["name"]].truncate(c["size"]),
        "munmap": lambda c: regions.pop(c["as"]).munmap(),
        "clock": lambda c: task.clock_ns(),
        "node": lambda c: task.node,
        "policy": lambda c: task.set_mempolicy(c["mode"], c.get("nodes")),
        "migrate_pages": lambda c: task.migrate_pages(c["old"], c["new"]),
        "detach": lambda c: task.detach(),
    }
    print(json.dumps({"ok": task.node}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            out = {"ok": ops[cmd["op"]](cmd)}
        except numa_emu.NumaEmuError as exc:
            out = {"error": exc.errno_name, "message": exc.message}
        print(json.dumps(out), flush=True)
    task.detach()


if __name__ == "__main__":
    main()
