"""memtoy's command language without a cluster: every command, every error, the segment table,
ranges and the output formats (numa_emu/memtoy/commands.py, segments.py, helptext.py)."""
from __future__ import annotations

import io

import pytest

from numa_emu.memtoy import commands as c
from numa_emu.memtoy.commands import MemtoyError, ParseError, PolicyArg, Range, parse
from numa_emu.memtoy.executor import Memtoy
from numa_emu.memtoy.helptext import COMMANDS, UNSUPPORTED, help_lines
from numa_emu.memtoy.segments import (WHERE_DEFAULT_PAGES, Segment, SegmentTable, Window, format_location,
                                      format_node_pages, format_segment_line, format_table, format_where)
from numa_emu.memtoy.shell import run_script
from numa_emu.protocol.policy import MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, Mode

PS = 4096


def p(line: str, n_nodes: int | None = 4):
    return parse(line, page_size=PS, n_nodes=n_nodes)


def err(line: str, n_nodes: int | None = 4) -> str:
    with pytest.raises(ParseError) as info:
        p(line, n_nodes)
    text = str(info.value)
    assert "\n" not in text and text
    return text


# ---- lines that are not commands -------------------------------------------------------------

@pytest.mark.parametrize("line", ["", "   ", "\n", "# a comment", "   # indented comment"])
def test_blank_lines_and_comments_are_nothing(line):
    assert p(line) is None


def test_child_commands_are_refused():
    assert "child sessions" in err("/kid touch a")


# ---- command names ---------------------------------------------------------------------------

def test_unknown_command():
    assert err("frobnicate a") == "unrecognized command 'frobnicate' (type 'help' for the list)"


@pytest.mark.parametrize("word, command", [
    ("wh", c.Where("a")), ("WHERE", c.Where("a")), ("to", c.Touch("a")), ("rem", c.Remove(("a",))),
    ("sho", c.Show("a")), ("shm", c.Shmem("a", PS)),
])
def test_unique_prefixes_and_any_case(word, command):
    args = {"Shmem": " 1p"}.get(type(command).__name__, "")
    assert p(f"{word} a{args}") == command


@pytest.mark.parametrize("word, names", [("t", "time, touch"), ("m", "man, map, mbind, mems, migrate, mpol"),
                                         ("s", "shmem, show, slock, snooze, sunlock")])
def test_ambiguous_prefix_names_the_candidates(word, names):
    assert err(word) == f"ambiguous command '{word}': {names}"


def test_exact_name_wins_over_longer_names():
    assert p("map a") == c.Map("a")  # not ambiguous with mbind/migrate/mpol: exact


# ---- segments: anon, shmem, file -------------------------------------------------------------

@pytest.mark.parametrize("line, command", [
    ("anon a 8p", c.Anon("a", 8 * PS)),
    ("anon a 4k", c.Anon("a", 4096)),
    ("anon a 1m private", c.Anon("a", 1 << 20)),
    ("anon a 1M shared", c.Anon("a", 1 << 20, True)),
    ("anon a 1g SH", c.Anon("a", 1 << 30, True)),
    ("anon a 0x10p p", c.Anon("a", 16 * PS)),
    ("anon a 64KiB", c.Anon("a", 64 << 10)),
    ("anon a 100", c.Anon("a", 100)),
    ("shmem s 2m", c.Shmem("s", 2 << 20)),
])
def test_define_segments(line, command):
    assert p(line) == command


def test_page_suffix_follows_the_page_size():
    assert parse("anon a 3p", page_size=65536) == c.Anon("a", 3 * 65536)


@pytest.mark.parametrize("line, fragment", [
    ("anon", "anon: missing <seg> (usage: anon <seg> <size>[k|m|g|p] [private|shared])"),
    ("anon a", "anon: missing <size>"),
    ("anon a 3x", "anon: bad size '3x': expected a number with an optional k, m, g or p (pages) suffix"),
    ("anon a -1", "anon: bad size '-1'"),
    ("anon a 4k public", "anon: segment share must be 'private' or 'shared', not 'public'"),
    ("anon a 4k shared extra", "anon: unexpected argument 'extra'"),
    ("shmem s", "shmem: missing <size>"),
    ("shmem s 1m huge", "shmem: huge pages are not emulated"),
    ("shmem s 1m 2", "shmem: unexpected argument '2'"),
])
def test_define_errors(line, fragment):
    assert fragment in err(line)


