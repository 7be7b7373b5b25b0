/*
 * scan.c: the conservative reachability scan (main entry point: scan_run).
 *
 * The picture, in the order scan_run() goes:
 *
 *   1. stop the world   every other thread gets the stop signal (tgkill);
 *                       its handler saves the interrupted registers and
 *                       stack pointer in the thread's slot, counts itself
 *                       in (atomic counter + futex) and sleeps on a futex
 *                       until the scan is done.  /proc/self/task is listed
 *                       again until no new thread shows up.
 *   2. block table      pool_walk() (heap/pool-walk.h) gives the pools in
 *                       address order with their metadata arrays, then the
 *                       large blocks (sorted here and merged in): the live
 *                       blocks get dense numbers 0..n-1 in address order
 *                       (memcheck walks its chunks in address order, which
 *                       decides the leader of a leaked cycle), with their
 *                       requested sizes beside them.  The scan keeps its
 *                       own table of the pools (arena by address >> 20,
 *                       then the pool's slot): a word in a pool whose live
 *                       blocks are consecutive gets its block's number by
 *                       arithmetic, without asking the allocator; a hash
 *                       maps the other block starts (large blocks, pools
 *                       with free slots between live blocks) to numbers.
 *   3. roots            every rw mapping of /proc/self/maps, minus the
 *                       allocator's, the tracer's and the scan's memory,
 *                       minus live blocks, glibc's free malloc memory
 *                       ([heap], thread arenas) and devices; a thread's
 *                       stack from its stack pointer minus the 128-byte
 *                       red zone up (memcheck's view: below that is
 *                       unaddressable); then every thread's registers.
 *   4. marking          memcheck's levels Unreached < Possible < Reachable:
 *                       a start pointer (or a heuristic match) from a
 *                       definite place makes a block Reachable, anything
 *                       else Possible; a block whose level rose is scanned
 *                       again (mark stack, one entry per block at most).
 *   5. cliques          for each still Unreached block, in address order,
 *                       every Unreached block reachable from it (start or
 *                       interior pointer) joins its clique as Indirect and
 *                       its size, plus what it had gathered as a leader,
 *                       goes to the leader, which stays definitely lost.
 *   6. report           every block through sink->block, the pointers
 *                       between lost blocks through sink->edge; resume.
 *
 * Invariant of the marking: a block is on the mark stack at most once
 * (ST_PENDING), so the stack never holds more than n entries; a block's
 * level only rises.  Nothing here calls malloc or stdio; all memory comes
 * from mmap and is excluded from the roots.
 *
 * Timing: with MEMPROF_SCAN_TIMING set (to anything) in the environment,
 * scan_run() writes one line to stderr after the threads resumed, the
 * milliseconds of each step ("memprof scan: stop 1 blocks 200 ... total
 * 2500"), for measuring the scan alone; nothing else reads it.
 */
#define _GNU_SOURCE

#include "scan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "pool.h"
#include "pool-walk.h"

#define WORD sizeof(uintptr_t)
#define PAGE 4096u
#define RED_ZONE 128u            /* the x86-64 and aarch64 ABIs' red zone */
#define HEAP_MAX (64u << 20)     /* glibc's thread-arena heap alignment */
#define MAX_SLOTS (1u << 16)

/* ---- small system helpers ------------------------------------------------ */

static long futex(atomic_int *word, int op, int val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

static void futex_wait(atomic_int *word, int val, unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	futex(word, FUTEX_WAIT_PRIVATE, val, ms ? &ts : NULL);
}

static void futex_wake(atomic_int *word)
{
	futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

static pid_t self_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t page_round(size_t n)
{
	return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
}

static uintptr_t parse_hex(const char **p)
{
	uintptr_t v = 0;
	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uintptr_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uintptr_t)(c - 'a' + 10);
		else
			return v;
	}
}

/* The scan's own mappings, excluded from the roots. */
#define MAX_OWN 8
static struct { uintptr_t lo, hi; } own_maps[MAX_OWN];

static void *own_map(size_t size)
{
	size = page_round(size ? size : 1);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	for (int i = 0; i < MAX_OWN; i++) {
		if (own_maps[i].lo == 0) {
			own_maps[i].lo = (uintptr_t)p;
			own_maps[i].hi = (uintptr_t)p + size;
			return p;
		}
	}
	munmap(p, size);
	return NULL;
}

static void own_unmap(void *p)
{
	for (int i = 0; p && i < MAX_OWN; i++) {
		if (own_maps[i].lo == (uintptr_t)p) {
			munmap(p, own_maps[i].hi - own_maps[i].lo);
			own_maps[i].lo = own_maps[i].hi = 0;
			return;
		}
	}
}

/* ---- registers of a ucontext ---------------------------------------------- */

#if defined(__x86_64__)
#define NREGS 16
static uintptr_t uc_regs(const ucontext_t *uc, uintptr_t *regs)
{
	/* gregs[0..15]: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp */
	for (int i = 0; i < NREGS; i++)
		regs[i] = (uintptr_t)uc->uc_mcontext.gregs[i];
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
}
#elif defined(__aarch64__)
#define NREGS 32
static uintptr_t uc_regs(const ucontext_t *uc, uintptr_t *regs)
{
	for (int i = 0; i < 31; i++)
		regs[i] = (uintptr_t)uc->uc_mcontext.regs[i];
	regs[31] = (uintptr_t)uc->uc_mcontext.sp;
	return (uintptr_t)uc->uc_mcontext.sp;
}
#else
#error "scan.c: teach uc_regs() the general registers of this architecture"
#endif

/* The calling thread's registers that can hold its caller's live values at
 * the call of scan_run(): the callee-saved ones (the others are dead there
 * by the ABI, and may hold stale block addresses). */
static void keep_callee_saved(uintptr_t *regs)
{
#if defined(__x86_64__)
	static const int keep[] = {REG_RBX, REG_RBP, REG_R12, REG_R13, REG_R14, REG_R15,
				   REG_RSP};
#else
	static const int keep[] = {19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 31};
#endif
	uintptr_t saved[NREGS] = {0};
	for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
		saved[keep[k]] = regs[keep[k]];
	memcpy(regs, saved, sizeof(saved));
}

/* ---- stopping the world ----------------------------------------------------- */

enum slot_state { SLOT_SENT = 1, SLOT_ARRIVED, SLOT_GONE, SLOT_UNRESPONSIVE };

struct thread_slot {
	atomic_int state;
	pid_t tid;
	uintptr_t sp;
	uintptr_t regs[NREGS];
	uintptr_t tp; /* objects: the thread pointer (back-references) */
};

static struct {
	atomic_int active;     /* a scan is stopping threads */
	atomic_int hold;       /* futex: stopped threads sleep while 1 */
	atomic_int arrived;    /* futex: threads that saved their state */
	atomic_int inside;     /* futex: handlers running */
	atomic_int lock;       /* futex: one scan at a time */
	struct thread_slot *slots;
	atomic_int *tid_table; /* open addressing: tid -> slot index + 1 */
	unsigned nslots;
	int signo;
	bool installed;
	struct sigaction old;
} g_stop;

__thread unsigned scan_tls_alloc_depth __attribute__((tls_model("initial-exec")));
__thread volatile sig_atomic_t scan_tls_stop_pending
	__attribute__((tls_model("initial-exec")));

static unsigned tid_hash(pid_t tid)
{
	return ((uint32_t)tid * 2654435761u) & (2 * MAX_SLOTS - 1);
}

static struct thread_slot *slot_find(pid_t tid)
{
	for (unsigned h = tid_hash(tid);; h = (h + 1) & (2 * MAX_SLOTS - 1)) {
		int v = atomic_load(&g_stop.tid_table[h]);
		if (v == 0)
			return NULL;
		if (g_stop.slots[v - 1].tid == tid)
			return &g_stop.slots[v - 1];
	}
}

static struct thread_slot *slot_add(pid_t tid)
{
	if (g_stop.nslots >= MAX_SLOTS)
		return NULL;
	struct thread_slot *s = &g_stop.slots[g_stop.nslots];
	s->tid = tid;
	atomic_store(&s->state, SLOT_SENT);
	unsigned h = tid_hash(tid);
	while (atomic_load(&g_stop.tid_table[h]) != 0)
		h = (h + 1) & (2 * MAX_SLOTS - 1);
	atomic_store(&g_stop.tid_table[h], (int)++g_stop.nslots);
	return s;
}

