"""A workload script of your own, run by experiments/examples/my-workload.toml over its grid:
write --pages pages --passes times, then report what it did with numa_emu.report(). The runner
starts it with the configuration's placement (CPU, memory policy, cluster) in its environment,
so `numa_emu.attach()` needs no argument; the runner adds the task's virtual time itself."""
import argparse

import numa_emu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pages", type=int, required=True)
    p.add_argument("--passes", type=int, required=True)
    args = p.parse_args()
    with numa_emu.attach() as task:
        region = task.mmap(args.pages * task.page_size)
        for _ in range(args.passes):
            region.touch(write=True)
        nodes = region.where()
        numa_emu.report(pages=args.pages, passes=args.passes,
                        bytes_written=args.pages * args.passes * task.page_size,
                        pages_on_node2=nodes.count(2))


if __name__ == "__main__":
    main()
