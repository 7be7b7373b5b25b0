"""test_captures.py: `memprof report` on good, truncated and corrupt
captures."""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main, memprof  # noqa: E402

HEADER = 16
CHUNK_HEADER = 16


class Captures(MemprofTestCase):
    def setUp(self):
        super().setUp()
        self.capture = self.path("capture.mpc")
        p = memprof("run", "-q", "-o", self.capture, "--", fixture("fixture-basic"),
                    cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.capture, "rb") as f:
            self.data = f.read()

    def chunks(self):
        """(offset, payload length) of every chunk."""
        out, off = [], HEADER
        while off + CHUNK_HEADER <= len(self.data):
            magic, length = struct.unpack_from("<II", self.data, off)
            out.append((off, length))
            off += CHUNK_HEADER + length
        self.assertEqual(off, len(self.data))
        return out

    def write(self, name, data):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def report_json(self, path):
        out = self.path(os.path.basename(path) + ".json")
        p = memprof("report", "--format", "json", "-o", out, path)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            return json.load(f)

    def test_report_renders_the_saved_capture_again(self):
        report = self.report_json(self.capture)
        self.assertEqual(report["totals"]["allocations"], 15)
        self.assertEqual(report["program"]["exit_status"], 0)
        p = memprof("report", "--top", "2", self.capture)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("allocations: 15, frees: 11", p.stdout)
        self.assertIn("(", p.stdout)

    def test_truncated_capture_is_reported_incomplete(self):
        chunks = self.chunks()
        off, length = chunks[-1]
        # cut inside the last chunk, and inside a chunk header
        for cut in (off + CHUNK_HEADER + length // 2, off + 5, len(self.data) - 1):
            path = self.write("cut-%d.mpc" % cut, self.data[:cut])
            report = self.report_json(path)
            self.assertTrue(report["capture"]["incomplete"], cut)
            self.assertTrue(report["capture"]["truncated"], cut)
            p = memprof("report", path)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("incomplete", p.stdout)
        # a header alone: nothing recorded, still a report
        report = self.report_json(self.write("head.mpc", self.data[:HEADER]))
        self.assertEqual(report["totals"]["allocations"], 0)
        self.assertTrue(report["capture"]["incomplete"])

    def test_run_leaves_the_capture_compressed_and_it_reports_the_same(self):
        # the fixture's capture is small: a program with more events
        capture = self.path("big.mpc")
        out = self.path("run.json")
        p = memprof("run", "-q", "-o", capture, "--json", out, "--",
                    fixture("fixture-threads"), cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(capture, "rb") as f:
            data = f.read()
        self.assertEqual(struct.unpack_from("<I", data, 8)[0], 4, "version 4")
        magics, raw, off = [], HEADER, HEADER
        while off + CHUNK_HEADER <= len(data):
            magic, length = struct.unpack_from("<II", data, off)
            magics.append(magic)
            if magic == 0x4743504D:  # "MPCG": whole chunks, compressed together
                raw += struct.unpack_from("<I", data, off + CHUNK_HEADER)[0]
            else:
                raw += CHUNK_HEADER + length
            off += CHUNK_HEADER + length
        self.assertEqual(off, len(data), "whole chunks only")
        self.assertIn(0x4743504D, magics, "chunks are compressed in groups")
        self.assertLess(len(data) * 2, raw, "to less than half")
        self.assertFalse([f for f in os.listdir(self.tmp) if f.endswith(".tmp")],
                         "no temporary file left")
        with open(out) as f:
            during = json.load(f)
        after = self.report_json(capture)
        for key in ("totals", "sites", "leaks"):
            self.assertEqual(during.get(key), after.get(key), key)

    def assert_refused(self, path, *words):
        p = memprof("report", path)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "")
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("memprof: %s: " % path), lines[0])
        for w in words:
            self.assertIn(w, lines[0])

    def test_corrupt_captures_are_refused_in_one_line(self):
        off, length = self.chunks()[0]
        bad = bytearray(self.data)
        bad[off + CHUNK_HEADER + length // 2] ^= 0x5a
        self.assert_refused(self.write("sum.mpc", bytes(bad)), "checksum",
                            "byte offset %d" % off)
        bad = bytearray(self.data)
        bad[off] ^= 0xff
        self.assert_refused(self.write("magic.mpc", bytes(bad)), "chunk magic")
        self.assert_refused(self.write("text.mpc", b"hello, world\n" * 4), "not a memprof")
        bad = bytearray(self.data)
        bad[8] = 99
        self.assert_refused(self.write("version.mpc", bytes(bad)), "version 99")
        self.assert_refused(self.write("empty.mpc", b""), "empty")
        self.assert_refused(self.path("missing.mpc"), "No such file")


if __name__ == "__main__":
    main()
