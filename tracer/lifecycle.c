/*
 * lifecycle.c: the traced process's life as the tracer sees it: start,
 * fork, the sampler thread, leak scans, and every way the process ends.
 *
 * Main entry points: tracer_init() (from the first hook call or the
 * constructor, whichever comes first), tracer_ctor() (the constructor:
 * environment fixes, signal handlers, fork handlers, the exit handler, the
 * sampler) and tracer_finish() (writes END).
 *
 * How a process ends, and what the capture gets:
 *  - return from main or exit(): an on_exit() handler registered by the
 *    constructor.  The constructor runs before __libc_start_main registers
 *    the dynamic linker's destructor pass, so the handler runs after the
 *    program's own atexit handlers, its C++ static destructors and every
 *    library destructor: allocations made there are recorded.  It writes
 *    STATS, calls libstdc++'s __gnu_cxx::__freeres() and __libc_freeres()
 *    when no other thread is left (as valgrind does), runs the leak scan
 *    (SCAN...), then END how=0 with the exit status.
 *  - _exit()/_Exit() (interposed, preload.c): flush, END how=1.
 *  - the exec family (interposed, preload.c): flush, END how=4.
 *  - fatal signals: a handler (SA_RESETHAND|SA_NODEFER) installed for the
 *    signals the program left at SIG_DFL flushes what it can, writes END
 *    how=2 (how=3 for abort()'s own SIGABRT) with the signal, and re-raises
 *    it so that the process dies of it.  sigaction() and signal() are
 *    interposed so that the program sees SIG_DFL where our handler is, and
 *    its own handlers replace ours.
 *  - SIGKILL: the sampler's flush every 100 ms bounds what is lost.
 */
#define _GNU_SOURCE
#include "tracer-private.h"
#include "tracer.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "env.h"
#include "pool.h"
#include "scan.h"
#include "unwind.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define LIBUNWIND_SONAME "libunwind.so.8"

extern char **environ;
extern void *(*tracer_real_dlopen)(const char *file, int mode);
extern int (*tracer_real_dlclose)(void *handle);
int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
void __libc_freeres(void);

static void sampler_start(void);
static void sampler_stop(void);
static atomic_int sampler_running, sampler_stop_req, sampler_done;
static atomic_int sampler_tid; /* the sampler thread's, for sampler_stop() */
static atomic_int sampler_pause_req, sampler_paused;

/* ---- initialisation ------------------------------------------------------ */

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* MEMPROF_OUTPUT made absolute, so that fork children find the directory
 * even after the program changed its working directory. */
static void set_base_path(const char *out)
{
	tracer.base_path[0] = '\0';
	if (!out || !*out)
		return;
	if (out[0] == '/') {
		copy_str(tracer.base_path, sizeof(tracer.base_path), out);
		return;
	}
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd))) {
		copy_str(tracer.base_path, sizeof(tracer.base_path), out);
		return;
	}
	size_t c = strlen(cwd), o = strlen(out);
	if (c + 1 + o + 1 > sizeof(tracer.base_path)) {
		copy_str(tracer.base_path, sizeof(tracer.base_path), out);
		return;
	}
	memcpy(tracer.base_path, cwd, c);
	tracer.base_path[c] = '/';
	memcpy(tracer.base_path + c + 1, out, o + 1);
}

static void read_config(void)
{
	char *block = NULL;
	size_t blen = 0, bmap = 0;
	const char *out, *depth, *follow, *free_stacks;
	if (environ) {
		out = tracer_env_lookup(environ, "MEMPROF_OUTPUT");
		depth = tracer_env_lookup(environ, "MEMPROF_DEPTH");
		follow = tracer_env_lookup(environ, "MEMPROF_FOLLOW_FORK");
		free_stacks = tracer_env_lookup(environ, "MEMPROF_FREE_STACKS");
	} else {
		/* the very first malloc can come before libc set environ */
		if (writer_read_file("/proc/self/environ", &block, &blen, &bmap) != 0)
			block = NULL;
		out = block ? tracer_env_lookup_block(block, blen, "MEMPROF_OUTPUT") : NULL;
		depth = block ? tracer_env_lookup_block(block, blen, "MEMPROF_DEPTH") : NULL;
		follow = block ? tracer_env_lookup_block(block, blen, "MEMPROF_FOLLOW_FORK") : NULL;
		free_stacks = block ? tracer_env_lookup_block(block, blen, "MEMPROF_FREE_STACKS")
				    : NULL;
	}
	tracer.free_stacks = free_stacks && strcmp(free_stacks, "1") == 0;
	tracer.depth = tracer_env_depth(depth);
	tracer.follow_fork = follow && (follow[0] == '1' || follow[0] == '2') && follow[1] == '\0';
	tracer.descendant = tracer.follow_fork && follow[0] == '2';
	set_base_path(out);
	writer_scratch_unmap(block, bmap);

	ssize_t n = readlink("/proc/self/exe", tracer.exe, sizeof(tracer.exe) - 1);
	tracer.exe_len = n > 0 ? (size_t)n : 0;
	tracer.exe[tracer.exe_len] = '\0';

	char *args = NULL;
	size_t alen = 0, amap = 0;
	tracer.argv0[0] = '\0';
	if (writer_read_file("/proc/self/cmdline", &args, &alen, &amap) == 0) {
		if (alen > 0 && memchr(args, '\0', alen))
			copy_str(tracer.argv0, sizeof(tracer.argv0), args);
		writer_scratch_unmap(args, amap);
	}
	if (!tracer.argv0[0])
		copy_str(tracer.argv0, sizeof(tracer.argv0), tracer.exe);
}

