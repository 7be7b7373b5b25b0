/*
 * tracer-private.h: the state shared by the preload library's files.
 *
 *   preload.c    the malloc family, dlopen/dlclose, _exit: the hooks, and
 *                the recording of events (stack capture, records)
 *   lifecycle.c  initialisation, the constructor, exit, fatal signals (and
 *                sigaction/signal), fork, the sampler thread, the scans
 *   writer.c     the capture file and the per-thread buffers
 *   modules.c    the map of loaded ELF objects (MODULE, UNLOAD)
 *   stacks.c, encode.c, env.c: pure parts, unit-tested on their own.
 *
 * Locking: each per-thread buffer has a busy flag its owner takes around
 * every record, and a claim a flusher of another thread (the sampler, the
 * exit) takes: a Dekker pair made asymmetric with membarrier(2), so that
 * the owner's side is a plain store and a load, no locked instruction
 * (writer.c); the
 * stack table takes a lock only to insert a node; the module map has a lock
 * taken on dlopen/dlclose.  There is no lock on the allocation path shared
 * by threads.  Within the preload library, tracer_tls.guard is set while
 * memprof's own code runs: a malloc call made then (by libunwind, dlsym,
 * pthread_create) is served by the pool without being recorded.
 */
#pragma once

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <pthread.h>

#include "encode.h"
#include "stacks.h"
#include "unwind.h"

#define TBUF_PAYLOAD (64u * 1024u)
/* sets of the free memo, two ways each: a program's free call sites are
 * many (binary trees inlined its recursive free into 77), and 64 direct
 * slots thrashed, every miss a walk of a node with that many children */
#define TBUF_FREE_MEMO 256u

enum tbuf_state { TBUF_FREE = 0, TBUF_ACTIVE = 1 };

/* A per-thread buffer: the records of one thread since its last flush,
 * preceded by room for the chunk header, in mmap'd memory.  Buffers are
 * never unmapped: a thread's buffer goes back to the registry when it exits
 * and serves the next new thread.  len is published with release ordering
 * after each whole record, so [0, len) always holds whole records. */
struct tbuf {
	atomic_int busy;     /* taken by the owner per record (tbuf_lock()) */
	/* taken by a flusher that is not the owner (writer.c): the claiming
	 * call's token, 0 when unclaimed */
	_Atomic uintptr_t claim;
	atomic_int state;    /* enum tbuf_state */
	atomic_int flushing; /* the owner is inside write(2) for this buffer */
	uint32_t tid;        /* chunk tid; 0 for the sampler's buffer */
	_Atomic uint32_t len;
	/* the block of sequence numbers this buffer's events take, [seq_next,
	 * seq_end), under busy: see tbuf_seq() */
	uint64_t seq_next, seq_end;
	struct record_deltas deltas;
	/* requested bytes of live blocks, of which large (raw allocator)
	 * ones, as seen by this buffer's events: the sampler sums them over
	 * all buffers (a block freed by another thread makes one negative) */
	_Atomic int64_t live_bytes;
	_Atomic int64_t large_bytes;
	struct tbuf *next; /* registry link, written once before publication */
	struct stack_cache cache;
	/* the owner thread's stacks by where they stand (unwind.h); only
	 * the owner uses it, outside busy */
	struct unwind_memo umemo;
	/* the stacks of free()'s callers lately, when free stacks are only
	 * (free, its caller): see record_free(); way 0 of a set is its most
	 * recent */
	struct free_memo {
		uint64_t ip, caller;
		uint32_t id;
	} free_memo[TBUF_FREE_MEMO][2];
	uint8_t chunk[CAPTURE_CHUNK_HEADER_SIZE + TBUF_PAYLOAD];
};

enum tls_phase {
	TLS_NEW = 0,      /* no event yet */
	TLS_ACTIVE = 1,   /* has a buffer; THREAD start written */
	TLS_EXITED = 2,   /* past its TLS destructor: late events go to the
	                   * shared late buffer */
	TLS_INTERNAL = 3, /* memprof's own sampler thread */
	TLS_PLAIN = 4,    /* nothing recorded; registered for the TLS
	                   * destructor only (pool_thread_exit) */
};

struct tracer_tls {
	int guard; /* memprof's own code is running on this thread */
	int phase; /* enum tls_phase */
	struct tbuf *buf;
	uint32_t tid;
};