def test_file_parses_and_is_refused_when_run():
    assert p("file /tmp/x") == c.File("/tmp/x")
    assert p("file /tmp/x 4k 2p shared") == c.File("/tmp/x", Range(4096, 2 * PS), True)
    assert p("file /tmp/x 0 * private") == c.File("/tmp/x", Range(0, 0), False)
    assert "missing <path>" in err("file")
    assert "expected <len> after <off>" in err("file /tmp/x 4k")


# ---- map, unmap, remove, show ----------------------------------------------------------------

def test_map_unmap_remove_show():
    assert p("map a") == c.Map("a")
    assert p("map a shared") == c.Map("a", True)
    assert p("map a priv") == c.Map("a", False)
    assert p("unmap a") == c.Unmap("a")
    assert p("remove a b c") == c.Remove(("a", "b", "c"))
    assert p("show") == c.Show()
    assert p("show a") == c.Show("a")


@pytest.mark.parametrize("line, fragment", [
    ("map", "map: missing <seg>"), ("map a 0 4k", "map: <off> <len> apply to file segments only"),
    ("map a both", "segment share must be 'private' or 'shared'"), ("unmap", "unmap: missing <seg>"),
    ("unmap a b", "unmap: unexpected argument 'b'"), ("remove", "remove: missing <seg>"),
    ("show a b", "show: unexpected argument 'b'"),
])
def test_map_family_errors(line, fragment):
    assert fragment in err(line)


# ---- touch and where -------------------------------------------------------------------------

@pytest.mark.parametrize("line, command", [
    ("touch a", c.Touch("a")),
    ("touch a write", c.Touch("a", None, True)),
    ("touch a w", c.Touch("a", None, True)),
    ("touch a r", c.Touch("a", None, False)),
    ("touch a 4k 8k", c.Touch("a", Range(4096, 8192))),
    ("touch a 1p 2p write", c.Touch("a", Range(PS, 2 * PS), True)),
    ("touch a 0 * read", c.Touch("a", Range(0, 0))),
    ("where a", c.Where("a")),
    ("where a 2p 4p", c.Where("a", Range(2 * PS, 4 * PS))),
])
def test_touch_and_where(line, command):
    assert p(line) == command


@pytest.mark.parametrize("line, fragment", [
    ("touch", "touch: missing <seg>"),
    ("touch a 4k", "touch: expected <len> after <off>"),
    ("touch a 4k lots", "touch: bad length 'lots'"),
    ("touch a 4x 1p", "touch: bad offset '4x'"),
    ("touch a scribble", "touch: access must be 'read' or 'write', not 'scribble'"),
    ("touch a write now", "touch: unexpected argument 'now'"),
    ("where", "where: missing <seg>"),
    ("where a 1p", "where: expected <len> after <off>"),
    ("where a read", "where: unexpected argument 'read'"),
])
def test_touch_and_where_errors(line, fragment):
    assert fragment in err(line)


# ---- mbind -----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, policy, rng, flags", [
    ("mbind a interleaved 0-1", PolicyArg(Mode.INTERLEAVE, frozenset({0, 1})), None, 0),
    ("mbind a interleave 0,2", PolicyArg(Mode.INTERLEAVE, frozenset({0, 2})), None, 0),
    ("mbind a inter *", PolicyArg(Mode.INTERLEAVE, all_allowed=True), None, 0),
    ("mbind a bind 1", PolicyArg(Mode.BIND, frozenset({1})), None, 0),
    ("mbind a b 1", PolicyArg(Mode.BIND, frozenset({1})), None, 0),
    ("mbind a preferred 2", PolicyArg(Mode.PREFERRED, frozenset({2})), None, 0),
    ("mbind a preferred *", PolicyArg(Mode.PREFERRED), None, 0),
    ("mbind a default", PolicyArg(Mode.DEFAULT), None, 0),
    ("mbind a local", PolicyArg(Mode.LOCAL), None, 0),
    ("mbind a 0 4p bind 1", PolicyArg(Mode.BIND, frozenset({1})), Range(0, 4 * PS), 0),
    ("mbind a bind+move 1", PolicyArg(Mode.BIND, frozenset({1})), None, MPOL_MF_MOVE),
    ("mbind a bind +move 1", PolicyArg(Mode.BIND, frozenset({1})), None, MPOL_MF_MOVE),
    ("mbind a bind+move+all 1", PolicyArg(Mode.BIND, frozenset({1})), None, MPOL_MF_MOVE_ALL),
    ("mbind a bind+move+lazy 1", PolicyArg(Mode.BIND, frozenset({1})), None, MPOL_MF_MOVE | MPOL_MF_LAZY),
    ("mbind a bind+move+all+lazy 1", PolicyArg(Mode.BIND, frozenset({1})), None, MPOL_MF_MOVE_ALL | MPOL_MF_LAZY),
    ("mbind a noop+move", PolicyArg(None), None, MPOL_MF_MOVE),
    ("mbind a 1p 1p noop+move+lazy", PolicyArg(None), Range(PS, PS), MPOL_MF_MOVE | MPOL_MF_LAZY),
])
def test_mbind(line, policy, rng, flags):
    assert p(line) == c.Mbind("a", policy, rng, flags)