/* The capture path of this process (see env.h). */
static int capture_path(char *out, size_t cap, bool child)
{
	pid_t pid = getpid();
	if (tracer.base_path[0])
		return child ? tracer_env_child_path(out, cap, tracer.base_path, pid)
			     : (copy_str(out, cap, tracer.base_path), 0);
	return tracer_env_default_path(out, cap, tracer.argv0, pid);
}

static void *unw_handle; /* leaks: exit_caller_state() unwinds with it too */

static void load_libunwind(void)
{
	if (!tracer_real_dlopen)
		return;
	void *h = tracer_real_dlopen(LIBUNWIND_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	unw_handle = h;
	int (*set_policy)(unw_addr_space_t, unw_caching_policy_t) =
		(int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(
			h, STR(unw_set_caching_policy));
	unw_addr_space_t *as = (unw_addr_space_t *)dlsym(h, STR(unw_local_addr_space));
	if (set_policy && as)
		set_policy(*as, UNW_CACHE_PER_THREAD);
	int (*bt)(void **, int) = (int (*)(void **, int))dlsym(h, "unw_backtrace");
	if (bt) {
		modules_text_of((uintptr_t)bt, &tracer.unw_lo, &tracer.unw_hi);
		/* libunwind creates its per-thread cache's pthread key on its
		 * first unwind: do it now, before the program creates keys of
		 * its own, so that its index stays below 32 and setting it
		 * never allocates the thread's second-level key array in the
		 * program's place */
		void *ips[4];
		bt(ips, 4);
	}
	tracer.unw_backtrace = bt;
	unwind_setup(h);
}

/* Runs once, with the calling thread's guard set. */
void tracer_init(void)
{
	int expect = INIT_NONE;
	if (!atomic_compare_exchange_strong(&tracer.init, &expect, INIT_RUNNING)) {
		while (atomic_load(&tracer.init) != INIT_DONE)
			sched_yield();
		return;
	}
	int saved = errno;
	tracer.t0_ns = tracer_now_ns();
	tracer.pid = getpid();
	atomic_store(&tracer.seq, 1);
	writer_barrier_setup(); /* before any buffer is taken */
	read_config();
	modules_self_init();
	modules_text_of((uintptr_t)&tracer_init, &tracer.self_lo, &tracer.self_hi);
	tracer.key_ok = pthread_key_create(&tracer.key, tracer_thread_exit) == 0;
	tracer_real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
	tracer_real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
	if (stack_table_init(&tracer.stacks) == 0) {
		load_libunwind();
		tracer.late = tbuf_acquire(0);
		char path[PATH_MAX];
		if (capture_path(path, sizeof(path), tracer.descendant) >= 0) {
			copy_str(tracer.path, sizeof(tracer.path), path);
			if (writer_open(path, 0) == 0) {
				atomic_store(&tracer.recording, 1);
				modules_rescan();
			}
		}
	}
	atomic_store(&tracer.init, INIT_DONE);
	errno = saved;
}

/* LD_PRELOAD without us (no follow-fork), or MEMPROF_FOLLOW_FORK=2 for
 * descendants; in place, once environ exists. */
static void env_fixup(void)
{
	static bool done;
	if (done || !environ)
		return;
	done = true;
	for (char **e = environ; *e; e++) {
		if (!tracer.follow_fork && strncmp(*e, "LD_PRELOAD=", 11) == 0)
			tracer_env_strip_preload(*e + 11, TRACER_LIB_NAME);
		if (tracer.follow_fork && strncmp(*e, "MEMPROF_FOLLOW_FORK=1", 21) == 0 &&
		    (*e)[21] == '\0')
			(*e)[20] = '2';
	}
}

/* ---- END and STATS --------------------------------------------------------- */

static void write_end(int how, int status, int sig)
{
	uint8_t chunk[CAPTURE_CHUNK_HEADER_SIZE + RECORD_LOST_MAX + RECORD_END_MAX];
	uint8_t *o = chunk + CAPTURE_CHUNK_HEADER_SIZE;
	size_t n = 0;
	uint64_t lost = atomic_load(&tracer.lost);
	if (lost > 0)
		n += record_lost_put(o + n, lost);
	n += record_end_put(o + n, tracer_now_ns() - tracer.t0_ns, atomic_load(&tracer.seq),
			    (uint64_t)how, (uint64_t)(unsigned)status, (uint64_t)sig);
	atomic_store(&tracer.closed, 1);
	/* chunks being written by other threads go first (bounded wait) */
	for (unsigned i = 0; i < 100000 && atomic_load(&tracer.inflight) > 0; i++)
		sched_yield();
	writer_chunk_write(chunk, (uint32_t)n, tracer_thread_tid(), true);
}

static void write_stats(void)
{
	struct pool_stats st;
	scan_alloc_enter();
	pool_get_stats(&st);
	scan_alloc_leave();
	struct tbuf *b = tracer_buf_begin();
	if (!b)
		return;
	uint8_t *o = tbuf_reserve(b, RECORD_STATS_MAX);
	tbuf_commit(b, record_stats_put(o, &st));
	tracer_buf_end(b);
}

/* true when the calling thread is the process's only one */
static bool alone(void)
{
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[4096];
	unsigned tasks = 0;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			if (d->d_name[0] != '.')
				tasks++;
			off += d->d_reclen;
		}
	}
	close(fd);
	return tasks == 1;
}