/* objects: the calling thread's thread pointer (its TCB; static TLS lies
 * below it on x86-64, above it on aarch64), 0 when unknown. */
static uintptr_t thread_pointer(void)
{
#if defined(__x86_64__)
	uintptr_t tp;
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	return tp;
#elif defined(__aarch64__)
	return (uintptr_t)__builtin_thread_pointer();
#else
	return 0;
#endif
}

/* Saves the thread's state in its slot and sleeps until the scan is done.
 * Async-signal-safe: atomics, futexes, gettid. */
static void park(const uintptr_t *regs, uintptr_t sp)
{
	atomic_fetch_add(&g_stop.inside, 1);
	if (atomic_load(&g_stop.active)) {
		struct thread_slot *s = slot_find(self_tid());
		int sent = SLOT_SENT;
		if (s) {
			memcpy(s->regs, regs, sizeof(s->regs));
			s->sp = sp;
			s->tp = thread_pointer();
		}
		if (s && atomic_compare_exchange_strong(&s->state, &sent, SLOT_ARRIVED)) {
			atomic_fetch_add(&g_stop.arrived, 1);
			futex_wake(&g_stop.arrived);
			while (atomic_load(&g_stop.hold))
				futex_wait(&g_stop.hold, 1, 0);
		}
	}
	if (atomic_fetch_sub(&g_stop.inside, 1) == 1)
		futex_wake(&g_stop.inside);
}

static void stop_handler(int sig, siginfo_t *si, void *ucv)
{
	int saved_errno = errno;
	if (scan_tls_alloc_depth > 0) {
		/* inside the allocator: stop in scan_alloc_leave() instead */
		scan_tls_stop_pending = 1;
	} else {
		uintptr_t regs[NREGS];
		uintptr_t sp = uc_regs(ucv, regs);
		park(regs, sp);
	}
	errno = saved_errno;
}

void scan_thread_stop_deferred(void)
{
	ucontext_t uc;
	uintptr_t regs[NREGS];
	scan_tls_stop_pending = 0;
	getcontext(&uc);
	uc_regs(&uc, regs);
	park(regs, (uintptr_t)__builtin_frame_address(0));
}

/* Reads /proc/self/task and sends the stop signal to every thread not seen
 * yet.  Returns how many were new. */
static unsigned signal_new_threads(pid_t self)
{
	char buf[4096];
	unsigned fresh = 0;
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			unsigned short reclen;
			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			const char *name = buf + off + 19;
			off += reclen;
			pid_t tid = 0;
			for (; *name >= '0' && *name <= '9'; name++)
				tid = tid * 10 + (*name - '0');
			if (tid <= 0 || *name || tid == self || slot_find(tid))
				continue;
			struct thread_slot *s = slot_add(tid);
			if (!s)
				continue;
			fresh++;
			if (syscall(SYS_tgkill, getpid(), tid, g_stop.signo) != 0)
				atomic_store(&s->state, SLOT_GONE);
		}
	}
	close(fd);
	return fresh;
}

enum thread_check { THREAD_RUNS, THREAD_GONE, THREAD_BLOCKS };

/* Whether tid is gone or a zombie (a thread group leader that called
 * pthread_exit stays listed and never answers), or blocks the signal. */
static enum thread_check thread_check(pid_t tid, int signo)
{
	if (syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH)
		return THREAD_GONE;
	char path[64] = "/proc/self/task/", buf[2048], digits[16];
	size_t len = strlen(path);
	int nd = 0;
	for (pid_t t = tid; t > 0; t /= 10)
		digits[nd++] = (char)('0' + t % 10);
	while (nd > 0)
		path[len++] = digits[--nd];
	memcpy(path + len, "/status", 8);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return THREAD_GONE;
	long n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return THREAD_GONE;
	buf[n] = 0;
	const char *st = strstr(buf, "\nState:\t");
	if (st && (st[8] == 'Z' || st[8] == 'X'))
		return THREAD_GONE;
	const char *blk = strstr(buf, "\nSigBlk:\t");
	if (blk) {
		blk += 9;
		uint64_t mask = (uint64_t)parse_hex(&blk);
		if (mask & (1ull << (signo - 1)))
			return THREAD_BLOCKS;
	}
	return THREAD_RUNS;
}

/* Waits until every signalled thread arrived or is gone, or until the
 * deadline.  A thread that blocks the signal gets a short grace (it may be
 * in a brief critical section, or in pthread_create's window), not the
 * whole timeout: library helper threads often block every signal. */
static void wait_arrivals(uint64_t deadline)
{
	uint64_t grace = now_ns() + 50000000u;
	for (;;) {
		int seen = atomic_load(&g_stop.arrived);
		unsigned missing = 0;
		for (unsigned i = 0; i < g_stop.nslots; i++)
			if (atomic_load(&g_stop.slots[i].state) == SLOT_SENT)
				missing++;
		if (missing == 0)
			return;
		uint64_t now = now_ns();
		if (now >= deadline)
			return;
		futex_wait(&g_stop.arrived, seen, 10);
		if (atomic_load(&g_stop.arrived) != seen)
			continue;
		for (unsigned i = 0; i < g_stop.nslots; i++) {
			struct thread_slot *s = &g_stop.slots[i];
			if (atomic_load(&s->state) != SLOT_SENT)
				continue;
			enum thread_check tc = thread_check(s->tid, g_stop.signo);
			int sent = SLOT_SENT;
			if (tc == THREAD_GONE)
				atomic_compare_exchange_strong(&s->state, &sent, SLOT_GONE);
			else if (tc == THREAD_BLOCKS && now_ns() >= grace)
				atomic_compare_exchange_strong(&s->state, &sent,
							       SLOT_UNRESPONSIVE);
		}
	}
}

static int stop_world(int signo, unsigned timeout_ms, struct scan_summary *sum)
{
	size_t table = sizeof(struct thread_slot) * MAX_SLOTS;
	char *mem = own_map(table + sizeof(atomic_int) * 2 * MAX_SLOTS);
	if (!mem)
		return -ENOMEM;
	g_stop.slots = (struct thread_slot *)mem;
	g_stop.tid_table = (atomic_int *)(mem + table);
	g_stop.nslots = 0;
	atomic_store(&g_stop.hold, 1);
	atomic_store(&g_stop.arrived, 0);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = stop_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (g_stop.installed && g_stop.signo != signo) {
		sigaction(g_stop.signo, &g_stop.old, NULL);
		g_stop.installed = false;
	}
	g_stop.signo = signo;
	if (sigaction(signo, &sa, g_stop.installed ? NULL : &g_stop.old) != 0) {
		own_unmap(mem);
		return -EINVAL;
	}
	g_stop.installed = true;
	atomic_store(&g_stop.active, 1);

	pid_t self = self_tid();
	while (signal_new_threads(self) > 0)
		wait_arrivals(now_ns() + (uint64_t)timeout_ms * 1000000u);
	for (unsigned i = 0; i < g_stop.nslots; i++) {
		struct thread_slot *s = &g_stop.slots[i];
		int sent = SLOT_SENT;
		atomic_compare_exchange_strong(&s->state, &sent, SLOT_UNRESPONSIVE);
		int st = atomic_load(&s->state);
		if (st == SLOT_ARRIVED)
			sum->threads_stopped++;
		else if (st == SLOT_UNRESPONSIVE)
			sum->threads_unresponsive++;
	}
	return 0;
}

static void resume_world(const struct scan_summary *sum)
{
	atomic_store(&g_stop.hold, 0);
	futex_wake(&g_stop.hold);
	atomic_store(&g_stop.active, 0);
	for (int v; (v = atomic_load(&g_stop.inside)) != 0;)
		futex_wait(&g_stop.inside, v, 0);
	/* A thread that did not answer still has the signal pending: keep the
	 * (now inert) handler, or the default action would kill the process. */
	if (sum->threads_unresponsive == 0) {
		sigaction(g_stop.signo, &g_stop.old, NULL);
		g_stop.installed = false;
	}
	own_unmap(g_stop.slots);
	g_stop.slots = NULL;
	g_stop.tid_table = NULL;
}

/* ---- catching faults while reading memory ------------------------------------ */

static struct {
	sigjmp_buf *jb;          /* where to go on a fault, NULL: not armed */
	pid_t tid;
	uintptr_t addr;
	struct sigaction old_segv, old_bus;
} g_fault;

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	if (g_fault.jb && self_tid() == g_fault.tid) {
		g_fault.addr = (uintptr_t)si->si_addr;
		siglongjmp(*g_fault.jb, 1);
	}
	/* not ours: give the program its own action back and fault again */
	sigaction(SIGSEGV, &g_fault.old_segv, NULL);
	sigaction(SIGBUS, &g_fault.old_bus, NULL);
}

