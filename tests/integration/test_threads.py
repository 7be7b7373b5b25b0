"""test_threads.py: a multi-threaded program: the per-thread chunks of the
capture are merged and the counts of the threads' own site are exact."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main  # noqa: E402


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


if __name__ == "__main__":
    main()
