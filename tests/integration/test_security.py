"""test_security.py: memprof run never lets a name, an argument or a file
planted by someone else change what happens.

- The program is started with execvp, never through a shell: names and
  arguments full of shell metacharacters reach it verbatim.
- The user's LD_PRELOAD and environment reach the program (and memprof's
  tracer is not passed on to the programs it runs); the program sees no
  variable of memprof's.
- Captures are created with mode 0600 whatever the umask, and never through
  a symbolic link planted at their path: memprof refuses the path before
  the program starts (exit 2), and the tracer itself opens with O_NOFOLLOW.
"""
import glob
import os
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import BUILD, MEMPROF, MemprofTestCase, fixture, main, memprof  # noqa: E402

ARGS = fixture("fixture-args")
BASIC = fixture("fixture-basic")
USER_PRELOAD = fixture("fixture-userpreload.so")
TRACER = os.path.join(BUILD, "tracer", "libmemprof-preload.so")

NASTY = ["; touch pwned-semicolon", "$(touch pwned-subst)", "`touch pwned-backtick`",
         "two words", "'single' \"double\"", "$HOME", "*", "a\\b", "| cat", "&& true",
         "", "-o", "--", "new\nline"]


def env_without_preload(**extra):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


class Execution(MemprofTestCase):
    def assert_no_shell_ran(self):
        self.assertEqual(glob.glob(os.path.join(self.tmp, "pwned*")), [])

    def expected_stdout(self, value="(unset)"):
        return "".join("[%s]\n" % a for a in NASTY) + "MEMPROF_TEST_VAR=%s\n" % value

    def test_arguments_are_passed_verbatim(self):
        value = "x; $(touch pwned-env) `y` 'z'"
        p = memprof("run", "-q", "-o", self.path("c.mpc"), "--", ARGS, *NASTY,
                    cwd=self.tmp, env={"MEMPROF_TEST_VAR": value})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, self.expected_stdout(value))
        self.assertEqual(p.stderr, "")
        self.assert_no_shell_ran()

    def test_a_program_name_with_metacharacters(self):
        name = "we;ird $(touch pwned-name) 'prog\" `x`"
        copy = self.path(name)
        shutil.copy(ARGS, copy)
        # by path, and looked up in PATH as execvp does
        for prog, env in ((copy, {}),
                          (name, {"PATH": self.tmp + ":" + os.environ.get("PATH", "")})):
            p = memprof("run", "-q", "-o", self.path("c.mpc"), "--", prog, *NASTY,
                        cwd=self.tmp, env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, self.expected_stdout())
            self.assert_no_shell_ran()
        # the default capture name is made of safe characters only
        p = memprof("run", "-q", "--", copy, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        names = [n for n in os.listdir(self.tmp) if n.startswith("memprof.")]
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], r"^memprof\.[A-Za-z0-9._+-]+\.\d+\.mpc$")
        self.assert_no_shell_ran()


