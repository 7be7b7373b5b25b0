"""test_cli.py: usage errors, programs that cannot be found, executed or
traced, and help texts that are true to the man pages."""
import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import SOURCE, MemprofTestCase, fixture, main, memprof  # noqa: E402


class Cli(MemprofTestCase):
    def assert_status(self, status, *args):
        p = memprof(*args, cwd=self.tmp)
        self.assertEqual(p.returncode, status, "%s: %s" % (args, p.stderr))
        return p

    def test_usage_errors_exit_2(self):
        for args in [(), ("frobnicate",), ("--frobnicate",), ("run",),
                     ("run", "--frobnicate", "true"), ("run", "--depth", "0", "true"),
                     ("run", "--depth", "x", "true"), ("run", "--top"),
                     ("run", "--json", "/nonexistent/dir/out.json", "true"),
                     ("report",), ("report", "--format", "xml", "x.mpc"),
                     ("report", "a.mpc", "b.mpc"), ("help", "frobnicate")]:
            p = self.assert_status(2, *args)
            self.assertNotEqual(p.stderr, "", args)
            self.assertEqual(p.stdout, "", args)

    def test_missing_program_is_127(self):
        p = self.assert_status(127, "run", "--", "memprof-no-such-program")
        self.assertIn("not found", p.stderr)
        self.assert_status(127, "run", "./no-such-file")

    def test_not_executable_is_126(self):
        self.assert_status(126, "run", self.tmp)
        path = self.path("data.txt")
        with open(path, "w") as f:
            f.write("not a program\n")
        self.assert_status(126, "run", path)

    @unittest.skipUnless(os.path.exists(fixture("fixture-static")), "no static libc")
    def test_static_program_is_refused(self):
        p = self.assert_status(2, "run", fixture("fixture-static"))
        self.assertIn("statically linked", p.stderr)

    def test_setuid_program_is_refused(self):
        copy = self.path("setuid-basic")
        shutil.copy(fixture("fixture-basic"), copy)
        os.chmod(copy, 0o4755)
        p = self.assert_status(2, "run", copy)
        self.assertIn("set-user-ID", p.stderr)

    def test_program_options_are_its_own(self):
        # "-o" after the program belongs to the program (here: exit status 3)
        p = self.assert_status(3, "run", "-q", "-o", self.path("c.mpc"),
                               fixture("fixture-basic"), "3")
        self.assertEqual(p.stderr, "")
        self.assertTrue(os.path.exists(self.path("c.mpc")))

    def test_help_and_version(self):
        p = self.assert_status(0, "--help")
        self.assertIn("run", p.stdout)
        self.assertIn("report", p.stdout)
        self.assertRegex(self.assert_status(0, "--version").stdout, r"^memprof \d+\.\d+")
        for cmd in ("run", "report"):
            for args in (("help", cmd), (cmd, "--help")):
                out = self.assert_status(0, *args).stdout
                self.assertIn("memprof " + cmd, out)

    def test_help_and_man_pages_agree(self):
        for cmd in ("run", "report"):
            out = self.assert_status(0, "help", cmd).stdout
            options = set(re.findall(r"(--[a-z][a-z-]+)", out))
            self.assertTrue(options)
            with open(os.path.join(SOURCE, "man", "memprof-%s.1.scd" % cmd)) as f:
                page = f.read()
            for opt in options:
                self.assertIn("*%s*" % opt, page, "%s is not in memprof-%s(1)" % (opt, cmd))
            # and every option the page documents is accepted
            for opt in set(re.findall(r"\*(--[a-z][a-z-]+)\*", page)):
                self.assertIn(opt, out, "memprof %s --help lacks %s" % (cmd, opt))


if __name__ == "__main__":
    main()
