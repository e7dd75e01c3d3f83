"""The help of every memtoy command: usage line, one-line summary and details (`help [cmd]`).

Data only, shared by the parser (usage in error messages) and the shell (`help`). The wording
is ours; the command set and grammar follow memtoy's command table (docs/linux-semantics.md#memtoy).
"""
from __future__ import annotations

# name -> (usage, summary, details); the order is the order of `help`
COMMANDS: dict[str, tuple[str, str, str]] = {
    "anon": ("anon <seg> <size>[k|m|g|p] [private|shared]",
             "define an anonymous segment (then map it)",
             "Segment names are unique within the session. A shared anonymous segment is a shared\n"
             "object named <seg>, visible to every task of the cluster that maps the same name;\n"
             "its pages stay in the cluster after remove (there is no shm removal yet)."),
    "shmem": ("shmem <seg> <size>[k|m|g|p]",
              "define a shared memory segment (then map it)",
              "Like 'anon <seg> <size> shared'. Huge pages are not emulated."),
    "file": ("file <path> [<off> <len>] [private|shared]",
             "define a segment of a page-cache file (then map it)",
             "<path> is a file of the cluster's store, or a host file imported into the store\n"
             "under its base name the first time. Mapped shared; 'private' is accepted and mapped\n"
             "shared too (numa-emu has no private file mappings)."),
    "map": ("map <seg> [private|shared]",
            "map a defined, unmapped segment into the task",
            "private|shared overrides the share of an anonymous segment. Mapping a segment that\n"
            "is mapped already is harmless."),
    "unmap": ("unmap <seg>",
              "unmap a segment, keeping its definition", ""),
    "remove": ("remove <seg> [<seg> ...]",
               "unmap (if mapped) and forget the named segments", ""),
    "touch": ("touch <seg> [<off> <len>] [read|write]",
              "read (default) or write each page, faulting absent ones in",
              "The range defaults to the whole segment; <len> '*' or 0 runs to its end. One\n"
              "batched request; prints the pages touched, the faults and the virtual time taken.\n"
              "A read of an anon page never written maps the zero page and allocates nothing:\n"
              "write to place pages by policy."),
    "mbind": ("mbind <seg> [<off> <len>] <policy>[+shared][+move[+all][+lazy]] [<nodes>]",
              "set the memory policy of a range of a mapped segment",
              "<policy>: default, preferred, bind, interleaved, local, or noop (keep the policy,\n"
              "with +move). <nodes>: a node list such as 1, 0,2 or 0-3; none for default, local\n"
              "and noop; '*' is every allowed node for interleaved, local allocation for preferred.\n"
              "+move migrates the pages already there that the policy would place elsewhere, +all\n"
              "also shared ones, +lazy only unmaps them: the next touch migrates each page (Lee's\n"
              "migrate-on-fault). Prints the virtual time the migration or the unmap took.\n"
              "+shared (a file segment) makes the policy the file's shared policy: its pages are\n"
              "allocated by it whoever faults them first; cached pages stay where they are."),
    "where": ("where <seg> [<off> <len>]",
              "the node of each page, in memtoy's layout ('-' if it has none)",
              "The segment line, a 'page offset' header with +00 to +07, then eight nodes a line\n"
              "after the hexadecimal page offset within the segment. Without <off> <len> the first\n"
              "64 pages. `numa-emu memtoy --where-lines` prints one 'PAGE NODE' line per page\n"
              "instead, then '... N more pages' if the default window left some out. '-' also for a\n"
              "page only read (the zero page: `touch SEG write` allocates). Unlike memtoy,\n"
              "where never faults a page in."),
    "mpol": ("mpol [<policy> [<nodes>]]",
             "show, or set, the task's memory policy (set_mempolicy)",
             "Policies and node lists as for mbind; no +flags."),
    "migrate": ("migrate <to-nodes> [<from-nodes>]",
                "migrate the task's pages to <to-nodes> (migrate_pages)",
                "The pages on <from-nodes> (default: every node the task may use) move to <to-nodes>,\n"
                "the i-th node of one list to the i-th of the other. Shared pages move too. Prints the\n"
                "pages that could not be moved, if any, and the virtual time taken."),
    "numa": ("numa", "the nodes, their size and free memory (numactl --hardware)", ""),
    "show": ("show [<seg>]",
             "the segments: type, size, address, policy, pages per node",
             "The policy is the segment's own (mbind) policy; 'default' means the task policy\n"
             "applies. Pages are the present pages per node, as numa_maps counts them."),
    "pid": ("pid", "the process id, CPU and node of the task", ""),
    "time": ("time", "the task's virtual time in nanoseconds", ""),
    "snooze": ("snooze <seconds>", "sleep <seconds> of wall time (250ms and 1.5 work too)", ""),
    "help": ("help [<command>]", "list the commands, or explain one", ""),
    "man": ("man [<command>]", "same as help", ""),
    "quit": ("quit", "detach from the cluster and leave (so does end of input)", ""),
    "exit": ("exit", "same as quit", ""),
}

# memtoy commands numa-emu does not emulate: name -> why (parsing them gives this error)
UNSUPPORTED: dict[str, str] = {
    "lock": "page locking (mlock) is not emulated",
    "unlock": "page locking (mlock) is not emulated",
    "slock": "page locking (SHM_LOCK) is not emulated",
    "sunlock": "page locking (SHM_LOCK) is not emulated",
    "cpus": "a task runs on the one CPU it attached on: use numa-emu memtoy --cpu N",
    "mems": "changing the allowed nodes needs cpusets, which memtoy cannot change here",
    "child": "child sessions are not emulated: start another numa-emu memtoy",
    "kick": "child sessions are not emulated: start another numa-emu memtoy",
    "pause": "use snooze <seconds>",
}

USAGE: dict[str, str] = {name: usage for name, (usage, _, _) in COMMANDS.items()}
USAGE.update({name: name for name in UNSUPPORTED})


def help_lines(topic: str | None = None) -> list[str]:
    """`help`: every command's usage and summary; `help <cmd>`: that command in full."""
    if topic is None:
        width = max(len(usage) for usage, _, _ in COMMANDS.values() if len(usage) < 48)
        lines = []
        for usage, summary, _ in COMMANDS.values():
            if len(usage) <= width:
                lines.append(f"{usage:<{width}}  {summary}")
            else:  # too long for the column: the summary goes under it
                lines += [usage, f"{'':<{width}}  {summary}"]
        lines.append(f"not emulated: {', '.join(UNSUPPORTED)}")
        lines.append("for help on one command, type 'help <command>'; commands may be abbreviated")
        return lines
    if topic in UNSUPPORTED:
        return [f"{topic}: not emulated: {UNSUPPORTED[topic]}"]
    usage, summary, details = COMMANDS[topic]
    return [usage, f"    {summary}", *(f"    {line}" for line in details.splitlines() if details)]
