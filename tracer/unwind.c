/*
 * unwind.c: the stack of every event, at close to the cost of reading it.
 *
 * Main entry point: unwind_capture().  Before it, unwind_memo_find()
 * (unwind.h) may know the stack whole, and its id: a stack kept lately by
 * where its frames stand, every slot read again and still holding its
 * return address.  Then three ways to a stack, cheapest first:
 *
 *   1. The thread's previous stack.  Each thread keeps the frames of its
 *      last capture: return address and the stack slot it was read from.
 *      Walking outward, as soon as a frame's slot and return address equal
 *      a cached frame's, the frames outside it are taken from the cache,
 *      once every one of their slots was read again and still holds the
 *      same return address (a frame that returned and was replaced by
 *      another call would have written its own there).
 *   2. Frame pointers (x86-64).  From a frame whose base is fp, the caller's
 *      return address is at fp + 8 and the caller's frame base at fp[0]
 *      when the caller keeps a frame pointer at that call site.  Whether it
 *      does is a property of the return address, learned from libunwind:
 *      a call site is GOOD when, in a libunwind walk, the caller's rbp was
 *      its canonical frame address - 16, BAD otherwise.  The walk steps
 *      only from GOOD call sites (every address it trusts libunwind has
 *      met), reads only inside the thread's stack, and needs each frame
 *      base above the last one.  Anything else ends the fast walk.
 *   3. libunwind, in one of two ways.  Its cached trace path
 *      (unw_backtrace) gives return addresses only, at a table lookup a
 *      frame once libunwind knows the address: the stack cannot be kept.
 *      Its step by step walk (unw_step) gives each frame's slot too, at
 *      two system calls a frame (Debian's build masks signals around its
 *      cache): it refills the cache, teaches the call-site verdicts, stops
 *      as soon as it meets the previous stack (as 1 does), and is taken
 *      when the memo waits to keep the stack (one time in SLOTTED_EVERY)
 *      or the trace path fails.
 *
 * So a program built with frame pointers costs a few loads per frame until
 * the walk meets the previous stack, and the frames of code without them
 * (the C library's start code, outside main) come from the cache; one
 * built without them costs libunwind's trace path for a stack not seen
 * lately, and the memo's check for one that was.  The
 * verdict table is global and lock-free (one word per call site, set once
 * by compare-and-swap); the cache is per thread, in TLS.  unwind_forget()
 * clears both after a dlclose.
 */
#define _GNU_SOURCE
#include "unwind.h"
#include "tracer-private.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static struct {
	int (*getcontext)(unw_context_t *);
	int (*init_local)(unw_cursor_t *, unw_context_t *);
	int (*step)(unw_cursor_t *);
	int (*get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
	int (*backtrace)(void **, int);
} unw;

/* ---- call-site verdicts --------------------------------------------------
 * Open addressing, linear probing over a fixed table; a slot holds
 * ip << 2 | verdict and never changes once set but to turn BAD (or to be
 * cleared by unwind_forget).  A full neighbourhood only means the call site
 * stays unknown (slow path). */

enum verdict { V_UNKNOWN = 0, V_GOOD = 1, V_BAD = 2 };

#define VERDICT_SLOTS (1u << 16)
#define VERDICT_PROBES 16u

static _Atomic uint64_t verdicts[VERDICT_SLOTS];
static atomic_uint generation = 1;
/* bumped whenever a verdict stops being GOOD (turned BAD, or forgotten):
 * the threads' copies of GOOD verdicts are stale then */
static atomic_uint verdict_epoch = 1;

static size_t verdict_hash(uint64_t ip)
{
	return (size_t)((ip * 0x9e3779b97f4a7c15ull) >> 48);
}

static enum verdict verdict_get(uint64_t ip)
{
	size_t i = verdict_hash(ip);
	for (unsigned n = 0; n < VERDICT_PROBES; n++, i = (i + 1) & (VERDICT_SLOTS - 1)) {
		uint64_t v = atomic_load_explicit(&verdicts[i], memory_order_relaxed);
		if (v == 0)
			return V_UNKNOWN;
		if (v >> 2 == ip)
			return (enum verdict)(v & 3);
	}
	return V_UNKNOWN;
}

