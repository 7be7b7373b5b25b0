"""test_views.py: the views of `memprof report` (folded stacks, --lines,
--timeline), `memprof diff` and its --fail-if-grew gate, and the progress
line, on fixture-views (tests/fixtures/fixture-views.c documents its
numbers).

argv[1], when given, is a C compiler: test_lines_without_the_source builds
a copy of the fixture whose source it then removes."""
import json
import os
import pty
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import (SKIP, SOURCE, MemprofTestCase, fixture, main,  # noqa: E402
                          memprof, source_line)

VIEWS = fixture("fixture-views")
CC = sys.argv.pop(1) if len(sys.argv) > 1 else None
SRC = "fixture-views.c"

# fixture-views.c's table: rows 10 (no argument) and 20 ("grow")
TOTALS = {"peak": 5176, "leaked": 1104, "allocations": 18, "bytes": 5360, "temporary": 6}
GROWTH = 1080  # of the peak and of the bytes live at exit, with "grow"


class Views(MemprofTestCase):
    def capture(self, *args, name="views.mpc"):
        """Runs fixture-views; returns (capture path, JSON report)."""
        cap = self.path(name)
        out = self.path(name + ".json")
        p = memprof("run", "-q", "-o", cap, "--json", out, "--", VIEWS, *args, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            return cap, json.load(f)

    def report(self, *args, status=0, env=None):
        p = memprof("report", *args, cwd=self.tmp, env=env)
        self.assertEqual(p.returncode, status, "report %s: %s" % (args, p.stderr))
        return p

    # ---- folded stacks ----

    def folded(self, cap, cost=None):
        args = ["-f", "folded"] + (["--cost", cost] if cost else []) + [cap]
        p = self.report(*args)
        self.assertEqual(p.stderr, "")
        lines = p.stdout.splitlines()
        counts = {}
        for line in lines:
            m = re.fullmatch(r"(\S.*) (\d+)", line)
            self.assertTrue(m, "not a folded line: %r" % line)
            self.assertNotIn(m.group(1), counts, "stack repeated: %r" % line)
            counts[m.group(1)] = int(m.group(2))
        self.assertEqual(lines, sorted(lines))
        return counts

    def test_folded_counts_sum_to_the_json_totals(self):
        cap, rep = self.capture()
        t = rep["totals"]
        want = {"peak": t["peak_bytes"], "leaked": t["live_bytes_at_exit"],
                "allocations": t["allocations"], "bytes": t["bytes_allocated"]}
        for cost, total in want.items():
            self.assertEqual(sum(self.folded(cap, cost).values()), total, cost)
            self.assertEqual(total, TOTALS[cost], cost)
        # the fixture's temporary blocks: the scratch buffer and 5 in the loop
        self.assertEqual(sum(self.folded(cap, "temporary").values()), TOTALS["temporary"])
        # peak is the default cost
        self.assertEqual(self.folded(cap), self.folded(cap, "peak"))

    def test_folded_stacks_run_from_main_to_the_allocation(self):
        cap, _ = self.capture()
        counts = self.folded(cap, "bytes")
        rows = [s for s in counts if "make_row" in s]
        self.assertEqual(len(rows), 1, counts)
        frames = rows[0].split(";")
        self.assertEqual(frames[:3], ["main", "build_table", "make_row"])
        self.assertEqual(counts[rows[0]], 1000)
        for stack in counts:
            self.assertEqual(stack.split(";")[0], "main", stack)
        temp = self.folded(cap, "temporary")
        self.assertEqual(sorted(temp.values()), [1, 5])

    # ---- the line view ----

    def table(self, text):
        """{line: (allocated, at peak, at exit, allocations, contents)} of
        the rows with numbers, and the list of all line numbers shown."""
        rows, shown = {}, []
        for line in text.splitlines():
            m = re.match(r"^ *(\d+)  ", line)
            if not m:
                continue
            shown.append(int(m.group(1)))
            m = re.match(r"^ *(\d+) +(\d+) B +(\d+) B +(\d+) B +(\d+)(?:  (.*))?$", line)
            if m:
                rows[int(m.group(1))] = tuple(int(g) for g in m.groups()[1:5]) + (m.group(6),)
        return rows, shown

    def test_lines_of_a_function(self):
        cap, _ = self.capture()
        p = self.report("--lines", "build_table", cap)
        out = p.stdout
        self.assertIn("Function: build_table in ", out)
        self.assertIn("Line #", out)
        self.assertIn("Line Contents", out)
        rows, shown = self.table(out)
        L = lambda m: source_line(SRC, m)  # noqa: E731
        self.assertEqual(rows[L("table_array")][:4], (80, 80, 80, 1))
        self.assertEqual(rows[L("table_rows")][:4], (1000, 1000, 1000, 10))
        self.assertEqual(rows[L("table_scratch")][:4], (4096, 4096, 0, 1))
        self.assertEqual(len(rows), 3, rows)
        self.assertIn("make_row(100)", rows[L("table_rows")][4])
        # from the declaration to the closing brace, every line
        self.assertEqual(shown, list(range(L("table_decl"), L("table_end") + 1)))
        self.assertIn("5176 B allocated in 12 allocations, 5176 B at the peak, "
                      "1080 B live at exit", out)

    def test_lines_are_inclusive_of_callees(self):
        cap, _ = self.capture()
        rows, _ = self.table(self.report("--lines", "main", cap).stdout)
        self.assertEqual(rows[source_line(SRC, "main_table")][:4], (5176, 5176, 1080, 12))
        self.assertEqual(rows[source_line(SRC, "temp_loop")][:4], (160, 0, 0, 5))
        self.assertEqual(rows[source_line(SRC, "forget")][:4], (24, 0, 24, 1))

    def test_lines_of_a_file(self):
        cap, _ = self.capture()
        for target in (SRC, "fixtures/" + SRC, os.path.join(SOURCE, "tests", "fixtures", SRC)):
            out = self.report("--lines", target, cap).stdout
            functions = re.findall(r"^Function: (\w+)", out, re.M)
            self.assertEqual(functions, ["make_row", "build_table", "main"], target)

    def test_lines_of_nothing(self):
        cap, _ = self.capture()
        p = self.report("--lines", "no_such_function", cap, status=1)
        self.assertIn("no_such_function", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_lines_without_the_source(self):
        if not CC:
            self.skipTest("no C compiler given")
        src = self.path(SRC)
        shutil.copy(os.path.join(SOURCE, "tests", "fixtures", SRC), src)
        exe = self.path("views-copy")
        subprocess.run([CC, "-O0", "-g", "-fno-omit-frame-pointer", "-o", exe, src],
                       check=True)
        os.unlink(src)
        cap = self.path("copy.mpc")
        p = memprof("run", "-q", "-o", cap, "--", exe, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = self.report("--lines", "build_table", cap).stdout
        self.assertIn("(source not readable)", out)
        rows, shown = self.table(out)
        # only the lines with numbers, without text
        self.assertEqual(sorted(shown), sorted(rows))
        self.assertEqual(sorted(v[:4] for v in rows.values()),
                         [(80, 80, 80, 1), (1000, 1000, 1000, 10), (4096, 4096, 0, 1)])

    # ---- the timeline ----

    def test_timeline_in_ascii(self):
        cap, rep = self.capture()
        out = self.report("--timeline", "--ascii", cap).stdout
        out.encode("ascii")  # nothing else
        lines = out.splitlines()
        self.assertIn("Heap (live bytes) and RSS over time", lines[0])
        plot = [l for l in lines if re.match(r"^ {0,10}\S*.{0,10} [|+][ #_*]", l)]
        self.assertEqual(len(plot), 16, out)
        self.assertTrue(all(len(l) == 10 + 2 + 72 for l in plot), out)
        # y ticks with a unit every 4 rows, the origin, the time axis
        ticks = [l for l in plot if re.match(r"^ *[\d.]+ (B|KiB|MiB|GiB) \+", l)]
        self.assertEqual(len(ticks), 4, out)
        self.assertTrue(any(re.match(r"^ *0 (B|KiB|MiB|GiB) \+-+\+", l) for l in lines), out)
        self.assertTrue(re.search(r"^ +0 (s|ms|us) +[\d.]+ (s|ms|us)", out, re.M), out)
        self.assertRegex(out, r"\^ peak")
        self.assertIn("peak %d B at " % rep["totals"]["peak_bytes"], out)
        self.assertIn("%d B at exit" % rep["totals"]["live_bytes_at_exit"], out)
        text = "".join(plot)
        if "RSS: no samples recorded" in out:
            self.assertIn("#", text)  # the heap's peak sets the scale
        else:
            # a run slow enough for a sample (a loaded machine): its RSS,
            # megabytes, sets the scale and the heap's few KiB show as the
            # lowest eighth of the bottom row
            self.assertIn("*", text)
            self.assertRegex(text, r"[#_]")

    def test_timeline_speaks_utf8_when_the_locale_does(self):
        cap, _ = self.capture()
        out = self.report("--timeline", cap, env={"LC_ALL": "C.UTF-8"}).stdout
        self.assertIn("\u25b2 peak", out)
        self.assertIn("\u2524", out)
        out = self.report("--timeline", cap, env={"LC_ALL": "C"}).stdout
        out.encode("ascii")

    # ---- diff ----

    def two_runs(self):
        old, _ = self.capture(name="old.mpc")
        new, _ = self.capture("grow", name="new.mpc")
        return old, new

    def diff(self, *args, status=0):
        p = memprof("diff", *args, cwd=self.tmp)
        self.assertEqual(p.returncode, status, "diff %s: %s" % (args, p.stderr))
        return p

    def test_diff_puts_the_grown_site_first(self):
        old, new = self.two_runs()
        out = self.diff(old, new).stdout
        first = re.search(r"^  #1: (.*)$", out, re.M).group(1)
        self.assertIn("%s:%d (make_row): " % (SRC, source_line(SRC, "make_row")), first)
        self.assertIn("size=2000 B (+1000 B), count=20 (+10), peak=2000 B (+1000 B), "
                      "live at exit=2000 B (+1000 B)", first)
        second = re.search(r"^  #2: (.*)$", out, re.M).group(1)
        self.assertIn(":%d (build_table)" % source_line(SRC, "table_array"), second)
        self.assertIn("size=160 B (+80 B)", second)
        self.assertNotIn("#3", out)
        self.assertRegex(out, r"peak +5176 B +6256 B +\+1080 B")
        self.assertRegex(out, r"live at exit +1104 B +2184 B +\+1080 B")
        # and the other way round, it shrank
        out = self.diff(new, old).stdout
        self.assertIn("size=1000 B (-1000 B), count=10 (-10)", out)

    def test_diff_json_by_line_and_by_stack(self):
        old, new = self.two_runs()
        d = json.loads(self.diff("-f", "json", old, new).stdout)
        self.assertEqual((d["format"], d["version"], d["by"]), ("memprof-diff", 1, "line"))
        self.assertEqual(d["change"]["peak_bytes"], GROWTH)
        self.assertEqual(d["change"]["live_bytes_at_exit"], GROWTH)
        self.assertEqual(d["old"]["totals"]["peak_bytes"], TOTALS["peak"])
        self.assertEqual(d["new"]["argv"][1:], ["grow"])
        e = d["entries"][0]
        self.assertTrue(e["file"].endswith("/" + SRC))
        self.assertEqual((e["line"], e["function"]), (source_line(SRC, "make_row"), "make_row"))
        self.assertEqual(e["change"], {"allocations": 10, "bytes": 1000, "peak_bytes": 1000,
                                       "leaked_bytes": 1000})
        self.assertEqual(e["old"]["allocations"], 10)
        self.assertEqual(len(d["entries"]), 2)
        d = json.loads(self.diff("-f", "json", "--by", "stack", "--top", "1", old, new).stdout)
        self.assertEqual(len(d["entries"]), 1)
        self.assertEqual(d["more"], 1)
        names = [f["function"] for f in d["entries"][0]["stack"]]
        self.assertIn("make_row", names)
        self.assertEqual(names[names.index("make_row"):], ["make_row", "build_table", "main"])
        self.assertEqual(d["entries"][0]["change"]["bytes"], 1000)

    def test_diff_of_a_run_with_itself_is_empty(self):
        old, _ = self.capture(name="a.mpc")
        again, _ = self.capture(name="b.mpc")
        out = self.diff("--fail-if-grew", "0", old, again).stdout
        self.assertIn("(0 changed, 5 unchanged)", out)
        self.assertIn("(none)", out)

    def test_fail_if_grew_trips_above_the_size(self):
        old, new = self.two_runs()
        # the peak and the bytes live at exit both grew by 1080 bytes
        tripping = ["0", "1079", "1k", "1KiB", "1KB", "1.05k", "1.079KB"]
        passing = ["1080", "1080B", "1.06k", "1.08KB", "2k", "1M", "1.5MiB"]
        for size in tripping:
            p = self.diff("--fail-if-grew", size, old, new, status=1)
            self.assertIn("grew by 1080 bytes", p.stderr, size)
            self.assertIn("--fail-if-grew", p.stderr)
        for size in passing:
            p = self.diff("--fail-if-grew", size, old, new)
            self.assertEqual(p.stderr, "", size)
        # shrinking never trips
        self.diff("--fail-if-grew", "0", new, old)

    def test_diff_usage_errors(self):
        old, new = self.two_runs()
        for args in [(old,), (old, new, new), ("--by", "file", old, new),
                     ("--fail-if-grew", "10 k", old, new), ("--fail-if-grew", "lots", old, new),
                     ("--fail-if-grew", "1x", old, new), ("--fail-if-grew", "99999999999E", old, new),
                     ("--format", "xml", old, new), ("--top", "0", old, new),
                     (old, self.path("missing.mpc")), ("--frobnicate", old, new)]:
            p = self.diff(*args, status=2)
            self.assertNotEqual(p.stderr, "", args)
            self.assertEqual(p.stdout, "", args)

    def test_report_view_usage_errors(self):
        cap, _ = self.capture()
        for args in [("--cost", "peak", cap), ("-f", "folded", "--cost", "heap", cap),
                     ("--lines", "main", "--timeline", cap), ("-f", "folded", "--timeline", cap),
                     ("--ascii", cap), ("--timeline", "-f", "json", cap),
                     ("--lines", "main", "-f", "json", cap)]:
            p = self.report(*args, status=2)
            self.assertNotEqual(p.stderr, "", args)

    # ---- help and man pages ----

    def test_help_and_man_pages_agree(self):
        for cmd in ("diff", "report"):
            out = memprof("help", cmd).stdout
            self.assertIn("memprof " + cmd, out)
            options = set(re.findall(r"(--[a-z][a-z-]+)", out))
            with open(os.path.join(SOURCE, "man", "memprof-%s.1.scd" % cmd)) as f:
                page = f.read()
            for opt in options:
                self.assertIn("*%s*" % opt, page, "%s is not in memprof-%s(1)" % (opt, cmd))
            for opt in set(re.findall(r"\*(--[a-z][a-z-]+)\*", page)):
                self.assertIn(opt, out, "memprof %s --help lacks %s" % (cmd, opt))
        self.assertIn("diff", memprof("--help").stdout)
        out = memprof("report", "--help").stdout
        for word in ("folded", "--cost", "temporary", "--lines", "--timeline", "--ascii"):
            self.assertIn(word, out)

    # ---- progress ----

    def test_no_progress_when_stderr_is_not_a_terminal(self):
        cap, _ = self.capture()
        p = self.report(cap, env={"MEMPROF_PROGRESS_DELAY_MS": "0"})
        self.assertEqual(p.stderr, "")
        self.assertNotIn("\r", p.stdout)

    def test_progress_on_a_terminal_is_erased(self):
        cap, _ = self.capture()
        master, slave = pty.openpty()
        env = dict(os.environ, MEMPROF_PROGRESS_DELAY_MS="0", NO_COLOR="1", LC_ALL="C")
        env.pop("LD_PRELOAD", None)
        from memprof_test import MEMPROF
        p = subprocess.run([MEMPROF, "report", "-f", "folded", cap], stdout=subprocess.PIPE,
                           stderr=slave, env=env, timeout=60)
        os.close(slave)
        data = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        self.assertEqual(p.returncode, 0)
        text = data.decode()
        self.assertIn("\rmemprof: reading the capture... ", text)
        self.assertRegex(text, r"\d+%")
        self.assertTrue(text.endswith("\r\x1b[K"), repr(text))
        self.assertNotIn("\r", p.stdout.decode())


if __name__ == "__main__":
    if not os.path.exists(VIEWS):
        sys.exit(SKIP)
    main()
