/*
 * preload.c: libmemprof-preload.so's interposed functions, and the
 * recording of allocation events.
 *
 * The malloc family (malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, cfree,
 * malloc_usable_size) is served by heap/'s pool from the very first call:
 * the pool needs no dlsym, so there is no bootstrap buffer.  Each hook sets
 * the thread's guard, calls the pool inside scan_alloc_enter/leave, and
 * records the event: the stack (libunwind, the preload library's own frames
 * skipped but the public function's), interned in the stack table, then an ALLOC/FREE/BADFREE record
 * in the thread's buffer.  Sequence numbers come from the buffer's block of
 * the process's counter (tbuf_seq(), tracer-private.h): an allocation takes
 * its number after the pool returned the block, a free before the pool
 * releases it and above the block's allocation number, so that when this
 * thread reuses an address its FREE has a smaller number than the next
 * ALLOC.
 *
 * A call made while the guard is set (from libunwind, dlsym, pthread_create
 * inside memprof) is served but not recorded; such "own" blocks are
 * remembered in a small set so that their later free by libc is not
 * recorded either.
 *
 * Also here: dlopen/dlclose (rescan the module map), _exit/_Exit (END
 * how=1) and the exec family (END how=4 just before the exec, which would
 * otherwise lose the buffered records).  Initialisation, exit, signals and
 * fork are in lifecycle.c.
 */
#define _GNU_SOURCE
#include "tracer-private.h"
#include "tracer.h"

#include <dlfcn.h>
#include <alloca.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "scan.h"
#include "unwind.h"

#define EXPORT __attribute__((visibility("default")))
#define unlikely(x) __builtin_expect(!!(x), 0)

__thread struct tracer_tls tracer_tls __attribute__((tls_model("initial-exec")));

void *(*tracer_real_dlopen)(const char *file, int mode);
int (*tracer_real_dlclose)(void *handle);

uint64_t tracer_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint32_t tracer_thread_tid(void)
{
	if (tracer_tls.tid == 0)
		tracer_tls.tid = (uint32_t)syscall(SYS_gettid);
	return tracer_tls.tid;
}

/* ---- own blocks ---------------------------------------------------------
 * Open addressing over a fixed table; a removed entry becomes a tombstone.
 * Own blocks are few (libunwind's, dlsym's, the sampler thread's), so a
 * full table only means that a later free of one is recorded. */

#define OWN_SLOTS 4096u
#define OWN_TOMB ((uintptr_t)1)

static _Atomic uintptr_t own_slots[OWN_SLOTS];
static atomic_int own_count;

/* Every free asks whether its block is an own one; the table is large and
 * cold, so a counter per hash value (4 KiB, hot) says first whether it can
 * be.  A counter that reached its maximum stays there: its hash value
 * always probes the table. */
static _Atomic uint8_t own_filter[OWN_SLOTS];

static void own_filter_add(size_t i, int d)
{
	uint8_t v = atomic_load_explicit(&own_filter[i], memory_order_relaxed);
	do {
		if (v == UINT8_MAX)
			return;
	} while (!atomic_compare_exchange_weak(&own_filter[i], &v, (uint8_t)(v + d)));
}

static size_t own_hash(uintptr_t p)
{
	return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ull >> 40) & (OWN_SLOTS - 1);
}

static void own_add(void *ptr)
{
	uintptr_t p = (uintptr_t)ptr;
	size_t i = own_hash(p);
	for (unsigned n = 0; n < OWN_SLOTS; n++, i = (i + 1) & (OWN_SLOTS - 1)) {
		uintptr_t v = atomic_load_explicit(&own_slots[i], memory_order_relaxed);
		if ((v == 0 || v == OWN_TOMB) &&
		    atomic_compare_exchange_strong(&own_slots[i], &v, p)) {
			own_filter_add(own_hash(p), 1);
			atomic_fetch_add(&own_count, 1);
			return;
		}
	}
}