extern __thread struct tracer_tls tracer_tls __attribute__((tls_model("initial-exec")));

enum init_state { INIT_NONE = 0, INIT_RUNNING = 1, INIT_DONE = 2 };

struct tracer {
	atomic_int init;      /* enum init_state */
	atomic_int recording; /* events are recorded */
	/* membarrier(2) serves the buffers' locks: an owner takes its own
	 * buffer without a locked instruction (set once, before any thread
	 * but the first records; writer_barrier_setup()) */
	atomic_bool asym;
	/* the next sequence number: every thread's buffer takes blocks of it
	 * (tbuf_seq()), so on a cache line of its own, away from the flags
	 * every event reads */
	_Atomic uint64_t seq __attribute__((aligned(64)));
	_Atomic uint64_t lost __attribute__((aligned(64)));

	/* capture file */
	int fd;
	dev_t dev;
	ino_t ino;
	atomic_int closed;   /* no more chunks but END's */
	atomic_int inflight; /* chunk writes in progress */
	atomic_int finishing;
	char path[PATH_MAX];

	/* configuration */
	pid_t pid; /* the process being recorded (updated in fork children) */
	uint64_t t0_ns;
	uint64_t start_real_ns;
	unsigned depth;
	bool free_stacks; /* MEMPROF_FREE_STACKS=1: whole stacks for frees too */
	bool follow_fork;
	bool descendant;
	char base_path[PATH_MAX]; /* MEMPROF_OUTPUT made absolute, or "" */
	char argv0[256];
	char exe[PATH_MAX];
	size_t exe_len;

	/* frames to skip at the top of every stack */
	uintptr_t self_lo, self_hi;
	uintptr_t unw_lo, unw_hi;
	int (*unw_backtrace)(void **buf, int size);

	struct stack_table stacks;
	pthread_key_t key;
	bool key_ok;
	_Atomic(struct tbuf *) tbufs; /* registry of every buffer */
	struct tbuf *late;            /* threads past their TLS destructor */
};

extern struct tracer tracer;

/* ---- sequence numbers ----
 * Every event of every thread taking its number from tracer.seq made that
 * cache line bounce between the cores of threads that share nothing else.
 * A buffer takes a block of TBUF_SEQ_BLOCK numbers with one fetch_add and
 * numbers its events from it, so seqs still never decrease within a
 * buffer's chunks, and a block taken later lies above every number handed
 * out in any block before.  What that leaves out and how it is kept:
 *  - a FREE must come after its block's ALLOC, which another thread may
 *    have numbered from a newer block: a free passes the allocation's seq
 *    as above, and a number not above it makes the buffer take a new block;
 *  - FLUSHED promises that no event below it comes later: the sampler,
 *    holding each buffer, retires its block (tbuf_seq_retire()), so a
 *    thread's next number comes from a block taken after the counter was
 *    read for FLUSHED;
 *  - END's seq, read from tracer.seq, is above every block.
 * An address freed by one thread and reused by another that numbers from
 * an older block may get an ALLOC below that FREE: processing in seq order,
 * a FREE frees the oldest live block at its address, so the live set is
 * right again after the FREE; in between both blocks count as live. */
#define TBUF_SEQ_BLOCK 64u

/* n consecutive numbers (n <= TBUF_SEQ_BLOCK), all above above; b held. */
static inline uint64_t tbuf_seq(struct tbuf *b, unsigned n, uint64_t above)
{
	uint64_t s = b->seq_next;
	if (__builtin_expect(s + n > b->seq_end || s <= above, 0)) {
		s = atomic_fetch_add_explicit(&tracer.seq, TBUF_SEQ_BLOCK, memory_order_relaxed);
		b->seq_end = s + TBUF_SEQ_BLOCK;
	}
	b->seq_next = s + n;
	return s;
}

/* Gives up the rest of b's block (b held): its next event takes a new one. */
static inline void tbuf_seq_retire(struct tbuf *b)
{
	b->seq_next = b->seq_end = 0;
}

/* The counter now, for a record that marks a point of the run (SNAPSHOT,
 * NOTE) in b (held): b's later events number at or above it. */
static inline uint64_t tbuf_seq_now(struct tbuf *b)
{
	tbuf_seq_retire(b);
	return atomic_load(&tracer.seq);
}