static void verdict_put(uint64_t ip, enum verdict what)
{
	if (ip == 0 || ip >> 61)
		return;
	uint64_t want = ip << 2 | what;
	size_t i = verdict_hash(ip);
	for (unsigned n = 0; n < VERDICT_PROBES; n++, i = (i + 1) & (VERDICT_SLOTS - 1)) {
		uint64_t v = atomic_load_explicit(&verdicts[i], memory_order_relaxed);
		if (v == 0 && atomic_compare_exchange_strong(&verdicts[i], &v, want))
			return;
		if (v >> 2 == ip) {
			/* seen both ways: never trust it again */
			if ((v & 3) != (uint64_t)what) {
				atomic_store_explicit(&verdicts[i], ip << 2 | V_BAD,
						      memory_order_relaxed);
				if ((v & 3) == V_GOOD)
					atomic_fetch_add(&verdict_epoch, 1);
			}
			return;
		}
	}
}

void unwind_forget(void)
{
	atomic_fetch_add(&generation, 1);
	for (size_t i = 0; i < VERDICT_SLOTS; i++)
		atomic_store_explicit(&verdicts[i], 0, memory_order_relaxed);
	atomic_fetch_add(&verdict_epoch, 1);
}

/* ---- the thread's previous stack ---------------------------------------- */

#define CACHE_FRAMES (STACK_DEPTH_MAX + 16u)

#define GOOD_SLOTS 32u

struct frame {
	uint64_t ip;
	uintptr_t slot; /* where ip was read: the caller's sp - 8 */
};

/* f[0] is the OUTERMOST frame, f[n - 1] the innermost (the public entry
 * point), so that a capture that shares the outer frames rewrites only the
 * inner end. */
struct thread_unwind {
	int bounds;         /* 0 not asked yet, 1 known, -1 unknown */
	unsigned gen;       /* generation of the cache's frames */
	uintptr_t lo, hi;   /* the thread's stack */
	uint32_t n;
	bool complete;      /* f[0] is the outermost frame of the stack */
	/* call sites lately found GOOD, a copy of their verdicts near the
	 * frames (the global table is large and cold under a program that
	 * sweeps its cache), valid while verdict_epoch equals good_epoch */
	unsigned good_epoch;
	uint64_t good[GOOD_SLOTS];
	/* the last capture: its token and its predecessor's, how many of
	 * its outermost frames it shares with that one (unwind_hint), and
	 * whether it returned f[0, n) whole (not cut at its max) */
	struct stack_hint hint;
	bool whole;
	bool inside;        /* every slot in f[0, n) is inside [lo, hi) */
	/* the entry frame unwind_memo_find() last missed, for the next
	 * unwind_memo_put() (slot 0: none) */
	uintptr_t memo_slot;
	uint64_t memo_ip;
	unsigned slow_turn; /* counts the memo's misses that need libunwind */
	struct frame f[CACHE_FRAMES];
	struct frame walk[CACHE_FRAMES]; /* fast_capture's scratch */
};

static __thread struct thread_unwind tu __attribute__((tls_model("initial-exec")));

static void stack_bounds(struct thread_unwind *t)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;
	t->bounds = -1;
	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	if (pthread_attr_getstack(&attr, &addr, &size) == 0 && size > 0) {
		t->lo = (uintptr_t)addr;
		t->hi = (uintptr_t)addr + size;
		t->bounds = 1;
	}
	pthread_attr_destroy(&attr);
}

static bool own_ip(uint64_t ip)
{
	return ip >= tracer.self_lo && ip < tracer.self_hi;
}

/* ---- 3: libunwind ---------------------------------------------------------- */

/* libunwind's own locks must be free when the process forks, or a child
 * that unwinds waits for a thread it does not have: fork waits until no
 * thread is inside libunwind (a reader count; forking keeps new ones
 * out).  A fork from inside an unwind (a signal handler's) stops waiting
 * after a while rather than for ever. */
static atomic_int slow_users;
static atomic_int slow_forking;

static void slow_enter(void)
{
	for (;;) {
		while (atomic_load_explicit(&slow_forking, memory_order_acquire))
			sched_yield();
		atomic_fetch_add_explicit(&slow_users, 1, memory_order_seq_cst);
		if (!atomic_load_explicit(&slow_forking, memory_order_seq_cst))
			return;
		atomic_fetch_sub_explicit(&slow_users, 1, memory_order_release);
	}
}

static void slow_leave(void)
{
	atomic_fetch_sub_explicit(&slow_users, 1, memory_order_release);
}

