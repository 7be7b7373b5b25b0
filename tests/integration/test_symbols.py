"""test_symbols.py: demangled C++ frames, and a frame inside a library that
was dlopen'd, called, and dlclose'd before the program ended."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main  # noqa: E402


class Symbols(MemprofTestCase):
    @unittest.skipUnless(os.path.exists(fixture("fixture-cxx")), "no C++ compiler")
    def test_cxx_frames_are_demangled(self):
        report, _ = self.run_json(fixture("fixture-cxx"))
        numbers = self.sites_with(report, "memprof_fixture::make_numbers(int)")
        self.assertEqual(len(numbers), 1, [s["stack"] for s in report["sites"]][:3])
        self.assertEqual(numbers[0]["allocations"], 1)
        self.assertEqual(numbers[0]["bytes"], 40)
        self.assertEqual(numbers[0]["leaked_bytes"], 40)
        self.assert_frame(numbers[0]["stack"], "memprof_fixture::make_numbers(int)",
                          "fixture-cxx.cpp", "make_numbers")
        nodes = self.sites_with(report, "memprof_fixture::make_node(long)")
        self.assertEqual(sum(s["allocations"] for s in nodes), 2)
        self.assertEqual(sum(s["leaked_bytes"] for s in nodes), 16)
        # no mangled name of ours is left
        for s in report["sites"]:
            for f in s["stack"]:
                self.assertFalse((f["function"] or "").startswith("_ZN15memprof_fixture"))

    def test_frame_in_a_dlclosed_library(self):
        plugin = fixture("fixture-plugin.so")
        report, _ = self.run_json(fixture("fixture-dlopen"), plugin)
        sites = self.sites_with(report, "plugin_alloc")
        self.assertEqual(len(sites), 1)
        self.assertEqual(sites[0]["bytes"], 200)
        self.assertEqual(sites[0]["leaked_bytes"], 200)
        f = self.assert_frame(sites[0]["stack"], "plugin_alloc", "fixture-plugin.c",
                              "plugin_malloc")
        self.assertTrue(f["module"].endswith("fixture-plugin.so"), f["module"])
        self.assertTrue(self.frames_named(sites[0]["stack"], "main"))


if __name__ == "__main__":
    main()
