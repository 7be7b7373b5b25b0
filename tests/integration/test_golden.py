"""test_golden.py: the reports of deterministic fixtures, compared with
the files of tests/golden/ once what changes from run to run or from
machine to machine is masked (see mask_text and mask_json).

  tests/golden/NAME.txt     memprof report CAPTURE           (text)
  tests/golden/NAME.json    memprof report -f json CAPTURE
  tests/golden/NAME.folded  memprof report -f folded CAPTURE (peak)
  tests/golden/cycle.dot    memprof report -f dot CAPTURE    (leak-cycle)

After a deliberate change of a report, regenerate them and review the
diff of tests/golden/ before committing it:

  MEMPROF_UPDATE_GOLDEN=1 meson test -C BUILD integration-golden

What is masked: addresses (0x..., and the DOT node names made of them),
pids, timings (seconds), the build and source directories, the
allocator's statistics (they follow the pool allocator, not the
reports), and every frame of the C library and the dynamic loader (a run of them becomes one "<glibc>" frame, so that another
glibc build, with other internal functions or lines, gives the same file).
"""
import difflib
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import (BUILD, SKIP, SOURCE, MemprofTestCase, fixture,  # noqa: E402
                          main, memprof)

GOLDEN = os.path.join(SOURCE, "tests", "golden")
UPDATE = os.environ.get("MEMPROF_UPDATE_GOLDEN") == "1"

GLIBC_MODULE = re.compile(r"(^|/)(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|ld)"
                          r"([.-][^/]*)?\.so(\.[0-9.]+)?$")


def is_glibc_module(path):
    return bool(path) and bool(GLIBC_MODULE.search(path))


def mask_paths(text):
    """The build and source directories (the build one first: it may lie
    inside the source tree)."""
    for root, name in ((BUILD, "<BUILD>"), (SOURCE, "<SOURCE>")):
        if root:
            text = text.replace(os.path.realpath(root), name).replace(root, name)
    return text


def mask_text(text):
    """The text report and the other line formats."""
    text = mask_paths(text)
    text = re.sub(r"0x[0-9a-f]+", "0x<ADDR>", text)
    text = re.sub(r"\(pid \d+", "(pid <PID>", text)
    text = re.sub(r"\b\d+\.\d+ s\b", "<T> s", text)
    # frames of the C library: "by 0x<ADDR>: f (file.c:12)" with a glibc
    # source or module; a run of them becomes one placeholder
    out = []
    for line in text.split("\n"):
        m = re.match(r"^(\s*)(at|by) 0x<ADDR>: (.*)$", line)
        glibc = m and (re.search(r"\(in [^)]*(libc|ld-linux)[^)]*\)", m.group(3)) or
                       re.match(r"(__libc_|_dl_|__GI_|start_thread |clone3? )", m.group(3)))
        if glibc:
            placeholder = "%s%s 0x<ADDR>: <glibc>" % (m.group(1), m.group(2))
            if not out or out[-1] != placeholder:
                out.append(placeholder)
            continue
        out.append(line)
    text = "\n".join(out)
    # the allocator's numbers
    text = re.sub(r"(?m)^(  arenas: |  large blocks: ).*$", r"\1<allocator statistics>", text)
    return text


def mask_dot(text):
    """The Graphviz file: its node names are made of addresses; they
    become n1, n2... in the order they first appear, keeping the edges."""
    names = {}

    def rename(m):
        return names.setdefault(m.group(0), "n%d" % (len(names) + 1))
    return mask_text(re.sub(r"\bb[0-9a-f]{4,16}\b", rename, text))


def mask_frames(stack):
    out = []
    for f in stack:
        if isinstance(f, dict) and is_glibc_module(f.get("module")):
            g = {"function": "<glibc>", "file": None, "line": None, "module": "<glibc>",
                 "address": "<ADDR>"}
            if not out or out[-1] != g:
                out.append(g)
        else:
            out.append(f)
    return out


