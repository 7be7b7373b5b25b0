/*
 * tracer.h: what the preload library offers to the rest of memprof's code
 * that is linked into it (the leak scan) and to traced programs.
 *
 * tracer_foreach_own_range() lists the memory the tracer itself maps (its
 * per-thread buffers, the stack table, its data segment, scratch space) so
 * that the leak scan does not take it as roots.  memprof_leak_check() is
 * exported from libmemprof-preload.so: a program (or a signal handler set
 * up by memprof, through the scan's request mechanism) calls it to run a
 * leak scan now and append its result to the capture.
 */
#pragma once

#include <stdint.h>

void tracer_foreach_own_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);

/* Runs a reachability scan now and writes SCAN, SCANBLOCK and SCANEDGE
 * records (SCAN flags 0).  Does nothing when the process is not being
 * recorded.  Must not be called from a signal handler. */
__attribute__((visibility("default"))) void memprof_leak_check(void);
