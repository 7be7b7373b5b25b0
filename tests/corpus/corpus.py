"""corpus.py: real programs from Debian, unchanged under memprof.

Usage: corpus.py NAME (one meson test per program, suite 'corpus').

Each program runs a small realistic workload (a script, a query, a
makefile, a repository made in a temporary directory...) three times, each
time in a fresh copy of the same directory:
  1. alone: its stdout, stderr and exit status are the reference;
  2. under `memprof run -q --json`: stdout, stderr and status must be
     identical (-q keeps memprof's report off stderr; memprof prints
     nothing else when all goes well), and the JSON report equal to what
     `memprof report -f json` makes of the capture afterwards (memprof run
     makes it while the program runs);
  3. under valgrind --leak-check=full --show-leak-kinds=all: the LEAK
     SUMMARY's bytes and blocks of definitely, indirectly and possibly lost
     and still reachable must equal memprof's JSON "leaks", except for the
     differences listed in KNOWN_DIFFERENCES, which are asserted exactly.
The program gets the same input each time: the same environment (the one
valgrind gives it, see same_env()), fixed dates, hash seeds, file times and
addresses (see fixed_addresses()), and workloads whose allocations do not
depend on thread scheduling.
A program that is not installed, or valgrind missing, skips (status 77).
"""
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("MEMPROF_BUILD_ROOT", "")
MEMPROF = os.path.join(BUILD, "cli", "memprof")
SKIP = 77
TIMEOUT = 600
KINDS = ("definite", "indirect", "possible", "reachable")

# ---- workloads -------------------------------------------------------------
# Each: (program, setup(dir), [argv, ...]) -- argv run in order in dir, the
# last one being the one whose leaks are compared.

PERL_SCRIPT = r"""
use strict; use warnings;
my %count;
my @words = map { ("alpha", "beta", "gamma", "delta")[$_ % 4] . ($_ % 7) } 1 .. 2000;
$count{$_}++ for @words;
my @sorted = sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count;
printf "%s %d\n", $_, $count{$_} for @sorted[0 .. 4];
my $text = join(",", @words);
my @parts = ($text =~ /(alpha\d)/g);
print scalar(@parts), " alphas\n";
print STDERR "done\n";
exit 3;
"""

PYTHON_SCRIPT = r"""
import collections, json, re, sys
words = [("alpha", "beta", "gamma", "delta")[i % 4] + str(i % 7) for i in range(2000)]
count = collections.Counter(words)
for w, n in sorted(count.items(), key=lambda x: (-x[1], x[0]))[:5]:
    print(w, n)
tree = {"k%d" % i: list(range(i % 10)) for i in range(300)}
print(len(json.dumps(tree)))
print(len(re.findall(r"alpha\d", ",".join(words))), "alphas")
class Node:
    def __init__(self): self.other = None
a, b = Node(), Node()
a.other, b.other = b, a
print("done", file=sys.stderr)
sys.exit(4)
"""

MAKEFILE = """\
SRCS := $(wildcard src/*.txt)
OUTS := $(patsubst src/%.txt,out/%.len,$(SRCS))
all: $(OUTS) summary
out/%.len: src/%.txt | out
\t@wc -c < $< > $@
out:
\t@mkdir -p out
summary: $(OUTS)
\t@cat $(OUTS) | sort -n | head -3
\t@echo "$(words $(OUTS)) files" >&2
.PHONY: all summary
"""

SQL = """\
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
INSERT INTO t(name, v) SELECT 'n' || (x % 37), x * 0.5 FROM c;
CREATE INDEX t_name ON t(name);
SELECT name, count(*), sum(v) FROM t GROUP BY name ORDER BY 2 DESC, 1 LIMIT 5;
SELECT count(*) FROM t WHERE v > 500;
SELECT * FROM no_such_table;
"""

JQ_INPUT = json.dumps([{"id": i, "name": "n%d" % (i % 13), "tags": ["t%d" % (i % 5)] * (i % 4)}
                       for i in range(500)])

TCL_SCRIPT = r"""
set d [dict create]
for {set i 0} {$i < 2000} {incr i} {
    dict incr d [lindex {alpha beta gamma delta} [expr {$i % 4}]][expr {$i % 7}]
}
set l {}
dict for {k v} $d { lappend l [list $k $v] }
foreach p [lrange [lsort -index 1 -integer -decreasing [lsort -index 0 $l]] 0 4] {
    puts [join $p " "]
}
puts [string length [string repeat "abc" 1000]]
puts stderr done
exit 5
"""