@pytest.mark.parametrize("line, fragment", [
    ("mbind", "mbind: missing <seg>"),
    ("mbind a", "mbind: missing <policy>"),
    ("mbind a 0 4p", "mbind: missing <policy>"),
    ("mbind a 0 bind 1", "mbind: bad length 'bind'"),
    ("mbind a sideways 1", "mbind: unrecognized policy 'sideways' (one of default, preferred, bind, interleaved"),
    ("mbind a bind", "mbind: missing <nodes> for policy 'bind'"),
    ("mbind a interleaved", "mbind: missing <nodes> for policy 'interleaved'"),
    ("mbind a bind 9", "mbind: bad node list '9': node ids must be <= 3"),
    ("mbind a bind 1-x", "mbind: bad node list '1-x'"),
    ("mbind a bind 3-1", "mbind: bad node list '3-1'"),
    ("mbind a bind ,", "mbind: bad node list ','"),
    ("mbind a bind *", "mbind: '*' is valid only for the interleaved and preferred policies"),
    ("mbind a default 1", "mbind: policy 'default' takes no node list, got '1'"),
    ("mbind a local 0", "mbind: policy 'local' takes no node list"),
    ("mbind a noop", "mbind: policy 'noop' keeps the policy: use it with +move"),
    ("mbind a noop+move 1", "mbind: policy 'noop' takes no node list"),
    ("mbind a bind+all 1", "mbind: expected 'move' before '+all'"),
    ("mbind a bind+lazy 1", "mbind: expected 'move' before '+lazy'"),
    ("mbind a bind+fast 1", "mbind: unrecognized mbind flag '+fast'"),
    ("mbind a bind+move+fast 1", "mbind: expected 'all' or 'lazy' after '+move', not '+fast'"),
    ("mbind a bind+move+ 1", "mbind: expected 'all' or 'lazy' after '+move', not '+'"),
    ("mbind a bind+shared+shared 1", "mbind: '+shared' comes right after the policy word"),
    ("mbind a bind+move+shared 1", "mbind: expected 'all' or 'lazy' after '+move', not '+shared'"),
    ("mbind a bind+shared+move 1", "mbind: +shared sets a file's shared policy: it takes a policy and no +move"),
    ("mbind a noop+shared+move", "mbind: +shared sets a file's shared policy"),
    ("mbind a bind 1 2", "mbind: unexpected argument '2'"),
])
def test_mbind_errors(line, fragment):
    assert fragment in err(line)


def test_node_ids_are_only_range_checked_when_the_node_count_is_known():
    assert p("mbind a bind 9", n_nodes=None) == c.Mbind("a", PolicyArg(Mode.BIND, frozenset({9})))


# ---- mpol, migrate ---------------------------------------------------------------------------

def test_mpol():
    assert p("mpol") == c.Mpol()
    assert p("mpol interleaved 0-3") == c.Mpol(PolicyArg(Mode.INTERLEAVE, frozenset(range(4))))
    assert p("mpol interleaved *") == c.Mpol(PolicyArg(Mode.INTERLEAVE, all_allowed=True))
    assert p("mpol default") == c.Mpol(PolicyArg(Mode.DEFAULT))
    assert p("mpol pref 1") == c.Mpol(PolicyArg(Mode.PREFERRED, frozenset({1})))
    assert p("mpol local") == c.Mpol(PolicyArg(Mode.LOCAL))


