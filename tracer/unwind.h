/*
 * unwind.h: the tracer's stack capture, the hot half of every event.
 *
 * unwind_capture() returns the program's return addresses for the current
 * call, innermost first, memprof's own frames skipped but the public
 * function the program called (malloc, free...), which stays the innermost
 * frame.  It walks frame pointers where they were proven to hold, reuses the
 * outer frames of the thread's previous stack once it meets one whose saved
 * return address is still in its stack slot (and every outer slot still
 * holds its own), and falls back to libunwind for the rest.  See unwind.c.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "stacks.h"

/* Called once libunwind is loaded (its dlopen handle), before any capture. */
void unwind_setup(void *libunwind_handle);

/* Fills ips[0, max) with the current stack; returns the number of frames
 * (0 when no unwinder is available). */
size_t unwind_capture(uint64_t *ips, size_t max);

/* What the thread's last capture shares with its previous one, for
 * stack_table_intern_hinted(): its token, the previous capture's, and how
 * many of its outermost frames are the previous capture's (known without
 * comparing them; 0 when not known).  Tokens are unique across threads and
 * never 0.  The pointer stays valid on the thread; the hint it points to
 * changes with each capture. */
const struct stack_hint *unwind_hint(void);

/* Forgets everything learned about code addresses (after a dlclose: an
 * unloaded object's addresses may hold other code later). */
void unwind_forget(void);

/* Fork handlers (lifecycle.c calls them with its own): no thread is inside
 * libunwind while the process forks. */
void unwind_fork_prepare(void);
void unwind_fork_parent(void);
void unwind_fork_child(void);