static bool own_take(void *ptr)
{
	if (atomic_load_explicit(&own_count, memory_order_relaxed) == 0)
		return false;
	uintptr_t p = (uintptr_t)ptr;
	size_t i = own_hash(p);
	if (atomic_load_explicit(&own_filter[i], memory_order_acquire) == 0)
		return false;
	for (unsigned n = 0; n < OWN_SLOTS; n++, i = (i + 1) & (OWN_SLOTS - 1)) {
		uintptr_t v = atomic_load_explicit(&own_slots[i], memory_order_acquire);
		if (v == 0)
			return false;
		if (v == p && atomic_compare_exchange_strong(&own_slots[i], &v, OWN_TOMB)) {
			own_filter_add(own_hash(p), -1);
			atomic_fetch_sub(&own_count, 1);
			return true;
		}
	}
	return false;
}

static void *own_block(void *p)
{
	if (p) {
		own_add(p);
		pool_block_set_owner(p, 0, 0);
	}
	return p;
}

/* ---- buffers and stacks ------------------------------------------------ */

static void thread_register_exit(struct tbuf *value)
{
	if (tracer.key_ok)
		pthread_setspecific(tracer.key, value);
}

/* The calling thread's buffer, locked; starts the thread (THREAD record)
 * on its first event.  NULL when no buffer can be had. */
struct tbuf *tracer_buf_begin(void)
{
	struct tracer_tls *t = &tracer_tls;
	struct tbuf *b = t->buf;
	if (b) {
		tbuf_lock(b);
		return b;
	}
	if (t->phase == TLS_EXITED) {
		b = tracer.late;
		if (!b)
			return NULL;
		tbuf_lock_shared(b); /* every exited thread's */
		uint32_t tid = tracer_thread_tid();
		if (b->tid != tid) {
			tbuf_flush_locked(b);
			b->tid = tid;
		}
		return b;
	}
	b = tbuf_acquire(tracer_thread_tid());
	if (!b)
		return NULL;
	t->buf = b;
	if (t->phase == TLS_INTERNAL) {
		b->tid = 0;
		tbuf_lock(b);
		return b;
	}
	t->phase = TLS_ACTIVE;
	thread_register_exit(b);
	tbuf_lock(b);
	char name[17] = { 0 };
	prctl(PR_GET_NAME, name, 0, 0, 0);
	uint64_t seq = tbuf_seq(b, 1, 0);
	uint8_t *o = tbuf_reserve(b, RECORD_THREAD_MAX);
	tbuf_commit(b, record_thread_put(o, b->tid, seq, 0, name, strnlen(name, 16)));
	return b;
}

void tracer_buf_end(struct tbuf *b)
{
	tbuf_unlock(b);
}

/* The pthread key's destructor: THREAD exit, flush, buffer back to the
 * registry.  Events after this (other destructors, libc's own cleanup) go
 * to the shared late buffer. */
void tracer_thread_exit(void *arg)
{
	struct tracer_tls *t = &tracer_tls;
	int saved = errno;
	int guard = t->guard;
	t->guard = 1;
	struct tbuf *b = arg;
	if (b && b == t->buf && t->phase == TLS_ACTIVE) {
		tbuf_lock(b);
		if (atomic_load(&tracer.recording)) {
			char name[17] = { 0 };
			prctl(PR_GET_NAME, name, 0, 0, 0);
			uint64_t seq = tbuf_seq(b, 1, 0);
			uint8_t *o = tbuf_reserve(b, RECORD_THREAD_MAX);
			tbuf_commit(b, record_thread_put(o, b->tid, seq, 1, name,
							 strnlen(name, 16)));
		}
		tbuf_flush_locked(b);
		tbuf_unlock(b);
		tbuf_release(b);
	}
	t->buf = NULL;
	t->phase = TLS_EXITED;
	scan_alloc_enter();
	pool_thread_exit();
	scan_alloc_leave();
	t->guard = guard;
	errno = saved;
}

/* The stack being recorded.  Per thread rather than on the stack: 2 KiB
 * of stack per event pushed the hot frames onto cold cache lines.  Only
 * one event at a time records on a thread (the guard is set meanwhile). */
static __thread uint64_t tl_ips[STACK_DEPTH_MAX] __attribute__((tls_model("initial-exec")));

/* The stack, innermost first (unwind.c).  Its innermost frame is the
 * outermost of our own: the public function the program called (malloc,
 * free, realloc...), as valgrind shows it.  Its ip is a return address
 * inside that function because the library is built without sibling calls
 * (tracer/meson.build). */