@pytest.mark.parametrize("line, fragment", [
    ("mpol bind", "mpol: missing <nodes> for policy 'bind'"),
    ("mpol bind+move 1", "mpol: +shared, +move, +all and +lazy modify mbind only"),
    ("mpol noop", "mpol: policy 'noop' applies to mbind +move only"),
    ("mpol bind 4", "mpol: bad node list '4': node ids must be <= 3"),
    ("mpol bogus 1", "mpol: unrecognized policy 'bogus'"),
])
def test_mpol_errors(line, fragment):
    assert fragment in err(line)


def test_migrate():
    assert p("migrate 1") == c.Migrate(frozenset({1}))
    assert p("migrate 2,3 0-1") == c.Migrate(frozenset({2, 3}), frozenset({0, 1}))
    assert "migrate: missing <to-nodes>" in err("migrate")
    assert "migrate: bad node list 'x'" in err("migrate x")
    assert "migrate: bad node list '7'" in err("migrate 1 7")
    assert "migrate: unexpected argument '3'" in err("migrate 1 2 3")


# ---- the small commands ----------------------------------------------------------------------

@pytest.mark.parametrize("line, command", [
    ("numa", c.Numa()), ("pid", c.Pid()), ("time", c.Time()), ("quit", c.Quit()), ("exit", c.Quit()),
    ("q", c.Quit()), ("help", c.Help()), ("?", c.Help()), ("help touch", c.Help("touch")),
    ("help wh", c.Help("where")), ("man mbind", c.Help("mbind")), ("help lock", c.Help("lock")),
    ("snooze 2", c.Snooze(2.0)), ("snooze 0.5", c.Snooze(0.5)), ("snooze 250ms", c.Snooze(0.25)),
])
def test_small_commands(line, command):
    assert p(line) == command


@pytest.mark.parametrize("line, fragment", [
    ("pid 3", "pid: unexpected argument '3'"), ("numa 0", "numa: unexpected argument '0'"),
    ("time now", "time: unexpected argument 'now'"), ("quit now", "quit: unexpected argument 'now'"),
    ("snooze", "snooze: missing <seconds>"), ("snooze soon", "snooze: bad time 'soon'"),
    ("snooze -1", "snooze: bad time '-1'"), ("help frob", "unrecognized command 'frob'"),
    ("help touch where", "help: unexpected argument 'where'"),
])
def test_small_command_errors(line, fragment):
    assert fragment in err(line)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_memtoy_commands_not_emulated_say_why(name):
    assert err(f"{name} a 1") == f"{name}: {UNSUPPORTED[name]}"


# ---- help ------------------------------------------------------------------------------------

def test_every_command_has_help_and_a_parser():
    assert set(COMMANDS) | set(UNSUPPORTED) == set(c.PARSERS)
    listing = "\n".join(help_lines())
    for name, (usage, summary, _) in COMMANDS.items():
        assert usage in listing and summary in listing
        lines = help_lines(name)
        assert lines[0] == usage and summary in lines[1]
    assert help_lines("pause") == ["pause: not emulated: use snooze <seconds>"]


# ---- the segment table and ranges ------------------------------------------------------------

def test_segment_table_define_get_forget():
    table = SegmentTable(PS)
    seg = table.define("a", "anon", 5000, False)
    assert seg.size == 2 * PS and not seg.mapped and table.names() == ["a"]
    with pytest.raises(MemtoyError, match='segment "a" already exists'):
        table.define("a", "anon", PS, False)
    with pytest.raises(MemtoyError, match="segment b: size must be positive"):
        table.define("b", "anon", 0, False)
    with pytest.raises(MemtoyError, match="no such segment: zz"):
        table.get("zz")
    with pytest.raises(MemtoyError, match="segment a not mapped"):
        table.mapped("a")
    seg.region = object()
    assert table.mapped("a") is seg
    table.forget("a")
    assert len(table) == 0


def test_windows_follow_memtoy_rounding_and_truncation():
    table = SegmentTable(PS)
    seg = table.define("a", "anon", 10 * PS, False)
    assert table.window(seg, None) == Window(0, 10 * PS)
    assert table.window(seg, Range(PS + 5, 1)) == Window(PS, PS)  # offset down, length up
    assert table.window(seg, Range(2 * PS, 0)) == Window(2 * PS, 8 * PS)  # 0: to the end
    assert table.window(seg, Range(8 * PS, 100 * PS)) == Window(8 * PS, 2 * PS)  # cut at the end
    with pytest.raises(MemtoyError, match=r"offset 40960 is past the end of segment a \(40KiB\)"):
        table.window(seg, Range(10 * PS, PS))


