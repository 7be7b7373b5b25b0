"""test_faults.py: the traced program meets a fault, and memprof survives it.

- SIGKILL in the middle of the run: memprof reports from what was written,
  marked incomplete, and exits 137 (SIGSEGV and abort() are in test_basic).
- The capture cannot be written: a full file system (a tiny tmpfs, mounted
  when we may), a directory removed during the run, and the paths memprof
  refuses before the program starts (a device, a read-only directory).
  The program's output and status never change.
- The report's reader gone (a closed pipe on stderr): the status is the
  program's (or the gate's), the capture compressed in place.
- Allocation failure under RLIMIT_AS: malloc and friends fail exactly as
  glibc's do, and the program's own error path prints the same lines.
- 64 threads, fork and signals at once (fixture-stress.c), several runs
  under a timeout: no deadlock and no lost event.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MEMPROF, MemprofTestCase, fixture, main, memprof  # noqa: E402

SLEEPER = fixture("fixture-sleeper")
RLIMIT = fixture("fixture-rlimit")
STRESS = fixture("fixture-stress")
BASIC = fixture("fixture-basic")


def plain(*argv, timeout=120):
    """The program alone, without memprof."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return subprocess.run(list(argv), capture_output=True, text=True, env=env,
                          timeout=timeout)


def spawn_memprof(*args, cwd=None, stdout=subprocess.PIPE):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["NO_COLOR"] = "1"
    return subprocess.Popen([MEMPROF, *args], cwd=cwd, env=env, text=True,
                            stdout=stdout, stderr=subprocess.PIPE)


@contextlib.contextmanager
def tmpfs(size):
    """A fresh tmpfs of that size, or SkipTest when it cannot be mounted."""
    where = tempfile.mkdtemp(prefix="memprof-tmpfs-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0777" % size,
                        "tmpfs", where], capture_output=True, text=True)
    if p.returncode != 0:
        os.rmdir(where)
        raise unittest.SkipTest("cannot mount a tmpfs: " + p.stderr.strip())
    try:
        yield where
    finally:
        subprocess.run(["umount", where], capture_output=True)
        os.rmdir(where)


def fill(directory, leave):
    """Fills the file system of directory until at most `leave` bytes are
    free."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(directory, "filler"), "wb") as f:
        chunk = b"\0" * 4096
        while free > leave:
            try:
                f.write(chunk)
                f.flush()
            except OSError:
                break
            free -= len(chunk)


class Killed(MemprofTestCase):
    def test_sigkill_mid_run_reports_what_was_written(self):
        capture, out = self.path("k.mpc"), self.path("k.json")
        p = spawn_memprof("run", "-o", capture, "--json", out, "--", SLEEPER, cwd=self.tmp)
        try:
            line = p.stdout.readline()
            self.assertRegex(line, r"^ready \d+$")
            # the sampler flushes idle threads every 100 ms: let it
            time.sleep(1.0)
            os.kill(int(line.split()[1]), signal.SIGKILL)
            _, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 128 + signal.SIGKILL, err)
        self.assertIn("killed by signal 9", err)
        self.assertIn("the capture is incomplete", err)
        self.assertNotIn("recording stopped", err)
        with open(out) as f:
            report = json.load(f)
        self.assertTrue(report["capture"]["incomplete"])
        self.assertFalse(report["capture"]["has_end"])
        self.assertEqual(report["program"]["signal"], 9)
        self.assertEqual(report["program"]["exit_status"], 137)
        self.assertEqual(self.site_allocations(report, "sleeper_alloc"), 200)
        self.assertEqual(report["totals"]["live_bytes_at_exit"], 100 * 48)


def task_nice(pid):
    """{thread name: nice value} of every thread of process pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except FileNotFoundError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out.setdefault(name, []).append(int(fields[16]))  # stat field 19
    return out


class OwnThreads(MemprofTestCase):
    def test_the_compressor_yields_to_the_program(self):
        capture = self.path("n.mpc")
        p = spawn_memprof("run", "-q", "-o", capture, "--", SLEEPER, "30", cwd=self.tmp)
        try:
            line = p.stdout.readline()
            self.assertRegex(line, r"^ready \d+$")
            program = int(line.split()[1])
            # the threads name themselves as they start
            for _ in range(100):
                mine = task_nice(p.pid)
                if "memprof-pack" in mine and "memprof-replay" in mine:
                    break
                time.sleep(0.05)
            theirs = task_nice(program)
            os.kill(program, signal.SIGKILL)
            p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        # memprof's main thread and its replay keep the nice value memprof
        # was started with, the compressor takes 10 (or keeps a higher
        # one); the program is left alone
        given = os.getpriority(os.PRIO_PROCESS, 0)
        self.assertEqual(mine.get("memprof-pack"), [max(given, 10)], mine)
        self.assertEqual(mine.get("memprof-replay"), [given], mine)
        self.assertEqual(mine.get("memprof"), [given], mine)
        self.assertEqual(set(sum(theirs.values(), [])), {given}, theirs)


