"""test_leaks.py: memprof's leak classification against valgrind memcheck's,
end to end, and the unreachable cycles of the JSON report.

Each tests/fixtures/leak-* program runs under `memprof run --json` and under
`valgrind --leak-check=full --show-leak-kinds=all`; the bytes and blocks of
every category of the LEAK SUMMARY, and the loss records (kind, direct and
indirect bytes, blocks), must be equal.  The valgrind half is skipped, with
a message, when valgrind is not installed (./bootstrap installs it); the
numbers in each fixture's top comment are then still checked.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, SOURCE, fixture, main  # noqa: E402

VALGRIND = shutil.which("valgrind")
KINDS = {"definitely lost": "definite", "indirectly lost": "indirect",
         "possibly lost": "possible", "still reachable": "reachable",
         "suppressed": "suppressed"}
FIXTURES = ["cycle", "definite", "indirect-tree", "possible", "reachable", "thread",
            "nine", "thousand", "tls", "register", "selfloop"]
if os.path.exists(fixture("leak-cxx")):
    FIXTURES.append("cxx")


def number(text):
    return int(text.replace(",", ""))


def parse_summary(text):
    """{kind: (bytes, blocks)} from LEAK SUMMARY lines."""
    out = {}
    for m in re.finditer(r"(definitely lost|indirectly lost|possibly lost|still reachable|"
                         r"suppressed): ([\d,]+) bytes in ([\d,]+) blocks", text):
        out[KINDS[m.group(1)]] = (number(m.group(2)), number(m.group(3)))
    return out


def parse_records(text):
    """Sorted (kind, direct, indirect, blocks) of valgrind's loss records."""
    out = []
    for m in re.finditer(r"== ([\d,]+)(?: \(([\d,]+) direct, ([\d,]+) indirect\))? bytes in "
                         r"([\d,]+) blocks are (definitely lost|indirectly lost|possibly lost|"
                         r"still reachable) in loss record", text):
        total = number(m.group(1))
        direct = number(m.group(2)) if m.group(2) else total
        indirect = number(m.group(3)) if m.group(3) else 0
        out.append((KINDS[m.group(5)], direct, indirect, number(m.group(4))))
    return sorted(out)


def expected_of(name):
    """The LEAK SUMMARY written in the fixture's top comment."""
    src = os.path.join(SOURCE, "tests", "fixtures",
                       "leak-%s.%s" % (name, "cpp" if name == "cxx" else "c"))
    with open(src) as f:
        head = f.read().split("*/", 1)[0]
    return parse_summary(head)