/* ---- preload.c ---- */
struct tbuf *tracer_buf_begin(void);
void tracer_buf_end(struct tbuf *b);
uint32_t tracer_thread_tid(void);
void tracer_thread_exit(void *arg);
uint64_t tracer_now_ns(void);

/* ---- lifecycle.c ---- */
void tracer_init(void);
void tracer_finish(int how, int status, int sig);
void tracer_sampler_pause(void);
void tracer_sampler_resume(void);

/* ---- writer.c ---- */
int writer_open(const char *path, uint64_t process_flags);
void writer_close(void);
bool writer_chunk_write(uint8_t *chunk, uint32_t len, uint32_t tid, bool force);
void writer_fail(void);
struct tbuf *tbuf_acquire(uint32_t tid);
void tbuf_release(struct tbuf *b);
/* Takes b, which other threads may take the same way (the late buffer, a
 * buffer being handed to a new thread): a locked exchange. */
void tbuf_lock_shared(struct tbuf *b);
/* membarrier(2) for the buffers' locks, if the kernel has it: at start,
 * and again in a fork child (the registration is the process's). */
void writer_barrier_setup(void);
void tbuf_flush_locked(struct tbuf *b);
void writer_flush_all(bool wait);
/* Flushes every buffer, waiting a little for busy ones, and retires each
 * one's block of seqs; false when some buffer stayed busy (its records may
 * still be unwritten). */
bool writer_flush_every(void);
void writer_flush_for_death(void);
void writer_fork_child_reset(struct tbuf *keep);
void *writer_scratch_map(size_t len);
void writer_scratch_unmap(void *p, size_t len);
int writer_read_file(const char *path, char **out, size_t *len, size_t *map_len);

/* ---- the buffer primitives, inline: every event takes each once, and
 * as calls they were 6% of the tracer's instructions on churn ---- */

/* Takes b, the calling thread's own buffer, which no other thread takes
 * but as a flusher (tbuf_claim()): with membarrier, a store and a load
 * (the flusher's barrier orders them against its claim); without, the
 * locked exchange of tbuf_lock_shared(). */
static inline void tbuf_lock(struct tbuf *b)
{
	if (__builtin_expect(atomic_load_explicit(&tracer.asym, memory_order_relaxed), 1)) {
		atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
		if (__builtin_expect(atomic_load_explicit(&b->claim, memory_order_acquire) == 0, 1))
			return;
		/* claimed: out again, and wait for the flusher */
		atomic_store_explicit(&b->busy, 0, memory_order_release);
	}
	tbuf_lock_shared(b);
}

static inline void tbuf_unlock(struct tbuf *b)
{
	atomic_store_explicit(&b->busy, 0, memory_order_release);
}

/* Room for need bytes (at most TBUF_PAYLOAD) at the end of b (held),
 * flushing it first when they do not fit. */
static inline uint8_t *tbuf_reserve(struct tbuf *b, size_t need)
{
	uint32_t len = atomic_load_explicit(&b->len, memory_order_relaxed);
	if (__builtin_expect(len + need > TBUF_PAYLOAD, 0)) {
		tbuf_flush_locked(b);
		len = 0;
	}
	return b->chunk + CAPTURE_CHUNK_HEADER_SIZE + len;
}

/* The n bytes written at tbuf_reserve()'s pointer are a whole record. */
static inline void tbuf_commit(struct tbuf *b, size_t n)
{
	uint32_t len = atomic_load_explicit(&b->len, memory_order_relaxed);
	atomic_store_explicit(&b->len, len + (uint32_t)n, memory_order_release);
}

/* ---- objects.c (libmemprof-heap programs) ---- */
struct scan_options;
#define RECORD_SCANREF_MAX (1u + 4u * RECORD_VARINT_MAX)
void objects_init(void);
void objects_at_exit(void);
void objects_scan_options(struct scan_options *o);
void objects_scan_done(void);
/* libmemprof-heap frees an object's block (memprof_heap_free) */
void objects_block_freed(void *block);
void objects_foreach_own_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
size_t objects_scanref_put(uint8_t *out, uint64_t addr, uint64_t from, uint64_t kind,
			   uint64_t tid);

/* ---- modules.c ---- */
void modules_rescan(void);
void modules_emit_all(void);
void modules_lock(void);
void modules_unlock(void);
bool modules_text_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi);
void modules_self_init(void);
void modules_self_data(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