void unwind_fork_prepare(void)
{
	atomic_store_explicit(&slow_forking, 1, memory_order_seq_cst);
	for (unsigned i = 0; i < 100000 && atomic_load(&slow_users) != 0; i++)
		sched_yield();
}

void unwind_fork_parent(void)
{
	atomic_store_explicit(&slow_forking, 0, memory_order_release);
}

void unwind_fork_child(void)
{
	atomic_store_explicit(&slow_users, 0, memory_order_relaxed);
	atomic_store_explicit(&slow_forking, 0, memory_order_release);
}

/* The walk w[0, k) (innermost first) met the cache at f[outer], which is
 * w[k - 1], and every frame outside it still held: the cache becomes
 * f[0, outer] and the walked frames inside it, and the capture returned
 * out frames.  f[0, outer) were the previous capture's outermost frames
 * too, when both returned the cache whole (the interning hint). */
static inline __attribute__((always_inline)) void
cache_adopt(struct thread_unwind *t, uint32_t outer, const struct frame *w,
			size_t k, size_t out)
{
	for (size_t i = 1; i < k; i++)
		t->f[outer + i] = w[k - 1 - i];
	t->n = outer + (uint32_t)k;
	bool whole = out == t->n;
	t->hint.same = whole && t->whole ? outer : 0;
	t->whole = whole;
}

static int64_t outer_fails(const struct thread_unwind *t, uint32_t c);

/* A walk by libunwind; refills the cache and learns verdicts.  Frames are
 * kept from the outermost of memprof's own (the public entry point)
 * outward, innermost first in t->walk.  With use_cache, the walk stops at
 * the first frame that is also the previous stack's (same slot, same
 * return address) once every frame outside it still holds its return
 * address, and takes those from the cache, as fast_capture() does: in
 * code without frame pointers a deep stack then costs libunwind only the
 * frames that changed (each of its steps is two signal-mask system calls
 * and a table search). */
static __attribute__((noinline)) size_t slow_capture(struct thread_unwind *t, uint64_t *ips,
						     size_t max, bool use_cache)
{
	unw_context_t ctx;
	unw_cursor_t cur;
	if (!unw.getcontext) {
		t->n = 0;
		t->complete = false;
		return 0;
	}
	slow_enter();
	if (unw.getcontext(&ctx) != 0 || unw.init_local(&cur, &ctx) != 0) {
		slow_leave();
		t->n = 0;
		t->complete = false;
		return 0;
	}
	/* the previous stack's frames, searched from its inner end as the
	 * walk's slots grow (c < 0: none left to match) */
	use_cache = use_cache && t->bounds > 0 &&
		    t->gen == atomic_load_explicit(&generation, memory_order_relaxed);
	int64_t c = use_cache ? (int64_t)t->n - 1 : -1;
	int64_t matched = -1;
	struct frame *w = t->walk;
	uint32_t n = 0;
	uint64_t prev_rbp = 0;
	bool own = true, complete = false;
	for (;;) {
		unw_word_t ip = 0, sp = 0, rbp = 0;
		if (unw.get_reg(&cur, UNW_REG_IP, &ip) != 0 ||
		    unw.get_reg(&cur, UNW_REG_SP, &sp) != 0 || ip == 0)
			break;
#if defined(__x86_64__)
		if (unw.get_reg(&cur, UNW_X86_64_RBP, &rbp) != 0)
			rbp = 0;
#endif
		/* the frame inside this one kept a frame pointer at its call
		 * site when its rbp was its frame base, our sp - 16 */
		if (n > 0)
			verdict_put(w[n - 1].ip, prev_rbp == sp - 16 ? V_GOOD : V_BAD);
		if (own && !own_ip(ip))
			own = false;
		if (own)
			n = 0; /* keep only the outermost of memprof's frames */
		if (n == CACHE_FRAMES)
			break;
		uintptr_t slot = (uintptr_t)sp - 8;
		w[n++] = (struct frame){ ip, slot };
		if (!own && c >= 0) {
			while (c >= 0 && t->f[c].slot < slot)
				c--;
			if (c >= 0 && t->f[c].slot == slot && t->f[c].ip == ip) {
				int64_t bad = outer_fails(t, (uint32_t)c);
				if (bad < 0) {
					matched = c;
					break;
				}
				c = bad - 1; /* called from elsewhere: walk on */
			}
		}
		prev_rbp = rbp;
		int r = unw.step(&cur);
		if (r <= 0) {
			complete = r == 0;
			break;
		}
	}
	slow_leave();
	if (own)
		n = 0;
	size_t k = 0;
	for (; k < n && k < max; k++)
		ips[k] = w[k].ip;
	if (matched >= 0) {
		/* f[0, matched] stay (w[n - 1] is f[matched]); the walked
		 * frames inside it follow, outermost first */
		uint32_t outer = (uint32_t)matched;
		for (int64_t i = (int64_t)outer - 1; i >= 0 && k < max; i--)
			ips[k++] = t->f[i].ip;
		cache_adopt(t, outer, w, n, k);
		n = t->n;
		complete = t->complete;
	} else {
		for (uint32_t i = 0; i < n; i++)
			t->f[i] = w[n - 1 - i];
		t->hint.same = 0;
		t->whole = k == n;
	}
	bool inside = t->bounds > 0;
	for (uint32_t i = 0; i < n && inside; i++)
		inside = t->f[i].slot >= t->lo && t->f[i].slot + 8 <= t->hi;
	t->n = n;
	t->complete = complete;
	t->gen = atomic_load_explicit(&generation, memory_order_relaxed);
	t->inside = inside;
	return k;
}