static size_t capture_ips(uint64_t *ips)
{
	return unwind_capture(ips, tracer.depth);
}

static void emit_stack(void *arg, uint32_t id, uint32_t parent, uint64_t ip)
{
	struct tbuf *b = arg;
	uint8_t *o = tbuf_reserve(b, RECORD_STACK_MAX);
	tbuf_commit(b, record_stack_put(o, &b->deltas, id, parent, ip));
}

/* The stack just captured: what the unwinder knows of its outer frames
 * saves comparing them with the last one interned. */
static uint32_t intern(struct tbuf *b, const uint64_t *ips, size_t n)
{
	return stack_table_intern_hinted(&tracer.stacks, &b->cache, ips, n, unwind_hint(),
					 emit_stack, b);
}

/* The stack of the event being recorded if the thread's memo keeps it
 * (unwind.h), else 0: then capture_ips() and intern_new().  Called, like
 * capture_ips(), from the record_ function of the event. */
static uint32_t memo_lookup(void)
{
	struct tbuf *own = tracer_tls.buf;
	return own ? unwind_memo_lookup(&own->umemo) : 0;
}

/* intern() for a stack memo_lookup() missed, kept in the memo then. */
static uint32_t intern_new(struct tbuf *b, const uint64_t *ips, size_t n)
{
	uint32_t id = intern(b, ips, n);
	if (b == tracer_tls.buf)
		unwind_memo_put(&b->umemo, id);
	return id;
}

#if MEMPROF_DEBUG_LEVEL >= 3
/* Expensive check: a stack the memo gave is the one a capture finds (debug
 * builds only: a difference is written on stderr). */
static __attribute__((noinline)) void memo_check(struct tbuf *b, uint32_t sid)
{
	uint64_t *ips = tl_ips;
	size_t n = capture_ips(ips);
	uint32_t id = intern(b, ips, n);
	if (id == sid)
		return;
	char msg[96];
	int len = snprintf(msg, sizeof(msg), "memprof: memo self-check: stack %u kept, %u found\n",
			   sid, id);
	if (len > 0 && write(2, msg, (size_t)len) < 0)
		return;
}
#define MEMO_CHECK(b, memo_sid) ((memo_sid) ? memo_check((b), (memo_sid)) : (void)0)
#else
#define MEMO_CHECK(b, memo_sid) ((void)0)
#endif

/* ---- events ------------------------------------------------------------ */

static void count(struct tbuf *b, int64_t size, bool large)
{
	int64_t v = atomic_load_explicit(&b->live_bytes, memory_order_relaxed);
	atomic_store_explicit(&b->live_bytes, v + size, memory_order_relaxed);
	if (large) {
		v = atomic_load_explicit(&b->large_bytes, memory_order_relaxed);
		atomic_store_explicit(&b->large_bytes, v + size, memory_order_relaxed);
	}
}

/* The requested size and allocation seq of the live block that starts at p,
 * for the counters and the FREE's number (0 when p is not one). */
static bool block_of(void *p, struct pool_block *blk)
{
	if (pool_lookup(p, blk) && blk->start == p)
		return true;
	blk->size = 0;
	blk->seq = 0;
	blk->large = false;
	return false;
}

static void record_alloc(void *p, size_t size, bool large)
{
	uint64_t *ips = tl_ips;
	uint32_t sid = memo_lookup();
	size_t n = sid ? 0 : capture_ips(ips);
	struct tbuf *b = tracer_buf_begin();
	if (!b) {
		atomic_fetch_add(&tracer.lost, 1);
		return;
	}
	MEMO_CHECK(b, sid);
	if (!sid)
		sid = intern_new(b, ips, n);
	uint64_t seq = tbuf_seq(b, 1, 0);
	uint8_t *o = tbuf_reserve(b, RECORD_ALLOC_MAX);
	tbuf_commit(b, record_alloc_put(o, &b->deltas, seq, (uintptr_t)p, size, sid));
	count(b, (int64_t)size, large);
	tracer_buf_end(b);
	pool_block_set_owner(p, sid, seq);
}