class ReaderGone(MemprofTestCase):
    """The report goes to a pipe whose reader has left (`memprof run prog
    2>&1 | head`): memprof stops writing it but still exits with the
    program's status (or the leak gate's), the capture compressed in its
    place and no temporary file left, where it used to die of SIGPIPE
    with the compression half done."""

    def run_unread(self, *args):
        p = spawn_memprof("run", "-o", self.path("c.mpc"), *args, cwd=self.tmp,
                          stdout=subprocess.DEVNULL)
        p.stderr.close()  # nobody reads the report
        return p.wait(timeout=120)

    def assert_capture_kept(self):
        self.assertEqual(sorted(os.listdir(self.tmp)), ["c.mpc"])
        with open(self.path("c.mpc"), "rb") as f:
            data = f.read()
        # the first chunk after the 16-byte header is a compressed group
        self.assertEqual(data[16:20], b"MPCG")
        r = memprof("report", "--format", "json", self.path("c.mpc"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(json.loads(r.stdout)["totals"]["allocations"], 0)

    def test_the_program_status_survives_a_closed_pipe(self):
        self.assertEqual(self.run_unread("--", BASIC, "3"), 3)
        self.assert_capture_kept()

    def test_the_leak_gate_survives_a_closed_pipe(self):
        self.assertEqual(self.run_unread("--fail-on-leak", "--", fixture("leak-cycle")), 23)
        self.assert_capture_kept()


class Unwritable(MemprofTestCase):
    def assert_same_run(self, p, status=3):
        """memprof's run of fixture-basic had the program's own status
        and said nothing on stdout (fixture-basic writes nothing)."""
        self.assertEqual(p.returncode, status, p.stderr)
        self.assertEqual(p.stdout, "")

    def test_a_device_is_refused_before_the_program_runs(self):
        for dev in ("/dev/full", "/dev/null"):
            p = memprof("run", "-o", dev, "--", fixture("fixture-args"), "ran", cwd=self.tmp)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(p.stdout, "")  # the program did not run
            self.assertIn("%s is not a regular file" % dev, p.stderr)
            self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)

    def test_a_missing_or_read_only_directory_is_refused(self):
        p = memprof("run", "-o", self.path("no/such/dir/c.mpc"), "--", BASIC, cwd=self.tmp)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("cannot create the capture", p.stderr)
        self.assertIn("No such file or directory", p.stderr)
        ro = self.path("ro")
        os.mkdir(ro)
        if os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", ro],
                               capture_output=True)
            if r.returncode != 0:
                self.skipTest("root, and cannot mount a read-only tmpfs")
        else:
            os.chmod(ro, 0o555)
        try:
            p = memprof("run", "-o", os.path.join(ro, "c.mpc"), "--", BASIC, cwd=self.tmp)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertRegex(p.stderr, r"cannot create the capture .*: "
                             r"(Read-only file system|Permission denied)")
            # the default name in a read-only current directory
            p = memprof("run", "--", BASIC, cwd=ro)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("cannot write the capture in the current directory", p.stderr)
        finally:
            if os.geteuid() == 0:
                subprocess.run(["umount", ro], capture_output=True)
            else:
                os.chmod(ro, 0o755)

    def test_disk_full_from_the_start(self):
        with tmpfs("64k") as fs:
            fill(fs, 0)
            capture = os.path.join(fs, "c.mpc")
            p = memprof("run", "-o", capture, "--", BASIC, "3", cwd=self.tmp)
            self.assert_same_run(p)
            self.assertIn("recording stopped", p.stderr)
            self.assertIn("its file system is full", p.stderr)
            self.assertIn(capture, p.stderr)

    def test_disk_full_mid_run(self):
        with tmpfs("256k") as fs:
            fill(fs, 16 * 1024)
            capture = os.path.join(fs, "c.mpc")
            out = self.path("r.json")
            alone = plain(STRESS, "16")
            p = memprof("run", "-o", capture, "--json", out, "--", STRESS, "16",
                        cwd=self.tmp)
            self.assertEqual(p.returncode, alone.returncode, p.stderr)
            self.assertEqual(p.returncode, 0, p.stderr)
            # the lines that do not depend on timing are the same
            same = [x for x in alone.stdout.splitlines() if "handler" not in x]
            self.assertEqual([x for x in p.stdout.splitlines() if "handler" not in x], same)
            m = re.search(r"recording stopped early: the capture (\S+) ends at byte (\d+), "
                          r"before the end of the program: its file system is full",
                          p.stderr)
            self.assertTrue(m, p.stderr)
            self.assertEqual(m.group(1), capture)
            self.assertEqual(int(m.group(2)), os.path.getsize(capture))
            self.assertIn("memprof stopped recording: it could not write the rest", p.stderr)
            self.assertNotIn("killed", p.stderr)
            with open(out) as f:
                report = json.load(f)
            self.assertTrue(report["capture"]["incomplete"])
            self.assertEqual(report["program"]["exit_status"], 0)

    def test_directory_removed_during_the_run(self):
        d = self.path("gone")
        os.mkdir(d)
        capture = os.path.join(d, "c.mpc")
        p = spawn_memprof("run", "-o", capture, "--", SLEEPER, "1", cwd=self.tmp)
        line = p.stdout.readline()
        self.assertRegex(line, r"^ready \d+$")
        # memprof's compressor may create its temporary file beside the
        # capture while the directory is being emptied: empty it again
        for _ in range(100):
            try:
                shutil.rmtree(d)
                break
            except OSError:
                time.sleep(0.01)
        self.assertFalse(os.path.exists(d))
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out, "")
        self.assertIn("the capture %s was removed during the run" % capture, err)
        # the report was made all the same, from memprof's own descriptor
        self.assertIn("allocations: 200, frees: 100", err)
        self.assertNotIn("incomplete", err)