static void fault_catch_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	g_fault.tid = self_tid();
	g_fault.jb = NULL;
	sigaction(SIGSEGV, &sa, &g_fault.old_segv);
	sigaction(SIGBUS, &sa, &g_fault.old_bus);
}

static void fault_catch_remove(void)
{
	g_fault.jb = NULL;
	sigaction(SIGSEGV, &g_fault.old_segv, NULL);
	sigaction(SIGBUS, &g_fault.old_bus, NULL);
}

/* ---- the memory map ----------------------------------------------------------- */

enum map_kind { MAP_ANON_KIND, MAP_FILE_KIND, MAP_SKIP_KIND };

struct map_entry {
	uintptr_t lo, hi;
	uintptr_t scan_from; /* lowest stack pointer minus red zone inside */
	pid_t stack_tid;     /* objects: the thread whose stack it is, or 0 */
	bool r, w, x;
	uint8_t kind;
};

struct maps {
	char *text;
	struct map_entry *e;
	size_t n;
};

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int maps_read(struct maps *m)
{
	size_t cap = 1u << 20, len = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		m->text = own_map(cap);
		if (!m->text) {
			close(fd);
			return -ENOMEM;
		}
		lseek(fd, 0, SEEK_SET);
		len = 0;
		long n;
		while (len < cap - 1 && (n = read(fd, m->text + len, cap - 1 - len)) > 0)
			len += (size_t)n;
		if (len < cap - 1)
			break;
		own_unmap(m->text);
		cap *= 4;
	}
	close(fd);
	m->text[len] = 0;
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += m->text[i] == '\n';
	m->e = own_map((lines + 1) * sizeof(*m->e));
	if (!m->e)
		return -ENOMEM;
	m->n = 0;
	for (const char *p = m->text; *p;) {
		struct map_entry *e = &m->e[m->n];
		e->lo = parse_hex(&p);
		p++;
		e->hi = parse_hex(&p);
		e->scan_from = e->lo;
		p++;
		e->r = p[0] == 'r';
		e->w = p[1] == 'w';
		e->x = p[2] == 'x';
		/* perms offset dev inode, then the path after spaces */
		for (int field = 0; field < 4 && *p && *p != '\n'; field++) {
			while (*p && *p != ' ' && *p != '\n')
				p++;
			while (*p == ' ')
				p++;
		}
		const char *path = p;
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
		if (path[0] == '/') {
			bool device = starts_with(path, "/dev/") &&
				      !starts_with(path, "/dev/zero") &&
				      !starts_with(path, "/dev/shm/");
			e->kind = device ? MAP_SKIP_KIND : MAP_FILE_KIND;
		} else if (starts_with(path, "[heap]") || starts_with(path, "[vvar]") ||
			   starts_with(path, "[vsyscall]") || starts_with(path, "[vdso]")) {
			e->kind = MAP_SKIP_KIND;
		} else {
			e->kind = MAP_ANON_KIND;
		}
		m->n++;
	}
	return 0;
}

static struct map_entry *maps_find(const struct maps *m, uintptr_t a)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (a < m->e[mid].lo)
			hi = mid;
		else if (a >= m->e[mid].hi)
			lo = mid + 1;
		else
			return &m->e[mid];
	}
	return NULL;
}

/* A heap of one of glibc's thread arenas: 64 MiB aligned, starting with a
 * heap_info {ar_ptr, prev, size, mprotect_size, pagesize}.  Outside live
 * blocks it is free malloc memory, not a root. */
static bool glibc_arena_heap(const struct map_entry *e)
{
	if (e->kind != MAP_ANON_KIND || e->lo % HEAP_MAX != 0 || e->hi - e->lo < PAGE)
		return false;
	const uintptr_t *h = (const uintptr_t *)e->lo;
	return h[0] != 0 && h[0] % WORD == 0 && h[4] == PAGE && h[2] <= HEAP_MAX &&
	       h[3] >= e->hi - e->lo && h[3] <= HEAP_MAX;
}

/* ---- the block table ------------------------------------------------------------ */

enum { ST_UNREACHED = 0, ST_INDIRECT = 1, ST_POSSIBLE = 2, ST_REACHABLE = 3 };
#define ST_LEVEL 3u
#define ST_PENDING 4u
#define ST_HEUR_SHIFT 3

/* A carved pool of the block table: the numbers of its live blocks and
 * what finding them from an address needs (16 bytes, so that the table of
 * a 2 GiB heap's pools stays small in the cache).  dense: the live blocks
 * are the indices first_idx .. first_idx + count - 1 of the pool, numbered
 * first_i onwards; otherwise a free slot lies between two live blocks and
 * the hash gives their numbers.  block_size 0: no live block there (the
 * arena's header slot, a pool never carved or emptied).  The table has an
 * entry a POOL_POOL_SIZE granule: a medium pool (POOL_MEDIUM_POOL_SIZE)
 * fills the entries of all its granules, sub saying which one each is. */
struct scan_pool {
	uint32_t first_i;
	uint16_t first_idx;
	uint16_t count;
	uint32_t block_size;
	uint16_t dense;
	uint16_t sub;
};

/* Its owner records, for the report only (apart from the hot table). */
struct scan_pool_meta {
	const uint32_t *words;
	const struct pool_walk_info *info;
};

#define ARENA_SLOTS (POOL_ARENA_SIZE / POOL_POOL_SIZE)
#define SIZE_BIG UINT32_MAX /* a size that does not fit: ask the pool */

/* The first byte of the pool of entry p, which holds address a. */
static inline uintptr_t pool_base_of(const struct scan_pool *p, uintptr_t a)
{
	return (a & ~(uintptr_t)(POOL_POOL_SIZE - 1)) - (uintptr_t)p->sub * POOL_POOL_SIZE;
}

struct ctx {
	const struct scan_options *opts;
	const struct scan_sink *sink;
	struct scan_summary *sum;
	/* blocks, in address order */
	size_t n;
	uintptr_t *start;
	uint32_t *size;    /* requested sizes; SIZE_BIG: see block_size() */
	uint32_t *hash;    /* large blocks and blocks of non-dense pools */
	unsigned hash_bits;
	uint64_t *aux;     /* leader: indirect bytes; indirect: parent */
	uint32_t *stack;
	volatile size_t top;
	uint8_t *state;
	uintptr_t lo, span; /* [lo, lo + span) covers every block */
	/* the arenas with live blocks: open addressing on address >> 20,
	 * giving r + 1 for the pools pools[r * ARENA_SLOTS + slot] */
	uint32_t *arenas;
	uintptr_t *arena_keys;
	unsigned arena_bits;
	struct scan_pool *pools;
	struct scan_pool_meta *meta;
	size_t narenas;
	/* roots */
	struct maps maps;
	struct { uintptr_t lo, hi; } *excl;
	size_t nexcl, capexcl;
	uintptr_t self_sp;
	uintptr_t self_regs[NREGS];
	/* objects: header bytes of object blocks (0: a plain block), what first
	 * reached each block (a word address, or REF_REGISTER_TAG | tid << 3;
	 * 0: nothing), the word being examined */
	uint8_t *hdr;
	uintptr_t *pred;
	uintptr_t from;
};

#define ST_REFSENT 64u      /* objects: its back-reference was reported */
#define REF_REGISTER_TAG 1u

