"""test_fork.py: a program that forks, traced with and without
--follow-fork."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main, memprof  # noqa: E402

FORK = fixture("fixture-fork")


class Fork(MemprofTestCase):
    def children(self):
        return sorted(glob.glob(self.path("capture.*.mpc")))

    def test_without_follow_fork_only_the_parent_is_traced(self):
        report, p = self.run_json(FORK)
        self.assertEqual(self.site_allocations(report, "parent_work"), 5)
        self.assertEqual(self.site_allocations(report, "child_work"), 0)
        self.assertEqual(self.children(), [])
        self.assertNotIn("forked children", p.stderr)

    def test_follow_fork_writes_a_capture_per_child(self):
        report, p = self.run_json(FORK, options=("--follow-fork",))
        self.assertEqual(self.site_allocations(report, "parent_work"), 5)
        self.assertEqual(self.site_allocations(report, "child_work"), 0)
        kids = self.children()
        self.assertEqual(len(kids), 1, os.listdir(self.tmp))
        self.assertIn(kids[0], p.stderr)
        out = self.path("child.json")
        r = memprof("report", "--format", "json", "-o", out, kids[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            child = json.load(f)
        self.assertEqual(self.site_allocations(child, "child_work"), 5)
        sites = self.sites_with(child, "child_work")
        self.assert_frame(sites[0]["stack"], "child_work", "fixture-fork.c",
                          "child_malloc")
        self.assertNotEqual(child["program"]["pid"], report["program"]["pid"])


if __name__ == "__main__":
    main()