/* ---- 1 and 2: frame pointers, then the cache ------------------------------ */

/* The cached frames f[0, c) (outside the matched f[c]) still in place?
 * -1 when they all are, else the innermost one that is not (checked from
 * the inside out, so that a failed match costs only the frames up to it). */
static int64_t outer_fails(const struct thread_unwind *t, uint32_t c)
{
	for (int64_t i = (int64_t)c - 1; i >= 0; i--) {
		uintptr_t s = t->f[i].slot;
		if (s < t->lo || s + 8 > t->hi || *(const uint64_t *)s != t->f[i].ip)
			return i;
	}
	return -1;
}

/* outer_fails() for a cache whose slots are all inside the thread's stack
 * (t->inside), copying the frames' ips to out, innermost first, as it goes:
 * one pass instead of two over a deep stack. */
static int64_t outer_copy(const struct thread_unwind *t, uint32_t c, uint64_t *out)
{
	const struct frame *f = t->f;
	for (int64_t i = (int64_t)c - 1; i >= 0; i--) {
		uint64_t ip = f[i].ip;
		if (*(const uint64_t *)f[i].slot != ip)
			return i;
		*out++ = ip;
	}
	return -1;
}

/* verdict_get(ip) == V_GOOD, through the thread's copy. */
static bool good_site(struct thread_unwind *t, uint64_t ip)
{
	uint64_t *g = &t->good[(ip ^ ip >> 5) & (GOOD_SLOTS - 1)];
	if (*g == ip)
		return true;
	if (verdict_get(ip) != V_GOOD)
		return false;
	*g = ip;
	return true;
}

static bool fp_ok(uintptr_t next, uintptr_t fp, uintptr_t hi)
{
	return next > fp && !(next & 7) && next + 16 <= hi;
}

/* The entry frame: from fp (the caller's frame) out through memprof's own
 * frames, the return address into the outermost of them (the public
 * entry point) and the slot it was read from.  False when a frame
 * pointer leads out of the thread's stack. */
static inline __attribute__((always_inline)) bool
entry_frame(const struct thread_unwind *t, uintptr_t fp, uint64_t *ip, uintptr_t *slot)
{
	uintptr_t hi = t->hi;
	if (fp < t->lo || fp + 16 > hi)
		return false;
	/* memprof's text, in registers: the stack reads below may alias
	 * anything, and would have it read again each frame */
	uintptr_t self_lo = tracer.self_lo, self_hi = tracer.self_hi;
	*ip = 0;
	for (;;) {
		uint64_t ra = *(const uint64_t *)(fp + 8);
		if (ra < self_lo || ra >= self_hi)
			break;
		*ip = ra;
		*slot = fp + 8;
		uintptr_t next = *(const uintptr_t *)fp;
		if (!fp_ok(next, fp, hi))
			return false;
		fp = next;
	}
	return *ip != 0;
}