static void record_badfree(struct tbuf *b, uint64_t seq, enum pool_free_result r, void *p,
			   uint32_t sid)
{
	uint64_t kind = r == POOL_FREE_DOUBLE ? CAPTURE_BADFREE_DOUBLE
			: r == POOL_FREE_INVALID ? CAPTURE_BADFREE_INVALID
						 : CAPTURE_BADFREE_FOREIGN;
	struct pool_block blk = { 0 };
	uint32_t alloc_stack = 0, first_free = 0;
	if (r != POOL_FREE_FOREIGN && pool_lookup_any(p, &blk)) {
		alloc_stack = blk.stack_id;
		if (r == POOL_FREE_DOUBLE)
			first_free = blk.free_stack_id;
	}
	uint8_t *o = tbuf_reserve(b, RECORD_BADFREE_MAX);
	tbuf_commit(b, record_badfree_put(o, seq, kind, (uintptr_t)p, sid, alloc_stack,
					  first_free));
}

/* The stack (ip, caller): ip inside the public function the program
 * called, caller the return address into the program.  Interned once per
 * call site, then found in the buffer's memo (ids never change, so the
 * memo never needs clearing). */
static uint32_t intern_caller(struct tbuf *b, uint64_t ip, uint64_t caller)
{
	uint64_t h = (caller ^ ip * 0x9e3779b97f4a7c15u) * 0xff51afd7ed558ccdu;
	struct free_memo *m = b->free_memo[h >> 56 & (TBUF_FREE_MEMO - 1)];
	if (m[0].id != 0 && m[0].caller == caller && m[0].ip == ip)
		return m[0].id;
	if (m[1].id != 0 && m[1].caller == caller && m[1].ip == ip) {
		struct free_memo hit = m[1];
		m[1] = m[0];
		m[0] = hit;
		return hit.id;
	}
	const uint64_t ips[2] = { ip, caller };
	/* no stack cache: the allocations' stacks keep it */
	uint32_t id = stack_table_intern(&tracer.stacks, NULL, ips, 2, emit_stack, b);
	m[1] = m[0];
	m[0] = (struct free_memo){ .ip = ip, .caller = caller, .id = id };
	return id;
}

/* free(p) called from caller (a return address in the program).  A free's
 * stack serves only a later double free's report ("first freed at"), so
 * unless MEMPROF_FREE_STACKS asks for whole stacks it is free() and its
 * caller, found without unwinding: on churn and binary trees the unwind
 * and interning of every free's stack was a third of the tracer's time.
 * A free that goes wrong (double, invalid, foreign) still gets its whole
 * stack. */
__attribute__((noinline)) static void record_free(void *p, void *caller)
{
	uint64_t *ips = tl_ips;
	uint32_t sid = tracer.free_stacks ? memo_lookup() : 0;
	size_t n = tracer.free_stacks && !sid ? capture_ips(ips) : 0;
	struct tbuf *b = tracer_buf_begin();
	if (!b) {
		atomic_fetch_add(&tracer.lost, 1);
		pool_free(p);
		return;
	}
	if (!tracer.free_stacks)
		sid = intern_caller(b, (uintptr_t)__builtin_return_address(0), (uintptr_t)caller);
	else if (!sid)
		sid = intern_new(b, ips, n);
	else
		MEMO_CHECK(b, sid);
	uint64_t seq = tbuf_seq(b, 1, 0);
	size_t size;
	bool large;
	uint64_t alloc_seq;
	enum pool_free_result r = pool_free_traced(p, sid, &size, &large, &alloc_seq);
	if (unlikely(seq <= alloc_seq)) {
		/* allocated by a thread numbering from a newer block: the
		 * FREE must come after the ALLOC (rarely: a new block) */
		seq = tbuf_seq(b, 1, alloc_seq);
	}
	if (r == POOL_FREE_OK) {
		uint8_t *o = tbuf_reserve(b, RECORD_FREE_MAX);
		tbuf_commit(b, record_free_put(o, &b->deltas, seq, (uintptr_t)p));
		count(b, -(int64_t)size, large);
	} else if (r != POOL_FREE_NULL) {
		if (!tracer.free_stacks) {
			n = capture_ips(ips);
			sid = intern(b, ips, n);
		}
		record_badfree(b, seq, r, p, sid);
	}
	tracer_buf_end(b);
}

/* realloc(old, size) with old != NULL and size > 0: ALLOC of the new block
 * then FREE of the old one, both with the same stack. */
