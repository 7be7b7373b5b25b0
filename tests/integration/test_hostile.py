"""test_hostile.py: `memprof report` on hostile captures.

Random bytes, bit flips at every 97th byte of a real capture (with and
without the chunk checksum fixed, so that the record parser sees them),
varints that overflow, counts that claim billions, stack chains far deeper
than any real one, stack nodes whose parent chain loops, and names that are
not UTF-8 or carry terminal escapes (every report stays valid UTF-8).  Each gives a
report (exit 0) or one line of error (exit 2), within a time limit, and
never a crash.  test_captures.py has the truncated and simply corrupt cases.
"""
import os
import random
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MEMPROF, MemprofTestCase, fixture, main, memprof  # noqa: E402

HEADER = b"MEMPROF\0" + struct.pack("<II", 1, 16)
CHUNK_MAGIC = 0x4b43504d
PROCESS, ALLOC, FREE, STACK, STATS, NOTE, END, SCAN = 1, 2, 3, 4, 10, 11, 13, 14


def u(v):
    """An unsigned LEB128 varint."""
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def s(v):
    return u(((v << 1) ^ (v >> 63)) & (2 ** 64 - 1))


def string(b):
    return u(len(b)) + b


def chunk(payload, tid=1):
    # capture_checksum() is Adler-32
    return struct.pack("<IIII", CHUNK_MAGIC, len(payload), tid,
                       zlib.adler32(payload)) + payload


def process():
    return bytes([PROCESS]) + u(42) + u(1) + u(0) + string(b"/bin/hostile") + u(1) + \
        string(b"hostile") + u(0)


def end(seq):
    return bytes([END]) + u(1000) + u(seq) + u(0) + u(0) + u(0)


def alloc(seq_delta, addr_delta, size, stack):
    return bytes([ALLOC]) + u(seq_delta) + s(addr_delta) + u(size) + u(stack)


def stack(node, parent, ip):
    return bytes([STACK]) + u(node) + u(parent) + u(ip)


