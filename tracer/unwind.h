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

/* ---- the stacks captured lately, by where they stand ----------------------
 * A thread's stacks repeat: the same calls from the same places, the same
 * return addresses in the same stack slots.  unwind_memo_find() looks the
 * current call up by its entry frame (the slot of the return address into
 * the public function the program called, and that address, found by
 * frame pointers through memprof's own frames only) and checks every slot
 * of a stack kept under that key for its return address: when they all
 * hold, the stack is the one kept, and so is its id (no walk, no
 * interning).  Otherwise the caller captures and interns the stack, then
 * unwind_memo_put() keeps it with its id.  Only the thread that owns the
 * memo uses it (no lock); it may pass from a thread that exited to a new
 * one (a kept stack is used only when its slots lie in the current
 * thread's stack). */
#define UNWIND_MEMO_FRAMES 32u /* a deeper stack is not kept */
#define UNWIND_MEMO_SETS 32u
#define UNWIND_MEMO_WAYS 4u

struct unwind_memo_frame {
	uintptr_t slot; /* where the return address was read */
	uint64_t ip;
};

struct unwind_memo_entry {
	uintptr_t slot;  /* the entry frame's slot and return address: the key */
	uint64_t ip;
	uintptr_t hi;    /* the top of the stack the slots are in */
	uint32_t id;     /* the stack's id; 0: an empty entry */
	uint32_t n;      /* frames outside the entry frame, innermost first */
	unsigned gen;    /* unwind_forget()'s generation when it was kept */
	struct unwind_memo_frame f[UNWIND_MEMO_FRAMES - 1];
};

struct unwind_memo {
	struct unwind_memo_entry set[UNWIND_MEMO_SETS][UNWIND_MEMO_WAYS];
	uint8_t victim[UNWIND_MEMO_SETS]; /* the way the next put replaces */
	/* its score (misses less hits, unwind.c), how many calls it sits
	 * out, and how long the next wait is: where stacks rarely repeat
	 * the lookups are wasted */
	uint32_t misses, skip, backoff;
};

uint32_t unwind_memo_find(struct unwind_memo *m);

/* The id of the current stack if m keeps it, else 0 (then the next
 * unwind_memo_put() on this thread may keep it).  Call it, and then
 * unwind_capture() on a miss, from the same function: both must see the
 * same return address into the public function. */
static inline uint32_t unwind_memo_lookup(struct unwind_memo *m)
{
	if (m->skip > 0) {
		m->skip--;
		return 0;
	}
	return unwind_memo_find(m);
}

/* Keeps the stack of the thread's last unwind_capture(), interned as id,
 * when the last unwind_memo_find() missed it and it was whole. */
void unwind_memo_put(struct unwind_memo *m, uint32_t id);

/* Forgets everything learned about code addresses (after a dlclose: an
 * unloaded object's addresses may hold other code later). */
void unwind_forget(void);

/* Fork handlers (lifecycle.c calls them with its own): no thread is inside
 * libunwind while the process forks. */
void unwind_fork_prepare(void);
void unwind_fork_parent(void);
void unwind_fork_child(void);