static void *record_realloc(void *old, size_t size)
{
	uint64_t *ips = tl_ips;
	uint32_t sid = memo_lookup();
	size_t n = sid ? 0 : capture_ips(ips);
	enum pool_free_result bad = POOL_FREE_OK;
	struct tbuf *b = tracer_buf_begin();
	if (!b) {
		atomic_fetch_add(&tracer.lost, 2);
		return pool_realloc_checked(old, size, &bad);
	}
	MEMO_CHECK(b, sid);
	if (!sid)
		sid = intern_new(b, ips, n);
	struct pool_block blk;
	block_of(old, &blk);
	pool_block_set_freer(old, sid);
	void *p = pool_realloc_checked(old, size, &bad);
	int e = errno;
	uint64_t seq = 0;
	if (p) {
		/* the FREE (seq + 1) after the old block's ALLOC */
		seq = tbuf_seq(b, 2, blk.seq);
		uint8_t *o = tbuf_reserve(b, RECORD_ALLOC_MAX + RECORD_FREE_MAX);
		size_t k = record_alloc_put(o, &b->deltas, seq, (uintptr_t)p, size, sid);
		k += record_free_put(o + k, &b->deltas, seq + 1, (uintptr_t)old);
		tbuf_commit(b, k);
		count(b, (int64_t)size, size > POOL_SMALL_MAX);
		count(b, -(int64_t)blk.size, blk.large);
	} else if (bad == POOL_FREE_DOUBLE || bad == POOL_FREE_INVALID ||
		   bad == POOL_FREE_FOREIGN) {
		record_badfree(b, tbuf_seq(b, 1, 0), bad, old, sid);
	}
	tracer_buf_end(b);
	if (p)
		pool_block_set_owner(p, sid, seq);
	errno = e;
	return p;
}

/* ---- hooks --------------------------------------------------------------- */

enum alloc_kind { A_MALLOC, A_CALLOC, A_MEMALIGN, A_ALIGNED, A_VALLOC, A_PVALLOC };

static void *pool_call(enum alloc_kind kind, size_t a, size_t b)
{
	switch (kind) {
	case A_MALLOC:
		return pool_malloc(a);
	case A_CALLOC:
		return pool_calloc(a, b);
	case A_MEMALIGN:
		return pool_memalign(a, b);
	case A_ALIGNED:
		return pool_aligned_alloc(a, b);
	case A_VALLOC:
		return pool_valloc(a);
	case A_PVALLOC:
		return pool_pvalloc(a);
	}
	return NULL;
}

static void hook_enter(struct tracer_tls *t)
{
	scan_signal_poll();
	t->guard = 1;
	if (unlikely(atomic_load_explicit(&tracer.init, memory_order_acquire) != INIT_DONE))
		tracer_init();
	scan_alloc_enter();
}

static void hook_leave(struct tracer_tls *t)
{
	scan_alloc_leave();
	t->guard = 0;
}

static bool recording(void)
{
	return atomic_load_explicit(&tracer.recording, memory_order_relaxed) != 0;
}

/* A thread that allocates while nothing is recorded still needs the TLS
 * destructor, which hands its pools back to the allocator. */
static void plain_thread(struct tracer_tls *t)
{
	if (t->phase == TLS_NEW && tracer.key_ok) {
		t->phase = TLS_PLAIN;
		pthread_setspecific(tracer.key, &tracer);
	}
}

static void *traced_alloc(enum alloc_kind kind, size_t a, size_t b, size_t req)
{
	struct tracer_tls *t = &tracer_tls;
	if (t->guard) {
		scan_alloc_enter();
		void *p = own_block(pool_call(kind, a, b));
		scan_alloc_leave();
		return p;
	}
	hook_enter(t);
	void *p = pool_call(kind, a, b);
	if (p && recording()) {
		int e = errno;
		bool large = req > POOL_SMALL_MAX || kind == A_VALLOC || kind == A_PVALLOC ||
			     ((kind == A_MEMALIGN || kind == A_ALIGNED) && a > POOL_ALIGNMENT);
		record_alloc(p, req, large);
		errno = e;
	} else if (unlikely(t->phase == TLS_NEW)) {
		plain_thread(t);
	}
	hook_leave(t);
	return p;
}