static void run_scan(unsigned flags);

/* leaks: where the program handed control to memprof (exit(), or
 * memprof_leak_check()), the calling thread's state the scan uses
 * (scan.h, caller_context).  Static, so that it is never a root. */
static ucontext_t caller_uc;
static const ucontext_t *volatile scan_caller;
static atomic_int caller_busy;

static void caller_lock(void)
{
	while (atomic_exchange_explicit(&caller_busy, 1, memory_order_acquire) != 0)
		sched_yield();
}

static void caller_unlock(void)
{
	scan_caller = NULL;
	atomic_store_explicit(&caller_busy, 0, memory_order_release);
}

/* What valgrind does before its leak check, once no other thread can use
 * them: libstdc++'s emergency exception pool and glibc's buffers are freed.
 * Their frees are the program's (libc allocated on its behalf): recorded. */
static void free_runtime_buffers(void)
{
	struct tracer_tls *t = &tracer_tls;
	void (*cxx_freeres)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
	t->guard = 0;
	if (cxx_freeres)
		cxx_freeres();
	__libc_freeres();
	t->guard = 1;
}

void tracer_finish(int how, int status, int sig)
{
	if (!atomic_load(&tracer.recording) || (pid_t)syscall(SYS_getpid) != tracer.pid)
		return;
	int expect = 0;
	if (!atomic_compare_exchange_strong(&tracer.finishing, &expect, 1))
		return;
	int saved = errno;
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	if (how == CAPTURE_END_EXIT) {
		sampler_stop();
		write_stats();
		if (alone())
			free_runtime_buffers();
		objects_at_exit(); /* objects: before the scan (objects.c) */
		run_scan(CAPTURE_SCAN_AT_EXIT);
		atomic_store(&tracer.recording, 0);
		writer_flush_all(true);
	} else if (how == CAPTURE_END_EXEC) {
		sampler_stop();
		atomic_store(&tracer.recording, 0);
		writer_flush_all(true);
	} else {
		/* possibly inside a signal handler: take no lock */
		atomic_store(&tracer.recording, 0);
		writer_flush_for_death();
	}
	write_end(how, status, sig);
	t->guard = guard;
	errno = saved;
}

/* The state of the caller of libc's exit(), into uc: where the program's
 * own frames begin (__libc_start_call_main's when main returned), and its
 * callee-saved registers as unwinding restores them.  The frames of exit()
 * and of its handlers below it hold stale words of dead frames in slots
 * they never wrote, which memcheck skips as undefined; the scan starts
 * above them.  false (uc untouched) when libunwind cannot tell. */
