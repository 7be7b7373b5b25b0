/*
 * scan.h: the conservative reachability scan that classifies every live
 * block of the pool allocator as valgrind memcheck does: still reachable,
 * possibly lost, indirectly lost, definitely lost.
 *
 * scan_run() stops every other thread of the process with a real-time
 * signal (no ptrace), reads their registers, scans the roots (every
 * readable-writable mapping of /proc/self/maps that is neither heap blocks
 * nor the allocator's, the tracer's or the scan's own memory; thread stacks
 * from their stack pointer up), marks the blocks reachable from them, then
 * gathers the unreached blocks into cliques, reports every block and the
 * pointer edges between lost blocks through a sink, and resumes the threads.
 * It never calls malloc and takes no lock a stopped thread may hold: its
 * work memory is mmap'd, sized from the number of live blocks.
 *
 * Differences from memcheck that the caller must know:
 *  - memcheck skips undefined words (uninitialised bytes of a block, freed
 *    stack below the stack pointer); memprof cannot tell them apart and
 *    scans them, so a stale pointer in uninitialised memory keeps a block
 *    reachable.  Fixtures that compare with valgrind initialise what they
 *    allocate.
 *  - valgrind runs glibc's __libc_freeres() before its final leak check:
 *    libc's own buffers are freed and the stacks of exited threads (with
 *    their static TLS) are unmapped.  For the same numbers, the tracer's
 *    at-exit path calls __libc_freeres() once no code can run any more,
 *    then scan_run().
 */
#pragma once

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#include "memprof/capture.h"

/* memcheck's leak-check heuristics (--leak-check-heuristics); memcheck 3.19
 * enables all four by default, and so does scan_options_init(). */
enum scan_heuristic {
	SCAN_HEUR_NONE = 0,
	SCAN_HEUR_STDSTRING = 1,           /* interior pointer at data+24 of
	                                    * {length, capacity, refcount, chars} */
	SCAN_HEUR_LENGTH64 = 2,            /* data+8 after a 64-bit length of
	                                    * the rest of the block */
	SCAN_HEUR_NEWARRAY = 3,            /* data+8 after a new[] element count */
	SCAN_HEUR_MULTIPLEINHERITANCE = 4, /* interior vtable pointer of a C++
	                                    * object that starts with one too */
	SCAN_HEUR_COUNT = 5,
};
#define SCAN_HEUR_BIT(h) (1u << (h))
#define SCAN_HEUR_ALL                                                        \
	(SCAN_HEUR_BIT(SCAN_HEUR_STDSTRING) | SCAN_HEUR_BIT(SCAN_HEUR_LENGTH64) | \
	 SCAN_HEUR_BIT(SCAN_HEUR_NEWARRAY) |                                  \
	 SCAN_HEUR_BIT(SCAN_HEUR_MULTIPLEINHERITANCE))

/* ---- objects (libmemprof-heap) ---------------------------------------------
 * An object block starts with the library's hidden header (refcount, type
 * and, for tracked objects, the collector's list links).  For the scan, a
 * pointer into that header is no reference (the collector's lists link
 * every tracked object to its neighbours and to the library's globals), a
 * pointer to the body counts as one to the block's start, and only the
 * body is scanned.  With report_refs, the scan also remembers what first
 * reached each block and reports, through sink->ref, the chain of every
 * reached object block up to its root (objgraph's back-reference chain). */
struct scan_object_block {
	uintptr_t start; /* the block's start */
	uint32_t header; /* bytes before the body (at most 255) */
};

/* Range enumerator, the shape of pool_foreach_own_range() and of the
 * tracer's tracer_foreach_own_range(). */
typedef void (*scan_range_fn)(uintptr_t lo, uintptr_t hi, void *arg);
typedef void (*scan_foreach_range_fn)(scan_range_fn fn, void *arg);

struct scan_options {
	/* More memory that is not a root (the tracer's own mmaps); NULL: none.
	 * The pool's own ranges, live blocks and the scan's memory are always
	 * excluded. */
	scan_foreach_range_fn foreach_excluded;
	/* Signal that stops the other threads; default SIGRTMIN + 6 (glibc's
	 * pthread keeps the real-time signals below SIGRTMIN). */
	int stop_signal;
	/* How long to wait for a thread to answer the stop signal.  A thread
	 * that does not (it blocks the signal) keeps running; its stack
	 * mapping is then scanned whole and its registers are not seen. */
	unsigned thread_timeout_ms;
	/* Bit set of SCAN_HEUR_BIT(SCAN_HEUR_*); default SCAN_HEUR_ALL. */
	unsigned heuristics;
	/* Report still reachable blocks through sink->block too (default). */
	bool report_reachable;
	/* Report the pointer edges between lost blocks (default). */
	bool report_edges;
	/* ---- objects (see above); default none ---- */
	const struct scan_object_block *objects; /* sorted by start */
	size_t n_objects;
	bool report_refs;
	/* bytes of static TLS next to each thread's thread pointer (below it
	 * on x86-64, above on aarch64): roots found there are reported as
	 * TLS; 0: TLS is not told apart */
	size_t tls_size;
	/* The calling thread as the program left it, or NULL (default: as at
	 * the call of scan_run).  Its stack is then scanned from this
	 * context's stack pointer up, with the callee-saved registers it
	 * holds: the tracer passes the state where the program handed control
	 * to memprof (exit(), memprof_leak_check()), so that stale words in
	 * the frames of memprof's own code below it are not roots (memcheck
	 * never sees such frames).  It must stay valid during the scan, in
	 * memory that is not a root. */
	const ucontext_t *caller_context;
};

