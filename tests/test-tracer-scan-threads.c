/*
 * test-tracer-scan-threads.c: the leak scan with other threads around:
 * stopping and resuming them, their stacks and registers as roots, leaks
 * made in another thread, the TLS of an exited thread, a thread that
 * blocks the stop signal, the allocator's safe point, threads created
 * during the scan, and scans requested by a signal.
 *
 * Criterion runs its own helper threads in the test process (they block
 * every signal): counts of stopped and unresponsive threads are taken
 * relative to a first scan.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "test-tracer-scan-util.h"

extern void __libc_freeres(void);

static struct scan_summary st_base;

__attribute__((noinline)) static void st_baseline(void)
{
	struct scan_options o;
	scan_options_init(&o);
	o.thread_timeout_ms = 2000;
	st_scan_opts(&o);
	st_base = st_summary;
}

#define st_scan_threads()                      \
	do {                                   \
		st_wipe_stack();               \
		st_scan_threads_impl();        \
	} while (0)

__attribute__((noinline)) static void st_scan_threads_impl(void)
{
	struct scan_options o;
	scan_options_init(&o);
	o.thread_timeout_ms = 2000;
	st_scan_opts(&o);
}

static void wait_flag(int i, int value)
{
	while (st.flag[i] != value)
		usleep(100);
}

/* ---- registers and stacks of stopped threads ----------------------------- */

/* Holds block 0's address in a register only, spinning until flag 2. */
static void *hold_in_register(void *arg)
{
	uintptr_t r;
#if defined(__x86_64__)
	__asm__ volatile("mov %[src], %[r]\n\t"
			 "movl $1, %[ready]\n\t"
			 "1:\n\t"
			 "pause\n\t"
			 "cmpl $0, %[stop]\n\t"
			 "je 1b\n\t"
			 "xor %[r], %[r]\n\t"
			 : [r] "=&r"(r), [ready] "=m"(st.flag[1])
			 : [src] "m"(st.anchor[0]), [stop] "m"(st.flag[2])
			 : "memory", "cc");
#elif defined(__aarch64__)
	__asm__ volatile("ldr %[r], %[src]\n\t"
			 "mov w9, #1\n\t"
			 "str w9, %[ready]\n\t"
			 "1:\n\t"
			 "yield\n\t"
			 "ldr w9, %[stop]\n\t"
			 "cbz w9, 1b\n\t"
			 "mov %[r], xzr\n\t"
			 : [r] "=&r"(r), [ready] "=m"(st.flag[1])
			 : [src] "m"(st.anchor[0]), [stop] "m"(st.flag[2])
			 : "memory", "x9");
#else
#error "hold_in_register: no assembly for this architecture"
#endif
	return NULL;
}

Test(scan_threads, pointer_in_a_register_of_a_stopped_thread_is_a_root)
{
	st_reset();
	st_baseline();
	st_alloc(0, 64);
	st_alloc(1, 64); /* control: held nowhere */
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, hold_in_register, NULL), 0);
	wait_flag(1, 1);
	st_scan_threads();
	cr_expect_eq(st_summary.threads_stopped, st_base.threads_stopped + 1);
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_DEFINITE);
	st.flag[2] = 1;
	pthread_join(t, NULL);
}

/* Busy thread i keeps block i in a stack slot and counts until flag 0. */
static volatile unsigned long busy_count[16];

static void *busy(void *arg)
{
	int i = (int)(intptr_t)arg;
	volatile uintptr_t keep = st.anchor[i];
	__atomic_fetch_add(&st.flag[1], 1, __ATOMIC_SEQ_CST);
	while (!st.flag[0])
		busy_count[i]++;
	keep = 0;
	return (void *)keep;
}

Test(scan_threads, sixteen_busy_threads_are_stopped_scanned_and_resumed)
{
	st_reset();
	st_baseline();
	st_alloc_many(17, 32); /* block 16 is held by nobody */
	pthread_t t[16];
	for (int i = 0; i < 16; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, busy, (void *)(intptr_t)i), 0);
	wait_flag(1, 16);
	st_scan_threads();
	cr_expect_eq(st_summary.threads_stopped, st_base.threads_stopped + 16);
	cr_expect_eq(st_summary.threads_unresponsive, st_base.threads_unresponsive);
	for (int i = 0; i < 16; i++)
		cr_expect_eq(st_kind(i), CAPTURE_LEAK_REACHABLE, "block %d", i);
	cr_expect_eq(st_kind(16), CAPTURE_LEAK_DEFINITE);
	/* they run again: every counter moves */
	unsigned long before[16];
	for (int i = 0; i < 16; i++)
		before[i] = busy_count[i];
	for (int i = 0; i < 16; i++)
		while (busy_count[i] == before[i])
			usleep(100);
	st.flag[0] = 1;
	for (int i = 0; i < 16; i++)
		pthread_join(t[i], NULL);
}

/* ---- leaks made in other threads ------------------------------------------ */

__attribute__((noinline)) static void thread_allocates(void)
{
	st_alloc(0, 48);
	st_alloc(1, 80);
	st_root_set(0, 0, 0);
}

static void *leaker(void *arg)
{
	thread_allocates();
	st_wipe_stack();
	st.flag[1] = 1;
	wait_flag(2, 1);
	return NULL;
}

