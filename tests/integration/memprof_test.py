"""memprof_test.py: helpers shared by the integration tests.

They find memprof and the fixture programs through MEMPROF_BUILD_ROOT and
the fixture sources through MEMPROF_SOURCE_ROOT (both set by
tests/meson.build), run `memprof run` in a fresh temporary directory, and
search the JSON report for frames.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get("MEMPROF_BUILD_ROOT", "")
SOURCE = os.environ.get("MEMPROF_SOURCE_ROOT", "")
MEMPROF = os.path.join(BUILD, "cli", "memprof")
SKIP = 77  # meson's status for a skipped test


def fixture(name):
    return os.path.join(BUILD, "tests", name)


def source_line(source, marker):
    """The line of `LINE:marker` in tests/fixtures/SOURCE."""
    with open(os.path.join(SOURCE, "tests", "fixtures", source)) as f:
        for n, text in enumerate(f, 1):
            if re.search(r"LINE:%s\b" % re.escape(marker), text):
                return n
    raise AssertionError("no LINE:%s in %s" % (marker, source))


def memprof(*args, cwd=None, env=None, timeout=120, wrapper=()):
    """Runs memprof (under the command wrapper, if any); returns the
    CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.pop("LD_PRELOAD", None)
    full_env["NO_COLOR"] = "1"
    if env:
        full_env.update(env)
    return subprocess.run([*wrapper, MEMPROF, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


class MemprofTestCase(unittest.TestCase):
    """Each test gets its own directory (self.tmp), removed afterwards."""

    def setUp(self):
        self.assertTrue(os.path.exists(MEMPROF), "memprof not built: " + MEMPROF)
        self._dir = tempfile.TemporaryDirectory(prefix="memprof-it-")
        self.tmp = self._dir.name

    def tearDown(self):
        self._dir.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run_json(self, *program, options=(), expect_status=0, wrapper=()):
        """memprof run --json ... -- PROGRAM (memprof under the command
        wrapper, if any); returns (report, process)."""
        out = self.path("report.json")
        p = memprof("run", "-o", self.path("capture.mpc"), "--json", out,
                    *options, "--", *program, cwd=self.tmp, wrapper=wrapper)
        self.assertEqual(p.returncode, expect_status,
                         "memprof run exited %d\nstderr:\n%s" % (p.returncode, p.stderr))
        with open(out) as f:
            report = json.load(f)
        self.assertEqual(report["format"], "memprof-report")
        self.assertEqual(report["version"], 1)
        return report, p

    # ---- searching reports ----

    @staticmethod
    def frames_named(stack, function):
        return [f for f in stack if f["function"] == function]

    def sites_with(self, report, function):
        """Sites whose stack has a frame of that function."""
        return [s for s in report["sites"] if self.frames_named(s["stack"], function)]

    def site_allocations(self, report, function):
        return sum(s["allocations"] for s in self.sites_with(report, function))

    def assert_frame(self, stack, function, source, marker):
        """A frame of function at the LINE:marker of source is in stack."""
        line = source_line(source, marker)
        for f in stack:
            if f["function"] == function and f["file"] and \
                    f["file"].endswith("/" + source) and f["line"] == line:
                self.assertTrue(f["address"].startswith("0x"))
                self.assertIsInstance(f["module"], str)
                return f
        self.fail("no frame %s (%s:%d) in %s" % (function, source, line,
                                                json.dumps(stack, indent=1)))


def main():
    unittest.main(verbosity=2)