class AllocationFailure(MemprofTestCase):
    def test_rlimit_as_makes_malloc_fail_as_glibc_does(self):
        alone = plain(RLIMIT)
        self.assertEqual(alone.returncode, 0, alone.stdout + alone.stderr)
        self.assertIn("malloc: failed as expected: Cannot allocate memory", alone.stdout)
        report, p = self.run_json(RLIMIT, options=("-q",))
        self.assertEqual(p.stdout, alone.stdout)
        self.assertEqual(p.stderr, alone.stderr)
        # failed calls record nothing; the 1000 small blocks and the block
        # of the failed realloc are there
        self.assertEqual(report["capture"]["lost_events"], 0)
        self.assertFalse(report["capture"]["incomplete"])
        sizes = [s["bytes"] for s in report["sites"]]
        self.assertNotIn(256 * 1024 * 1024, sizes)
        self.assertIn(1000 * 1000, sizes)


class Stress(MemprofTestCase):
    RUNS = 4

    def expected(self, stdout):
        counts = dict(re.findall(r"^([\w ]+): (\S+)$", stdout, re.M))
        self.assertEqual(counts.get("child status"), "0", stdout)
        self.assertEqual(counts.get("alarms"), "some", stdout)
        return {k: int(v) for k, v in counts.items() if v.isdigit()}

    def check_run(self, follow_fork):
        opts = ("-q", "--follow-fork") if follow_fork else ("-q",)
        report, p = self.run_json(STRESS, options=opts)
        want = self.expected(p.stdout)
        self.assertEqual(report["capture"]["lost_events"], 0)
        self.assertFalse(report["capture"]["incomplete"])
        self.assertEqual(self.site_allocations(report, "stress_alloc"),
                         want["stress_alloc allocations"])
        # every block but the kept ones was freed: a lost FREE would leave
        # its block live at exit
        leaked = sum(s["leaked_bytes"] for s in self.sites_with(report, "stress_alloc"))
        self.assertEqual(leaked, want["stress_alloc kept bytes"])
        self.assertEqual(self.site_allocations(report, "handler_alloc"),
                         want["handler_alloc allocations"])
        self.assertEqual(self.site_allocations(report, "child_alloc"), 0)
        self.assertEqual(report["leaks"]["definite"]["blocks"], 0)
        if follow_fork:
            kids = [n for n in os.listdir(self.tmp) if re.match(r"capture\.\d+\.mpc$", n)]
            self.assertEqual(len(kids), 1, os.listdir(self.tmp))
            out = self.path("child.json")
            r = memprof("report", "--format", "json", "-o", out, self.path(kids[0]))
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                child = json.load(f)
            self.assertEqual(self.site_allocations(child, "child_alloc"),
                             want["child_alloc allocations"])
            os.unlink(self.path(kids[0]))

    def test_threads_fork_and_signals_lose_nothing(self):
        alone = plain(STRESS)
        self.assertEqual(alone.returncode, 0, alone.stdout + alone.stderr)
        for i in range(self.RUNS):
            with self.subTest(run=i):
                self.check_run(follow_fork=i % 2 == 1)


if __name__ == "__main__":
    main()
