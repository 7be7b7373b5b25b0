"""test_stacks.py: stacks that share their entry frame's slot and return
address but differ further out, each counted apart (the tracer's memo of
recent stacks must tell them apart; tests/fixtures/fixture-stacks.c has
the numbers), in code with frame pointers and without; and the lineno
view, one entry a source line whatever the sites and frames under it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main, source_line  # noqa: E402

STACKS = fixture("fixture-stacks")
# the same program without frame pointers (libunwind's trace path, its
# slotted walk, and the memo fed from it)
STACKS_NOFP = fixture("fixture-stacks-nofp")
SOURCE = "fixture-stacks.c"


class Stacks(MemprofTestCase):
    def lines(self, site):
        """The fixture's lines in a site's stack, innermost first."""
        return [f["line"] for f in site["stack"]
                if f["file"] and f["file"].endswith("/" + SOURCE)]

    def sites_at(self, report, marker):
        line = source_line(SOURCE, marker)
        return [s for s in report["sites"] if line in self.lines(s)]

    def count(self, report, marker):
        return sum(s["allocations"] for s in self.sites_at(report, marker))

    def check(self, report):
        t = report["totals"]
        self.assertEqual(t["live_blocks_at_exit"], 0)
        # twins: one site each, the same leaf() frame under both
        for marker, n in (("via_a", 1000), ("via_b", 2000)):
            sites = self.sites_at(report, marker)
            self.assertEqual(len(sites), 1, marker)
            self.assertEqual(sites[0]["allocations"], n, marker)
            self.assertEqual(sites[0]["bytes"], 24 * n, marker)
            self.assert_frame(sites[0]["stack"], "leaf", SOURCE, "leaf_malloc")
        # entries: malloc and calloc from the same frame
        self.assertEqual(self.count(report, "kinds_malloc"), 500)
        self.assertEqual(self.count(report, "kinds_calloc"), 500)
        calloc_site = self.sites_at(report, "kinds_calloc")[0]
        self.assertEqual(calloc_site["stack"][0]["function"], "calloc")
        # paths: 8 stacks of the same depth, 250 each, each its own path
        left, right = source_line(SOURCE, "walk_left"), source_line(SOURCE, "walk_right")
        sites = self.sites_at(report, "walk_malloc")
        self.assertEqual(len(sites), 8)
        paths = {}
        for s in sites:
            steps = [ln for ln in self.lines(s) if ln in (left, right)]
            self.assertEqual(len(steps), 3, self.lines(s))
            # innermost first: the deepest call took path's bit 2
            path = sum((ln == right) << (2 - i) for i, ln in enumerate(steps))
            self.assertNotIn(path, paths)
            paths[path] = s["allocations"]
        self.assertEqual(paths, {p: 250 for p in range(8)})
        # threads: one after the other, at the same depth
        self.assertEqual(self.count(report, "thread_a"), 300)
        self.assertEqual(self.count(report, "thread_b"), 700)
        for marker in ("thread_a", "thread_b"):
            self.assertEqual(len(self.sites_at(report, marker)), 1, marker)
        # pair: two calls on one line, two sites
        pair = self.sites_at(report, "pair")
        self.assertEqual(sorted(s["bytes"] for s in pair), [1600, 3200])
        # the lineno view: one entry a line, whatever the sites under it
        # (8 paths to walk's malloc, two frames on pair's line)
        lineno = {}
        for entry in report["lineno"]:
            if entry["file"] and entry["file"].endswith("/" + SOURCE):
                self.assertNotIn(entry["line"], lineno)
                lineno[entry["line"]] = (entry["allocations"], entry["bytes"])
        want = {"leaf_malloc": (3000, 72000), "kinds_malloc": (500, 20000),
                "kinds_calloc": (500, 20000), "walk_malloc": (2000, 112000),
                "leaf_t": (1000, 72000), "pair": (200, 4800)}
        self.assertEqual(lineno, {source_line(SOURCE, m): n for m, n in want.items()})

    def test_stacks_in_the_same_slots_are_told_apart(self):
        report, _ = self.run_json(STACKS)
        self.check(report)

    def test_with_whole_free_stacks(self):
        # frees take the memo too
        report, _ = self.run_json(STACKS, options=("--free-stacks",))
        self.check(report)

    def test_without_frame_pointers(self):
        for options in ((), ("--free-stacks",)):
            report, _ = self.run_json(STACKS_NOFP, options=options)
            self.check(report)


if __name__ == "__main__":
    main()
