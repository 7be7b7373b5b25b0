"""html_page.py: what the HTML report's tests share: compiling
fixture-html.c under a file name made of markup, running it with hostile
arguments through `memprof run --html`, and reading the page's data block.

The compiler comes as the test script's first argument (tests/meson.build
passes meson's), else $CC, else cc.
"""
import json
import os
import re
import shutil
import subprocess
import sys

from memprof_test import SOURCE, memprof

# a file name and arguments that would inject markup if they were not data
HOSTILE_SOURCE = "<img src=x onerror=alert(1)>.c"
HOSTILE_ARG = "</script><script>alert(1)</script>"
HOSTILE_BYTES = b"bad \xff\xfe utf-8 <b>bold</b> &amp; \xe2\x80\xa8"
ODD_FUNCTION = ("odd$name$with$dollars$and_a_very_long_tail_that_goes_on_and_on_"
                "and_on_and_on_to_test_truncation")

DATA_OPEN = '<script type="application/json" id="mp-data">'


def compiler():
    """The C compiler: argv[1] (removed, so that unittest does not see
    it), $CC, or cc."""
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        return sys.argv.pop(1)
    return os.environ.get("CC", "cc")


CC = compiler()


def build_hostile(tmp):
    """Compiles fixture-html.c copied as HOSTILE_SOURCE in tmp; returns the
    program's path, the source's path."""
    src = os.path.join(tmp, HOSTILE_SOURCE)
    shutil.copyfile(os.path.join(SOURCE, "tests", "fixtures", "fixture-html.c"), src)
    exe = os.path.join(tmp, "hostile")
    subprocess.run([CC, "-g", "-O0", "-fno-omit-frame-pointer", "-o", exe, src],
                   check=True, cwd=tmp)
    return exe, src


def run_html(tmp, program, args=(), options=()):
    """memprof run --html; returns (page text, CompletedProcess)."""
    page = os.path.join(tmp, "report.html")
    argv = [os.fsencode(a) if isinstance(a, str) else a for a in args]
    p = memprof("run", "-q", "-o", os.path.join(tmp, "capture.mpc"), "--html", page,
                *options, "--", program, *[os.fsdecode(a) for a in argv], cwd=tmp)
    with open(page, encoding="utf-8") as f:
        return f.read(), p


def data_block(page):
    """The text of the JSON data block and the object it holds."""
    start = page.index(DATA_OPEN) + len(DATA_OPEN)
    end = page.index("</script>", start)
    text = page[start:end]
    return text, json.loads(text)


def external_urls(page):
    """Every src=, href=, url() or @import that points off the page."""
    pat = re.compile(r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)"""
                     r"""\s*(?:https?:|//|ftp:|ws:|wss:)""", re.I)
    return pat.findall(page)


def string_of(data, index):
    return data["strings"][index] if index >= 0 else None


def frame_functions(data):
    return [string_of(data, f[0]) for f in data["frames"]]