EXPORT void *malloc(size_t size)
{
	return traced_alloc(A_MALLOC, size, 0, size);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(nmemb, size, &total))
		total = 0; /* the pool fails the call */
	return traced_alloc(A_CALLOC, nmemb, size, total);
}

EXPORT void *memalign(size_t alignment, size_t size)
{
	return traced_alloc(A_MEMALIGN, alignment, size, size);
}

EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
	return traced_alloc(A_ALIGNED, alignment, size, size);
}

EXPORT void *valloc(size_t size)
{
	return traced_alloc(A_VALLOC, size, 0, size);
}

EXPORT void *pvalloc(size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t req = size == 0 ? page : (size + page - 1) & ~(page - 1);
	return traced_alloc(A_PVALLOC, size, 0, req);
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
	struct tracer_tls *t = &tracer_tls;
	if (t->guard) {
		scan_alloc_enter();
		int r = pool_posix_memalign(out, alignment, size);
		if (r == 0)
			own_block(*out);
		scan_alloc_leave();
		return r;
	}
	hook_enter(t);
	int r = pool_posix_memalign(out, alignment, size);
	if (r == 0 && recording()) {
		int e = errno;
		record_alloc(*out, size, size > POOL_SMALL_MAX || alignment > POOL_ALIGNMENT);
		errno = e;
	}
	hook_leave(t);
	return r;
}

/* free(p), called from caller: the public functions that free pass their
 * own return address, the program's call site. */
static inline __attribute__((always_inline)) void free_from(void *p, void *caller)
{
	if (!p)
		return;
	struct tracer_tls *t = &tracer_tls;
	if (t->guard) {
		scan_alloc_enter();
		own_take(p);
		pool_free(p);
		scan_alloc_leave();
		return;
	}
	int e = errno;
	hook_enter(t);
	if (own_take(p) || !recording())
		pool_free(p);
	else
		record_free(p, caller);
	hook_leave(t);
	errno = e;
}

EXPORT void free(void *p)
{
	free_from(p, __builtin_return_address(0));
}

void cfree(void *p);
EXPORT void cfree(void *p)
{
	free_from(p, __builtin_return_address(0));
}

/* libmemprof-heap's deallocator (objects.c has its allocator) */
EXPORT void memprof_heap_free(void *block);
EXPORT void memprof_heap_free(void *block)
{
	if (block)
		objects_block_freed(block);
	free_from(block, __builtin_return_address(0));
}

EXPORT void *realloc(void *old, size_t size)
{
	struct tracer_tls *t = &tracer_tls;
	if (t->guard) {
		scan_alloc_enter();
		if (old)
			own_take(old);
		void *p = pool_realloc(old, size);
		if (p)
			own_block(p);
		else if (old && size > 0)
			own_add(old); /* failed: the old block lives on */
		scan_alloc_leave();
		return p;
	}
	if (!old)
		return malloc(size);
	if (size == 0) {
		/* glibc: realloc(p, 0) frees p and returns NULL */
		free_from(old, __builtin_return_address(0));
		return NULL;
	}
	hook_enter(t);
	void *p;
	if (own_take(old)) {
		/* a block memprof's own code allocated: the new one is the
		 * program's, the old one was never recorded */
		p = pool_realloc(old, size);
		if (!p)
			own_add(old);
		else if (recording()) {
			int e = errno;
			record_alloc(p, size, size > POOL_SMALL_MAX);
			errno = e;
		}
	} else if (!recording()) {
		p = pool_realloc(old, size);
	} else {
		p = record_realloc(old, size);
	}
	hook_leave(t);
	return p;
}