def test_where_window_defaults_to_64_pages_and_counts_the_rest():
    table = SegmentTable(PS)
    big = table.define("big", "anon", 70 * PS, False)
    small = table.define("small", "anon", 3 * PS, False)
    assert WHERE_DEFAULT_PAGES == 64
    assert table.window(big, None, default_pages=64) == Window(0, 64 * PS, 6)
    assert table.window(small, None, default_pages=64) == Window(0, 3 * PS, 0)
    assert table.window(big, Range(0, 0), default_pages=64) == Window(0, 70 * PS, 0)  # a range: all of it


def test_where_lines():
    assert format_where(0, [0, 1, None]) == ["0 0", "1 1", "2 -"]
    assert format_where(4, [2], more_pages=6) == ["4 2", "... 6 more pages"]
    assert format_where(0, [], more_pages=1) == ["... 1 more page"]


# memtoy's segment_location() for an anon segment of 12 pages at 0x7f0000000000, pages 2-11 asked
# (printf "%c 0x%016lx 0x%012lx 0x%012lx  %s%c %s %s\n", "page offset   ", " +%02d", "%12lx: ",
# "    " per page before the first, " %3d"), as memtoy prints it.
MEMTOY_WHERE_FIXTURE = """\
a 0x00007f0000000000 0x00000000c000 0x000000000000  rw- private big
page offset    +00 +01 +02 +03 +04 +05 +06 +07
           0:            0   1   0   1   0   1
           8:    0   1   1   1
"""


def test_where_in_memtoys_layout():
    class _Region:
        vaddr = 0x7F0000000000

    seg = Segment("big", "anon", 12 * PS, False, region=_Region())
    lines = format_location(format_segment_line(seg), 2, [0, 1, 0, 1, 0, 1, 0, 1, 1, 1])
    assert "".join(line + "\n" for line in lines) == MEMTOY_WHERE_FIXTURE
    # pages without one: '-'; a window from a line start needs no indent; offsets in hex
    assert format_location("x", 16, [None, 3]) == ["x", "page offset    +00 +01 +02 +03 +04 +05 +06 +07",
                                                   "          10:    -   3"]
    shm = Segment("sh", "shmem", PS, True, region=_Region())
    assert format_segment_line(shm) == "s 0x00007f0000000000 0x000000001000 0x000000000000  rw- default sh"


def test_show_helpers():
    assert format_node_pages({1: 2, 0: 4, 3: 0}) == "N0=4 N1=2"
    assert format_node_pages({}) == "-"
    assert format_table(["name", "size"], [["a", "4KiB"], ["long", "1MiB"]]) == [
        "name  size", "a     4KiB", "long  1MiB"]


# ---- the script runner, with a task that is never called -------------------------------------

class _IdleTask:
    page_size, n_nodes, pid, cpu, node, task_id, mems_allowed = PS, 2, 4242, 0, 0, 4242, [0, 1]


def test_script_runner_numbers_failed_lines_and_stops_at_quit():
    out, errs = io.StringIO(), io.StringIO()
    toy = Memtoy(_IdleTask(), out=out)
    script = ["# define", "anon a 4p", "anon a 4p", "", "bogus", "show", "pid", "quit", "pid"]
    assert run_script(toy, script, "t.mt", err=errs, echo=True) == 1
    assert errs.getvalue().splitlines() == [
        'memtoy: t.mt:3: segment "a" already exists',
        "memtoy: t.mt:5: unrecognized command 'bogus' (type 'help' for the list)",
        "memtoy: t.mt: 2 commands failed (lines 3, 5)",
    ]
    assert out.getvalue().splitlines() == [
        "memtoy> anon a 4p", "memtoy> anon a 4p", "memtoy> bogus", "memtoy> show",
        "name  type  share    size   address  policy  pages",
        "a     anon  private  16KiB  -        -       -",
        "memtoy> pid", "memtoy: pid = 4242 (cpu 0, node 0)", "memtoy> quit",
    ]
    assert run_script(Memtoy(_IdleTask(), out=out), ["anon b 1p", "show b"], "ok.mt", err=errs) == 0