static bool exit_caller_state(ucontext_t *uc_out)
{
	void *h = unw_handle;
	if (!h)
		return 0;
	int (*getctx)(unw_context_t *) = (int (*)(unw_context_t *))dlsym(h, STR(unw_tdep_getcontext));
	int (*init)(unw_cursor_t *, unw_context_t *) =
		(int (*)(unw_cursor_t *, unw_context_t *))dlsym(h, STR(unw_init_local));
	int (*step)(unw_cursor_t *) = (int (*)(unw_cursor_t *))dlsym(h, STR(unw_step));
	int (*get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *) =
		(int (*)(unw_cursor_t *, unw_regnum_t, unw_word_t *))dlsym(h, STR(unw_get_reg));
	void *exit_fn = dlsym(RTLD_DEFAULT, "exit");
	Dl_info info;
	const ElfW(Sym) *esym = NULL;
	if (!getctx || !init || !step || !get_reg || !exit_fn ||
	    !dladdr1(exit_fn, &info, (void **)&esym, RTLD_DL_SYMENT) || !esym || !esym->st_size)
		return false;
	uintptr_t lo = (uintptr_t)exit_fn, hi = lo + esym->st_size;
	unw_context_t uc;
	unw_cursor_t cur;
	if (getctx(&uc) != 0 || init(&cur, &uc) != 0)
		return false;
	bool in_exit = false;
	for (int depth = 0; depth < 64 && step(&cur) > 0; depth++) {
		unw_word_t ip = 0, sp = 0;
		if (get_reg(&cur, UNW_REG_IP, &ip) != 0 || get_reg(&cur, UNW_REG_SP, &sp) != 0)
			return false;
		if (!in_exit) {
			in_exit = ip - 1 >= lo && ip - 1 < hi;
			continue;
		}
#if defined(__x86_64__)
		static const struct { int unw, greg; } saved[] = {
			{ UNW_X86_64_RBX, REG_RBX }, { UNW_X86_64_RBP, REG_RBP },
			{ UNW_X86_64_R12, REG_R12 }, { UNW_X86_64_R13, REG_R13 },
			{ UNW_X86_64_R14, REG_R14 }, { UNW_X86_64_R15, REG_R15 },
		};
		for (size_t i = 0; i < sizeof(saved) / sizeof(*saved); i++) {
			unw_word_t v;
			if (get_reg(&cur, saved[i].unw, &v) == 0)
				uc_out->uc_mcontext.gregs[saved[i].greg] = (greg_t)v;
		}
		uc_out->uc_mcontext.gregs[REG_RSP] = (greg_t)sp;
		return true;
#elif defined(__aarch64__)
		for (int r = 19; r <= 29; r++) {
			unw_word_t v;
			if (get_reg(&cur, UNW_AARCH64_X0 + r, &v) == 0)
				uc_out->uc_mcontext.regs[r] = v;
		}
		uc_out->uc_mcontext.sp = sp;
		return true;
#else
		return false;
#endif
	}
	return false;
}

static void on_exit_handler(int status, void *arg)
{
	caller_lock();
	getcontext(&caller_uc);
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	exit_caller_state(&caller_uc);
	t->guard = guard;
	scan_caller = &caller_uc;
	tracer_finish(CAPTURE_END_EXIT, status, 0);
	caller_unlock();
}

/* ---- fatal signals ------------------------------------------------------------ */

static const int fatal_signals[] = {
	SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGTERM, SIGINT,
	SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU, SIGXFSZ,
};

/* ours[sig]: our handler is installed and the program believes SIG_DFL */
static atomic_bool ours[_NSIG];

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
	int e = errno;
	atomic_store(&ours[sig], false); /* SA_RESETHAND restored SIG_DFL */
	pid_t pid = (pid_t)syscall(SYS_getpid);
	int how = sig == SIGABRT && si && si->si_code == SI_TKILL && si->si_pid == pid
			  ? CAPTURE_END_ABORT
			  : CAPTURE_END_SIGNAL;
	tracer_finish(how, 0, sig);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	__sigaction(sig, &dfl, NULL);
	raise(sig); /* not blocked (SA_NODEFER): the process dies here */
	errno = e;
}

static bool watched(int sig)
{
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		if (fatal_signals[i] == sig)
			return true;
	return false;
}

static void install_ours(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (__sigaction(sig, &sa, NULL) == 0)
		atomic_store(&ours[sig], true);
}