static unsigned hash_slot(const struct ctx *c, uintptr_t start)
{
	return (unsigned)(((start >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - c->hash_bits));
}

/* Dense number of the block that starts at start, among the hashed ones,
 * or -1. */
static long block_index(const struct ctx *c, uintptr_t start)
{
	unsigned mask = (1u << c->hash_bits) - 1;
	for (unsigned h = hash_slot(c, start);; h = (h + 1) & mask) {
		uint32_t v = c->hash[h];
		if (v == 0)
			return -1;
		if (c->start[v - 1] == start)
			return (long)v - 1;
	}
}

static void hash_add(struct ctx *c, size_t i)
{
	unsigned mask = (1u << c->hash_bits) - 1;
	unsigned h = hash_slot(c, c->start[i]);
	while (c->hash[h] != 0)
		h = (h + 1) & mask;
	c->hash[h] = (uint32_t)i + 1;
}

static unsigned arena_slot(const struct ctx *c, uintptr_t key)
{
	return (unsigned)((key * 0x9E3779B97F4A7C15ull) >> (64 - c->arena_bits));
}

/* The table entry of the pool that holds address a, NULL when a lies in
 * no arena with live blocks. */
static inline const struct scan_pool *pool_of(const struct ctx *c, uintptr_t a, size_t *r)
{
	uintptr_t key = a >> 20;
	unsigned mask = (1u << c->arena_bits) - 1;
	for (unsigned h = arena_slot(c, key);; h = (h + 1) & mask) {
		uint32_t v = c->arenas[h];
		if (v == 0)
			return NULL;
		if (c->arena_keys[h] == key) {
			*r = (size_t)(v - 1) * ARENA_SLOTS +
			     (size_t)((a >> 14) & (ARENA_SLOTS - 1));
			return &c->pools[*r];
		}
	}
}

/* Requested size of block i. */
static size_t block_size(const struct ctx *c, size_t i)
{
	uint32_t s = c->size[i];
	struct pool_where pw;
	if (s != SIZE_BIG || !pool_lookup_where((const void *)c->start[i], &pw))
		return s;
	return pw.size;
}

/* The number of the block that contains w as memcheck sees it (requested
 * size; a zero-sized block contains its start only), or -1.  A small
 * block's is found from the table of pools, without asking the pool. */
static long find_index(const struct ctx *c, uintptr_t w)
{
	if (w - c->lo >= c->span)
		return -1;
	size_t r;
	const struct scan_pool *p = pool_of(c, w, &r);
	long i;
	uintptr_t s;
	if (p) {
		uint32_t bs = p->block_size;
		if (bs == 0)
			return -1;
		uintptr_t base = pool_base_of(p, w);
		uint32_t idx = (uint32_t)(w - base) / bs;
		s = base + (uintptr_t)idx * bs;
		if (p->dense) {
			uint32_t k = idx - p->first_idx;
			if (k >= p->count)
				return -1;
			i = (long)(p->first_i + k);
		} else if ((i = block_index(c, s)) < 0) {
			return -1;
		}
	} else {
		struct pool_where pw;
		if (!pool_lookup_where((const void *)w, &pw) || pw.pool)
			return -1;
		s = pw.start;
		if ((i = block_index(c, s)) < 0)
			return -1;
	}
	size_t size = block_size(c, (size_t)i);
	if (w - s >= size && !(size == 0 && w == s))
		return -1;
	return i;
}

/* ---- building the table: pool_walk() twice ---- */

struct count_arg {
	size_t n, hashed, arenas, large;
	uintptr_t lo, hi, last_arena;
};

static void note_bounds(struct count_arg *a, uintptr_t s, uintptr_t e)
{
	if (a->n == 0 || s < a->lo)
		a->lo = s;
	if (a->n == 0 || e + 1 > a->hi)
		a->hi = e + 1;
}

/* The live blocks of pool p: how many, the first and last index. */
static uint32_t pool_live(const struct pool_walk_pool *p, uint32_t *first, uint32_t *last)
{
	uint32_t live = 0;
	*first = *last = 0;
	for (uint32_t k = 0; k < p->nblocks; k++) {
		uint32_t w = __atomic_load_n(&p->words[k], __ATOMIC_RELAXED);
		if (!(w & POOL_WALK_LIVE))
			continue;
		if (live++ == 0)
			*first = k;
		*last = k;
	}
	return live;
}

static void count_pool(const struct pool_walk_pool *p, void *arg)
{
	struct count_arg *a = arg;
	uint32_t first, last, live = pool_live(p, &first, &last);
	if (live == 0)
		return;
	note_bounds(a, p->base + (uintptr_t)first * p->block_size,
		    p->base + (uintptr_t)(last + 1) * p->block_size);
	a->n += live;
	if (last - first + 1 != live)
		a->hashed += live;
	if ((p->base >> 20) != a->last_arena || a->arenas == 0)
		a->arenas++;
	a->last_arena = p->base >> 20;
}

static void count_large(const struct pool_block *b, void *arg)
{
	struct count_arg *a = arg;
	uintptr_t s = (uintptr_t)b->start;
	note_bounds(a, s, s + (b->usable > b->size ? b->usable : b->size));
	a->n++;
	a->large++;
}

struct fill_arg {
	struct ctx *c;
	size_t i, cap;
	uintptr_t *large;   /* the large blocks' starts, sorted */
	uint32_t *lsize;
	size_t nlarge, capl, li;
	size_t hashed, caph; /* blocks in the hash, and at most */
	size_t arena;       /* records used so far */
	uintptr_t last_key;
};

static void fill_large(const struct pool_block *b, void *arg)
{
	struct fill_arg *f = arg;
	if (f->nlarge < f->capl) {
		f->large[f->nlarge] = (uintptr_t)b->start;
		f->lsize[f->nlarge] = b->size < SIZE_BIG ? (uint32_t)b->size : SIZE_BIG;
		f->nlarge++;
	}
}

static void add_block(struct fill_arg *f, uintptr_t s, uint32_t size, bool hashed)
{
	struct ctx *c = f->c;
	if (f->i >= f->cap)
		return;
	c->start[f->i] = s;
	c->size[f->i] = size;
	if (hashed)
		hash_add(c, f->i);
	f->i++;
}

/* The large blocks that start below a, in address order. */
static void flush_large(struct fill_arg *f, uintptr_t a)
{
	for (; f->li < f->nlarge && f->large[f->li] < a; f->li++)
		add_block(f, f->large[f->li], f->lsize[f->li], true);
}

static void fill_pool(const struct pool_walk_pool *p, void *arg)
{
	struct fill_arg *f = arg;
	struct ctx *c = f->c;
	uint32_t first, last, live = pool_live(p, &first, &last);
	bool dense = last - first + 1 == live;
	/* a thread that did not stop may have allocated since the count: what
	 * no longer fits is left out (the scan is partial then), rather than
	 * overflow the table or fill the hash */
	if (live == 0 || f->i + live > f->cap || (!dense && f->hashed + live > f->caph))
		return;
	if (!dense)
		f->hashed += live;
	uintptr_t key = p->base >> 20;
	if (f->arena == 0 || key != f->last_key) {
		if (f->arena >= c->narenas)
			return;
		unsigned mask = (1u << c->arena_bits) - 1, h = arena_slot(c, key);
		while (c->arenas[h] != 0)
			h = (h + 1) & mask;
		c->arena_keys[h] = key;
		c->arenas[h] = (uint32_t)++f->arena;
		f->last_key = key;
	}
	flush_large(f, p->base);
	size_t r = (f->arena - 1) * ARENA_SLOTS + ((p->base >> 14) & (ARENA_SLOTS - 1));
	for (uint32_t g = 0; g < p->pool_size / POOL_POOL_SIZE && g < ARENA_SLOTS; g++) {
		c->pools[r + g] = (struct scan_pool){
			.first_i = (uint32_t)f->i,
			.first_idx = (uint16_t)first,
			.count = (uint16_t)live,
			.block_size = p->block_size,
			.dense = dense,
			.sub = (uint16_t)g,
		};
		c->meta[r + g] = (struct scan_pool_meta){p->words, p->info};
	}
	for (uint32_t k = first; k <= last; k++) {
		uint32_t w = __atomic_load_n(&p->words[k], __ATOMIC_RELAXED);
		if (w & POOL_WALK_LIVE)
			add_block(f, p->base + (uintptr_t)k * p->block_size, w & POOL_WALK_SIZE,
				  !dense);
	}
}

/* Heap sort of the large blocks by start (no allocation; they are few). */
static void large_sort(uintptr_t *a, uint32_t *sz, size_t n)
{
	for (size_t k = n / 2; k-- > 0;) {
		for (size_t root = k;;) {
			size_t child = 2 * root + 1;
			if (child >= n)
				break;
			if (child + 1 < n && a[child] < a[child + 1])
				child++;
			if (a[root] >= a[child])
				break;
			uintptr_t t = a[root];
			a[root] = a[child];
			a[child] = t;
			uint32_t u = sz[root];
			sz[root] = sz[child];
			sz[child] = u;
			root = child;
		}
	}
	for (size_t end = n; end-- > 1;) {
		uintptr_t t = a[0];
		a[0] = a[end];
		a[end] = t;
		uint32_t u = sz[0];
		sz[0] = sz[end];
		sz[end] = u;
		for (size_t root = 0;;) {
			size_t child = 2 * root + 1;
			if (child >= end)
				break;
			if (child + 1 < end && a[child] < a[child + 1])
				child++;
			if (a[root] >= a[child])
				break;
			t = a[root];
			a[root] = a[child];
			a[child] = t;
			u = sz[root];
			sz[root] = sz[child];
			sz[child] = u;
			root = child;
		}
	}
}

/* objects: the header size of each object block, and room for the
 * back-references. */
static int objects_build(struct ctx *c)
{
	size_t n = c->n;
	char *mem = own_map(n * sizeof(uintptr_t) + n);
	if (!mem)
		return -ENOMEM;
	c->pred = (uintptr_t *)mem;
	c->hdr = (uint8_t *)(mem + n * sizeof(uintptr_t));
	for (size_t k = 0; k < c->opts->n_objects; k++) {
		const struct scan_object_block *o = &c->opts->objects[k];
		long i = find_index(c, o->start);
		if (i >= 0 && c->start[i] == o->start)
			c->hdr[i] = (uint8_t)(o->header < 255 ? o->header : 255);
	}
	return 0;
}

/* The block table, in two walks of the pool: one counts (and sizes the
 * table), one fills it.  The pools come in address order, the large
 * blocks (sorted here) are merged in between. */
static int blocks_build(struct ctx *c)
{
	struct count_arg cnt;
	memset(&cnt, 0, sizeof(cnt));
	pool_walk(count_pool, count_large, &cnt);
	c->n = cnt.n;
	c->sum->live_blocks = cnt.n;
	if (cnt.n == 0)
		return 0;
	c->lo = cnt.lo;
	c->span = cnt.hi - cnt.lo;
	size_t n = c->n, nh = cnt.hashed + cnt.large;
	c->hash_bits = 4;
	while ((1ull << c->hash_bits) < 2 * (uint64_t)nh)
		c->hash_bits++;
	c->arena_bits = 4;
	while ((1ull << c->arena_bits) < 2 * (uint64_t)cnt.arenas)
		c->arena_bits++;
	c->narenas = cnt.arenas;
	size_t hsize = ((size_t)1 << c->hash_bits) * sizeof(uint32_t);
	size_t asize = (size_t)1 << c->arena_bits;
	size_t npools = cnt.arenas * ARENA_SLOTS;
	size_t total = n * 8 + n * 4 + n * 8 + n * 4 + n + 64 + hsize +
		       asize * (sizeof(uint32_t) + sizeof(uintptr_t)) +
		       npools * (sizeof(struct scan_pool) + sizeof(struct scan_pool_meta)) +
		       cnt.large * (sizeof(uintptr_t) + sizeof(uint32_t)) + 64;
	char *mem = own_map(total);
	if (!mem)
		return -ENOMEM;
	/* 8-byte arrays first, then 4-byte ones, then bytes: all aligned */
	char *p = mem;
	c->start = (uintptr_t *)p;
	p += n * 8;
	c->aux = (uint64_t *)p;
	p += n * 8;
	c->arena_keys = (uintptr_t *)p;
	p += asize * sizeof(uintptr_t);
	c->meta = (struct scan_pool_meta *)p;
	p += npools * sizeof(struct scan_pool_meta);
	c->pools = (struct scan_pool *)p;
	p += npools * sizeof(struct scan_pool);
	uintptr_t *large = (uintptr_t *)p;
	p += cnt.large * sizeof(uintptr_t);
	c->size = (uint32_t *)p;
	p += n * 4;
	c->stack = (uint32_t *)p;
	p += n * 4;
	c->hash = (uint32_t *)p;
	p += hsize;
	c->arenas = (uint32_t *)p;
	p += asize * sizeof(uint32_t);
	uint32_t *lsize = (uint32_t *)p;
	p += cnt.large * sizeof(uint32_t);
	c->state = (uint8_t *)p;

	struct fill_arg f = {.c = c, .cap = n, .large = large, .lsize = lsize,
			     .capl = cnt.large, .hashed = 0,
			     .caph = ((size_t)1 << c->hash_bits) / 2 - cnt.large};
	pool_walk(NULL, fill_large, &f);
	large_sort(large, lsize, f.nlarge);
	pool_walk(fill_pool, NULL, &f);
	flush_large(&f, UINTPTR_MAX);
	c->n = f.i;
	return c->opts->n_objects > 0 ? objects_build(c) : 0;
}

/* Asks for the first two cache lines of block i, scanned soon (a
 * prefetch never faults, even if the block went away). */
#define PREFETCH_AHEAD 16
static void prefetch_block(const struct ctx *c, size_t i)
{
	__builtin_prefetch((const void *)c->start[i]);
	__builtin_prefetch((const void *)(c->start[i] + 64));
}

static void push(struct ctx *c, size_t i)
{
	if (!(c->state[i] & ST_PENDING)) {
		c->state[i] |= ST_PENDING;
		c->stack[c->top] = (uint32_t)i;
		c->top = c->top + 1;
	}
}

static void set_level(struct ctx *c, size_t i, unsigned level)
{
	c->state[i] = (uint8_t)((c->state[i] & ~ST_LEVEL) | level);
}

/* ---- memcheck's heuristics ---------------------------------------------------------- */

/* A vtable: in a readable file mapping, and among its first 21 words at
 * least two non-null ones before any that is not a pointer into an
 * executable file mapping. */
__attribute__((noinline)) static bool is_vtable(struct ctx *c, uintptr_t p)
{
	const struct map_entry *m = maps_find(&c->maps, p);
	if (!m || m->kind != MAP_FILE_KIND || !m->r)
		return false;
	uintptr_t last = p + 20 * WORD;
	if (last > m->hi - 1 - WORD)
		last = m->hi - 1 - WORD;
	unsigned fns = 0;
	for (uintptr_t a = p; a <= last; a += WORD) {
		uintptr_t fn = *(const uintptr_t *)a;
		if (fn == 0)
			continue;
		const struct map_entry *f = maps_find(&c->maps, fn);
		if (!f || f->kind != MAP_FILE_KIND || !f->x)
			return false;
		if (++fns == 2)
			return true;
	}
	return false;
}

static bool is_vtable_guarded(struct ctx *c, uintptr_t p)
{
	sigjmp_buf jb, *saved = g_fault.jb;
	volatile bool ok = false;
	if (sigsetjmp(jb, 0) == 0) {
		g_fault.jb = &jb;
		ok = is_vtable(c, p);
	}
	g_fault.jb = saved;
	return ok;
}

static unsigned heuristic(struct ctx *c, uintptr_t w, uintptr_t s, size_t size)
{
	unsigned set = c->opts->heuristics;
	const uintptr_t *d = (const uintptr_t *)s;
	if ((set & SCAN_HEUR_BIT(SCAN_HEUR_STDSTRING)) && w == s + 3 * WORD &&
	    3 * WORD + d[1] + 1 == size && d[0] <= d[1])
		return SCAN_HEUR_STDSTRING;
	if ((set & SCAN_HEUR_BIT(SCAN_HEUR_LENGTH64)) && w == s + 8 && d[0] > 0 &&
	    size - 8 == d[0])
		return SCAN_HEUR_LENGTH64;
	if ((set & SCAN_HEUR_BIT(SCAN_HEUR_NEWARRAY)) && w == s + WORD && d[0] > 0 &&
	    (size - WORD) % d[0] == 0)
		return SCAN_HEUR_NEWARRAY;
	if ((set & SCAN_HEUR_BIT(SCAN_HEUR_MULTIPLEINHERITANCE)) && w % WORD == 0 &&
	    w + WORD <= s + size && size >= WORD) {
		uintptr_t inner = *(const uintptr_t *)w, first = d[0];
		if (inner % WORD == 0 && inner >= PAGE && first % WORD == 0 &&
		    first >= PAGE && is_vtable_guarded(c, inner) &&
		    is_vtable_guarded(c, first))
			return SCAN_HEUR_MULTIPLEINHERITANCE;
	}
	return SCAN_HEUR_NONE;
}

/* ---- marking ------------------------------------------------------------------------- */

/* w was found in a root (prior_definite) or in a Possible block (not). */
static void reach(struct ctx *c, uintptr_t w, bool prior_definite)
{
	long i = find_index(c, w);
	if (i < 0)
		return;
	uintptr_t s = c->start[i];
	if (c->hdr && c->hdr[i]) {
		/* objects: the header is no reference, the body is the start */
		if (w < s + c->hdr[i])
			return;
		if (w == s + c->hdr[i])
			w = s;
	}
	unsigned level = c->state[i] & ST_LEVEL;
	if (level == ST_REACHABLE) {
		if (w == s)
			c->state[i] &= (uint8_t)~(7u << ST_HEUR_SHIFT);
		return;
	}
	bool via_start = w == s;
	if (!via_start && c->opts->heuristics) {
		unsigned h = heuristic(c, w, s, block_size(c, (size_t)i));
		c->state[i] = (uint8_t)((c->state[i] & ~(7u << ST_HEUR_SHIFT)) |
					(h << ST_HEUR_SHIFT));
		via_start = h != SCAN_HEUR_NONE;
	}
	if (via_start && prior_definite) {
		set_level(c, (size_t)i, ST_REACHABLE);
		push(c, (size_t)i);
		if (c->pred)
			c->pred[i] = c->from;
	} else if (level == ST_UNREACHED) {
		set_level(c, (size_t)i, ST_POSSIBLE);
		push(c, (size_t)i);
		if (c->pred)
			c->pred[i] = c->from;
	}
}

/* w was found in block cur while gathering the clique of leader. */
static void gather(struct ctx *c, uintptr_t w, size_t leader, size_t cur)
{
	long i = find_index(c, w);
	if (i < 0)
		return;
	if (c->hdr && w < c->start[i] + c->hdr[i])
		return; /* objects: a header word */
	if ((c->state[i] & ST_LEVEL) != ST_UNREACHED || (size_t)i == leader)
		return;
	push(c, (size_t)i);
	c->aux[leader] += block_size(c, (size_t)i) + c->aux[i];
	c->aux[i] = cur;
	set_level(c, (size_t)i, ST_INDIRECT);
}

static void scan_words(struct ctx *c, uintptr_t lo, uintptr_t hi, long leader,
		       size_t cur, bool prior_definite)
{
	/* in locals: the stores below would make the compiler reload them */
	const uintptr_t blo = c->lo, bspan = c->span;
	lo = (lo + WORD - 1) & ~(uintptr_t)(WORD - 1);
	hi &= ~(uintptr_t)(WORD - 1);
	for (uintptr_t a = lo; a < hi; a += WORD) {
		uintptr_t w = *(const uintptr_t *)a;
		if (w - blo >= bspan)
			continue;
		c->from = a;
		if (leader < 0)
			reach(c, w, prior_definite);
		else
			gather(c, w, (size_t)leader, cur);
	}
}

/* Pops and scans until the mark stack is empty (leader < 0: from roots). */
static void process(struct ctx *c, long leader)
{
	sigjmp_buf jb;
	/* a fault (a block freed under us by a thread that did not stop)
	 * abandons that block and goes on with the stack */
	sigsetjmp(jb, 0);
	g_fault.jb = &jb;
	while (c->top > 0) {
		c->top = c->top - 1;
		size_t i = c->stack[c->top];
		if (c->top > 0)
			prefetch_block(c, c->stack[c->top - 1]);
		c->state[i] &= (uint8_t)~ST_PENDING;
		atomic_signal_fence(memory_order_seq_cst);
		size_t size = block_size(c, i);
		bool definite = (c->state[i] & ST_LEVEL) != ST_POSSIBLE;
		size_t skip = c->hdr ? c->hdr[i] : 0; /* objects: the body only */
		scan_words(c, c->start[i] + (skip < size ? skip : size), c->start[i] + size,
			   leader, i, definite);
	}
	g_fault.jb = NULL;
}

static void scan_root_range(struct ctx *c, uintptr_t lo, uintptr_t hi)
{
	sigjmp_buf jb;
	volatile uintptr_t cur = lo;
	if (sigsetjmp(jb, 0) != 0) {
		/* an unreadable page (a file mapping past its end...): skip it */
		uintptr_t next = (cur & ~(uintptr_t)(PAGE - 1)) + PAGE;
		if (next > hi)
			next = hi;
		c->sum->root_skipped_bytes += next - cur;
		cur = next;
	}
	g_fault.jb = &jb;
	while (cur < hi) {
		uintptr_t end = (cur & ~(uintptr_t)(PAGE - 1)) + PAGE;
		if (end > hi)
			end = hi;
		scan_words(c, cur, end, -1, 0, true);
		c->sum->root_bytes += end - cur;
		cur = end;
	}
	g_fault.jb = NULL;
}

/* ---- roots ------------------------------------------------------------------------------ */

static void add_excl(uintptr_t lo, uintptr_t hi, void *arg)
{
	struct ctx *c = arg;
	if (hi > lo && c->nexcl < c->capexcl) {
		c->excl[c->nexcl].lo = lo;
		c->excl[c->nexcl].hi = hi;
		c->nexcl++;
	}
}

static void count_range(uintptr_t lo, uintptr_t hi, void *arg)
{
	(*(size_t *)arg)++;
}

/* Heap sort of the excluded ranges by start (no allocation). */
static void excl_sort(struct ctx *c)
{
	size_t n = c->nexcl;
	for (size_t k = n; k-- > 0;) {
		for (size_t root = k, end = n;;) {
			size_t child = 2 * root + 1;
			if (child >= end)
				break;
			if (child + 1 < end && c->excl[child].lo < c->excl[child + 1].lo)
				child++;
			if (c->excl[root].lo >= c->excl[child].lo)
				break;
			uintptr_t tl = c->excl[root].lo, th = c->excl[root].hi;
			c->excl[root] = c->excl[child];
			c->excl[child].lo = tl;
			c->excl[child].hi = th;
			root = child;
		}
	}
	for (size_t end = n; end-- > 1;) {
		uintptr_t tl = c->excl[0].lo, th = c->excl[0].hi;
		c->excl[0] = c->excl[end];
		c->excl[end].lo = tl;
		c->excl[end].hi = th;
		for (size_t root = 0;;) {
			size_t child = 2 * root + 1;
			if (child >= end)
				break;
			if (child + 1 < end && c->excl[child].lo < c->excl[child + 1].lo)
				child++;
			if (c->excl[root].lo >= c->excl[child].lo)
				break;
			tl = c->excl[root].lo;
			th = c->excl[root].hi;
			c->excl[root] = c->excl[child];
			c->excl[child].lo = tl;
			c->excl[child].hi = th;
			root = child;
		}
	}
}

static int excl_build(struct ctx *c)
{
	size_t n = MAX_OWN;
	pool_foreach_own_range(count_range, &n);
	if (c->opts->foreach_excluded)
		c->opts->foreach_excluded(count_range, &n);
	c->capexcl = n + 16;
	c->excl = own_map(c->capexcl * sizeof(*c->excl));
	if (!c->excl)
		return -ENOMEM;
	pool_foreach_own_range(add_excl, c);
	if (c->opts->foreach_excluded)
		c->opts->foreach_excluded(add_excl, c);
	for (int i = 0; i < MAX_OWN; i++)
		add_excl(own_maps[i].lo, own_maps[i].hi, c);
	excl_sort(c);
	return 0;
}

/* The last block that starts at or below a (0 when none does). */
static size_t block_at_or_before(const struct ctx *c, uintptr_t a)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->start[mid] <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 ? lo - 1 : 0;
}

