"""test_gating.py: memprof run as a CI gate: --fail-on-leak, --max-leaked,
--max-peak and --leak-exitcode with their exit statuses, --suppressions in
both formats (a suppressed tree root suppresses the tree), unused
suppressions, --gen-suppressions loaded back, SARIF and JUnit files checked
against their required structure, the Graphviz output of a program whose
source file has a hostile name, on-demand scans on a signal, and `memprof
report --format sarif|junit|dot`.

argv[1] is the C compiler (tests/meson.build passes it).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, SOURCE, fixture, main, memprof  # noqa: E402

CC = "cc"
CYCLE = fixture("leak-cycle")          # 48 definite + 96 indirect
TREE = fixture("leak-indirect-tree")   # 32 definite + 192 indirect
REACHABLE = fixture("leak-reachable")  # 10 definite, 1080 reachable
SIGNAL = fixture("leak-signal")


def check_sarif(test, doc):
    """The properties SARIF 2.1.0 requires of what memprof writes."""
    test.assertEqual(doc["version"], "2.1.0")
    test.assertIn("sarif-2.1.0", doc["$schema"])
    test.assertEqual(len(doc["runs"]), 1)
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    test.assertEqual(driver["name"], "memprof")
    test.assertRegex(driver["version"], r"^\d+\.\d+")
    rule_ids = [r["id"] for r in driver["rules"]]
    test.assertEqual(len(rule_ids), len(set(rule_ids)))
    for res in run["results"]:
        test.assertIn(res["ruleId"], rule_ids)
        test.assertEqual(rule_ids[res["ruleIndex"]], res["ruleId"])
        test.assertIn(res["level"], ("error", "warning", "note"))
        test.assertIsInstance(res["message"]["text"], str)
        test.assertGreaterEqual(len(res["locations"]), 1)
        for loc in res["locations"]:
            phys = loc["physicalLocation"]
            test.assertIsInstance(phys["artifactLocation"]["uri"], str)
            test.assertGreaterEqual(phys["region"]["startLine"], 1)
            base = phys["artifactLocation"].get("uriBaseId")
            if base:
                test.assertIn(base, run["originalUriBaseIds"])
                test.assertFalse(phys["artifactLocation"]["uri"].startswith("/"))
        flows = res["codeFlows"][0]["threadFlows"][0]["locations"]
        test.assertGreaterEqual(len(flows), 1)
    return run


class Gates(MemprofTestCase):
    def run_gate(self, program, *options, expect):
        p = memprof("run", "-q", "-o", self.path("c.mpc"), *options, "--", program,
                    cwd=self.tmp)
        self.assertEqual(p.returncode, expect, p.stderr)
        return p

    def test_fail_on_leak_exits_23_with_one_line_per_gate(self):
        p = self.run_gate(CYCLE, "--fail-on-leak", expect=23)
        lines = [l for l in p.stderr.splitlines() if "leak gate failed" in l]
        self.assertEqual(lines, [
            "memprof: leak gate failed: 48 bytes in 1 blocks are definitely lost "
            "(--fail-on-leak allows none)",
            "memprof: leak gate failed: 96 bytes in 2 blocks are indirectly lost "
            "(--fail-on-leak allows none)"])

    def test_fail_on_leak_kinds(self):
        self.run_gate(REACHABLE, "--fail-on-leak=reachable", expect=23)
        self.run_gate(REACHABLE, "--fail-on-leak=possible,indirect", expect=0)
        self.run_gate(REACHABLE, "--fail-on-leak=all", expect=23)
        p = self.run_gate(REACHABLE, "--fail-on-leak=sideways", expect=2)
        self.assertIn("--fail-on-leak wants kinds", p.stderr)

    def test_leak_exitcode_chooses_the_status(self):
        self.run_gate(CYCLE, "--fail-on-leak", "--leak-exitcode", "42", expect=42)
        self.run_gate(CYCLE, "--fail-on-leak", "--leak-exitcode", "0", expect=0)
        self.run_gate(CYCLE, "--leak-exitcode", "300", expect=2)

    def test_without_a_gate_the_status_is_the_programs(self):
        self.run_gate(CYCLE, expect=0)
        self.run_gate(CYCLE, "--leak-exitcode", "9", expect=0)

    def test_max_leaked_says_by_how_much(self):
        self.run_gate(CYCLE, "--max-leaked", "144", expect=0)
        p = self.run_gate(CYCLE, "--max-leaked", "100", expect=23)
        self.assertIn("144 bytes leaked (definitely, indirectly and possibly lost), "
                      "44 bytes over --max-leaked 100", p.stderr)
        self.run_gate(CYCLE, "--max-leaked", "1k", expect=0)
        self.run_gate(CYCLE, "--max-leaked", "0.1KB", expect=23)  # 100 bytes
        p = self.run_gate(CYCLE, "--max-leaked", "lots", expect=2)
        self.assertIn("--max-leaked wants a size", p.stderr)

    def test_max_peak(self):
        # the peak of leak-reachable is its 1090 bytes allocated, none freed
        self.run_gate(REACHABLE, "--max-peak", "1090", expect=0)
        p = self.run_gate(REACHABLE, "--max-peak", "1KB", expect=23)
        self.assertIn("peak of 1090 bytes, 90 bytes over --max-peak 1000", p.stderr)
        self.run_gate(REACHABLE, "--max-peak", "1.1KiB", expect=0)  # 1126 bytes


class Suppressions(MemprofTestCase):
    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def test_valgrind_entry_on_the_tree_root_suppresses_the_tree(self):
        supp = self.write("tree.supp", "{\n   tree-root\n   Memcheck:Leak\n"
                          "   match-leak-kinds: definite\n   fun:calloc\n   fun:build\n"
                          "   fun:leak_tree\n}\n")
        report, p = self.run_json(TREE, options=("--suppressions", supp, "--fail-on-leak"))
        leaks = report["leaks"]
        self.assertEqual((leaks["suppressed"]["bytes"], leaks["suppressed"]["blocks"]),
                         (224, 7))
        self.assertEqual(leaks["definite"]["blocks"] + leaks["indirect"]["blocks"], 0)
        kinds = {r["kind"] for r in report["leak_records"]}
        self.assertEqual(kinds, {"suppressed"})
        self.assertRegex(p.stderr, r"used 1 times, 224 bytes in 7 blocks: tree-root "
                         r"\(.*tree\.supp:1\)")

    def test_lsan_format_and_unused_warning(self):
        supp = self.write("lsan.supp", "# LeakSanitizer's\nleak:leak_ring\n"
                          "leak:no_such_function_anywhere\nrace:whatever\n")
        report, p = self.run_json(CYCLE, options=("--suppressions", supp, "--fail-on-leak"))
        self.assertEqual(report["leaks"]["suppressed"]["bytes"], 144)
        self.assertEqual(report["cycles"], [])
        self.assertIn("suppression 'leak:no_such_function_anywhere'", p.stderr)
        self.assertIn("was never used", p.stderr)
        self.assertIn("race", p.stderr)  # the loader's warning

    def test_two_files_and_a_kind_that_does_not_match(self):
        a = self.write("a.supp", "{\n   only-reachable\n   Memcheck:Leak\n"
                       "   match-leak-kinds: reachable\n   fun:calloc\n   fun:leak_ring\n}\n")
        b = self.write("b.supp", "leak:nothing_here\n")
        report, p = self.run_json(CYCLE, options=("--suppressions", a, "--suppressions", b),
                                  expect_status=0)
        self.assertEqual(report["leaks"]["suppressed"]["blocks"], 0)
        self.assertEqual(report["leaks"]["definite"]["blocks"], 1)
        self.assertEqual(p.stderr.count("was never used"), 2)

    def test_a_bad_file_is_a_usage_error_before_the_run(self):
        bad = self.write("bad.supp", "{\n   name\n   Memcheck:Leak\n   fun:main\n")
        p = memprof("run", "-o", self.path("c.mpc"), "--suppressions", bad, "--", CYCLE,
                    cwd=self.tmp)
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad.supp", p.stderr)
        self.assertFalse(os.path.exists(self.path("c.mpc")))

    def test_gen_suppressions_loaded_back_suppress_everything(self):
        for program in (TREE, CYCLE, REACHABLE, fixture("leak-nine")):
            with self.subTest(program=os.path.basename(program)):
                p = memprof("run", "-o", self.path("c.mpc"), "--gen-suppressions", "--",
                            program, cwd=self.tmp)
                self.assertEqual(p.returncode, 0, p.stderr)
                entries = re.findall(r"^\{\n.*?^\}$", p.stderr, re.S | re.M)
                self.assertGreater(len(entries), 0)
                self.assertIn("<insert_a_suppression_name_here>", entries[0])
                self.assertIn("fun:calloc", "\n".join(entries))
                supp = self.write("gen.supp", "\n".join(entries) + "\n")
                report, p2 = self.run_json(program,
                                           options=("--suppressions", supp,
                                                    "--fail-on-leak=all"))
                for kind in ("definite", "indirect", "possible", "reachable"):
                    self.assertEqual(report["leaks"][kind]["blocks"], 0, kind)
                self.assertGreater(report["leaks"]["suppressed"]["blocks"], 0)


class Formats(MemprofTestCase):
    def test_sarif_structure_and_locations(self):
        sarif = self.path("leaks.sarif")
        report, _ = self.run_json(REACHABLE, options=("--sarif", sarif))
        with open(sarif) as f:
            run = check_sarif(self, json.load(f))
        results = run["results"]
        # reachable records are not results unless asked
        self.assertEqual([r["ruleId"] for r in results], ["memprof/definite-leak"])
        res = results[0]
        self.assertEqual(res["level"], "error")
        self.assertEqual(res["message"]["text"], "10 bytes in 1 blocks are definitely lost")
        loc = res["locations"][0]["physicalLocation"]
        self.assertTrue(loc["artifactLocation"]["uri"].endswith("tests/fixtures/leak-reachable.c"))
        with open(os.path.join(SOURCE, "tests", "fixtures", "leak-reachable.c")) as f:
            line = f.read().splitlines()[loc["region"]["startLine"] - 1]
        self.assertIn("calloc(1, 10)", line)
        flow = res["codeFlows"][0]["threadFlows"][0]["locations"]
        self.assertEqual(flow[0]["location"]["message"]["text"], "calloc")

    def test_sarif_reachable_when_asked_and_relative_paths(self):
        # a copy of the fixture's source under the working directory
        src = os.path.join(self.tmp, "src")
        os.mkdir(src)
        shutil.copy(os.path.join(SOURCE, "tests", "fixtures", "leak-reachable.c"), src)
        exe = self.path("prog")
        subprocess.run([CC, "-g", "-O0", "-o", exe, "src/leak-reachable.c"], cwd=self.tmp,
                       check=True)
        sarif = self.path("r.sarif")
        p = memprof("run", "-q", "-o", self.path("c.mpc"), "--fail-on-leak=reachable",
                    "--sarif", sarif, "--", exe, cwd=self.tmp)
        self.assertEqual(p.returncode, 23, p.stderr)
        with open(sarif) as f:
            run = check_sarif(self, json.load(f))
        levels = sorted({r["level"] for r in run["results"]})
        self.assertEqual(levels, ["error", "note"])
        uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                for r in run["results"]}
        self.assertEqual(uris, {"src/leak-reachable.c"})

    def test_junit_fails_on_a_gate_and_passes_without_leaks(self):
        junit = self.path("j.xml")
        p = memprof("run", "-q", "-o", self.path("c.mpc"), "--fail-on-leak", "--junit", junit,
                    "--", CYCLE, "arg<&>\"'", cwd=self.tmp)
        self.assertEqual(p.returncode, 23)
        root = ET.parse(junit).getroot()
        self.assertEqual(root.tag, "testsuites")
        suites = root.findall("testsuite")
        self.assertEqual(len(suites), 1)
        self.assertEqual(suites[0].get("name"), "memprof")
        cases = suites[0].findall("testcase")
        self.assertEqual(len(cases), 1)
        self.assertTrue(cases[0].get("name").endswith("leak-cycle arg<&>\"'"))
        failure = cases[0].find("failure")
        self.assertIsNotNone(failure)
        self.assertIn("48 bytes in 1 blocks are definitely lost", failure.get("message"))
        self.assertIn("leak_ring (leak-cycle.c:", failure.text)
        # without gates: failing on definite leaks, passing on reachable ones only
        p = memprof("run", "-q", "-o", self.path("c.mpc"), "--junit", junit, "--",
                    fixture("leak-register"), cwd=self.tmp)
        self.assertEqual(p.returncode, 0)
        case = ET.parse(junit).getroot().find("testsuite/testcase")
        self.assertIsNone(case.find("failure"))
        self.assertEqual(ET.parse(junit).getroot().get("failures"), "0")

    def test_report_formats_from_a_capture(self):
        cap = self.path("c.mpc")
        p = memprof("run", "-q", "-o", cap, "--", CYCLE, cwd=self.tmp)
        self.assertEqual(p.returncode, 0)
        sarif = memprof("report", "--format", "sarif", cap, cwd=self.tmp)
        self.assertEqual(sarif.returncode, 0, sarif.stderr)
        run = check_sarif(self, json.loads(sarif.stdout))
        # one result per loss record: the ring's leader, then its two others
        self.assertEqual([r["ruleId"] for r in run["results"]],
                         ["memprof/definite-leak"] + ["memprof/indirect-leak"] * 2)
        self.assertEqual(run["results"][0]["message"]["text"],
                         "144 (48 direct, 96 indirect) bytes in 1 blocks are definitely lost")
        self.assertEqual(run["results"][1]["message"]["text"],
                         "48 bytes in 1 blocks are indirectly lost")
        junit = memprof("report", "-f", "junit", cap, cwd=self.tmp)
        root = ET.fromstring(junit.stdout)
        self.assertEqual(root.get("failures"), "1")
        dot = memprof("report", "-f", "dot", "-o", self.path("c.dot"), cap, cwd=self.tmp)
        self.assertEqual(dot.returncode, 0, dot.stderr)
        with open(self.path("c.dot")) as f:
            text = f.read()
        self.assertTrue(text.startswith("digraph memprof_cycles {"))
        self.assertEqual(len(re.findall(r"-> b[0-9a-f]+ \[label=\"\+0\"\]", text)), 3)
        self.assertIn("48 bytes\\nleak_ring", text)

    def test_dot_of_a_hostile_source_name_is_valid(self):
        name = 'we"ird\\name\\N <x>\t.c'
        shutil.copy(os.path.join(SOURCE, "tests", "fixtures", "leak-cycle.c"),
                    os.path.join(self.tmp, name))
        exe = self.path("hostile")
        subprocess.run([CC, "-g", "-O0", "-o", exe, name], cwd=self.tmp, check=True)
        cap = self.path("h.mpc")
        self.assertEqual(memprof("run", "-q", "-o", cap, "--", exe, cwd=self.tmp).returncode, 0)
        dot = memprof("report", "-f", "dot", cap, cwd=self.tmp)
        self.assertEqual(dot.returncode, 0, dot.stderr)
        self.assertIn('we\\"ird\\\\name\\\\N <x>?.c:', dot.stdout)
        # every quoted string is closed on its line; braces balance
        for line in dot.stdout.splitlines():
            unescaped = re.sub(r'\\.', "", line)
            self.assertEqual(unescaped.count('"') % 2, 0, line)
        self.assertEqual(dot.stdout.count("{"), dot.stdout.count("}"))
        gv = shutil.which("dot")
        if gv:
            p = subprocess.run([gv, "-Tsvg"], input=dot.stdout, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)


class OnDemand(MemprofTestCase):
    def test_a_killed_program_reports_its_last_on_demand_scan(self):
        report, p = self.run_json(SIGNAL, str(int(signal.SIGUSR2)),
                                  options=("--leak-check-signal", "USR2"),
                                  expect_status=128 + signal.SIGKILL)
        self.assertTrue(report["capture"]["incomplete"])
        self.assertTrue(report["capture"]["scanned"])
        self.assertTrue(report["capture"]["scan_on_demand"])
        self.assertEqual((report["leaks"]["definite"]["bytes"],
                          report["leaks"]["definite"]["blocks"]), (100, 1))
        self.assertIn("no scan at exit: these are the kinds of the last on-demand scan",
                      p.stderr)

    def test_without_the_option_no_scan_is_made(self):
        report, _ = self.run_json(SIGNAL, str(int(signal.SIGURG)),
                                  expect_status=128 + signal.SIGKILL)
        self.assertFalse(report["capture"]["scanned"])

    def test_a_bad_signal_is_a_usage_error(self):
        p = memprof("run", "--leak-check-signal", "KILL", "--", SIGNAL, "12", cwd=self.tmp)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--leak-check-signal", p.stderr)


class Help(MemprofTestCase):
    def test_help_lists_every_leak_option(self):
        p = memprof("run", "--help")
        for opt in ("--fail-on-leak[=KINDS]", "--max-leaked SIZE", "--max-peak SIZE",
                    "--leak-exitcode N", "--suppressions FILE", "--gen-suppressions",
                    "--sarif FILE", "--junit FILE", "--leak-check-signal SIG"):
            self.assertIn(opt, p.stdout)
        self.assertIn("23", p.stdout)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        CC = sys.argv.pop(1)
    main()