static void signals_install(void)
{
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		struct sigaction old;
		if (__sigaction(fatal_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			install_ours(fatal_signals[i]);
	}
}

__attribute__((visibility("default"))) int sigaction(int sig, const struct sigaction *act,
						      struct sigaction *old)
{
	if (sig <= 0 || sig >= _NSIG || !atomic_load(&ours[sig])) {
		int r = __sigaction(sig, act, old);
		if (r == 0 && act && act->sa_handler == SIG_DFL && sig > 0 && sig < _NSIG &&
		    watched(sig) && atomic_load(&tracer.recording))
			install_ours(sig);
		return r;
	}
	if (old) {
		memset(old, 0, sizeof(*old));
		old->sa_handler = SIG_DFL;
	}
	if (act && act->sa_handler != SIG_DFL) {
		int r = __sigaction(sig, act, NULL);
		if (r == 0)
			atomic_store(&ours[sig], false);
		return r;
	}
	return 0;
}

__attribute__((visibility("default"))) sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act, old;
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	if (sig > 0 && sig < _NSIG)
		sigaddset(&act.sa_mask, sig);
	act.sa_flags = SA_RESTART; /* glibc's BSD semantics */
	if (handler == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* ---- fork ------------------------------------------------------------------------ */

static atomic_int scan_busy;

static void scan_lock(void)
{
	while (atomic_exchange_explicit(&scan_busy, 1, memory_order_acquire) != 0)
		sched_yield();
}

static void scan_unlock(void)
{
	atomic_store_explicit(&scan_busy, 0, memory_order_release);
}

static void fork_prepare(void)
{
	unwind_fork_prepare();
	scan_lock();
	modules_lock();
	stack_table_lock(&tracer.stacks);
	pool_fork_prepare();
}

static void fork_parent(void)
{
	pool_fork_parent();
	stack_table_unlock(&tracer.stacks);
	modules_unlock();
	scan_unlock();
	unwind_fork_parent();
}

static void emit_node(void *arg, uint32_t id, uint32_t parent, uint64_t ip)
{
	struct tbuf *b = arg;
	uint8_t *o = tbuf_reserve(b, RECORD_STACK_MAX);
	tbuf_commit(b, record_stack_put(o, &b->deltas, id, parent, ip));
}

/* follow-fork: a capture of our own, with every stack node written again
 * (the blocks inherited from the parent keep their stack ids). */
static void child_capture(void)
{
	struct tracer_tls *t = &tracer_tls;
	writer_close();
	writer_fork_child_reset(NULL);
	t->buf = NULL;
	if (t->phase == TLS_ACTIVE)
		t->phase = TLS_NEW; /* started again, under its new tid */
	tracer.pid = getpid();
	tracer.t0_ns = tracer_now_ns();
	atomic_store(&tracer.finishing, 0);
	atomic_store(&sampler_running, 0); /* the parent's did not follow */
	char path[PATH_MAX];
	if (capture_path(path, sizeof(path), true) < 0 ||
	    writer_open(path, CAPTURE_PROCESS_FORKED) != 0) {
		atomic_store(&tracer.recording, 0);
		return;
	}
	copy_str(tracer.path, sizeof(tracer.path), path);
	struct tbuf *b = tracer_buf_begin();
	if (b) {
		stack_table_foreach(&tracer.stacks, emit_node, b);
		tracer_buf_end(b);
	}
	modules_emit_all();
	sampler_start();
}

static void fork_child(void)
{
	struct tracer_tls *t = &tracer_tls;
	pool_fork_child();
	stack_table_unlock(&tracer.stacks);
	modules_unlock();
	scan_unlock();
	unwind_fork_child();
	writer_barrier_setup(); /* the child is a process of its own */
	t->tid = 0;
	if (!atomic_load(&tracer.recording))
		return;
	int guard = t->guard;
	t->guard = 1;
	if (tracer.follow_fork) {
		child_capture();
	} else {
		atomic_store(&tracer.recording, 0);
		writer_close();
		writer_fork_child_reset(NULL);
		t->buf = NULL;
		if (t->phase == TLS_ACTIVE)
			t->phase = TLS_PLAIN;
	}
	t->guard = guard;
}

/* ---- the sampler ---------------------------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t read_rss(long page)
{
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[128];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = buf;
	while (*p && *p != ' ')
		p++; /* skip total size */
	uint64_t pages = 0;
	for (p++; *p >= '0' && *p <= '9'; p++)
		pages = pages * 10 + (uint64_t)(*p - '0');
	return pages * (uint64_t)page;
}

static void add_range(uintptr_t lo, uintptr_t hi, void *arg)
{
	*(uint64_t *)arg += hi - lo;
}

static void sample(long page)
{
	int64_t live = 0, large = 0;
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next) {
		live += atomic_load_explicit(&b->live_bytes, memory_order_relaxed);
		large += atomic_load_explicit(&b->large_bytes, memory_order_relaxed);
	}
	uint64_t mapped = 0;
	pool_foreach_own_range(add_range, &mapped);
	mapped += large > 0 ? (uint64_t)large : 0;
	uint64_t rss = read_rss(page);
	struct tbuf *b = tracer_buf_begin();
	if (!b)
		return;
	uint8_t *o = tbuf_reserve(b, RECORD_SAMPLE_MAX);
	tbuf_commit(b, record_sample_put(o, tracer_now_ns() - tracer.t0_ns,
					 atomic_load(&tracer.seq), rss, mapped,
					 live > 0 ? (uint64_t)live : 0));
	tracer_buf_end(b);
}