/* End of block b's memory (its usable size: a large block's slack is
 * glibc's, not a root either); 0 when it is gone. */
static uintptr_t block_end(const struct ctx *c, size_t b)
{
	size_t r;
	const struct scan_pool *p = pool_of(c, c->start[b], &r);
	if (p && p->block_size)
		return c->start[b] + p->block_size;
	struct pool_where pb;
	if (!pool_lookup_where((const void *)c->start[b], &pb))
		return 0;
	return c->start[b] + (pb.usable > pb.size ? pb.usable : pb.size);
}

/* Scans [lo, hi) minus the excluded ranges and the live blocks.  Both
 * lists are sorted; x and b move forward only. */
static void scan_mapping(struct ctx *c, uintptr_t lo, uintptr_t hi)
{
	size_t x = 0, b = c->n ? block_at_or_before(c, lo) : 0;
	uintptr_t cur = lo;
	while (cur < hi) {
		while (x < c->nexcl && c->excl[x].hi <= cur)
			x++;
		uintptr_t bend = 0;
		while (b < c->n && (bend = block_end(c, b)) <= cur)
			b++;
		uintptr_t skip_lo = hi, skip_hi = hi;
		if (x < c->nexcl && c->excl[x].lo < skip_lo) {
			skip_lo = c->excl[x].lo;
			skip_hi = c->excl[x].hi;
		}
		if (b < c->n && c->start[b] < skip_lo) {
			skip_lo = c->start[b];
			skip_hi = bend;
		}
		if (skip_lo > cur)
			scan_root_range(c, cur, skip_lo < hi ? skip_lo : hi);
		cur = skip_hi > cur ? skip_hi : cur + 1;
	}
}