class Environment(MemprofTestCase):
    def test_user_preload_is_kept(self):
        env = env_without_preload(LD_PRELOAD=USER_PRELOAD)
        alone = subprocess.run([ARGS, "x"], capture_output=True, text=True, env=env)
        self.assertEqual(alone.stdout, "user preload loaded\n[x]\nMEMPROF_TEST_VAR=(unset)\n")
        out = self.path("r.json")
        p = subprocess.run([MEMPROF, "run", "-q", "-o", self.path("c.mpc"), "--json", out,
                            "--", ARGS, "x"], capture_output=True, text=True, env=env,
                           cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        # LD_PRELOAD applies to memprof itself too, whose constructor line
        # comes first; then the program's, with the library loaded
        self.assertEqual(p.stdout, "user preload loaded\n" + alone.stdout)
        self.assertEqual(p.stderr, "")
        with open(out) as f:
            self.assertIn('"allocations": ', f.read())

    def test_children_get_the_users_preload_without_the_tracer(self):
        shell = shutil.which("sh")
        script = 'printf "%s|%s\\n" "$LD_PRELOAD" "$MEMPROF_TEST_VAR"'
        env = env_without_preload(LD_PRELOAD=USER_PRELOAD, MEMPROF_TEST_VAR="kept")
        alone = subprocess.run([shell, "-c", script], capture_output=True, text=True, env=env)
        p = subprocess.run([MEMPROF, "run", "-q", "-o", self.path("c.mpc"), "--", shell, "-c",
                            script], capture_output=True, text=True, env=env, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(alone.stdout, "user preload loaded\n%s|kept\n" % USER_PRELOAD)
        self.assertEqual(p.stdout, "user preload loaded\n" + alone.stdout)

    def test_the_program_sees_the_environment_it_was_given(self):
        # nothing of memprof's (LD_PRELOAD, MEMPROF_OUTPUT...), same order:
        # programs that copy their environment allocate the same as alone
        printenv = shutil.which("env")
        env = env_without_preload(MEMPROF_TEST_VAR="kept")
        alone = subprocess.run([printenv], capture_output=True, text=True, env=env)
        p = subprocess.run([MEMPROF, "run", "-q", "-o", self.path("c.mpc"), "--depth", "8",
                            "--", printenv], capture_output=True, text=True, env=env,
                           cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, alone.stdout)


class CaptureFiles(MemprofTestCase):
    def mode(self, path):
        return stat.S_IMODE(os.lstat(path).st_mode)

    def test_captures_are_private_whatever_the_umask(self):
        capture = self.path("c.mpc")
        env = env_without_preload()
        for args in (("-o", capture), ("--follow-fork", "-o", self.path("f.mpc"))):
            prog = fixture("fixture-fork") if "--follow-fork" in args else BASIC
            p = subprocess.run([MEMPROF, "run", "-q", *args, "--", prog],
                               capture_output=True, text=True, env=env, cwd=self.tmp,
                               umask=0)
            self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([MEMPROF, "run", "-q", "--", BASIC], capture_output=True,
                           text=True, env=env, cwd=self.tmp, umask=0)
        self.assertEqual(p.returncode, 0, p.stderr)
        captures = glob.glob(self.path("*.mpc"))
        # -o, the default name, the follow-fork parent and its child
        self.assertEqual(len(captures), 4, captures)
        for c in captures:
            self.assertEqual(self.mode(c), 0o600, c)

    def test_a_planted_symlink_is_refused_and_its_target_unchanged(self):
        victim = self.path("victim.txt")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o644)
        link = self.path("c.mpc")
        os.symlink(victim, link)
        dangling = self.path("d.mpc")
        os.symlink(self.path("created-through-link"), dangling)
        for path in (link, dangling):
            p = memprof("run", "-o", path, "--", ARGS, "ran", cwd=self.tmp)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(p.stdout, "")  # the program did not start
            self.assertIn("%s is a symbolic link" % path, p.stderr)
            self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
            self.assertTrue(os.path.islink(path))
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(self.mode(victim), 0o644)
        self.assertFalse(os.path.exists(self.path("created-through-link")))

    def test_the_tracer_never_follows_a_link_either(self):
        # the last line of defence: a link planted after memprof checked
        # the path (here: the tracer preloaded by hand)
        victim = self.path("victim.txt")
        with open(victim, "w") as f:
            f.write("precious\n")
        link = self.path("c.mpc")
        os.symlink(victim, link)
        env = env_without_preload(LD_PRELOAD=TRACER, MEMPROF_OUTPUT=link)
        p = subprocess.run([ARGS, "ran"], capture_output=True, text=True, env=env,
                           cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "[ran]\nMEMPROF_TEST_VAR=(unset)\n")
        self.assertEqual(p.stderr, "")
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertTrue(os.path.islink(link))

    def test_the_tracer_empties_a_file_that_holds_something(self):
        # the tracer preloaded by hand over an old file: what it held goes,
        # (the capture is opened for appending: kept, it would come first)
        capture = self.path("c.mpc")
        with open(capture, "wb") as f:
            f.write(b"old contents\n" * 100000)
        env = env_without_preload(LD_PRELOAD=TRACER, MEMPROF_OUTPUT=capture)
        p = subprocess.run([BASIC], capture_output=True, text=True, env=env, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(capture, "rb") as f:
            self.assertEqual(f.read(8), b"MEMPROF\0")
        self.assertLess(os.path.getsize(capture), 1300000)
        p = memprof("report", capture, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("allocations: 15, frees: 11", p.stdout)

    def test_an_existing_capture_is_replaced_not_written_through(self):
        capture = self.path("c.mpc")
        with open(capture, "w") as f:
            f.write("old contents\n")
        os.chmod(capture, 0o644)
        hard = self.path("hardlink.txt")
        os.link(capture, hard)
        p = memprof("run", "-q", "-o", capture, "--", BASIC, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.mode(capture), 0o600)
        with open(hard) as f:
            self.assertEqual(f.read(), "old contents\n")


if __name__ == "__main__":
    main()