static size_t fast_capture(struct thread_unwind *t, uint64_t *ips, size_t max)
{
	uintptr_t hi = t->hi;
	struct frame *w = t->walk;
	/* cur: the frame looked at, kept in registers as well as in w[]:
	 * reading it back from w[] right after writing it stalls */
	uint64_t cur_ip;
	uintptr_t cur_slot;
	if (!entry_frame(t, (uintptr_t)__builtin_frame_address(0), &cur_ip, &cur_slot))
		return 0;
	w[0] = (struct frame){ cur_ip, cur_slot };
	/* ips[0, k) are the walked frames' as they are met (a copy
	 * afterwards was a loop and its mispredicted exit) */
	ips[0] = cur_ip;
	unsigned epoch = atomic_load_explicit(&verdict_epoch, memory_order_relaxed);
	if (unlikely(t->good_epoch != epoch)) {
		memset(t->good, 0, sizeof(t->good));
		t->good_epoch = epoch;
	}
	/* w: the walked frames, innermost first; a frame's function kept
	 * its rbp at slot - 8 in its callee's frame.  The cache is searched
	 * from its inner end as slots grow. */
	size_t k = 1;
	int64_t c = t->gen == atomic_load_explicit(&generation, memory_order_relaxed)
			    ? (int64_t)t->n - 1
			    : -1;
	for (;;) {
		while (c >= 0 && t->f[c].slot < cur_slot)
			c--;
		if (c >= 0 && t->f[c].slot == cur_slot && t->f[c].ip == cur_ip) {
			uint32_t outer = (uint32_t)c;
			if (!t->complete && k + outer < max)
				return 0;
			/* the outer frames go to ips as they are checked,
			 * when they all fit (ips is only a result once the
			 * check passes) */
			bool fit = k + outer <= max;
			int64_t bad = fit && t->inside ? outer_copy(t, outer, ips + k)
						       : outer_fails(t, outer);
			if (bad >= 0) {
				/* the same call at the same place, called from
				 * elsewhere: walk on past the changed frame */
				c = bad - 1;
				goto step;
			}
			size_t out = k;
			if (fit && t->inside)
				out += outer;
			else
				for (int64_t i = (int64_t)outer - 1; i >= 0 && out < max; i--)
					ips[out++] = t->f[i].ip;
			cache_adopt(t, outer, w, k, out);
			return out;
		}
step:
		if (k == max || k == CACHE_FRAMES)
			break;
		if (k > 1 && !good_site(t, cur_ip))
			return 0;
		uintptr_t fp = cur_slot - 8;
		uintptr_t next = *(const uintptr_t *)fp;
		if (!fp_ok(next, fp, hi))
			return 0;
		cur_ip = *(const uint64_t *)(next + 8);
		cur_slot = next + 8;
		ips[k] = cur_ip;
		w[k++] = (struct frame){ cur_ip, cur_slot };
	}
	/* cut at max: the walked frames only */
	for (size_t i = 0; i < k; i++)
		t->f[k - 1 - i] = w[i];
	t->n = (uint32_t)k;
	t->complete = false;
	t->hint.same = 0;
	t->whole = false;
	t->inside = true; /* the walk reads only inside the stack */
	t->gen = atomic_load_explicit(&generation, memory_order_relaxed);
	return k;
}

/* ---- 0: the stacks captured lately, by where they stand --------------------
 * (unwind.h).  A kept stack is trusted as the outer frames of the previous
 * stack are in fast_capture(): its entry frame is found by walking frame
 * pointers, and every other frame by its slot still holding its return
 * address. */

/* The memo's score: a miss adds 1, a hit takes MEMO_HIT_WORTH off; past
 * MEMO_MISSES_MAX it sits out MEMO_SKIP calls, twice as many each time it
 * does so again before its score came back to 0.  A miss costs the lookup
 * and the put (~270 instructions with 20 frames), a hit saves the walk
 * and the interning (~350 to 800): below about a third of hits the memo
 * is a loss (binary trees: every node's stack is its own path). */
#define MEMO_MISSES_MAX 256u
#define MEMO_HIT_WORTH 2u
#define MEMO_SKIP 4096u
#define MEMO_BACKOFF_MAX 8u /* at most MEMO_SKIP << 8 calls sat out */

static size_t memo_set(uintptr_t slot, uint64_t ip)
{
	uint64_t h = ((uint64_t)(slot >> 3) * 0x9e3779b97f4a7c15u ^ ip) * 0xff51afd7ed558ccdu;
	return (size_t)(h >> 59) & (UNWIND_MEMO_SETS - 1);
}

_Static_assert(UNWIND_MEMO_SETS == 32u, "memo_set() takes 5 bits");

