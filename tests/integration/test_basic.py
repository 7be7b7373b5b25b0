"""test_basic.py: exact counts, symbolized frames, exit statuses and signal
deaths of fixture-basic (tests/fixtures/fixture-basic.c documents the
numbers)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main  # noqa: E402

BASIC = fixture("fixture-basic")


class Basic(MemprofTestCase):
    def test_counts_are_exact(self):
        report, _ = self.run_json(BASIC)
        t = report["totals"]
        self.assertEqual(t["allocations"], 15)
        self.assertEqual(t["frees"], 11)
        self.assertEqual(t["bytes_allocated"], 1184)
        self.assertEqual(t["peak_bytes"], 1000)
        self.assertEqual(t["live_blocks_at_exit"], 4)
        self.assertEqual(t["live_bytes_at_exit"], 168)
        self.assertGreaterEqual(t["peak_time_s"], 0)
        leaks = report["leaks"]
        live = sum(leaks[k]["bytes"] for k in
                   ("definite", "indirect", "possible", "reachable", "suppressed"))
        self.assertEqual(live, 168)
        self.assertEqual(sum(r["bytes"] for r in report["leak_records"]), 168)
        self.assertFalse(report["capture"]["incomplete"])
        self.assertEqual(report["cycles"], [])
        self.assertEqual(report["objects"]["types"], [])
        self.assertEqual(report["objects"]["uncollectable_cycles"], [])

    def test_peak_site_and_frames(self):
        report, _ = self.run_json(BASIC)
        top = report["sites"][0]  # sorted by peak
        self.assertEqual(top["allocations"], 10)
        self.assertEqual(top["bytes"], 1000)
        self.assertEqual(top["peak_bytes"], 1000)
        self.assertEqual(top["leaked_bytes"], 0)
        self.assert_frame(top["stack"], "make_block", "fixture-basic.c", "make_block")
        self.assert_frame(top["stack"], "churn", "fixture-basic.c", "churn_call")
        self.assertTrue(self.frames_named(top["stack"], "main"))
        calloc_sites = [s for s in report["sites"] if s["bytes"] == 32]
        self.assertEqual(len(calloc_sites), 1)
        self.assert_frame(calloc_sites[0]["stack"], "main", "fixture-basic.c", "calloc")

    def test_program_section(self):
        report, _ = self.run_json(BASIC, "5", expect_status=5)
        prog = report["program"]
        self.assertEqual(prog["exit_status"], 5)
        self.assertIsNone(prog["signal"])
        self.assertEqual(prog["argv"][1:], ["5"])
        self.assertIsInstance(prog["pid"], int)
        self.assertGreaterEqual(prog["duration_s"], 0)

    def test_text_report_on_stderr(self):
        p = self.run_json(BASIC)[1]
        err = p.stderr
        self.assertIn("allocations: 15, frees: 11", err)
        self.assertIn("Top allocation sites by peak", err)
        self.assertIn("in loss record 1 of", err)
        self.assertRegex(err, r"at 0x[0-9a-f]+: ")
        self.assertIn("make_block (fixture-basic.c:", err)
        self.assertIn("Leak summary", err)
        self.assertNotIn("\033[", err)

    def test_quiet_prints_no_report(self):
        p = self.run_json(BASIC, options=("--quiet",))[1]
        self.assertNotIn("Leak summary", p.stderr)

    def test_death_by_signal(self):
        report, p = self.run_json(BASIC, "segv", expect_status=128 + 11)
        self.assertEqual(report["program"]["signal"], 11)
        self.assertEqual(report["program"]["exit_status"], 139)
        self.assertEqual(report["totals"]["allocations"], 15)
        self.assertIn("killed by signal 11", p.stderr)

    def test_abort(self):
        report, _ = self.run_json(BASIC, "abort", expect_status=128 + 6)
        self.assertEqual(report["program"]["signal"], 6)

    def test_default_capture_name(self):
        p = self.memprof_in_tmp("run", "-q", "--", BASIC)
        self.assertEqual(p.returncode, 0, p.stderr)
        names = [n for n in os.listdir(self.tmp) if n.endswith(".mpc")]
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], r"^memprof\.fixture-basic\.\d+\.mpc$")

    def memprof_in_tmp(self, *args):
        from memprof_test import memprof
        return memprof(*args, cwd=self.tmp)


class BadFrees(MemprofTestCase):
    """Double and invalid frees, and where a doubly freed block was first
    freed: by default free() and its caller only, with --free-stacks the
    whole stack."""

    def bad_frees(self, options=()):
        report, p = self.run_json(fixture("fixture-badfree"), options=options)
        self.assertIn("done", p.stdout)  # the program went on
        kinds = [b["kind"] for b in report["bad_frees"]]
        self.assertEqual(kinds, ["double", "invalid", "double"], report["bad_frees"])
        for b in report["bad_frees"]:
            # the bad free's own stack is whole, whatever the option
            self.assert_frame(b["stack"], "second_owner", "fixture-badfree.c", "second_free")
            self.assertTrue(self.frames_named(b["stack"], "main"))
        return report, p

    def test_first_free_is_its_caller_by_default(self):
        report, p = self.bad_frees()
        self.assertEqual(report["capture"]["free_stacks"], "caller")
        first, _, through_realloc = report["bad_frees"]
        stack = first["first_free_stack"]
        self.assertEqual([f["function"] for f in stack], ["free", "release"])
        self.assert_frame(stack, "release", "fixture-badfree.c", "release")
        stack = through_realloc["first_free_stack"]
        self.assertEqual([f["function"] for f in stack], ["realloc", "shrink_to_nothing"])
        self.assert_frame(stack, "shrink_to_nothing", "fixture-badfree.c", "realloc_zero")
        self.assertIn("Block was first freed at (its caller only: memprof run --free-stacks",
                      p.stderr)

    def test_free_stacks_records_whole_stacks(self):
        report, p = self.bad_frees(options=("--free-stacks",))
        self.assertEqual(report["capture"]["free_stacks"], "whole")
        first, _, through_realloc = report["bad_frees"]
        stack = first["first_free_stack"]
        self.assert_frame(stack, "release", "fixture-badfree.c", "release")
        self.assert_frame(stack, "first_owner", "fixture-badfree.c", "first_owner")
        self.assertTrue(self.frames_named(stack, "main"))
        self.assertTrue(self.frames_named(through_realloc["first_free_stack"], "main"))
        self.assertIn(" Block was first freed at\n", p.stderr)


if __name__ == "__main__":
    main()