/* Every buffer out, then FLUSHED with the counter read before: every
 * event below it is in the file ahead of the record (capture.h), which a
 * reader following the capture while it grows needs.  A thread may still
 * hold a block of seqs below the counter: writer_flush_every() retires
 * each buffer's block while it holds the buffer, so those numbers are
 * never handed out and later events number above the counter read here. */
static void flushed_mark(void)
{
	uint64_t seq = atomic_load(&tracer.seq);
	if (!writer_flush_every())
		return;
	struct tbuf *b = tracer_buf_begin();
	if (!b)
		return;
	uint8_t *o = tbuf_reserve(b, RECORD_FLUSHED_MAX);
	tbuf_commit(b, record_flushed_put(o, seq));
	tbuf_flush_locked(b);
	tracer_buf_end(b);
}

static void *sampler_main(void *arg)
{
	struct tracer_tls *t = &tracer_tls;
	t->guard = 1;
	t->phase = TLS_INTERNAL;
	atomic_store(&sampler_tid, (int)syscall(SYS_gettid));
	prctl(PR_SET_NAME, "memprof-sampler", 0, 0, 0);
	long page = sysconf(_SC_PAGESIZE);
	for (unsigned tick = 1; !atomic_load(&sampler_stop_req); tick++) {
		if (atomic_load(&sampler_pause_req)) {
			atomic_store(&sampler_paused, 1);
			while (atomic_load(&sampler_pause_req) && !atomic_load(&sampler_stop_req))
				sleep_ms(1);
			atomic_store(&sampler_paused, 0);
			continue;
		}
		sleep_ms(10);
		scan_signal_poll();
		if (atomic_load(&sampler_stop_req) || atomic_load(&sampler_pause_req) ||
		    !atomic_load(&tracer.recording))
			continue;
		sample(page);
		if (tick % 10 == 0)
			flushed_mark();
	}
	atomic_store(&sampler_done, 1);
	return NULL;
}