def mask_value(key, v):
    if isinstance(v, dict):
        return {k: mask_value(k, x) for k, x in v.items()}
    if isinstance(v, list):
        if key in ("stack", "frames") or (v and isinstance(v[0], dict) and "module" in v[0]):
            v = mask_frames(v)
        return [mask_value(None, x) for x in v]
    if key in ("pid", "ppid") and isinstance(v, int):
        return 0
    if key and key.endswith("_s") and isinstance(v, (int, float)):
        return 0
    if isinstance(v, str):
        v = mask_paths(v)
        return re.sub(r"0x[0-9a-f]+", "0x<ADDR>", v)
    return v


def mask_json(text):
    report = json.loads(text)
    report = mask_value(None, report)
    if isinstance(report.get("allocator"), dict):
        report["allocator"] = "<allocator statistics>"
    return json.dumps(report, indent=1, ensure_ascii=False) + "\n"


class Golden(MemprofTestCase):
    maxDiff = None

    def capture(self, program, *args):
        cap = self.path(os.path.basename(program) + ".mpc")
        p = memprof("run", "-q", "-o", cap, "--", program, *args, cwd=self.tmp)
        self.assertIn(p.returncode, (0,), p.stderr)
        return cap

    def check(self, name, text):
        path = os.path.join(GOLDEN, name)
        if UPDATE:
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            return
        self.assertTrue(os.path.exists(path),
                        "no %s: run MEMPROF_UPDATE_GOLDEN=1 meson test integration-golden"
                        % path)
        with open(path) as f:
            want = f.read()
        if text != want:
            diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                                "golden/" + name, "now"))
            self.fail("%s differs from the golden file (regenerate with "
                      "MEMPROF_UPDATE_GOLDEN=1 if the change is wanted):\n%s" % (name, diff))

    def report(self, *args):
        p = memprof("report", *args, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def golden_set(self, name, program):
        cap = self.capture(fixture(program))
        self.check(name + ".txt", mask_text(self.report(cap)))
        self.check(name + ".json", mask_json(self.report("-f", "json", cap)))
        self.check(name + ".folded", mask_text(self.report("-f", "folded", cap)))

    def test_views(self):
        self.golden_set("views", "fixture-views")

    def test_basic(self):
        self.golden_set("basic", "fixture-basic")

    def test_dot_of_a_cycle(self):
        program = fixture("leak-cycle")
        if not os.path.exists(program):
            self.skipTest("leak-cycle is not built")
        cap = self.capture(program)
        self.check("cycle.dot", mask_dot(self.report("-f", "dot", cap)))

    # ---- the masking itself ----

    def test_masking_hides_what_varies(self):
        text = ("memprof report: %s/tests/x (pid 123), exited with status 0 after 0.003 s\n"
                "   at 0x55d0: f (x.c:3)\n"
                "   by 0x7f01: __libc_start_call_main (libc_start_call_main.h:58)\n"
                "   by 0x7f02: __libc_start_main (in /lib/x86_64-linux-gnu/libc.so.6)\n"
                "   by 0x55d1: _start (in %s/tests/x)\n"
                "  arenas: 1 allocated\n" % (BUILD, BUILD))
        self.assertEqual(
            mask_text(text),
            "memprof report: <BUILD>/tests/x (pid <PID>), exited with status 0 after <T> s\n"
            "   at 0x<ADDR>: f (x.c:3)\n"
            "   by 0x<ADDR>: <glibc>\n"
            "   by 0x<ADDR>: _start (in <BUILD>/tests/x)\n"
            "  arenas: <allocator statistics>\n")
        j = {"program": {"pid": 5, "duration_s": 0.1}, "sites": [{"stack": [
            {"function": "f", "module": BUILD + "/x", "address": "0x1"},
            {"function": "a", "module": "/lib/x86_64-linux-gnu/libc.so.6", "address": "0x2"},
            {"function": "b", "module": "/lib64/ld-linux-x86-64.so.2", "address": "0x3"},
            {"function": "_start", "module": BUILD + "/x", "address": "0x4"}]}]}
        m = json.loads(mask_json(json.dumps(j)))
        self.assertEqual(m["program"], {"pid": 0, "duration_s": 0})
        self.assertEqual([f["function"] for f in m["sites"][0]["stack"]],
                         ["f", "<glibc>", "_start"])
        self.assertEqual(m["sites"][0]["stack"][0]["module"], "<BUILD>/x")


if __name__ == "__main__":
    if not os.path.exists(fixture("fixture-views")):
        sys.exit(SKIP)
    main()