static void note_sp(struct ctx *c, uintptr_t sp, pid_t tid)
{
	struct map_entry *m = maps_find(&c->maps, sp);
	if (!m)
		return;
	m->stack_tid = tid;
	uintptr_t from = sp > RED_ZONE ? sp - RED_ZONE : 0;
	if (from < m->lo)
		from = m->lo;
	if (m->scan_from == m->lo || from < m->scan_from)
		m->scan_from = from;
}

static void scan_roots(struct ctx *c)
{
	for (unsigned i = 0; i < g_stop.nslots; i++)
		if (atomic_load(&g_stop.slots[i].state) == SLOT_ARRIVED)
			note_sp(c, g_stop.slots[i].sp, g_stop.slots[i].tid);
	/* the calling thread: from scan_run's frame up, no red zone */
	struct map_entry *me = maps_find(&c->maps, c->self_sp);
	if (me) {
		me->scan_from = c->self_sp;
		me->stack_tid = self_tid();
	}
	for (size_t k = 0; k < c->maps.n; k++) {
		const struct map_entry *m = &c->maps.e[k];
		if (!m->r || !m->w || m->kind == MAP_SKIP_KIND || glibc_arena_heap(m))
			continue;
		scan_mapping(c, m->scan_from, m->hi);
	}
	for (unsigned i = 0; i < g_stop.nslots; i++) {
		const struct thread_slot *s = &g_stop.slots[i];
		if (atomic_load(&s->state) != SLOT_ARRIVED)
			continue;
		c->from = ((uintptr_t)s->tid << 3) | REF_REGISTER_TAG;
		for (int r = 0; r < NREGS; r++)
			if (s->regs[r] - c->lo < c->span)
				reach(c, s->regs[r], true);
	}
	c->from = ((uintptr_t)self_tid() << 3) | REF_REGISTER_TAG;
	for (int r = 0; r < NREGS; r++)
		if (c->self_regs[r] - c->lo < c->span)
			reach(c, c->self_regs[r], true);
}

