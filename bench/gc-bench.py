#!/usr/bin/env python3
"""gc-bench.py: the shapes of bench/gc-bench.c timed in python3, and the
comparison table.

  full-collection       N objects in two-cycles (N/2 pairs, garbage) plus N
                        live objects held by one list, gc.collect(): ns per
                        tracked object examined (2N + 1).
  new-decref-tracked    create and drop an instance of a class with
                        __slots__ = ('ref',) (tracked by the collector).
  new-decref-untracked  create and drop object() (untracked).

Usage: gc-bench.py [--c-bench PATH] [N]   (N defaults to 1000000)
With --c-bench, runs the C benchmark too and prints both with the ratio
python3 / memprof (above 1: memprof is faster).
"""
import argparse
import gc
import subprocess
import sys
import time
import timeit


class Node:
    __slots__ = ('ref',)

    def __init__(self):
        self.ref = None


def full_collection(n):
    gc.collect()
    live = []
    for _ in range(n // 2):
        a = Node()
        b = Node()
        a.ref = b
        b.ref = a
        live.append(Node())
        live.append(Node())
    del a, b
    t0 = time.perf_counter_ns()
    freed = gc.collect()
    t1 = time.perf_counter_ns()
    if freed != n // 2 * 2:
        sys.exit(f"gc-bench.py: collected {freed}, expected {n // 2 * 2}")
    del live
    return (t1 - t0) / (2 * (n // 2) * 2 + 1)


def new_decref(stmt, n):
    return min(timeit.repeat(stmt, globals={'Node': Node}, number=n,
                             repeat=5)) * 1e9 / n


def python_measures(n):
    gc.disable()
    full = min(full_collection(n) for _ in range(3))
    return {
        'full-collection': full,
        'new-decref-tracked': new_decref('Node()', 10 * n),
        'new-decref-untracked': new_decref('object()', 10 * n),
    }


def c_measures(path, n):
    out = subprocess.run([path, str(n)], check=True, capture_output=True,
                         text=True).stdout
    res = {}
    for line in out.splitlines():
        name, value, *_ = line.split()
        try:
            res[name] = float(value)
        except ValueError:
            pass
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--c-bench', help='path to the gc-bench executable')
    ap.add_argument('n', nargs='?', type=int, default=1000000)
    args = ap.parse_args()
    py = python_measures(args.n)
    print(f"python {sys.version.split()[0]}, N = {args.n}")
    if not args.c_bench:
        for name, value in py.items():
            print(f"{name} {value:.2f} ns/object")
        return
    c = c_measures(args.c_bench, args.n)
    print(f"{'measure':<22} {'memprof ns':>11} {'python3 ns':>11} {'ratio':>7}")
    for name, value in py.items():
        mine = c.get(name)
        if mine is None:
            print(f"{name:<22} {'-':>11} {value:>11.2f}")
            continue
        print(f"{name:<22} {mine:>11.2f} {value:>11.2f} {value / mine:>6.2f}x")


if __name__ == '__main__':
    main()