/* Every frame of e outside its entry frame still in its slot? */
static bool memo_holds(const struct unwind_memo_entry *e)
{
	const struct unwind_memo_frame *f = e->f, *end = f + e->n;
	for (; f < end; f++)
		if (*(const uint64_t *)f->slot != f->ip)
			return false;
	return true;
}

__attribute__((noinline)) uint32_t unwind_memo_find(struct unwind_memo *m)
{
	struct thread_unwind *t = &tu;
	t->memo_slot = 0;
	if (unlikely(t->bounds <= 0))
		return 0; /* unwind_capture() asks for the bounds */
	uintptr_t hi = t->hi;
	uint64_t ip;
	uintptr_t slot;
	if (!entry_frame(t, (uintptr_t)__builtin_frame_address(0), &ip, &slot))
		return 0;
	unsigned gen = atomic_load_explicit(&generation, memory_order_relaxed);
	const struct unwind_memo_entry *set = m->set[memo_set(slot, ip)];
	for (unsigned w = 0; w < UNWIND_MEMO_WAYS; w++) {
		const struct unwind_memo_entry *e = &set[w];
		if (e->slot == slot && e->ip == ip && e->id != 0 && e->hi == hi &&
		    e->gen == gen && memo_holds(e)) {
			if (m->misses > MEMO_HIT_WORTH) {
				m->misses -= MEMO_HIT_WORTH;
			} else {
				m->misses = 0;
				m->backoff = 0; /* paying its way */
			}
			return e->id;
		}
	}
	if (unlikely(++m->misses > MEMO_MISSES_MAX)) {
		/* a loss again as soon as it came back: longer each time */
		m->misses = 0;
		m->skip = MEMO_SKIP << m->backoff;
		if (m->backoff < MEMO_BACKOFF_MAX)
			m->backoff++;
		return 0;
	}
	t->memo_slot = slot;
	t->memo_ip = ip;
	return 0;
}

void unwind_memo_put(struct unwind_memo *m, uint32_t id)
{
	struct thread_unwind *t = &tu;
	uintptr_t slot = t->memo_slot;
	t->memo_slot = 0;
	uint32_t n = t->n;
	/* the last capture whole, from the outermost frame, inside the
	 * stack, and made under the entry frame the lookup found */
	if (slot == 0 || id == 0 || !t->whole || !t->complete || !t->inside || n == 0 ||
	    n > UNWIND_MEMO_FRAMES || t->f[n - 1].slot != slot || t->f[n - 1].ip != t->memo_ip ||
	    t->gen != atomic_load_explicit(&generation, memory_order_relaxed))
		return;
	size_t s = memo_set(slot, t->memo_ip);
	struct unwind_memo_entry *e = &m->set[s][m->victim[s]];
	m->victim[s] = (uint8_t)((m->victim[s] + 1) % UNWIND_MEMO_WAYS);
	e->id = 0;
	/* slots rising outward: a lookup then reads only between the entry
	 * frame it found, in the stack it runs on, and that stack's top,
	 * whichever thread kept the entry */
	uintptr_t below = slot;
	for (uint32_t i = 0; i + 1 < n; i++) {
		const struct frame *f = &t->f[n - 2 - i];
		if (f->slot <= below)
			return;
		below = f->slot;
		e->f[i] = (struct unwind_memo_frame){ f->slot, f->ip };
	}
	e->slot = slot;
	e->ip = t->memo_ip;
	e->hi = t->hi;
	e->gen = t->gen;
	e->n = n - 1;
	e->id = id;
}

#if MEMPROF_DEBUG_LEVEL >= 3
/* Expensive check: the fast capture equals libunwind's; a difference is
 * reported on stderr (debug builds only: it changes the program's
 * output). */
static __attribute__((noinline)) void self_check(struct thread_unwind *t, const uint64_t *ips,
						 size_t n, size_t max)
{
	uint64_t ref[STACK_DEPTH_MAX];
	size_t m = slow_capture(t, ref, max, false);
	if (m == n && memcmp(ips, ref, n * sizeof(*ips)) == 0)
		return;
	char msg[128];
	size_t i = 0;
	while (i < n && i < m && ips[i] == ref[i])
		i++;
	int len = snprintf(msg, sizeof(msg),
			   "memprof: unwind self-check: %zu fast vs %zu libunwind frames, "
			   "first difference at %zu\n", n, m, i);
	if (len > 0 && write(2, msg, (size_t)len) < 0)
		return;
}
#endif