/* ---- classification and report ------------------------------------------------------------- */

static void gather_cliques(struct ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (i + PREFETCH_AHEAD < c->n &&
		    (c->state[i + PREFETCH_AHEAD] & ST_LEVEL) == ST_UNREACHED)
			prefetch_block(c, i + PREFETCH_AHEAD);
		if ((c->state[i] & ST_LEVEL) != ST_UNREACHED)
			continue;
		push(c, i);
		process(c, (long)i);
	}
	/* parent links of indirect blocks -> their definite leader */
	for (size_t i = 0; i < c->n; i++) {
		if ((c->state[i] & ST_LEVEL) != ST_INDIRECT)
			continue;
		size_t r = (size_t)c->aux[i];
		while ((c->state[r] & ST_LEVEL) == ST_INDIRECT)
			r = (size_t)c->aux[r];
		for (size_t j = i; (c->state[j] & ST_LEVEL) == ST_INDIRECT;) {
			size_t up = (size_t)c->aux[j];
			c->aux[j] = r;
			j = up;
		}
	}
}

static const enum capture_leak_kind kind_of_level[4] = {
	[ST_UNREACHED] = CAPTURE_LEAK_DEFINITE,
	[ST_INDIRECT] = CAPTURE_LEAK_INDIRECT,
	[ST_POSSIBLE] = CAPTURE_LEAK_POSSIBLE,
	[ST_REACHABLE] = CAPTURE_LEAK_REACHABLE,
};

/* Block i's size and owner, from the pool's metadata arrays for a small
 * block; false when it is no longer live. */
static bool block_owner(const struct ctx *c, size_t i, struct pool_block *b)
{
	uintptr_t s = c->start[i];
	size_t r;
	const struct scan_pool *p = pool_of(c, s, &r);
	if (!p || !p->block_size)
		return pool_lookup((const void *)s, b);
	size_t idx = (s - pool_base_of(p, s)) / p->block_size;
	uint32_t w = __atomic_load_n(&c->meta[r].words[idx], __ATOMIC_ACQUIRE);
	if (!(w & POOL_WALK_LIVE))
		return false;
	const struct pool_walk_info *info = &c->meta[r].info[idx];
	b->size = w & POOL_WALK_SIZE;
	b->stack_id = w & POOL_WALK_OWNER ? info->stack_id : 0;
	b->seq = w & POOL_WALK_OWNER ? info->seq : 0;
	return true;
}

static void report_blocks(struct ctx *c)
{
	const struct scan_sink *sink = c->sink;
	for (size_t i = 0; i < c->n; i++) {
		struct pool_block b;
		if (!block_owner(c, i, &b))
			continue;
		unsigned level = c->state[i] & ST_LEVEL;
		enum capture_leak_kind kind = kind_of_level[level];
		c->sum->kinds[kind].bytes += b.size;
		c->sum->kinds[kind].blocks++;
		unsigned h = (c->state[i] >> ST_HEUR_SHIFT) & 7u;
		if (level == ST_REACHABLE && h != SCAN_HEUR_NONE && h < SCAN_HEUR_COUNT) {
			c->sum->heuristic[h].bytes += b.size;
			c->sum->heuristic[h].blocks++;
		}
		if (!sink || !sink->block ||
		    (level == ST_REACHABLE && !c->opts->report_reachable))
			continue;
		uintptr_t of = level == ST_INDIRECT ? c->start[c->aux[i]] : 0;
		sink->block(c->start[i], b.size, b.stack_id, b.seq, kind, of, sink->arg);
	}
}

static void report_edges(struct ctx *c)
{
	if (!c->opts->report_edges)
		return;
	sigjmp_buf jb;
	volatile size_t i = 0;
	if (sigsetjmp(jb, 0) != 0)
		i++; /* the block went away under us: skip the rest of it */
	g_fault.jb = &jb;
	for (; i < c->n; i++) {
		if (i + PREFETCH_AHEAD < c->n &&
		    (c->state[i + PREFETCH_AHEAD] & ST_LEVEL) != ST_REACHABLE)
			prefetch_block(c, i + PREFETCH_AHEAD);
		if ((c->state[i] & ST_LEVEL) == ST_REACHABLE)
			continue;
		uintptr_t s = c->start[i];
		uintptr_t end = (s + block_size(c, i)) & ~(uintptr_t)(WORD - 1);
		uintptr_t body = s + (c->hdr ? c->hdr[i] : 0); /* objects */
		for (uintptr_t a = body; a < end; a += WORD) {
			uintptr_t w = *(const uintptr_t *)a;
			long j;
			if (w - c->lo >= c->span || (j = find_index(c, w)) < 0 ||
			    (c->state[j] & ST_LEVEL) == ST_REACHABLE ||
			    (c->hdr && w < c->start[j] + c->hdr[j]))
				continue;
			c->sum->edges++;
			if (c->sink && c->sink->edge)
				c->sink->edge(s, a - s, c->start[j], c->sink->arg);
		}
	}
	g_fault.jb = NULL;
}

/* objects: what kind of root holds the word at a (not in a block). */
static enum capture_ref_kind root_kind(struct ctx *c, uintptr_t a, uint32_t *tid)
{
	size_t tls = c->opts->tls_size;
#if defined(__x86_64__)
	const uintptr_t below = tls, above = 4096; /* static TLS, then the TCB */
#else
	const uintptr_t below = 4096, above = tls + 16;
#endif
	for (unsigned i = 0; tls > 0 && i <= g_stop.nslots; i++) {
		uintptr_t tp;
		pid_t t;
		if (i == g_stop.nslots) {
			tp = thread_pointer();
			t = self_tid();
		} else if (atomic_load(&g_stop.slots[i].state) == SLOT_ARRIVED) {
			tp = g_stop.slots[i].tp;
			t = g_stop.slots[i].tid;
		} else {
			continue;
		}
		if (tp != 0 && a + below >= tp && a < tp + above) {
			*tid = (uint32_t)t;
			return CAPTURE_REF_TLS;
		}
	}
	const struct map_entry *m = maps_find(&c->maps, a);
	if (m && m->stack_tid != 0 && a >= m->scan_from) {
		*tid = (uint32_t)m->stack_tid;
		return CAPTURE_REF_STACK;
	}
	*tid = 0;
	return CAPTURE_REF_DATA;
}