class ValgrindParity(MemprofTestCase):
    def memprof_leaks(self, name):
        report, _ = self.run_json(fixture("leak-" + name))
        leaks = {k: (v["bytes"], v["blocks"]) for k, v in report["leaks"].items()}
        records = sorted((r["kind"], r["bytes"], r["indirect_bytes"], r["blocks"])
                         for r in report["leak_records"])
        return leaks, records, report

    def valgrind_leaks(self, name):
        p = subprocess.run([VALGRIND, "--leak-check=full", "--show-leak-kinds=all",
                            "--num-callers=64", fixture("leak-" + name)],
                           capture_output=True, text=True, timeout=300, cwd=self.tmp)
        self.assertIn("LEAK SUMMARY", p.stderr, p.stderr)
        return parse_summary(p.stderr), parse_records(p.stderr)

    def test_each_fixture_matches_valgrind(self):
        if not VALGRIND:
            print("valgrind is not installed (./bootstrap installs it): comparing with "
                  "the numbers of the fixtures' comments only", file=sys.stderr)
        for name in FIXTURES:
            with self.subTest(fixture=name):
                leaks, records, _ = self.memprof_leaks(name)
                expected = expected_of(name)
                self.assertEqual(set(expected), set(KINDS.values()))
                for kind, value in expected.items():
                    self.assertEqual(leaks[kind], value, "%s: %s" % (name, kind))
                if not VALGRIND:
                    continue
                vg_summary, vg_records = self.valgrind_leaks(name)
                for kind in ("definite", "indirect", "possible", "reachable"):
                    self.assertEqual(leaks[kind], vg_summary.get(kind, (0, 0)),
                                     "%s: %s differs from valgrind" % (name, kind))
                self.assertEqual(records, vg_records,
                                 "%s: loss records differ from valgrind's" % name)

    def test_a_thousand_one_byte_leaks_make_one_record(self):
        _, records, report = self.memprof_leaks("thousand")
        self.assertEqual(records, [("definite", 1000, 0, 1000)])
        p = self.run_json(fixture("leak-thousand"))[1]
        self.assertIn("1000 bytes in 1000 blocks are definitely lost in loss record 1 of 1",
                      p.stderr)

    def test_stacks_start_at_the_allocation_function(self):
        report, p = self.run_json(fixture("leak-definite"))
        stack = report["leak_records"][-1]["stack"]
        self.assertEqual(stack[0]["function"], "malloc")
        self.assertTrue(stack[0]["module"].endswith("/libmemprof-preload.so"))
        self.assertEqual(stack[1]["function"], "leak")
        self.assertRegex(p.stderr, r"at 0x[0-9a-f]+: malloc \(in [^)]*libmemprof-preload\.so\)")

    def test_operator_new_appears_above_malloc(self):
        if "cxx" not in FIXTURES:
            self.skipTest("no C++ compiler")
        report, _ = self.run_json(fixture("leak-cxx"))
        for r in report["leak_records"]:
            names = [f["function"] for f in r["stack"]]
            if any(n and n.startswith("operator new") for n in names):
                self.assertEqual(names[0], "malloc")
                self.assertTrue(names[1].startswith("operator new"), names)
                return
        self.fail("no record allocated by operator new")


class Cycles(MemprofTestCase):
    def test_the_ring_of_leak_cycle(self):
        report, p = self.run_json(fixture("leak-cycle"))
        cycles = report["cycles"]
        self.assertEqual(len(cycles), 1)
        c = cycles[0]
        self.assertEqual(set(c), {"blocks", "bytes", "members", "edges"})
        self.assertEqual((c["blocks"], c["bytes"]), (3, 144))
        addrs = {m["address"] for m in c["members"]}
        self.assertEqual(len(addrs), 3)
        for m in c["members"]:
            self.assertEqual(set(m), {"address", "size", "stack"})
            self.assertEqual(m["size"], 48)
            self.assertIn("leak_ring", [f["function"] for f in m["stack"]])
        self.assertEqual(len(c["edges"]), 3)
        for e in c["edges"]:
            self.assertEqual(e["offset"], 0)
            self.assertIn(e["from"], addrs)
            self.assertIn(e["to"], addrs)
        # the edges close the ring: every member has one way in and one out
        self.assertEqual({e["from"] for e in c["edges"]}, addrs)
        self.assertEqual({e["to"] for e in c["edges"]}, addrs)
        self.assertIn("Cycles", p.stderr)
        self.assertIn("cycle 1 of 1: 144 bytes in 3 blocks", p.stderr)

    def test_a_self_loop_and_a_pair(self):
        report, _ = self.run_json(fixture("leak-selfloop"))
        cycles = sorted(report["cycles"], key=lambda c: c["blocks"])
        self.assertEqual([(c["blocks"], c["bytes"]) for c in cycles], [(1, 32), (2, 64)])
        self_loop = cycles[0]
        self.assertEqual(len(self_loop["edges"]), 1)
        e = self_loop["edges"][0]
        self.assertEqual(e["from"], e["to"])
        self.assertEqual(e["from"], self_loop["members"][0]["address"])

    def test_no_cycle_in_a_tree(self):
        report, _ = self.run_json(fixture("leak-indirect-tree"))
        self.assertEqual(report["cycles"], [])


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        sys.argv.pop(1)  # the C compiler, which test_gating.py uses
    main()