static void sampler_start(void)
{
	if (atomic_load(&sampler_running))
		return;
	atomic_store(&sampler_stop_req, 0);
	atomic_store(&sampler_done, 0);
	atomic_store(&sampler_pause_req, 0);
	atomic_store(&sampler_paused, 0);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	if (pthread_create(&th, &attr, sampler_main, NULL) == 0)
		atomic_store(&sampler_running, 1);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void sampler_stop(void)
{
	if (!atomic_load(&sampler_running) || tracer_tls.phase == TLS_INTERNAL)
		return;
	atomic_store(&sampler_stop_req, 1);
	for (int i = 0; i < 2000 && !atomic_load(&sampler_done); i++)
		sleep_ms(1);
	/* and until its thread is gone: at exit, alone() must not count it
	 * (a sampler still exiting would skip __libc_freeres at random) */
	pid_t tid = (pid_t)atomic_load(&sampler_tid);
	for (int i = 0; i < 1000 && tid > 0 && atomic_load(&sampler_done); i++) {
		int e = errno;
		bool gone = syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH;
		errno = e;
		if (gone)
			break;
		sleep_ms(1);
	}
	atomic_store(&sampler_running, 0);
}

void tracer_sampler_pause(void)
{
	if (!atomic_load(&sampler_running) || tracer_tls.phase == TLS_INTERNAL)
		return;
	atomic_store(&sampler_pause_req, 1);
	for (int i = 0; i < 2000 && !atomic_load(&sampler_paused) &&
			!atomic_load(&sampler_done);
	     i++)
		sleep_ms(1);
}

void tracer_sampler_resume(void)
{
	atomic_store(&sampler_pause_req, 0);
}

/* ---- leak scans --------------------------------------------------------------------
 * The scan's callbacks run while the other threads are stopped: they append
 * records to an mmap'd area laid out as ready-to-write chunks (header room,
 * payload up to SCAN_CHUNK_PAYLOAD); the chunks are written once the
 * threads run again, after a chunk holding the SCAN record. */

#define SCAN_CHUNK_PAYLOAD (1u << 20)

struct scan_area {
	uint8_t *base;
	size_t cap, len;
	size_t chunk; /* offset of the current chunk's header */
	uint64_t blocks, edges;
	bool failed;
};

static struct scan_area *volatile scan_current;

static uint8_t *area_reserve(struct scan_area *a, size_t need)
{
	if (a->failed)
		return NULL;
	if (a->len - a->chunk - CAPTURE_CHUNK_HEADER_SIZE + need > SCAN_CHUNK_PAYLOAD) {
		uint32_t plen = (uint32_t)(a->len - a->chunk - CAPTURE_CHUNK_HEADER_SIZE);
		memcpy(a->base + a->chunk + 4, &plen, 4);
		a->chunk = a->len;
		a->len += CAPTURE_CHUNK_HEADER_SIZE;
	}
	if (a->len + need + CAPTURE_CHUNK_HEADER_SIZE > a->cap) {
		void *p = mremap(a->base, a->cap, a->cap * 2, MREMAP_MAYMOVE);
		if (p == MAP_FAILED) {
			a->failed = true;
			return NULL;
		}
		a->base = p;
		a->cap *= 2;
	}
	return a->base + a->len;
}

static void sink_block(uintptr_t addr, size_t size, uint32_t stack_id, uint64_t seq,
		       enum capture_leak_kind kind, uintptr_t indirect_of, void *arg)
{
	struct scan_area *a = arg;
	if (seq == 0)
		return; /* memprof's own block (allocated by libunwind, dlsym...) */
	uint8_t *o = area_reserve(a, RECORD_SCANBLOCK_MAX);
	if (!o)
		return;
	a->len += record_scanblock_put(o, addr, size, stack_id, seq, kind, indirect_of);
	a->blocks++;
}

static void sink_edge(uintptr_t from, size_t offset, uintptr_t to, void *arg)
{
	struct scan_area *a = arg;
	uint8_t *o = area_reserve(a, RECORD_SCANEDGE_MAX);
	if (!o)
		return;
	a->len += record_scanedge_put(o, from, offset, to);
	a->edges++;
}

/* objects: a back-reference (SCANREF) */
static void sink_ref(uintptr_t addr, uintptr_t from, enum capture_ref_kind kind, uint32_t tid,
		     void *arg)
{
	struct scan_area *a = arg;
	uint8_t *o = area_reserve(a, RECORD_SCANREF_MAX);
	if (!o)
		return;
	a->len += objects_scanref_put(o, addr, from, kind, tid);
}

static void note(uint64_t level, const char *text)
{
	struct tbuf *b = tracer_buf_begin();
	if (!b)
		return;
	uint8_t *o = tbuf_reserve(b, RECORD_NOTE_MAX);
	tbuf_commit(b, record_note_put(o, tbuf_seq_now(b), level, text, strlen(text)));
	tracer_buf_end(b);
}

/* scanperf: "leak scan: N blocks classified in X.XX s", an info note for
 * a scan worth knowing about (a big heap, or a second or more), so small
 * programs' reports stay as they were.  No stdio here: the digits are
 * written by hand. */
#define SCAN_NOTE_BLOCKS 1000000u
#define SCAN_NOTE_NS 1000000000u
static char *put_decimal(char *o, uint64_t v)
{
	char d[24];
	int n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n > 0)
		*o++ = d[--n];
	return o;
}

static void note_scan_time(const struct scan_summary *sum)
{
	if (sum->live_blocks < SCAN_NOTE_BLOCKS && sum->duration_ns < SCAN_NOTE_NS)
		return;
	char text[96] = "leak scan: ", *o = text + 11;
	uint64_t cs = (sum->duration_ns + 5000000u) / 10000000u;
	o = put_decimal(o, sum->live_blocks);
	memcpy(o, " blocks classified in ", 22);
	o = put_decimal(o + 22, cs / 100);
	*o++ = '.';
	*o++ = (char)('0' + cs / 10 % 10);
	*o++ = (char)('0' + cs % 10);
	memcpy(o, " s", 3);
	note(0, text);
}

static void write_scan(struct scan_area *a, unsigned flags)
{
	uint8_t head[CAPTURE_CHUNK_HEADER_SIZE + RECORD_SCAN_MAX];
	size_t n = record_scan_put(head + CAPTURE_CHUNK_HEADER_SIZE, a->blocks, a->edges, flags);
	uint32_t tid = tracer_thread_tid();
	writer_chunk_write(head, (uint32_t)n, tid, false);
	uint32_t plen = (uint32_t)(a->len - a->chunk - CAPTURE_CHUNK_HEADER_SIZE);
	memcpy(a->base + a->chunk + 4, &plen, 4);
	for (size_t off = 0; off < a->len;) {
		memcpy(&plen, a->base + off + 4, 4);
		if (plen > 0)
			writer_chunk_write(a->base + off, plen, tid, false);
		off += CAPTURE_CHUNK_HEADER_SIZE + plen;
	}
}