/* Fills o with the defaults above. */
void scan_options_init(struct scan_options *o);

/* The results.  The callbacks run while the other threads are stopped:
 * they must not call malloc nor take a lock another thread may hold. */
struct scan_sink {
	/* Every live block (reachable ones only with report_reachable).
	 * kind: CAPTURE_LEAK_*.  indirect_of: for an indirectly lost block,
	 * the definitely lost block whose clique it belongs to (memcheck adds
	 * the block's size to that block's "indirect" bytes); 0 otherwise. */
	void (*block)(uintptr_t addr, size_t size, uint32_t stack_id, uint64_t seq,
		      enum capture_leak_kind kind, uintptr_t indirect_of, void *arg);
	/* A pointer between two lost (definite, indirect or possible) blocks:
	 * the word at from + offset points into the block that starts at to
	 * (its start or its inside). */
	void (*edge)(uintptr_t from, size_t offset, uintptr_t to, void *arg);
	/* With report_refs: the block that starts at addr was first reached
	 * from the word at from (a register of thread tid for
	 * CAPTURE_REF_REGISTER, from 0).  Blocks come child first: a
	 * CAPTURE_REF_BLOCK's from lies in the block reported next. */
	void (*ref)(uintptr_t addr, uintptr_t from, enum capture_ref_kind kind,
		    uint32_t tid, void *arg);
	void *arg;
};

struct scan_total {
	uint64_t bytes;
	uint64_t blocks;
};

struct scan_summary {
	struct scan_total kinds[4];           /* indexed by CAPTURE_LEAK_* */
	/* still reachable blocks that were reached only through a heuristic
	 * ("of which reachable via heuristic"), indexed by SCAN_HEUR_* */
	struct scan_total heuristic[SCAN_HEUR_COUNT];
	uint64_t edges;
	uint64_t live_blocks;
	uint64_t root_bytes;            /* bytes of root memory scanned */
	uint64_t root_skipped_bytes;    /* unreadable root pages skipped */
	uint32_t threads_stopped;       /* other threads that answered */
	uint32_t threads_unresponsive;  /* other threads that did not */
	uint64_t duration_ns;
};

/* Runs the scan: stops the other threads, classifies every live block of
 * the pool, reports through sink (may be NULL: summary only), resumes the
 * threads.  Only one scan runs at a time; a second caller waits.  Returns
 * 0, or -ENOMEM when its work memory cannot be mapped, -EINVAL for a bad
 * stop signal (nothing is stopped then). */
int scan_run(const struct scan_options *opts, const struct scan_sink *sink,
	     struct scan_summary *out);

/* ---- the allocator's safe point ------------------------------------------
 * A thread stopped inside the allocator could leave the heap half-updated or
 * hold a lock the scan needs.  The tracer brackets its calls into the pool
 * with scan_alloc_enter()/scan_alloc_leave(): a stop signal that arrives in
 * between is remembered, and the thread stops in scan_alloc_leave(). */
extern __thread unsigned scan_tls_alloc_depth
	__attribute__((tls_model("initial-exec")));
extern __thread volatile sig_atomic_t scan_tls_stop_pending
	__attribute__((tls_model("initial-exec")));
void scan_thread_stop_deferred(void);

static inline void scan_alloc_enter(void)
{
	scan_tls_alloc_depth++;
	atomic_signal_fence(memory_order_seq_cst);
}

static inline void scan_alloc_leave(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	if (--scan_tls_alloc_depth == 0 && scan_tls_stop_pending)
		scan_thread_stop_deferred();
}

/* ---- scans on the user's request -----------------------------------------
 * A scan cannot run inside a signal handler: the handler may have
 * interrupted malloc, with the heap inconsistent.  scan_install_signal()
 * installs a handler for signo (MEMPROF_LEAK_CHECK_SIGNAL) that only records
 * the request and wakes scan_signal_wait(); the callback runs later, in a
 * normal context, from scan_signal_poll(): the tracer calls it at each
 * allocation entry (before scan_alloc_enter, one relaxed load) and from its
 * sampler thread, which may also block in scan_signal_wait().
 * Returns 0 or -errno (-EINVAL for a bad signal number). */
int scan_install_signal(int signo, void (*callback)(void *arg), void *arg);

/* Restores the signal's previous action. */
void scan_uninstall_signal(void);

extern atomic_uint scan_signal_requests;
bool scan_signal_run_pending(void);

/* Runs the callback if a request is pending; true when it ran. */
static inline bool scan_signal_poll(void)
{
	if (__builtin_expect(atomic_load_explicit(&scan_signal_requests,
						  memory_order_relaxed) != 0, 0))
		return scan_signal_run_pending();
	return false;
}

/* Blocks until a request arrives or timeout_ms passes (< 0: no timeout),
 * then runs it as scan_signal_poll() does; true when a callback ran. */
bool scan_signal_wait(int timeout_ms);
