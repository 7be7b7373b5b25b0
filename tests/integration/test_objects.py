"""test_objects.py: the objgraph-style reports of programs that use
libmemprof-heap: types alive at exit, growth between snapshots,
uncollectable cycles, refcount leaks and back-reference chains
(tests/fixtures/objects-*.c document the numbers)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memprof_test import MemprofTestCase, fixture, main, memprof  # noqa: E402

GRAPH = fixture("objects-graph")
LEAKS = fixture("objects-leaks")


def by_name(entries):
    return {e["name"]: e for e in entries}


class Objects(MemprofTestCase):
    def test_json_keys(self):
        report, _ = self.run_json(GRAPH)
        objects = report["objects"]
        for key in ("types", "uncollectable_cycles", "growth", "refcount_leaks",
                    "backref_chains"):
            self.assertIn(key, objects)
        for t in objects["types"]:
            self.assertEqual(set(t), {"name", "count", "bytes"})

    def test_types_alive_at_exit_exact(self):
        report, _ = self.run_json(GRAPH)
        types = report["objects"]["types"]
        counts = {t["name"]: (t["count"], t["bytes"]) for t in types}
        self.assertEqual(counts, {"registry": (1, 256), "alpha": (11, 11 * 24),
                                  "beta": (3, 3 * 16), "gamma": (2, 2 * 24)})
        self.assertEqual(types[0]["name"], "alpha")  # most objects first
        self.assertEqual(report["objects"]["uncollectable_cycles"], [])
        self.assertEqual(report["objects"]["refcount_leaks"], [])
        # every object is held: no object block is reported lost
        self.assertEqual(report["leaks"]["definite"]["blocks"], 0)
        self.assertEqual(report["leaks"]["possible"]["blocks"], 0)

    def test_growth_between_two_snapshots(self):
        report, p = self.run_json(GRAPH)
        growth = report["objects"]["growth"]
        self.assertEqual(len(growth), 1)
        g = growth[0]
        self.assertEqual((g["from"], g["to"]), ("before", "after"))
        deltas = {t["name"]: (t["count"], t["delta"]) for t in g["types"]}
        self.assertEqual(deltas, {"alpha": (11, 5), "gamma": (2, 2)})
        self.assertIn('snapshot "before" -> "after"', p.stderr)

    def test_snapshot_signal(self):
        report, _ = self.run_json(GRAPH, "signal", options=("--snapshot-signal", "USR2"))
        growth = report["objects"]["growth"]
        self.assertEqual([(g["from"], g["to"]) for g in growth],
                         [("before", "signal 12"), ("signal 12", "after")])
        self.assertEqual(growth[0]["types"], [])
        deltas = {t["name"]: t["delta"] for t in growth[1]["types"]}
        self.assertEqual(deltas, {"alpha": 5, "gamma": 2})

    def test_backref_chain_from_a_global(self):
        report, p = self.run_json(GRAPH)
        chains = {c["object"]["type"]: c for c in report["objects"]["backref_chains"]}
        reg = chains["registry"]
        self.assertEqual(reg["chain"], [])
        self.assertEqual(reg["root"]["kind"], "global")
        self.assertEqual(reg["root"]["name"], "g_registry in objects-graph")
        alpha = chains["alpha"]
        self.assertEqual([link["type"] for link in alpha["chain"]], ["registry"])
        self.assertEqual(alpha["root"]["name"], "g_registry in objects-graph")
        self.assertIn("<- g_registry in objects-graph", p.stderr)

    def test_uncollectable_cycle(self):
        report, p = self.run_json(LEAKS)
        cycles = report["objects"]["uncollectable_cycles"]
        kinds = sorted((c["objects"], c["types"]) for c in cycles)
        self.assertEqual(kinds, [(2, ["knot"]), (3, ["link"])])
        knots = [c for c in cycles if c["types"] == ["knot"]][0]
        for m in knots["members"]:
            self.assertEqual(m["type"], "knot")
            self.assertEqual(m["refcount"], 1)
            self.assertTrue(self.frames_named(m["stack"], "knots"))
        self.assertEqual(len(knots["edges"]), 2)
        self.assertIn("Cycles of objects never freed", p.stderr)

    def test_refcount_leak(self):
        report, p = self.run_json(LEAKS)
        leaks = report["objects"]["refcount_leaks"]
        self.assertEqual([(x["type"], x["refcount"], x["referrers"]) for x in leaks],
                         [("orphan", 1, 0)])
        self.assertTrue(self.frames_named(leaks[0]["stack"], "orphan"))
        self.assertIn("Refcount leaks", p.stderr)
        types = by_name(report["objects"]["types"])
        self.assertEqual({n: t["count"] for n, t in types.items()},
                         {"knot": 2, "bead": 1, "link": 3, "orphan": 1, "keeper": 1})
        chains = {c["object"]["type"]: c for c in report["objects"]["backref_chains"]}
        self.assertEqual(set(chains), {"keeper"})
        self.assertEqual(chains["keeper"]["root"]["name"], "g_keeper in objects-leaks")

    def test_dot_has_the_object_cycles(self):
        self.run_json(LEAKS)
        p = memprof("report", "--format", "dot", self.path("capture.mpc"), cwd=self.tmp)
        if p.returncode == 2 and "unknown format" in p.stderr:
            self.skipTest("memprof report has no dot format in this build")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("cluster_obj_cycle_1", p.stdout)
        self.assertIn("knot", p.stdout)
        self.assertIn("g_keeper in objects-leaks", p.stdout)

    def test_program_without_objects(self):
        report, _ = self.run_json(fixture("fixture-basic"))
        self.assertEqual(report["objects"]["types"], [])
        self.assertEqual(report["objects"]["uncollectable_cycles"], [])
        self.assertEqual(report["objects"]["growth"], [])


if __name__ == "__main__":
    main()