static void run_scan(unsigned flags)
{
	scan_lock();
	bool sampler = atomic_load(&sampler_running) && tracer_tls.phase != TLS_INTERNAL;
	tracer_sampler_pause();
	struct scan_area a = { .cap = 4u << 20 };
	a.base = writer_scratch_map(a.cap);
	if (!a.base) {
		tracer_sampler_resume();
		scan_unlock();
		note(2, "leak scan skipped: out of memory");
		return;
	}
	a.len = CAPTURE_CHUNK_HEADER_SIZE;
	struct scan_options opts;
	scan_options_init(&opts);
	opts.foreach_excluded = tracer_foreach_own_range;
	opts.caller_context = scan_caller;
	struct scan_sink sink = { .block = sink_block, .edge = sink_edge, .arg = &a };
	sink.ref = sink_ref;
	objects_scan_options(&opts); /* objects: object blocks, back-references */
	struct scan_summary sum;
	memset(&sum, 0, sizeof(sum));
	scan_current = &a;
	int r = scan_run(&opts, &sink, &sum);
	scan_current = NULL;
	objects_scan_done();
	tracer_sampler_resume();
	if (r == 0 && !a.failed) {
		if (sum.threads_unresponsive > (sampler ? 1u : 0u))
			flags |= CAPTURE_SCAN_PARTIAL;
		write_scan(&a, flags);
		note_scan_time(&sum);
	} else {
		note(2, r == 0 ? "leak scan incomplete: out of memory for its records"
			       : "leak scan failed");
	}
	writer_scratch_unmap(a.base, a.cap);
	scan_unlock();
}

void tracer_foreach_own_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg)
{
	for (struct tbuf *b = atomic_load(&tracer.tbufs); b; b = b->next)
		fn((uintptr_t)b, (uintptr_t)b + sizeof(*b), arg);
	if (atomic_load(&tracer.init) == INIT_DONE)
		stack_table_foreach_range(&tracer.stacks, fn, arg);
	modules_self_data(fn, arg);
	objects_foreach_own_range(fn, arg);
	struct scan_area *a = scan_current;
	if (a)
		fn((uintptr_t)a->base, (uintptr_t)a->base + a->cap, arg);
}

__attribute__((visibility("default"))) void memprof_leak_check(void)
{
	if (!atomic_load(&tracer.recording) || (pid_t)syscall(SYS_getpid) != tracer.pid)
		return;
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	caller_lock();
	getcontext(&caller_uc);
	scan_caller = &caller_uc;
	run_scan(0);
	caller_unlock();
	/* the events the scan's blocks refer to reach the file too, should
	 * the program be killed next */
	writer_flush_all(false);
	t->guard = guard;
}

static void leak_check_requested(void *arg)
{
	memprof_leak_check();
}

/* MEMPROF_LEAK_CHECK_SIGNAL=N: signal N asks for an on-demand scan. */
static void leak_check_signal_install(void)
{
	const char *v = environ ? tracer_env_lookup(environ, "MEMPROF_LEAK_CHECK_SIGNAL") : NULL;
	if (!v || !v[0])
		return;
	int signo = 0;
	for (; *v >= '0' && *v <= '9' && signo < 1000; v++)
		signo = signo * 10 + (*v - '0');
	if (*v || scan_install_signal(signo, leak_check_requested, NULL) != 0)
		note(1, "MEMPROF_LEAK_CHECK_SIGNAL: not a signal number memprof can use: ignored");
}

/* ---- the constructor ------------------------------------------------------------------ */

__attribute__((constructor)) static void tracer_ctor(void)
{
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	tracer_init();
	env_fixup();
	/* The sampler thread makes every program multi-threaded, and in a
	 * multi-threaded process glibc answers a failed large allocation by
	 * retrying in a new arena, which reserves 64 MiB of address space: under
	 * RLIMIT_AS that reservation alone made later small allocations fail
	 * where the program alone would not.  One arena for the raw allocator
	 * (only blocks over 4096 bytes reach it) keeps glibc's single-threaded
	 * behaviour. */
	mallopt(M_ARENA_MAX, 1);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	if (atomic_load(&tracer.recording)) {
		modules_rescan();
		objects_init(); /* objects: its signal first (objects.c) */
		signals_install();
		on_exit(on_exit_handler, NULL);
		leak_check_signal_install();
		sampler_start();
	}
	/* once the settings are read: the program sees its own environment
	 * (the same allocations as alone, for programs that copy it) */
	if (!tracer.follow_fork && environ)
		tracer_env_hide(environ);
	t->guard = guard;
}
