/*
 * writer.c: the capture file and the per-thread buffers that feed it.
 *
 * Main entry points: writer_open() (file header and PROCESS chunk),
 * tbuf_reserve()/tbuf_commit() (append a record to a thread's buffer;
 * inline, in tracer-private.h, with the buffer's lock) and
 * tbuf_flush_locked() (append the buffer to the file as one chunk, with one
 * write(2) on an O_APPEND descriptor, so chunks of different threads never
 * interleave).  Buffers live in a registry (a lock-free list, never shrunk)
 * that the sampler walks every 100 ms to flush idle threads' records.
 *
 * When a write fails (disk full, I/O error, the descriptor closed or
 * replaced by the program), recording stops for good: the program goes on,
 * served by the pool, and its errno is never changed by the writer.
 */
#define _GNU_SOURCE
#include "tracer-private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct tracer tracer = { .fd = -1 };

void *writer_scratch_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void writer_scratch_unmap(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

int writer_read_file(const char *path, char **out, size_t *len, size_t *map_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 64 * 1024, n = 0;
	char *buf = writer_scratch_map(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		if (n == cap) {
			void *nb = mremap(buf, cap, cap * 2, MREMAP_MAYMOVE);
			if (nb == MAP_FAILED)
				break; /* keep what fits */
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*out = buf;
	*len = n;
	*map_len = cap;
	return 0;
}

void writer_fail(void)
{
	atomic_store(&tracer.recording, 0);
	atomic_store(&tracer.closed, 1);
}

/* One write of the whole chunk; false (and recording stops) on failure. */
static bool write_all(const uint8_t *p, size_t n)
{
	struct stat st;
	if (tracer.fd < 0 || fstat(tracer.fd, &st) != 0 || st.st_dev != tracer.dev ||
	    st.st_ino != tracer.ino)
		return false;
	for (;;) {
		ssize_t w = write(tracer.fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		return w == (ssize_t)n;
	}
}

bool writer_chunk_write(uint8_t *chunk, uint32_t len, uint32_t tid, bool force)
{
	int saved = errno;
	bool ok = false;
	atomic_fetch_add(&tracer.inflight, 1);
	if (force || !atomic_load(&tracer.closed)) {
		record_chunk_header_put(chunk, chunk + CAPTURE_CHUNK_HEADER_SIZE, len, tid);
		ok = write_all(chunk, CAPTURE_CHUNK_HEADER_SIZE + (size_t)len);
		if (!ok)
			writer_fail();
	}
	atomic_fetch_sub(&tracer.inflight, 1);
	errno = saved;
	return ok;
}

/* A descriptor number far from the ones programs use, so that a program
 * that dup2()s onto low descriptors does not hit ours. */
static int move_high(int fd)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 64)
		return fd;
	long min = rl.rlim_cur > 1024 ? 1000 : (long)rl.rlim_cur / 2;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, min);
	if (hi < 0)
		return fd;
	close(fd);
	return hi;
}

static int write_process(uint64_t flags)
{
	char *args = NULL;
	size_t args_len = 0, args_map = 0;
	if (writer_read_file("/proc/self/cmdline", &args, &args_len, &args_map) != 0)
		args = NULL;
	uint64_t argc = 0;
	for (size_t i = 0; i < args_len; i++)
		argc += args[i] == '\0';
	size_t max = record_process_max(tracer.exe_len, args_len, argc + 1);
	size_t map = CAPTURE_CHUNK_HEADER_SIZE + max;
	uint8_t *chunk = writer_scratch_map(map);
	if (!chunk) {
		writer_scratch_unmap(args, args_map);
		return -ENOMEM;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	tracer.start_real_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	size_t n = record_process_put(chunk + CAPTURE_CHUNK_HEADER_SIZE, (uint64_t)getpid(),
				      (uint64_t)getppid(), tracer.start_real_ns, tracer.exe,
				      tracer.exe_len, args ? args : "", args_len, flags);
	int r = 0;
	if (n > CAPTURE_CHUNK_MAX ||
	    !writer_chunk_write(chunk, (uint32_t)n, tracer_thread_tid(), false))
		r = -EIO;
	writer_scratch_unmap(chunk, map);
	writer_scratch_unmap(args, args_map);
	return r;
}

int writer_open(const char *path, uint64_t process_flags)
{
	int saved = errno;
	int r = 0;
	/* Not O_TRUNC: truncating a file, even an empty one (memprof run
	 * creates the capture before the program starts), makes ext4 write
	 * the whole file out when it is closed, which a traced program paid
	 * at its exit (churn 20M: 96 ms between its exit_group() and its
	 * parent's wait4()).  A file that holds something is truncated. */
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	fd = move_high(fd);
	struct stat st;
	if (fstat(fd, &st) != 0 || (S_ISREG(st.st_mode) && st.st_size > 0 && ftruncate(fd, 0) != 0)) {
		r = -errno;
		close(fd);
		goto out;
	}
	tracer.fd = fd;
	tracer.dev = st.st_dev;
	tracer.ino = st.st_ino;
	atomic_store(&tracer.closed, 0);
	uint8_t header[CAPTURE_HEADER_SIZE];
	record_file_header_put(header);
	if (!write_all(header, sizeof(header))) {
		r = -EIO;
		goto fail;
	}
	if (!tracer.free_stacks)
		process_flags |= CAPTURE_PROCESS_FREE_CALLER;
	r = write_process(process_flags);
	if (r != 0)
		goto fail;
	goto out;
fail:
	writer_fail();
	close(tracer.fd);
	tracer.fd = -1;
out:
	errno = saved;
	return r;
}

void writer_close(void)
{
	int saved = errno;
	atomic_store(&tracer.closed, 1);
	if (tracer.fd >= 0)
		close(tracer.fd);
	tracer.fd = -1;
	errno = saved;
}

/* ---- per-thread buffers ------------------------------------------------ */

/* ---- the buffers' locks ----------------------------------------------------
 * An owner takes its own buffer for every event; a flusher of another
 * thread (the sampler every 100 ms, the exit, a leak check, a fatal
 * signal) takes it now and then.  busy (the owner's) and claim (a
 * flusher's) make a Dekker pair: each side stores its flag, then loads
 * the other's, and at least one of them sees the other.  That needs a full
 * barrier between the store and the load on both sides.  The flusher's is
 * membarrier(2), which runs one on every running thread of the process
 * (a thread not running has passed one in its context switch), so the
 * owner's side is a plain store and load: the locked exchange it took
 * before was 6% of the tracer's time on binary trees and on churn.
 * Without membarrier (an old kernel, a seccomp filter), every owner takes
 * the locked exchange, itself a full barrier.  A flusher claims every
 * buffer it will flush, then fences once, then waits for each owner to be
 * out; no owner enters a claimed buffer.  Flushers exclude each other by
 * the claim (a compare-and-swap), and never wait for a claim while they
 * hold one, but the exit's flush, which only one thread runs. */

void writer_barrier_setup(void)
{
	int saved = errno;
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	bool asym = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
		    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
	atomic_store(&tracer.asym, asym);
	errno = saved;
}

static void backoff(unsigned spins)
{
	if (spins > 64)
		sched_yield();
	else
		__builtin_ia32_pause();
}

void tbuf_lock_shared(struct tbuf *b)
{
	for (unsigned spins = 0;; spins++) {
		if (atomic_load_explicit(&b->claim, memory_order_relaxed) == 0 &&
		    atomic_exchange_explicit(&b->busy, 1, memory_order_seq_cst) == 0) {
			if (atomic_load_explicit(&b->claim, memory_order_seq_cst) == 0)
				return;
			atomic_store_explicit(&b->busy, 0, memory_order_release);
		}
		backoff(spins);
	}
}

/* Claims b for the calling flusher; token is unique to the claiming call
 * (the address of a variable in its frame: a flush in a signal handler
 * that interrupted another on the same thread has its own).  False when
 * another flusher has it. */
static bool tbuf_claim(struct tbuf *b, uintptr_t token)
{
	uintptr_t expect = 0;
	return atomic_compare_exchange_strong(&b->claim, &expect, token);
}

/* Between a flusher's claims and its looks at busy: owners that had not
 * taken their buffers by then see the claims. */
static void claims_fence(void)
{
	int saved = errno;
	if (atomic_load(&tracer.asym) &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
		/* cannot fail once registered; should it, owners go back to
		 * the exchange, and those inside already had their store
		 * drained long before the pause ends */
		atomic_store(&tracer.asym, false);
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	atomic_thread_fence(memory_order_seq_cst);
	errno = saved;
}

/* Whether b, claimed and fenced, has no owner inside: waits for it to
 * leave, at most tries rounds (UINT_MAX: for as long as it takes). */
static bool tbuf_settled(struct tbuf *b, unsigned tries)
{
	for (unsigned spins = 0; atomic_load_explicit(&b->busy, memory_order_acquire) != 0;
	     spins++) {
		if (spins >= tries)
			return false;
		backoff(spins);
	}
	return true;
}

static void tbuf_unclaim(struct tbuf *b)
{
	atomic_store_explicit(&b->claim, 0, memory_order_release);
}

/* A flush's second half, after its claims with token and claims_fence():
 * each buffer it claimed written out once its owner is out (tbuf_settled(),
 * at most tries rounds), with its block of seqs retired when retire (see
 * writer_flush_every()), and unclaimed.  False when some owner stayed in. */
static bool flush_claimed(uintptr_t token, unsigned tries, bool retire)
{
	bool all = true;
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next) {
		if (atomic_load_explicit(&b->claim, memory_order_relaxed) != token)
			continue;
		if (tbuf_settled(b, tries)) {
			tbuf_flush_locked(b);
			if (retire)
				tbuf_seq_retire(b);
		} else {
			all = false;
		}
		tbuf_unclaim(b);
	}
	return all;
}

struct tbuf *tbuf_acquire(uint32_t tid)
{
	struct tbuf *b;
	for (b = atomic_load(&tracer.tbufs); b; b = b->next) {
		int expect = TBUF_FREE;
		if (atomic_compare_exchange_strong(&b->state, &expect, TBUF_ACTIVE))
			break;
	}
	if (!b) {
		int saved = errno;
		b = writer_scratch_map(sizeof(*b));
		errno = saved;
		if (!b)
			return NULL;
		atomic_store(&b->state, TBUF_ACTIVE);
		struct tbuf *head = atomic_load(&tracer.tbufs);
		do
			b->next = head;
		while (!atomic_compare_exchange_weak(&tracer.tbufs, &head, b));
	}
	/* a flusher may hold it for a moment (it finds nothing to flush) */
	tbuf_lock_shared(b);
	b->tid = tid;
	atomic_store_explicit(&b->len, 0, memory_order_relaxed);
	record_deltas_reset(&b->deltas);
	b->cache.n = 0;
	tbuf_seq_retire(b);
	atomic_store(&b->flushing, 0);
	tbuf_unlock(b);
	return b;
}

void tbuf_release(struct tbuf *b)
{
	atomic_store(&b->state, TBUF_FREE);
}

void tbuf_flush_locked(struct tbuf *b)
{
	uint32_t len = atomic_load_explicit(&b->len, memory_order_relaxed);
	if (len == 0)
		return;
	atomic_store(&b->flushing, 1);
	writer_chunk_write(b->chunk, len, b->tid, false);
	atomic_store_explicit(&b->len, 0, memory_order_release);
	record_deltas_reset(&b->deltas);
	atomic_store(&b->flushing, 0);
}

/* tbuf_reserve and tbuf_commit: inline, in tracer-private.h */

void writer_flush_all(bool wait)
{
	uintptr_t token = (uintptr_t)&token;
	bool any = false;
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next) {
		if (atomic_load_explicit(&b->len, memory_order_relaxed) == 0)
			continue;
		for (unsigned spins = 0; !tbuf_claim(b, token) && wait; spins++)
			backoff(spins);
		any = true;
	}
	if (!any)
		return;
	claims_fence();
	flush_claimed(token, wait ? UINT_MAX : 0, false);
}

bool writer_flush_every(void)
{
	/* every buffer, empty or not: one that looks empty may be held by a
	 * thread that took its seq but has not written its record.  A thread
	 * holds its buffer for one event, or one write(2). */
	uintptr_t token = (uintptr_t)&token;
	bool all = true;
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next)
		if (!tbuf_claim(b, token))
			all = false; /* another flusher's: FLUSHED waits a round */
	claims_fence();
	/* each buffer's next event numbers from a block taken after the
	 * caller read the counter: none below it can follow (FLUSHED) */
	bool flushed = flush_claimed(token, 2000, true); /* unclaims them all */
	return flushed && all;
}

void writer_flush_for_death(void)
{
	struct tbuf *mine = tracer_tls.buf;
	uintptr_t token = (uintptr_t)&token;
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next)
		if (atomic_load_explicit(&b->len, memory_order_acquire) != 0)
			tbuf_claim(b, token);
	claims_fence();
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next) {
		uint32_t len = atomic_load_explicit(&b->len, memory_order_acquire);
		bool claimed = atomic_load_explicit(&b->claim, memory_order_relaxed) == token;
		if (claimed && tbuf_settled(b, 0)) {
			tbuf_flush_locked(b);
		} else if (len != 0 && b == mine && !atomic_load(&b->flushing)) {
			/* interrupted inside its own record: [0, len) is whole */
			writer_chunk_write(b->chunk, len, b->tid, false);
		}
		if (claimed)
			tbuf_unclaim(b);
	}
}

void writer_fork_child_reset(struct tbuf *keep)
{
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next) {
		atomic_store(&b->busy, 0);
		atomic_store(&b->claim, 0);
		atomic_store(&b->flushing, 0);
		atomic_store(&b->len, 0);
		record_deltas_reset(&b->deltas);
		if (b != keep && b != tracer.late)
			atomic_store(&b->state, TBUF_FREE);
	}
}
