"""test_threads.py: multi-threaded programs: the per-thread chunks of the
capture are merged and the counts of the threads' own sites are exact, also
while other threads flush the buffers."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main, memprof  # noqa: E402


class Threads(MemprofTestCase):
    def test_counts_of_the_thread_sites_are_exact(self):
        report, _ = self.run_json(fixture("fixture-threads"))
        sites = self.sites_with(report, "thread_work")
        by_size = {}
        for s in sites:
            per_block = s["bytes"] // s["allocations"]
            by_size[per_block] = by_size.get(per_block, 0) + s["allocations"]
        self.assertEqual(by_size, {32: 400, 16: 4})
        malloc_site = [s for s in sites if s["bytes"] == 400 * 32]
        self.assertEqual(len(malloc_site), 1, "one site for all four threads")
        self.assert_frame(malloc_site[0]["stack"], "thread_work", "fixture-threads.c",
                          "thread_malloc")
        self.assertEqual(malloc_site[0]["leaked_bytes"], 0)
        t = report["totals"]
        self.assertGreaterEqual(t["allocations"], 404)
        self.assertGreaterEqual(t["frees"], 400)
        self.assertGreaterEqual(t["live_bytes_at_exit"], 64)
        kept = [s for s in sites if s["bytes"] == 64]
        self.assertEqual(kept[0]["leaked_bytes"], 64)


class Handoff(MemprofTestCase):
    """Two threads free each other's blocks while each numbers its events
    from its own block of sequence numbers: every FREE still comes after its
    block's ALLOC."""

    def test_blocks_freed_by_the_other_thread_are_matched(self):
        report, p = self.run_json(fixture("fixture-handoff"))
        text = memprof("report", self.path("capture.mpc"), cwd=self.tmp)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertNotIn("whose allocation was not recorded", text.stdout)
        self.assertNotIn("whose allocation was not recorded", p.stderr)
        sites = self.sites_with(report, "handoff_alloc")
        # per thread: 3000 handed over, sum((i + me) % 5) = 6000 of its
        # own, one kept
        self.assertEqual(sum(s["allocations"] for s in sites), 2 * 3000 + 2 * 6000 + 2)
        self.assertEqual(sum(s["leaked_bytes"] for s in sites), 48)
        t = report["totals"]
        self.assertEqual(t["live_blocks_at_exit"], 2)
        self.assertEqual(t["live_bytes_at_exit"], 48)
        self.assertEqual(t["allocations"] - t["frees"], 2)


class Live(MemprofTestCase):
    """memprof run replays the capture while the program runs; what it
    reports is what memprof report makes of the same capture."""

    def run_live(self, how):
        capture, out = self.path("live-%s.mpc" % how), self.path("live-%s.json" % how)
        p = memprof("run", "-o", capture, "--json", out, "--", fixture("fixture-live"), "700",
                    cwd=self.tmp, env={"MEMPROF_LIVE": how})
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            report = f.read()
        again = memprof("report", capture, cwd=self.tmp)
        again_json = memprof("report", "-f", "json", capture, cwd=self.tmp)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again_json.returncode, 0, again_json.stderr)
        lines = p.stderr.splitlines(keepends=True)
        live = [line for line in lines if line.startswith("memprof: live:")]
        text = "".join(line for line in lines if not line.startswith("memprof: live:"))
        self.assertEqual(text, again.stdout)
        self.assertEqual(report, again_json.stdout)
        return json.loads(report), live

    def test_the_replay_made_during_the_run_is_the_report_of_the_capture(self):
        report, live = self.run_live("verbose")
        self.assertEqual(len(live), 1, live)
        m = re.match(r"memprof: live: (\d+) events replayed while the program ran, "
                     r"the rest after \(\d+\.\d\d s after it\)$", live[0].strip())
        self.assertTrue(m, live[0])
        self.assertGreater(int(m.group(1)), 0, "nothing was replayed during the run")
        sites = self.sites_with(report, "live_alloc")
        self.assertTrue(sites)
        t = report["totals"]
        self.assertGreater(t["allocations"], 10000)
        # the three kept blocks (of 40 bytes), all the rest freed
        self.assertEqual(t["allocations"] - t["frees"], 3)
        self.assertEqual(t["live_bytes_at_exit"], 120)

    def test_without_the_live_replay_the_report_is_the_same_kind(self):
        report, live = self.run_live("0")
        self.assertEqual(live, [])
        self.assertGreater(report["totals"]["allocations"], 10000)


class Flushers(MemprofTestCase):
    """Other threads flush every thread's buffer while it records: the
    sampler ten times a second, a leak check every 5 ms.  An owner takes its
    own buffer without a locked instruction where membarrier(2) is there,
    with one where it is not (a seccomp policy here): either way no record
    is torn, lost or written twice."""

    def expected(self, stdout):
        counts = {k: int(v) for k, v in re.findall(r"^([\w ]+): (\d+)$", stdout, re.M)}
        self.assertGreater(counts.get("leak checks", 0), 0, stdout)
        return counts

    def check(self, report, p):
        want = self.expected(p.stdout)
        self.assertEqual(report["capture"]["lost_events"], 0)
        self.assertFalse(report["capture"]["incomplete"])
        self.assertEqual(self.site_allocations(report, "flush_alloc"),
                         want["flush_alloc allocations"])
        kept = sum(s["leaked_bytes"] for s in self.sites_with(report, "flush_alloc"))
        self.assertEqual(kept, want["flush_alloc kept bytes"])

    def test_buffers_flushed_by_other_threads_lose_nothing(self):
        self.check(*self.run_json(fixture("fixture-flushers"), "400"))

    def test_without_membarrier_the_same(self):
        wrapper = fixture("no-membarrier")
        probe = subprocess.run([wrapper, "true"], capture_output=True, text=True)
        if probe.returncode == 77:
            self.skipTest(probe.stderr.strip())
        self.assertEqual(probe.returncode, 0, probe.stderr)
        self.check(*self.run_json(fixture("fixture-flushers"), "400", wrapper=(wrapper,)))


if __name__ == "__main__":
    main()
