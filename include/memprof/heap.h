/*
 * memprof/heap.h: libmemprof-heap, refcounted objects with a generational
 * cycle collector (CPython's object model as a C library).
 * (The object heap's authors complete this header.)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef void (*mp_visit_fn)(void *referent, void *arg);