Test(scan_threads, leak_made_in_another_thread_is_definitely_lost)
{
	st_reset();
	st_baseline();
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, leaker, NULL), 0);
	wait_flag(1, 1);
	st_scan_threads();
	cr_expect_eq(st_summary.threads_stopped, st_base.threads_stopped + 1);
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	cr_expect_eq(st_kind(1), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(st_summary.kinds[CAPTURE_LEAK_DEFINITE].bytes, 80);
	st.flag[2] = 1;
	pthread_join(t, NULL);
}

static __thread volatile uintptr_t tls_slot;

static void *keep_in_tls(void *arg)
{
	tls_slot = st.anchor[0];
	st_wipe_stack();
	return NULL;
}

/* valgrind reports a block held only by an exited thread's TLS as
 * definitely lost: before its leak check it runs __libc_freeres(), which
 * unmaps the cached stacks of exited threads, where glibc keeps their
 * static TLS.  Without it the cached stack is still an rw mapping, a root. */
Test(scan_threads, tls_of_an_exited_thread_is_a_root_until_libc_freeres)
{
	st_reset();
	st_alloc(0, 24);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, keep_in_tls, NULL), 0);
	pthread_join(t, NULL);
	st_scan_threads();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	__libc_freeres();
	st_scan_threads();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_DEFINITE);
}

/* ---- threads that do not stop at once ------------------------------------- */

static void *blocks_signals(void *arg)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	volatile uintptr_t keep = st.anchor[0];
	st.flag[1] = 1;
	while (!st.flag[2])
		usleep(100);
	/* the stop signal is still pending: its handler runs now, inert */
	sigemptyset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	keep = 0;
	st.flag[3] = 1;
	return (void *)keep;
}

Test(scan_threads, thread_blocking_the_signal_is_unresponsive_and_its_stack_scanned)
{
	st_reset();
	st_baseline();
	st_alloc(0, 40);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, blocks_signals, NULL), 0);
	wait_flag(1, 1);
	st_wipe_stack();
	struct scan_options o;
	scan_options_init(&o);
	o.thread_timeout_ms = 200;
	st_scan_opts(&o);
	cr_expect_eq(st_summary.threads_unresponsive, st_base.threads_unresponsive + 1);
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
	st.flag[2] = 1;
	wait_flag(3, 1);
	pthread_join(t, NULL);
	/* the process survived the late signal, and scans go on */
	st_scan_threads();
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_DEFINITE);
}

static void *inside_allocator(void *arg)
{
	scan_alloc_enter();
	st.flag[1] = 1;
	for (int i = 0; i < 20000 && !scan_tls_stop_pending; i++)
		usleep(100);
	st.flag[4] = scan_tls_stop_pending;
	scan_alloc_leave(); /* stops here until the scan is done */
	st.flag[3] = 1;
	return NULL;
}

Test(scan_threads, thread_inside_the_allocator_stops_when_it_leaves)
{
	st_reset();
	st_baseline();
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, inside_allocator, NULL), 0);
	wait_flag(1, 1);
	st_scan_threads();
	cr_expect_eq(st.flag[4], 1, "the signal was deferred");
	cr_expect_eq(st_summary.threads_stopped, st_base.threads_stopped + 1);
	pthread_join(t, NULL);
	cr_expect_eq(st.flag[3], 1);
}

static void *nothing(void *arg)
{
	return arg;
}

static void *spawner(void *arg)
{
	while (!st.flag[0]) {
		pthread_t t;
		if (pthread_create(&t, NULL, nothing, NULL) == 0)
			pthread_join(t, NULL);
	}
	return NULL;
}

Test(scan_threads, threads_created_during_the_scan_do_not_hang_it)
{
	st_reset();
	st_alloc(0, 16);
	st_root_set(0, 0, 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, spawner, NULL), 0);
	for (int i = 0; i < 5; i++) {
		st_scan_threads();
		cr_expect_eq(st_kind(0), CAPTURE_LEAK_REACHABLE);
		cr_expect_geq(st_summary.threads_stopped, 1);
	}
	st.flag[0] = 1;
	pthread_join(t, NULL);
}

/* ---- scans requested by a signal -------------------------------------------- */

static void on_request(void *arg)
{
	st.flag[5]++;
	st_scan_threads_impl();
}

Test(scan_signal, request_runs_at_the_next_poll_not_in_the_handler)
{
	st_reset();
	st_alloc(0, 16);
	cr_assert_eq(scan_install_signal(SIGUSR2, on_request, NULL), 0);
	cr_expect_eq(scan_signal_poll(), false);
	raise(SIGUSR2);
	cr_expect_eq(st.flag[5], 0);
	cr_expect_eq(scan_signal_poll(), true);
	cr_expect_eq(st.flag[5], 1);
	cr_expect_eq(st_kind(0), CAPTURE_LEAK_DEFINITE);
	cr_expect_eq(scan_signal_poll(), false);
	scan_uninstall_signal();
	cr_expect_eq(scan_install_signal(SIGKILL, on_request, NULL), -EINVAL);
}

static void *request_waiter(void *arg)
{
	st.flag[1] = 1;
	st.flag[6] = scan_signal_wait(10000);
	return NULL;
}

Test(scan_signal, waiting_thread_runs_the_request)
{
	st_reset();
	cr_assert_eq(scan_install_signal(SIGUSR2, on_request, NULL), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, request_waiter, NULL), 0);
	wait_flag(1, 1);
	kill(getpid(), SIGUSR2);
	pthread_join(t, NULL);
	cr_expect_eq(st.flag[6], 1);
	cr_expect_eq(st.flag[5], 1);
	scan_uninstall_signal();
}
