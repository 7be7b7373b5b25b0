"""test_html.py: the HTML report of fixture-html (tests/fixtures/fixture-html.c
documents its numbers) through `memprof run --html` and `memprof report
--format html`: a page that needs no network, whose data block holds the
right totals, and where file names, function names and arguments made of
markup stay data."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import html_page  # noqa: E402  (takes the compiler argument first)
from html_page import (HOSTILE_ARG, HOSTILE_BYTES, HOSTILE_SOURCE, ODD_FUNCTION,  # noqa: E402
                       build_hostile, data_block, external_urls, frame_functions,
                       run_html, string_of)
from memprof_test import MemprofTestCase, fixture, main, memprof, source_line  # noqa: E402

FIXTURE = fixture("fixture-html")


class HtmlReport(MemprofTestCase):
    def page(self):
        page, p = run_html(self.tmp, FIXTURE)
        self.assertEqual(p.returncode, 0, p.stderr)
        return page

    def test_page_needs_no_network(self):
        page = self.page()
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertEqual(external_urls(page), [])
        self.assertIn("default-src 'none'", page)
        self.assertNotIn("<link", page)
        self.assertEqual(page.count("<script"), 2)

    def test_data_block_holds_the_totals(self):
        _, data = data_block(self.page())
        t = data["totals"]
        self.assertEqual(t["allocations"], 24)
        self.assertEqual(t["frees"], 22)
        self.assertEqual(t["bytes_allocated"], 8508)
        self.assertEqual(t["peak_bytes"], 8400)
        self.assertEqual(t["live_bytes_at_exit"], 104)
        self.assertEqual(t["live_blocks_at_exit"], 2)
        self.assertEqual(t["temporary"], 3)
        self.assertEqual(data["leaks"]["definite"], {"bytes": 40, "blocks": 1})
        self.assertEqual(data["leaks"]["reachable"], {"bytes": 64, "blocks": 1})
        self.assertEqual(data["program"]["exit_status"], 0)
        self.assertEqual(sum(s["a"] for s in data["sites"]["rows"]), 24)
        self.assertEqual(sum(s["t"] for s in data["sites"]["rows"]), 3)
        # the flamegraph's root holds every cost
        root = data["flame"]["nodes"][0]
        self.assertEqual(root[0], -1)
        self.assertEqual(root[6:10], [8400, 104, 24, 3])
        # sizes: 20 of 420 bytes in [256, 511], 2 of 2 in [2, 3]
        sizes = {(b[0], b[1]): (b[2], b[3]) for b in data["sizes"]}
        self.assertEqual(sizes[(256, 511)], (20, 8400))
        self.assertEqual(sizes[(2, 3)], (2, 4))

    def test_peak_breakdown_names_the_site(self):
        _, data = data_block(self.page())
        tl = data["timeline"]
        peaks = [p for p in tl["points"] if p[4] == 1]
        self.assertEqual(len(peaks), 1)
        self.assertEqual(peaks[0][1], 8400)
        bd = tl["breakdowns"][peaks[0][3]]
        self.assertEqual(bd["blocks"], 20)
        site, live, blocks = bd["rows"][0]
        self.assertEqual((live, blocks), (8400, 20))
        stack = data["sites"]["rows"][site]["s"]
        self.assertIn(ODD_FUNCTION, [string_of(data, data["frames"][i][0]) for i in stack])
        self.assertLessEqual(max(p[2] for p in tl["points"]), 8400)

    def test_leak_record_shows_its_source_lines(self):
        _, data = data_block(self.page())
        definite = [r for r in data["leak_records"]["rows"] if r["k"] == "definite"]
        self.assertEqual(len(definite), 1)
        self.assertEqual(definite[0]["b"], 40)
        sn = data["snippets"][definite[0]["src"]]
        line = source_line("fixture-html.c", "lost")
        self.assertEqual(sn["line"], line)
        self.assertTrue(string_of(data, sn["file"]).endswith("/fixture-html.c"))
        self.assertEqual(sn["first"], line - 2)
        self.assertEqual(len(sn["lines"]), 5)
        self.assertIn("LINE:lost", sn["lines"][2])

    def test_report_renders_the_same_page_data(self):
        self.page()
        out = self.path("again.html")
        p = memprof("report", "--format", "html", "-o", out, self.path("capture.mpc"))
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, encoding="utf-8") as f:
            _, data = data_block(f.read())
        self.assertEqual(data["totals"]["allocations"], 24)
        self.assertEqual(data["totals"]["temporary"], 3)
        p = memprof("report", "-f", "html", self.path("capture.mpc"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(data_block(p.stdout)[1]["totals"]["peak_bytes"], 8400)

    def test_json_and_html_in_one_run(self):
        page = self.path("a.html")
        p = memprof("run", "-q", "-o", self.path("c.mpc"), "--json", self.path("r.json"),
                    "--html", page, "--html", self.path("b.html"), "--", FIXTURE, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("a.html", "b.html", "r.json"):
            self.assertGreater(os.path.getsize(self.path(name)), 0, name)

    def test_unwritable_page_is_a_usage_error(self):
        p = memprof("run", "--html", self.path("no/such/dir/x.html"), "--", FIXTURE,
                    cwd=self.tmp)
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot write", p.stderr)
        p = memprof("report", "--format", "html", "--timeline", self.path("none.mpc"))
        self.assertEqual(p.returncode, 2)

    def test_markup_in_names_and_arguments_stays_data(self):
        exe, src = build_hostile(self.tmp)
        page, p = run_html(self.tmp, exe, args=(HOSTILE_ARG, HOSTILE_BYTES))
        self.assertEqual(p.returncode, 0, p.stderr)
        text, data = data_block(page)
        self.assertNotIn("<", text)
        self.assertNotIn(">", text)
        self.assertNotIn("&", text)
        self.assertNotIn("\u2028", text)
        self.assertEqual(page.count("<script"), 2)
        self.assertEqual(page.lower().count("</script"), 2)
        self.assertNotIn("<img", page)
        self.assertNotIn("<b>", page)
        argv = data["program"]["argv"]
        self.assertEqual(argv[1], HOSTILE_ARG)
        self.assertEqual(argv[2], "bad \ufffd\ufffd utf-8 <b>bold</b> &amp; \u2028")
        self.assertIn(src, data["strings"])
        self.assertIn(ODD_FUNCTION, frame_functions(data))
        self.assertTrue(any(string_of(data, data["snippets"][r["src"]]["file"]) == src
                            for r in data["leak_records"]["rows"] if r["src"] >= 0))
        self.assertIn(HOSTILE_SOURCE, "".join(data["strings"]))


if __name__ == "__main__":
    main()