/* Threads' serial numbers, the high bits of their capture tokens (a
 * thread past 2^32 captures takes a new one). */
static _Atomic uint64_t thread_serials;

#define TOKEN_SERIAL_SHIFT 32u

/* A new token for the capture being made (the previous one kept). */
static void next_token(struct stack_hint *h)
{
	h->prev = h->token;
	h->same = 0;
	if (unlikely(h->token == 0 || (uint32_t)h->token == UINT32_MAX)) {
		/* a thread's first capture, or its counter is used up */
		uint64_t serial = atomic_fetch_add(&thread_serials, 1) + 1;
		h->token = serial << TOKEN_SERIAL_SHIFT;
	}
	h->token++;
}

const struct stack_hint *unwind_hint(void)
{
	return &tu.hint;
}

/* One in SLOTTED_EVERY of the memo's misses in code without frame
 * pointers takes the slotted walk, so that a stack that repeats gets kept;
 * the others take libunwind's trace path. */
#define SLOTTED_EVERY 4u

/* libunwind's cached trace path (unw_backtrace): return addresses only,
 * each frame's shape kept per address by libunwind, no system call once
 * an address is known; 40 times cheaper than unw_step() on a binary tree
 * built without frame pointers.  Without the slots, the stack cannot be
 * kept or verified later: the cache keeps the frames it had (verified on
 * use), but no hint or memo comes of it.  0 when it fails. */
static size_t trace_capture(struct thread_unwind *t, uint64_t *ips, size_t max)
{
	/* fast_capture()'s scratch, free now, as the buffer */
	void **buf = (void **)t->walk;
	const size_t cap = CACHE_FRAMES * sizeof(struct frame) / sizeof(void *);
	size_t want = max + 32 < cap ? max + 32 : cap; /* room for our own frames */
	slow_enter();
	int got = unw.backtrace(buf, (int)want);
	slow_leave();
	if (got <= 0)
		return 0;
	/* memprof's frames: keep the outermost (the public entry point) */
	size_t i = 0, n = (size_t)got;
	while (i < n && own_ip((uint64_t)(uintptr_t)buf[i]))
		i++;
	if (i == 0 || i == n)
		return 0; /* not called from our own code, or nothing outside it */
	size_t k = 0;
	for (i--; i < n && k < max; i++)
		ips[k++] = (uint64_t)(uintptr_t)buf[i];
	t->whole = false;
	t->hint.same = 0;
	return k;
}

size_t unwind_capture(uint64_t *ips, size_t max)
{
	struct thread_unwind *t = &tu;
	next_token(&t->hint);
	if (max == 0) {
		t->whole = false;
		return 0;
	}
#if defined(__x86_64__)
	if (unlikely(t->bounds == 0))
		stack_bounds(t);
	if (likely(t->bounds > 0)) {
		size_t n = fast_capture(t, ips, max);
		if (likely(n > 0)) {
#if MEMPROF_DEBUG_LEVEL >= 3
			self_check(t, ips, n, max);
#endif
			return n;
		}
	}
#endif
	/* the slotted walk when the memo waits for this stack (one time in
	 * SLOTTED_EVERY), or when the trace path fails */
	if (unw.backtrace && (t->memo_slot == 0 || ++t->slow_turn % SLOTTED_EVERY != 0)) {
		size_t n = trace_capture(t, ips, max);
		if (n > 0) {
#if MEMPROF_DEBUG_LEVEL >= 3
			self_check(t, ips, n, max);
#endif
			return n;
		}
	}
	return slow_capture(t, ips, max, true);
}

void unwind_setup(void *h)
{
	unw.getcontext = (int (*)(unw_context_t *))dlsym(h, STR(unw_tdep_getcontext));
	unw.init_local = (int (*)(unw_cursor_t *, unw_context_t *))dlsym(h, STR(unw_init_local));
	unw.step = (int (*)(unw_cursor_t *))dlsym(h, STR(unw_step));
	unw.get_reg = (int (*)(unw_cursor_t *, unw_regnum_t, unw_word_t *))dlsym(
		h, STR(unw_get_reg));
	unw.backtrace = (int (*)(void **, int))dlsym(h, "unw_backtrace");
	if (!unw.getcontext || !unw.init_local || !unw.step || !unw.get_reg) {
		unw.getcontext = NULL;
		unw.backtrace = NULL;
	}
}