EXPORT void *reallocarray(void *old, size_t nmemb, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(nmemb, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(old, total);
}

EXPORT size_t malloc_usable_size(void *p)
{
	scan_alloc_enter();
	size_t n = pool_usable_size(p);
	scan_alloc_leave();
	return n;
}

/* ---- dlopen, dlclose ----------------------------------------------------- */

EXPORT void *dlopen(const char *file, int mode)
{
	struct tracer_tls *t = &tracer_tls;
	if (unlikely(!tracer_real_dlopen)) {
		int guard = t->guard;
		t->guard = 1;
		tracer_real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
		t->guard = guard;
		if (!tracer_real_dlopen)
			return NULL;
	}
	void *h = tracer_real_dlopen(file, mode);
	if (h && !t->guard && recording()) {
		int e = errno;
		t->guard = 1;
		modules_rescan();
		t->guard = 0;
		errno = e;
	}
	return h;
}

EXPORT int dlclose(void *handle)
{
	struct tracer_tls *t = &tracer_tls;
	if (unlikely(!tracer_real_dlclose)) {
		int guard = t->guard;
		t->guard = 1;
		tracer_real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
		t->guard = guard;
		if (!tracer_real_dlclose)
			return -1;
	}
	int r = tracer_real_dlclose(handle);
	if (r == 0)
		unwind_forget(); /* its code addresses may hold other code later */
	if (r == 0 && !t->guard && recording()) {
		int e = errno;
		t->guard = 1;
		modules_rescan();
		t->guard = 0;
		errno = e;
	}
	return r;
}

/* ---- _exit ----------------------------------------------------------------- */

static _Noreturn void exit_now(int status)
{
	tracer_finish(CAPTURE_END_UNDERSCORE_EXIT, status, 0);
	for (;;) {
		syscall(SYS_exit_group, status);
		syscall(SYS_exit, status);
	}
}

EXPORT void _exit(int status)
{
	exit_now(status);
}

EXPORT void _Exit(int status)
{
	exit_now(status);
}

/* ---- the exec family --------------------------------------------------------
 * glibc's exec functions call execve internally, not through the PLT, so
 * each is interposed.  The variadic ones are rebuilt on top of execve and
 * execvpe as glibc itself does. */

extern char **environ;

static void *next_fn(const char *name)
{
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	void *f = dlsym(RTLD_NEXT, name);
	t->guard = guard;
	return f;
}

static void before_exec(void)
{
	tracer_finish(CAPTURE_END_EXEC, 0, 0);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	static int (*real)(const char *, char *const[], char *const[]);
	if (!real)
		real = (int (*)(const char *, char *const[], char *const[]))next_fn("execve");
	before_exec();
	return real(path, argv, envp);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	static int (*real)(const char *, char *const[], char *const[]);
	if (!real)
		real = (int (*)(const char *, char *const[], char *const[]))next_fn("execvpe");
	before_exec();
	return real(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	static int (*real)(int, char *const[], char *const[]);
	if (!real)
		real = (int (*)(int, char *const[], char *const[]))next_fn("fexecve");
	before_exec();
	return real(fd, argv, envp);
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags);
EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		    int flags)
{
	static int (*real)(int, const char *, char *const[], char *const[], int);
	if (!real)
		real = (int (*)(int, const char *, char *const[], char *const[], int))next_fn(
			"execveat");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	before_exec();
	return real(dirfd, path, argv, envp, flags);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

/* The arguments of execl-style calls, after arg0, up to the NULL. */
static size_t count_args(va_list ap)
{
	size_t n = 1;
	while (va_arg(ap, const char *))
		n++;
	return n;
}

#define BUILD_ARGV(argv, arg0, last, want_env)                                    \
	do {                                                               \
		va_list ap;                                                \
		va_start(ap, last);                                        \
		size_t n_ = count_args(ap);                                \
		va_end(ap);                                                \
		argv = alloca((n_ + 1) * sizeof(char *));                  \
		argv[0] = (char *)(arg0);                                  \
		va_start(ap, last);                                        \
		for (size_t i_ = 1; i_ <= n_; i_++)                        \
			argv[i_] = va_arg(ap, char *); /* ends with NULL */ \
		if (want_env)                                              \
			envp_ = va_arg(ap, char *const *);                 \
		va_end(ap);                                                \
	} while (0)

EXPORT int execl(const char *path, const char *arg, ...)
{
	char **argv;
	char *const *envp_ = NULL;
	BUILD_ARGV(argv, arg, arg, false);
	(void)envp_;
	return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	char **argv;
	char *const *envp_ = NULL;
	BUILD_ARGV(argv, arg, arg, false);
	(void)envp_;
	return execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	char **argv;
	char *const *envp_ = NULL;
	BUILD_ARGV(argv, arg, arg, true);
	return execve(path, argv, envp_);
}