class Hostile(MemprofTestCase):
    def write(self, name, data):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def report(self, path):
        """Runs memprof report; asserts a report or a one-line refusal."""
        try:
            p = memprof("report", path, timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("memprof report %s did not finish" % path)
        self.assertIn(p.returncode, (0, 2), "%s: status %d\n%s" % (path, p.returncode,
                                                                   p.stderr[-2000:]))
        if p.returncode == 2:
            lines = p.stderr.splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertTrue(lines[0].startswith("memprof: %s: " % path), lines[0])
            self.assertEqual(p.stdout, "")
        else:
            self.assertIn("Totals", p.stdout)
        return p

    def real_capture(self):
        capture = self.path("real.mpc")
        p = memprof("run", "-q", "-o", capture, "--", fixture("fixture-basic"), cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(capture, "rb") as f:
            return f.read()

    def test_random_bytes(self):
        rng = random.Random(20240611)
        for i in range(40):
            n = rng.choice([1, 7, 16, 17, 100, 4096])
            data = bytes(rng.getrandbits(8) for _ in range(n))
            self.report(self.write("random-%d.mpc" % i, data))
            # the same bytes behind a good header, and as a well-formed
            # chunk (right magic and checksum) so that records are parsed
            self.report(self.write("header-%d.mpc" % i, HEADER + data))
            p = self.report(self.write("chunk-%d.mpc" % i, HEADER + chunk(data)))
            self.assertNotIn("checksum", p.stderr)

    def test_bit_flips_every_97th_byte(self):
        data = self.real_capture()
        offsets = list(range(0, len(data), 97))
        self.assertGreater(len(offsets), 5)
        refused = 0
        for off in offsets:
            bad = bytearray(data)
            bad[off] ^= 1 << (off % 8)
            p = self.report(self.write("flip-%d.mpc" % off, bytes(bad)))
            refused += p.returncode == 2
        # a flip lands in a header, a chunk header or a payload whose
        # checksum then fails: most are refused
        self.assertGreater(refused, len(offsets) // 2)

        # again with every chunk's checksum made right, for the parser
        for off in offsets:
            bad = bytearray(data)
            bad[off] ^= 1 << (off % 8)
            pos = 16
            while pos + 16 <= len(bad):
                length = struct.unpack_from("<I", bad, pos + 4)[0]
                if pos + 16 + length > len(bad):
                    break
                struct.pack_into("<I", bad, pos + 12,
                                 zlib.adler32(bytes(bad[pos + 16:pos + 16 + length])))
                pos += 16 + length
            self.report(self.write("flipfix-%d.mpc" % off, bytes(bad)))

    def test_varints_that_overflow(self):
        too_long = b"\xff" * 10 + b"\x01"           # 11 bytes
        overflow = b"\xff" * 9 + b"\x7f"            # bits past 64
        top = u(2 ** 64 - 1)
        for name, field in (("long", too_long), ("overflow", overflow), ("top", top)):
            payload = process() + bytes([ALLOC]) + u(1) + field + top + u(0) + end(5)
            self.report(self.write("varint-%s.mpc" % name, HEADER + chunk(payload)))
            payload = process() + bytes([ALLOC]) + u(1) + s(4096) + field + u(0) + end(5)
            self.report(self.write("size-%s.mpc" % name, HEADER + chunk(payload)))
        # sizes that overflow any sum: two blocks of 2^64 - 1 bytes
        payload = process() + alloc(1, 4096, 2 ** 64 - 1, 0) + \
            alloc(1, 4096, 2 ** 64 - 1, 0) + end(9)
        self.report(self.write("sizes.mpc", HEADER + chunk(payload)))

    def test_counts_that_claim_billions(self):
        cases = {
            "argc": bytes([PROCESS]) + u(1) + u(1) + u(0) + string(b"x") + u(4 * 10 ** 9) +
            string(b"x"),
            "scan": process() + bytes([SCAN]) + u(5 * 10 ** 9) + u(5 * 10 ** 9) + u(1) +
            end(2),
            "stats": process() + bytes([STATS]) + u(4 * 10 ** 9) + u(16) + u(1) + u(1) +
            u(1),
            "string": process() + bytes([NOTE]) + u(1) + u(1) + u(2 ** 40),
            "stack-id": process() + stack(2 ** 32 + 5, 2 ** 63, 1) +
            alloc(1, 4096, 8, 2 ** 32 + 5) + end(3),
        }
        for name, payload in cases.items():
            self.report(self.write("count-%s.mpc" % name, HEADER + chunk(payload)))

    def test_deep_stack_chain(self):
        depth = 100000
        payload = bytearray(process())
        for node in range(1, depth + 1):
            payload += stack(node, node - 1, 0x400000 + node)
        payload += alloc(1, 4096, 64, depth) + end(3)
        p = self.report(self.write("deep.mpc", HEADER + chunk(bytes(payload))))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("allocations: 1, frees: 0", p.stdout)

    def test_stack_cycles(self):
        cases = {
            "self": stack(1, 1, 0x401000) + alloc(1, 4096, 64, 1),
            "pair": stack(1, 2, 0x401000) + stack(2, 1, 0x402000) + alloc(1, 4096, 64, 1),
            "tail": stack(1, 2, 0x401000) + stack(2, 3, 0x402000) + stack(3, 2, 0x403000) +
            alloc(1, 4096, 64, 1) + alloc(1, 64, 32, 3),
            "redefined": stack(1, 0, 0x401000) + stack(2, 1, 0x402000) +
            stack(1, 2, 0x403000) + alloc(1, 4096, 64, 2),
        }
        for name, records in cases.items():
            payload = process() + records + end(10)
            p = self.report(self.write("cycle-%s.mpc" % name, HEADER + chunk(payload)))
            if p.returncode == 0:
                self.assertIn("allocations:", p.stdout)

    def test_names_that_are_not_utf8(self):
        exe = b"/bin/ho\xffst\xc3\x28ile\x1b]0;owned\x07"
        argv = [exe, b"caf\xc3\xa9", b"\xe9t\xe9", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
        payload = bytes([PROCESS]) + u(42) + u(1) + u(0) + string(exe) + u(len(argv))
        for a in argv:
            payload += string(a)
        payload += u(0)
        payload += bytes([NOTE]) + u(1) + u(1) + string(b"note \x80\xbf\x1b[2J end")
        payload += alloc(1, 4096, 64, 0) + end(3)
        path = self.write("names.mpc", HEADER + chunk(payload))
        env = dict(os.environ, NO_COLOR="1")
        env.pop("LD_PRELOAD", None)
        for fmt in ("text", "json", "folded", "sarif", "junit", "dot", "html"):
            p = subprocess.run([MEMPROF, "report", "-f", fmt, path], env=env,
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout.decode("utf-8")   # raises if any byte is not UTF-8
            self.assertNotIn("\x1b", out)
            self.assertNotIn("\x07", out)
            if fmt == "text":
                # valid sequences are kept, the rest shows as '?'
                self.assertIn("caf\u00e9", out)
                self.assertIn("/bin/ho?st?(ile?]0;owned?", out)
                self.assertIn("?t?", out)
                self.assertIn("note ???[2J end", out)


if __name__ == "__main__":
    main()
