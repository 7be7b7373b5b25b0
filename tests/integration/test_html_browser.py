"""test_html_browser.py: the HTML report opened from file:// in headless
Chromium (Debian's chromium package; the test is skipped without it).

The page of fixture-html, compiled under a file name made of markup and run
with arguments made of markup and invalid UTF-8, is loaded with
--dump-dom: the DOM after the page's script ran must hold the chart, the
flamegraph and the tables the script draws, the page's own error catcher
(#mp-errors: window errors, unhandled rejections, console errors, policy
violations) must have recorded nothing, and the hostile strings must be
text, not elements.  A screenshot goes to BUILD/html-report.png.

Then the same page is driven through the DevTools protocol over
--remote-debugging-pipe (JSON messages on file descriptors 3 and 4, no
package needed): sorting and filtering the sites table, opening a row,
searching and zooming the flamegraph, changing its cost, clicking the
chart, hovering for a tooltip."""
import html.parser
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import html_page  # noqa: E402,F401  (takes the compiler argument first)
from html_page import HOSTILE_ARG, ODD_FUNCTION, build_hostile, run_html  # noqa: E402
from memprof_test import BUILD, SKIP, MemprofTestCase, main  # noqa: E402

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


class Dom(html.parser.HTMLParser):
    """The elements of a dumped DOM: (tag, attrs, path of ids/classes) and
    the text under each element id."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.stack = []
        self.text = {}
        self.all_text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, [e[1].get("id") for e in self.stack if e[1].get("id")]))
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, [e[1].get("id") for e in self.stack if e[1].get("id")]))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        self.all_text.append(data)
        for _, a in self.stack:
            if a.get("id"):
                self.text[a["id"]] = self.text.get(a["id"], "") + data

    def inside(self, ancestor_id, tag, cls=None):
        return [e for e in self.elements if e[0] == tag and ancestor_id in e[2] and
                (cls is None or cls in e[1].get("class", "").split())]


def chromium(tmp, url, *extra):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--user-data-dir=" + os.path.join(tmp, "profile"),
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *extra, url],
        capture_output=True, text=True, timeout=180, errors="replace")


class DevTools:
    """Chromium driven over --remote-debugging-pipe."""

    def __init__(self, tmp, url):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        # the child reads commands on fd 3 and writes replies on fd 4
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + os.path.join(tmp, "profile-cdp"), "--remote-debugging-pipe",
             "--window-size=1280,1000", url],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(to_child_r, 3), os.dup2(from_child_w, 4)))
        os.close(to_child_r)
        os.close(from_child_w)
        self.next_id = 0
        self.buffer = b""

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_child, 65536)
                if not chunk:
                    raise AssertionError("chromium closed the pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise AssertionError("%s: %s" % (method, reply["error"]))
                return reply["result"]

    def page_session(self):
        for _ in range(100):
            pages = [t for t in self.send("Target.getTargets")["targetInfos"]
                     if t["type"] == "page" and t["url"].startswith("file:")]
            if pages:
                return self.send("Target.attachToTarget",
                                 {"targetId": pages[0]["targetId"], "flatten": True})["sessionId"]
        raise AssertionError("no page target")

    def evaluate(self, session, expression):
        """Runtime.evaluate once the page is loaded (the first attempts may
        hit the navigation from about:blank)."""
        for _ in range(50):
            try:
                ready = self.send("Runtime.evaluate", {
                    "expression": "location.protocol + document.readyState",
                    "returnByValue": True}, session)
            except AssertionError:
                ready = None
            if ready and ready["result"].get("value") == "file:complete":
                return self.send("Runtime.evaluate",
                                 {"expression": expression, "awaitPromise": True,
                                  "returnByValue": True, "timeout": 30000}, session)
            time.sleep(0.2)
        raise AssertionError("the page did not load")

    def close(self):
        try:
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_child)
        os.close(self.from_child)


# Runs in the page: does what a reader does and reports what it saw.
INTERACT = r"""
new Promise(function (done) {
  function go() {
    if (document.body.getAttribute('data-ready') !== '1') return setTimeout(go, 50);
    var out = {};
    function col(n) {
      return Array.prototype.map.call(
        document.querySelectorAll('#mp-sites-table tbody tr.site-row td:nth-child(' + n + ')'),
        function (td) { return Number(td.textContent.replace(/,/g, '')); });
    }
    var heads = document.querySelectorAll('#mp-sites-table thead th');
    heads[3].click();
    out.allocsDesc = col(4);
    heads[3].click();
    out.allocsAsc = col(4);
    var filter = document.querySelector('#sites input[type=search]');
    filter.value = 'temporaries';
    filter.dispatchEvent(new Event('input'));
    out.filtered = document.querySelectorAll('#mp-sites-table tbody tr.site-row').length;
    document.querySelector('#mp-sites-table tbody tr.site-row').click();
    var detail = document.querySelector('#mp-sites-table tbody tr.detail');
    out.detailFrames = detail ? detail.querySelectorAll('ol.mp-stack li').length : 0;
    out.detailSource = detail ? detail.querySelectorAll('pre.mp-src .ln.hl').length : 0;
    var search = document.querySelector('#flamegraph input[type=search]');
    search.value = 'make_peak';
    search.dispatchEvent(new Event('input'));
    out.searchInfo = document.getElementById('mp-flame-info').textContent;
    out.matches = document.querySelectorAll('#mp-flame g.match').length;
    search.value = '';
    search.dispatchEvent(new Event('input'));
    var target = Array.prototype.filter.call(document.querySelectorAll('#mp-flame g'),
      function (g) { return g.textContent === 'make_peak'; })[0];
    target.dispatchEvent(new MouseEvent('mousemove', { clientX: 200, clientY: 200, bubbles: true }));
    var tip = document.querySelector('.mp-tip');
    out.tip = tip.hidden ? '' : tip.textContent;
    target.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    out.zoomInfo = document.getElementById('mp-flame-info').textContent;
    Array.prototype.filter.call(document.querySelectorAll('#flamegraph .mp-seg button'),
      function (b) { return b.textContent === 'Allocations'; })[0].click();
    out.costInfo = document.getElementById('mp-flame-info').textContent;
    var hit = document.querySelector('#mp-timeline-chart rect.hit');
    var box = hit.getBoundingClientRect();
    hit.dispatchEvent(new MouseEvent('click', { clientX: box.right - 1, clientY: box.top + 5, bubbles: true }));
    out.liveAt = document.querySelector('#mp-live-at h3').textContent;
    out.errors = document.getElementById('mp-errors').textContent;
    done(JSON.stringify(out));
  }
  go();
})
"""


class HtmlInBrowser(MemprofTestCase):
    def test_page_draws_without_errors_and_strings_stay_text(self):
        exe, _ = build_hostile(self.tmp)
        _, p = run_html(self.tmp, exe, args=(HOSTILE_ARG, b"bad \xff\xfe <b>x</b>"))
        self.assertEqual(p.returncode, 0, p.stderr)
        url = "file://" + self.path("report.html")
        r = chromium(self.tmp, url, "--dump-dom")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        dom = Dom()
        dom.feed(r.stdout)
        # the page's own error catcher recorded nothing
        self.assertEqual(dom.text.get("mp-errors", "").strip(), "",
                         "errors in the page: " + dom.text.get("mp-errors", ""))
        body = [e for e in dom.elements if e[0] == "body"][0][1]
        self.assertEqual(body.get("data-ready"), "1", "the script did not finish")
        self.assertNotIn("data-errors", body)
        for line in r.stderr.splitlines():
            for bad in ("Uncaught", "Refused to", "Content Security Policy"):
                self.assertNotIn(bad, line)
        # what the script draws
        self.assertTrue(dom.inside("mp-timeline-chart", "polyline", "live"), "no chart")
        self.assertTrue(dom.inside("mp-timeline-chart", "circle", "peak"), "no peak mark")
        rects = dom.inside("mp-flame", "rect")
        self.assertGreaterEqual(len(rects), 5, "no flamegraph")
        self.assertGreaterEqual(len(dom.inside("mp-sites-table", "tr", "site-row")), 4)
        self.assertGreater(len(dom.inside("mp-live-at", "tr")), 1, "no table of the peak")
        self.assertTrue([e for e in dom.elements if e[0] == "details" and
                         "mp-leak" in e[1].get("class", "")], "no leak records")
        self.assertTrue(dom.inside("mp-sizes-chart", "rect", "bar"), "no size histogram")
        # hostile strings are text, never elements
        self.assertIn(HOSTILE_ARG, dom.text.get("mp-app", ""))
        self.assertIn("bad \ufffd\ufffd <b>x</b>", dom.text.get("mp-app", ""))
        self.assertIn(ODD_FUNCTION, dom.text.get("mp-app", ""))
        self.assertEqual([e for e in dom.elements if e[0] == "img"], [])
        self.assertEqual(len([e for e in dom.elements if e[0] == "script"]), 2)
        self.assertEqual([e for e in dom.elements if any(k.startswith("on") for k in e[1])], [])

        # a screenshot to look at (wide page, light scheme)
        shot = os.path.join(BUILD, "html-report.png")
        r = chromium(self.tmp, url, "--screenshot=" + shot, "--window-size=1280,2000",
                     "--hide-scrollbars")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertGreater(os.path.getsize(shot), 10000)

    def test_page_answers_the_reader(self):
        exe, _ = build_hostile(self.tmp)
        _, p = run_html(self.tmp, exe)
        self.assertEqual(p.returncode, 0, p.stderr)
        cdp = DevTools(self.tmp, "file://" + self.path("report.html"))
        try:
            session = cdp.page_session()
            res = cdp.evaluate(session, INTERACT)
        finally:
            cdp.close()
        self.assertNotIn("exceptionDetails", res, res)
        out = json.loads(res["result"]["value"])
        self.assertEqual(out["errors"], "")
        self.assertEqual(out["allocsDesc"], sorted(out["allocsDesc"], reverse=True))
        self.assertEqual(out["allocsAsc"], sorted(out["allocsDesc"]))
        self.assertEqual(sum(out["allocsAsc"]), 24)
        self.assertEqual(out["filtered"], 1)
        self.assertGreaterEqual(out["detailFrames"], 3)
        self.assertEqual(out["detailSource"], 1)
        self.assertTrue(out["searchInfo"].startswith("Matched: 100% of bytes live at the peak"),
                        out["searchInfo"])
        self.assertGreaterEqual(out["matches"], 1)
        self.assertIn("make_peak", out["tip"])
        self.assertIn("8.20 KiB", out["tip"])
        self.assertTrue(out["zoomInfo"].startswith("Zoomed on make_peak"), out["zoomInfo"])
        self.assertEqual(out["costInfo"], "Total: 24 allocations")
        self.assertTrue(out["liveAt"].startswith("Live at"), out["liveAt"])
        self.assertNotIn("the peak", out["liveAt"])


if __name__ == "__main__":
    if not CHROMIUM:
        print("SKIP: chromium is not installed (apt-get install chromium)")
        sys.exit(SKIP)
    main()