CPPCHECK_SRC = r"""
#include <stdlib.h>
#include <string.h>
int f(int n)
{
	char *p = malloc(n);
	int a[10];
	if (n > 3)
		return a[n];
	strcpy(p, "hello");
	return p[0];
}
int g(void) { int *q = NULL; return *q; }
"""

GCC_SRC = r"""
#include <stdio.h>
struct point { int x, y; };
static int dot(struct point a, struct point b) { return a.x * b.x + a.y * b.y; }
int main(void)
{
	struct point p = { 1, 2 }, q = { 3, 4 };
	int unused;
	printf("%d\n", dot(p, q));
	return 0;
}
"""


def setup_files(files):
    def setup(d):
        for name, text in files.items():
            path = os.path.join(d, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    return setup


def setup_make(d):
    setup_files({"Makefile": MAKEFILE})(d)
    for i in range(12):
        setup_files({"src/f%02d.txt" % i: "x" * (i * 37 % 100) + "\n"})(d)


def setup_git(d):
    for i in range(5):
        setup_files({"dir%d/file%d.txt" % (i % 2, i): "line %d\n" % i * (i + 1)})(d)
        # older than the index: never "racily clean", which git would
        # check again (more work when the commit follows within a second)
        os.utime(os.path.join(d, "dir%d/file%d.txt" % (i % 2, i)), (1704067200, 1704067200))


def setup_xz(d):
    # compressible, and two blocks with -T2 --block-size, no more: with
    # more blocks than threads, how many output buffers liblzma allocates
    # depends on how fast the threads finish (scheduling, not the program)
    text = "".join("line %d of the corpus input, %s\n" % (i, "abc" * (i % 9))
                   for i in range(14000))
    setup_files({"input.txt": text})(d)


GIT_ENV = {"GIT_AUTHOR_NAME": "memprof", "GIT_AUTHOR_EMAIL": "memprof@example.org",
           "GIT_COMMITTER_NAME": "memprof", "GIT_COMMITTER_EMAIL": "memprof@example.org",
           "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "GIT_PAGER": "cat"}

WORKLOADS = {
    "perl": ("perl", setup_files({"script.pl": PERL_SCRIPT}), [["perl", "script.pl"]]),
    "python3": ("/usr/bin/python3", setup_files({"script.py": PYTHON_SCRIPT}),
                [["/usr/bin/python3", "-S", "script.py"]]),
    "git": ("git", setup_git, [
        ["git", "init", "-q", "-b", "main", "."],
        ["git", "add", "."],
        ["git", "commit", "-q", "-m", "first"],
        ["git", "log", "--stat", "--format=%H %s"],
    ]),
    "make": ("make", setup_make, [["make", "--no-print-directory", "-j1"]]),
    "sqlite3": ("sqlite3", setup_files({"q.sql": SQL}),
                [["sqlite3", "-bail", "db.sqlite", ".read q.sql"]]),
    "jq": ("jq", setup_files({"in.json": JQ_INPUT}),
           [["jq", "-c", "group_by(.name) | map({name: .[0].name, n: length, "
             "tags: (map(.tags[]) | unique)}) | sort_by(-.n) | .[:4]", "in.json"]]),
    "tclsh": ("tclsh", setup_files({"script.tcl": TCL_SCRIPT}), [["tclsh", "script.tcl"]]),
    "cppcheck": ("cppcheck", setup_files({"bad.c": CPPCHECK_SRC}),
                 [["cppcheck", "--quiet", "--enable=warning", "-j1", "bad.c"]]),
    "gcc": ("gcc", setup_files({"prog.c": GCC_SRC}),
            [["gcc", "-O2", "-Wall", "-c", "prog.c", "-o", "prog.o"]]),
    # multi-threaded: xz compressing with two threads
    "xz": ("xz", setup_xz, [["xz", "-T2", "--block-size=400000", "-k", "-6", "input.txt"],
                           ["xz", "-T2", "-l", "input.txt.xz"]]),
}

# The workload's own variables: perl randomizes its hashes at each run.
WORKLOAD_ENV = {"perl": {"PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0"}}

# Where valgrind and memprof count differently, for a reason documented
# here; each entry is asserted exactly (memprof minus valgrind, per kind).
KNOWN_DIFFERENCES = {
    # xz's worker threads are still alive when it exits (it never calls
    # lzma_end).
    # possible +64 B: each thread's DTV (glibc's allocate_dtv, possibly lost
    # since the thread's TCB points at its second entry) has room for the
    # highest TLS module id plus 16 entries, 16 bytes each: libc is the only
    # module with TLS under valgrind (272 B), memprof's preload library and
    # libunwind add two (304 B); 2 threads.  memprof's own TLS, not the
    # program's: the tracer needs it (readelf -l shows their PT_TLS).
    # reachable +30 B in 2 blocks: textdomain()'s copy of "xz" (3 B) and
    # bindtextdomain()'s binding (27 B), which __libc_freeres frees.
    # valgrind runs __libc_freeres in the exiting thread even while other
    # threads live, keeping them from ever running again
    # (coregrind/m_main.c, shutdown_actions_NORETURN, VgSrc_ExitProcess:
    # "Perhaps this is unsafe"); memprof runs it only when the exiting
    # thread is alone, since a thread it stopped may hold a lock of libc's
    # that __libc_freeres takes (stdio, the stack cache): a deadlock.
    ("xz", 0): {"possible": (64, 0), "reachable": (30, 2)},
}


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEMPROF_", "LD_", "VALGRIND", "GIT_", "PYTHON", "MALLOC_"))}
    env.update({"LC_ALL": "C", "TZ": "UTC", "NO_COLOR": "1"})
    env.update(GIT_ENV)
    env.update(extra or {})
    return env


def same_env(valgrind, env, cwd):
    """The environment the program gets under valgrind, for the runs alone
    and under memprof: programs copy their environment (perl's %ENV, make's
    variables, tcl's env array), so its size is part of their input.
    valgrind's launcher may add variables (Debian's wrapper script adds
    LD_LIBRARY_PATH and GLIBCXX_FORCE_NEW, and its shell sets PWD), and
    valgrind adds LD_PRELOAD with its own preloads (coregrind/m_initimg),
    which memprof must not copy (the tracer removes what `memprof run`
    added): in its place comes a variable of the same name and value
    lengths, so that the program makes the same allocations."""
    if not valgrind:
        return env
    p = run([valgrind, "-q", "--leak-check=no", "--", shutil.which("env") or "env", "-0"],
            cwd, env)
    if p.returncode != 0:
        return env
    out = {}
    for entry in p.stdout.split(b"\0"):
        if b"=" not in entry:
            continue
        k, v = entry.decode("utf-8", "surrogateescape").split("=", 1)
        out["VG_PRELOAD" if k == "LD_PRELOAD" else k] = v
    return out


# Programs whose stale words (tclsh hashes pointers) can hold a block's
# start under one allocator's layout and not the other's: with memprof's
# pools a word left in tclsh's memory equals the start of one 16 KiB block
# that valgrind counts possibly lost, which makes it reachable (seen with
# some environments only: the words depend on the layout).  For them,
# definite and indirect are still compared exactly, and possible plus
# reachable as one sum, in bytes and blocks.
STALE_WORDS = {"tclsh"}


def fixed_addresses():
    """valgrind places the program at the same addresses at every run; the
    runs alone and under memprof get no address randomization either, for
    programs whose memory depends on addresses (tclsh hashes pointers: the
    stale words left in its memory, which the scan sees, change with the
    layout).  personality(ADDR_NO_RANDOMIZE), inherited across exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.personality(0x0040000)
    except (OSError, AttributeError):
        pass


def run(argv, cwd, env, fixed=False):
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, preexec_fn=fixed_addresses if fixed else None)


def parse_valgrind(log):
    """The LEAK SUMMARY of a valgrind log as {kind: (bytes, blocks)}."""
    pat = {"definite": "definitely lost", "indirect": "indirectly lost",
           "possible": "possibly lost", "reachable": "still reachable"}
    out = {k: (0, 0) for k in KINDS}
    if "All heap blocks were freed -- no leaks are possible" in log:
        return out
    for kind, words in pat.items():
        m = re.search(r"==\d+==\s+%s: ([\d,]+) bytes in ([\d,]+) blocks" % words, log)
        if not m:
            raise AssertionError("no '%s' in the valgrind log:\n%s" % (words, log[-3000:]))
        out[kind] = (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")))
    return out


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def fresh(base, setup):
    work = os.path.join(base, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.mkdir(work)
    setup(work)
    return work


def main():
    name = sys.argv[1]
    program, setup, commands = WORKLOADS[name]
    if not shutil.which(program):
        print("SKIP: %s is not installed (Debian package in ./bootstrap)" % program)
        return SKIP
    if not os.path.exists(MEMPROF):
        print("memprof not built: " + MEMPROF)
        return 1
    valgrind = shutil.which("valgrind")
    vg_env = clean_env(WORKLOAD_ENV.get(name))
    failures = []
    with tempfile.TemporaryDirectory(prefix="memprof-corpus-") as base:
        # 1. alone
        work = fresh(base, setup)
        env = same_env(valgrind, vg_env, work)
        alone = [run(argv, work, env, fixed=True) for argv in commands]
        # 2. under memprof
        work = fresh(base, setup)
        reports = []
        for i, (argv, ref) in enumerate(zip(commands, alone)):
            out = os.path.join(base, "report-%d.json" % i)
            p = run([MEMPROF, "run", "-q", "-o", os.path.join(base, "c-%d.mpc" % i),
                     "--json", out, "--", *argv], work, env, fixed=True)
            what = " ".join(argv)
            for field in ("returncode", "stdout", "stderr"):
                if getattr(p, field) != getattr(ref, field):
                    failures.append("%s: %s differs under memprof:\nalone: %r\nmemprof: %r"
                                    % (what, field, getattr(ref, field)[-2000:]
                                       if field != "returncode" else ref.returncode,
                                       getattr(p, field)[-2000:]
                                       if field != "returncode" else p.returncode))
            with open(out) as f:
                text = f.read()
            reports.append(json.loads(text))
            # memprof run replays the capture while the program runs: its
            # report must be what memprof report makes of the capture after
            again = subprocess.run([MEMPROF, "report", "-f", "json",
                                    os.path.join(base, "c-%d.mpc" % i)],
                                   capture_output=True, text=True, timeout=TIMEOUT)
            if again.returncode != 0 or again.stdout != text:
                failures.append("%s: memprof report of the capture differs from memprof "
                                "run's report (status %d): %s"
                                % (what, again.returncode, again.stderr[-2000:]))
        print("%s: same stdout, stderr and status alone and under memprof" % name
              if not failures else "\n".join(failures))
        # 3. under valgrind: leak categories
        if not valgrind:
            print("SKIP: valgrind is not installed")
            return SKIP if not failures else 1
        work = fresh(base, setup)
        for i, argv in enumerate(commands):
            log = os.path.join(base, "vg-%d.log" % i)
            p = run([valgrind, "--leak-check=full", "--show-leak-kinds=all",
                     "--log-file=" + log, "--", *argv], work, vg_env)
            with open(log) as f:
                vg = parse_valgrind(f.read())
            mp = {k: (reports[i]["leaks"][k]["bytes"], reports[i]["leaks"][k]["blocks"])
                  for k in KINDS}
            known = KNOWN_DIFFERENCES.get((name, i), {})
            what = " ".join(argv)
            if name in STALE_WORDS:
                # possible and reachable as one kind: see STALE_WORDS
                for m in (mp, vg):
                    m["possible"] = tuple(a + b for a, b in zip(m["possible"],
                                                                m["reachable"]))
                    m["reachable"] = (0, 0)
            for k in KINDS:
                diff = (mp[k][0] - vg[k][0], mp[k][1] - vg[k][1])
                want = known.get(k, (0, 0))
                status = "ok" if diff == want else "MISMATCH"
                print("%-40s %-9s memprof %9d B %6d blocks  valgrind %9d B %6d blocks  %s"
                      % (what[:40], k, mp[k][0], mp[k][1], vg[k][0], vg[k][1], status))
                if diff != want:
                    failures.append("%s: %s: memprof %s, valgrind %s" % (what, k, mp[k], vg[k]))
    if failures:
        print("\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