/* objects: for every reached object block, its chain of first reachers up
 * to a root, each block once. */
static void report_refs(struct ctx *c)
{
	const struct scan_sink *sink = c->sink;
	if (!c->pred || !c->opts->report_refs || !sink || !sink->ref)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (!c->hdr[i])
			continue;
		size_t j = i;
		for (size_t steps = 0; steps < c->n; steps++) {
			uintptr_t from = c->pred[j];
			if ((c->state[j] & ST_REFSENT) || from == 0)
				break;
			c->state[j] |= ST_REFSENT;
			uint32_t tid = 0;
			if (from & REF_REGISTER_TAG) {
				sink->ref(c->start[j], 0, CAPTURE_REF_REGISTER,
					  (uint32_t)(from >> 3), sink->arg);
				break;
			}
			long k;
			if (from - c->lo < c->span && (k = find_index(c, from)) >= 0) {
				sink->ref(c->start[j], from, CAPTURE_REF_BLOCK, 0, sink->arg);
				j = (size_t)k;
				continue;
			}
			enum capture_ref_kind kind = root_kind(c, from, &tid);
			sink->ref(c->start[j], from, kind, tid, sink->arg);
			break;
		}
	}
}

void scan_options_init(struct scan_options *o)
{
	memset(o, 0, sizeof(*o));
	o->stop_signal = SIGRTMIN + 6;
	o->thread_timeout_ms = 1000;
	o->heuristics = SCAN_HEUR_ALL;
	o->report_reachable = true;
	o->report_edges = true;
}

static void scan_lock(void)
{
	int expected = 0;
	while (!atomic_compare_exchange_strong(&g_stop.lock, &expected, 1)) {
		futex_wait(&g_stop.lock, 1, 0);
		expected = 0;
	}
}

static void scan_unlock(void)
{
	atomic_store(&g_stop.lock, 0);
	futex_wake(&g_stop.lock);
}

/* MEMPROF_SCAN_TIMING: the end of each step (see the header comment). */
enum { T_START, T_STOP, T_BLOCKS, T_MAPS, T_ROOTS, T_MARK, T_CLIQUES, T_REPORT,
       T_EDGES, T_END, T_COUNT };
static const char *const timing_names[T_COUNT] = {
	"start", "stop", "blocks", "maps", "roots", "mark", "cliques", "report", "edges",
	"resume",
};
static uint64_t g_timing[T_COUNT];
static bool g_timing_on;

/* Read once at load: at exit, after __libc_freeres(), the environment may
 * be gone. */
__attribute__((constructor)) static void timing_init(void)
{
	g_timing_on = getenv("MEMPROF_SCAN_TIMING") != NULL;
}

static int scan_locked(struct ctx *c)
{
	g_timing[T_START] = now_ns();
	int err = stop_world(c->opts->stop_signal, c->opts->thread_timeout_ms, c->sum);
	if (err)
		return err;
	g_timing[T_STOP] = now_ns();
	fault_catch_install();
	err = blocks_build(c);
	g_timing[T_BLOCKS] = now_ns();
	if (!err)
		err = maps_read(&c->maps);
	if (!err)
		err = excl_build(c);
	g_timing[T_MAPS] = now_ns();
	if (!err && c->n > 0) {
		scan_roots(c);
		g_timing[T_ROOTS] = now_ns();
		process(c, -1);
		g_timing[T_MARK] = now_ns();
		gather_cliques(c);
		g_timing[T_CLIQUES] = now_ns();
		report_blocks(c);
		g_timing[T_REPORT] = now_ns();
		report_edges(c);
		report_refs(c);
		g_timing[T_EDGES] = now_ns();
	}
	fault_catch_remove();
	resume_world(c->sum);
	g_timing[T_END] = now_ns();
	own_unmap(c->excl);
	own_unmap(c->maps.e);
	own_unmap(c->maps.text);
	own_unmap(c->start);
	own_unmap(c->pred);
	return err;
}

/* The scan proper; its frame and its callees' lie below the stack range
 * the calling thread contributes, so the block addresses they hold (the
 * context's bounds, words being examined) are never roots. */
__attribute__((noinline)) static int scan_below(const struct scan_options *opts,
						 const struct scan_sink *sink,
						 struct scan_summary *sum,
						 const ucontext_t *uc)
{
	struct ctx c;
	memset(&c, 0, sizeof(c));
	c.opts = opts;
	c.sink = sink;
	c.sum = sum;
	c.self_sp = uc_regs(opts->caller_context ? opts->caller_context : uc, c.self_regs);
	keep_callee_saved(c.self_regs);
	scan_lock();
	int err = scan_locked(&c);
	scan_unlock();
	memset(&c, 0, sizeof(c));
	return err;
}

/* One line on stderr, by hand (no stdio): each step's milliseconds. */
static void print_timing(uint64_t total_ns)
{
	char line[256] = "memprof scan:";
	size_t len = strlen(line);
	uint64_t prev = g_timing[T_START];
	for (int k = T_STOP; k <= T_COUNT; k++) {
		const char *name = k < T_COUNT ? timing_names[k] : "total";
		uint64_t ms;
		if (k == T_COUNT) {
			ms = total_ns / 1000000u;
		} else if (g_timing[k] == 0) {
			continue;
		} else {
			ms = (g_timing[k] - prev) / 1000000u;
			prev = g_timing[k];
		}
		char d[24];
		int nd = 0;
		do
			d[nd++] = (char)('0' + ms % 10);
		while ((ms /= 10) != 0);
		if (len + strlen(name) + nd + 3 >= sizeof(line))
			break;
		line[len++] = ' ';
		memcpy(line + len, name, strlen(name));
		len += strlen(name);
		line[len++] = ' ';
		while (nd > 0)
			line[len++] = d[--nd];
	}
	line[len++] = '\n';
	for (size_t off = 0; off < len;) {
		ssize_t w = write(2, line + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	memset(g_timing, 0, sizeof(g_timing));
}

/* Not inlined: the stack pointer getcontext() records here bounds what the
 * calling thread's stack contributes (this frame holds the caller's saved
 * registers, and is scanned; the scan's own frames are below it). */
__attribute__((noinline)) int scan_run(const struct scan_options *opts,
				       const struct scan_sink *sink,
				       struct scan_summary *out)
{
	struct scan_options defaults;
	struct scan_summary sum;
	ucontext_t uc;
	if (!opts) {
		scan_options_init(&defaults);
		opts = &defaults;
	}
	if (opts->stop_signal < SIGRTMIN || opts->stop_signal > SIGRTMAX)
		return -EINVAL;
	memset(&sum, 0, sizeof(sum));
	uint64_t t0 = now_ns();
	getcontext(&uc);
	int err = scan_below(opts, sink, &sum, &uc);
	sum.duration_ns = now_ns() - t0;
	if (out)
		*out = sum;
	if (g_timing_on)
		print_timing(sum.duration_ns);
	return err;
}

/* ---- scans on the user's request ---------------------------------------------------------------- */

atomic_uint scan_signal_requests;

static struct {
	int signo;
	void (*callback)(void *arg);
	void *arg;
	struct sigaction old;
	bool installed;
} g_req;

static void request_handler(int sig)
{
	int saved_errno = errno;
	atomic_fetch_add(&scan_signal_requests, 1);
	futex_wake((atomic_int *)&scan_signal_requests);
	errno = saved_errno;
}

int scan_install_signal(int signo, void (*callback)(void *arg), void *arg)
{
	if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP ||
	    !callback)
		return -EINVAL;
	scan_uninstall_signal();
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = request_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	g_req.callback = callback;
	g_req.arg = arg;
	if (sigaction(signo, &sa, &g_req.old) != 0)
		return -errno;
	g_req.signo = signo;
	g_req.installed = true;
	return 0;
}

void scan_uninstall_signal(void)
{
	if (!g_req.installed)
		return;
	sigaction(g_req.signo, &g_req.old, NULL);
	g_req.installed = false;
}

bool scan_signal_run_pending(void)
{
	if (atomic_exchange(&scan_signal_requests, 0) == 0 || !g_req.callback)
		return false;
	g_req.callback(g_req.arg);
	return true;
}

bool scan_signal_wait(int timeout_ms)
{
	if (atomic_load(&scan_signal_requests) == 0)
		futex_wait((atomic_int *)&scan_signal_requests, 0,
			   timeout_ms < 0 ? 0 : (timeout_ms == 0 ? 1 : (unsigned)timeout_ms));
	return scan_signal_run_pending();
}
