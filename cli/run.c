/*
 * run.c: `memprof run [OPTIONS] [--] PROGRAM [ARGS...]`.  Entry point:
 * cli_run_main().
 *
 * Steps: parse the options; find libmemprof-preload.so next to this
 * executable (build tree or installed tree, or $MEMPROF_PRELOAD); look the
 * program up as execvp would and refuse what LD_PRELOAD cannot trace
 * (static or setuid/setgid programs); open the report files; fork and exec
 * the program with the tracer preloaded (never through a shell), ignoring
 * SIGINT and SIGQUIT while it runs since the terminal sends them to it too;
 * while it runs, follow the capture on a thread of our own and replay its
 * events as they become final (the analysis's longest step, done on the
 * other core rather than after the program; should anything go wrong
 * there, the capture is read again afterwards as `memprof report` would);
 * read the capture, print the text report on stderr, write the other
 * formats; exit with the program's own status (128+N for a death by signal
 * N).  Leak gates, when they come, decide the status in exit_status().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

#include "cli.h"

#define PRELOAD_NAME "libmemprof-preload.so"
#define DEPTH_MAX 256ul

struct run_options {
	const char *output;
	const char **json;
	size_t n_json;
	/* --html FILE (any number of them): paths and their streams */
	const char **html;
	FILE **html_files;
	size_t n_html;
	unsigned long depth;
	unsigned long top;
	bool follow_fork;
	bool free_stacks;
	struct cli_run_leaks *leaks; /* leaks.c: gates, suppressions, SARIF, JUnit */
	bool quiet;
	char **argv; /* the program and its arguments */
	int snapshot_signal; /* objects: --snapshot-signal, or 0 */
};

void cli_run_help(FILE *out)
{
	fputs("Usage: memprof run [OPTIONS] [--] PROGRAM [ARGS...]\n"
	      "\n"
	      "Run PROGRAM with memprof's tracer preloaded, then report its allocations,\n"
	      "its peak and the blocks still live at exit on standard error.\n"
	      "\n"
	      "Options:\n"
	      "  -o, --output FILE  write the capture to FILE\n"
	      "                     (default: memprof.PROGRAM.PID.mpc in the current directory)\n"
	      "      --json FILE    also write the JSON report to FILE (may be repeated)\n"
	      "      --html FILE    also write the HTML report to FILE (may be repeated)\n"
	      "      --depth N      record at most N frames per stack (1 to 256)\n"
	      "      --free-stacks  record the whole stack of every free, for double-free\n"
	      "                     reports (by default only free's caller: faster)\n"
	      "      --follow-fork  trace forked children too, each into its own capture\n"
	      "      --top N        entries of each list of allocation sites (default 5)\n"
	      "  -q, --quiet        do not print the text report\n"
	      "\n"
	      "Leaks and CI gates:\n"
	      "      --fail-on-leak[=KINDS]  exit with status 23 when blocks of these kinds\n"
	      "                     remain after suppressions: definite, indirect, possible,\n"
	      "                     reachable, comma separated, or all\n"
	      "                     (default definite,indirect,possible)\n"
	      "      --max-leaked SIZE  fail when definitely + indirectly + possibly lost\n"
	      "                     bytes exceed SIZE (4096, 10k, 10KiB = 10240, 10KB = 10000)\n"
	      "      --max-peak SIZE  fail when the peak of live bytes exceeds SIZE\n"
	      "      --leak-exitcode N  exit with N (0 to 255) instead of 23 when a gate fails\n"
	      "      --suppressions FILE  suppress the leaks FILE describes (valgrind's or\n"
	      "                     LeakSanitizer's format; may be repeated)\n"
	      "      --gen-suppressions  print a valgrind suppression after each loss record\n"
	      "      --sarif FILE   also write the leaks as SARIF 2.1.0 to FILE\n"
	      "      --junit FILE   also write a JUnit XML test report to FILE\n"
	      "      --leak-check-signal SIG  scan for leaks whenever the program gets SIG\n"
	      "                     (a number or a name: USR2, RTMIN+3...)\n"
	      "\n"
	      "Programs that use libmemprof-heap:\n"
	      "      --snapshot-signal SIG  take a snapshot of the live objects by type\n"
	      "                     whenever the program gets SIG (a number or a name:\n"
	      "                     USR1...); the report shows the growth between snapshots\n"
	      "  -h, --help         show this help and exit\n"
	      "\n"
	      "Exit status: the program's own, 128+N when it died of signal N; when a\n"
	      "gate fails, 23 or the --leak-exitcode status; 2 for a\n"
	      "usage error or a program memprof cannot trace (statically linked, setuid\n"
	      "or setgid), 126 when PROGRAM cannot be executed, 127 when it is not found.\n"
	      "\n"
	      "Environment: MEMPROF_PRELOAD names the tracer library to use instead of the\n"
	      "one installed with memprof.\n",
	      out);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("memprof run: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'memprof help run'.\n", stderr);
	return CLI_EXIT_USAGE;
}

/* objects: a signal number, or a name with or without SIG; 0 when bad. */
static int snapshot_signal_parse(const char *s)
{
	char *end;
	if (s[0] >= '0' && s[0] <= '9') {
		long n = strtol(s, &end, 10);
		return *end == '\0' && n > 0 && n < NSIG && n != SIGKILL && n != SIGSTOP ? (int)n
											  : 0;
	}
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (int n = 1; n < NSIG; n++) {
		const char *abbrev = sigabbrev_np(n);
		if (abbrev && strcmp(abbrev, s) == 0 && n != SIGKILL && n != SIGSTOP)
			return n;
	}
	return 0;
}

static int parse_options(int argc, char **argv, struct run_options *o)
{
	enum { OPT_JSON = 256, OPT_DEPTH, OPT_FOLLOW_FORK, OPT_TOP, OPT_FREE_STACKS };
	enum { OPT_HTML = 1024 }; /* apart from the others: no clash when they grow */
	enum { OPT_SNAPSHOT_SIGNAL = 3072 }; /* objects */
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "html", required_argument, NULL, OPT_HTML },
		CLI_LEAKS_LONGOPTS,
		{ "depth", required_argument, NULL, OPT_DEPTH },
		{ "follow-fork", no_argument, NULL, OPT_FOLLOW_FORK },
		{ "free-stacks", no_argument, NULL, OPT_FREE_STACKS },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "snapshot-signal", required_argument, NULL, OPT_SNAPSHOT_SIGNAL },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	opterr = 0;
	optind = 1;
	/* '+': stop at the program, its options are its own */
	while ((c = getopt_long(argc, argv, "+:o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o->output = optarg;
			break;
		case OPT_JSON:
			o->json[o->n_json++] = optarg;
			break;
		case OPT_HTML:
			o->html[o->n_html++] = optarg;
			break;
		case CLI_OPT_FAIL_ON_LEAK ... CLI_OPT_LEAK_CHECK_SIGNAL: {
			int r = cli_leaks_option(c, optarg, o->leaks, usage_error);
			if (r >= 0)
				return r;
			break;
		}
		case OPT_DEPTH:
			if (!cli_parse_count(optarg, 1, DEPTH_MAX, &o->depth))
				return usage_error("--depth wants a number from 1 to %lu, not '%s'",
						   DEPTH_MAX, optarg);
			break;
		case OPT_FOLLOW_FORK:
			o->follow_fork = true;
			break;
		case OPT_FREE_STACKS:
			o->free_stacks = true;
			break;
		case OPT_TOP:
			if (!cli_parse_count(optarg, 1, 1000000, &o->top))
				return usage_error("--top wants a number from 1 to 1000000, not '%s'",
						   optarg);
			break;
		case 'q':
			o->quiet = true;
			break;
		case OPT_SNAPSHOT_SIGNAL:
			o->snapshot_signal = snapshot_signal_parse(optarg);
			if (!o->snapshot_signal)
				return usage_error("--snapshot-signal wants a signal number or name "
						   "(USR1, SIGUSR2, 10...), not '%s'", optarg);
			break;
		case 'h':
			cli_run_help(stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no program to run");
	o->argv = argv + optind;
	return -1; /* go on */
}

/* ---- finding the tracer ------------------------------------------------- */

/* The path from directory from to directory to, both absolute. */
static void relative_path(const char *from, const char *to, char *out, size_t size)
{
	size_t common = 0, i = 0;
	/* the longest common prefix that ends at a component boundary */
	while (from[i] && from[i] == to[i]) {
		i++;
		if ((from[i] == '/' || !from[i]) && (to[i] == '/' || !to[i]))
			common = i;
	}
	out[0] = '\0';
	const char *up = from + common;
	while (*up) {
		while (*up == '/')
			up++;
		if (!*up)
			break;
		strncat(out, out[0] ? "/.." : "..", size - strlen(out) - 1);
		while (*up && *up != '/')
			up++;
	}
	const char *down = to + common;
	while (*down == '/')
		down++;
	if (*down) {
		if (out[0])
			strncat(out, "/", size - strlen(out) - 1);
		strncat(out, down, size - strlen(out) - 1);
	}
	if (!out[0])
		snprintf(out, size, ".");
}

static bool readable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* Finds the tracer library into out (an absolute path); false with a
 * message when there is none. */
static bool find_preload(char *out, size_t size)
{
	const char *env = getenv("MEMPROF_PRELOAD");
	if (env && env[0]) {
		if (!realpath(env, out) || !readable(out)) {
			fprintf(stderr, "memprof: MEMPROF_PRELOAD=%s: no such library\n", env);
			return false;
		}
		return true;
	}
	char exe[PATH_MAX];
	if (!realpath("/proc/self/exe", exe)) {
		fprintf(stderr, "memprof: cannot find my own executable: %s\n", strerror(errno));
		return false;
	}
	*strrchr(exe, '/') = '\0';
	char rel[PATH_MAX], candidate[PATH_MAX * 2 + 64];
	/* the build tree: build/cli/memprof and build/tracer/ */
	snprintf(candidate, sizeof(candidate), "%s/../tracer/" PRELOAD_NAME, exe);
	if (readable(candidate) && realpath(candidate, out))
		return true;
	/* the installed tree, wherever it was moved as a whole */
	relative_path(MEMPROF_BINDIR, MEMPROF_PKGLIBDIR, rel, sizeof(rel));
	snprintf(candidate, sizeof(candidate), "%s/%s/" PRELOAD_NAME, exe, rel);
	if (readable(candidate) && realpath(candidate, out))
		return true;
	fprintf(stderr,
		"memprof: cannot find " PRELOAD_NAME " (looked in %s/../tracer and %s/%s);\n"
		"memprof: set MEMPROF_PRELOAD to its path\n",
		exe, exe, rel);
	return false;
}

/* ---- checking the program ------------------------------------------------ */

/* Looks the program up as execvp does.  Returns 0 with its path in out, or
 * the exit status (127 not found, 126 not executable) after a message. */
static int find_program(const char *name, char *out, size_t size)
{
	struct stat st;
	if (strchr(name, '/')) {
		if (stat(name, &st) < 0) {
			fprintf(stderr, "memprof: %s: %s\n", name, strerror(errno));
			return errno == ENOENT || errno == ENOTDIR ? CLI_EXIT_NOT_FOUND
								   : CLI_EXIT_NOT_EXECUTABLE;
		}
		if (S_ISDIR(st.st_mode)) {
			fprintf(stderr, "memprof: %s: is a directory\n", name);
			return CLI_EXIT_NOT_EXECUTABLE;
		}
		if (access(name, X_OK) < 0) {
			fprintf(stderr, "memprof: %s: %s\n", name, strerror(errno));
			return CLI_EXIT_NOT_EXECUTABLE;
		}
		snprintf(out, size, "%s", name);
		return 0;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	bool denied = false;
	while (*name) {
		const char *end = strchrnul(path, ':');
		int len = (int)(end - path);
		snprintf(out, size, "%.*s%s%s", len, path, len ? "/" : "", name);
		if (stat(out, &st) == 0) {
			if (!S_ISDIR(st.st_mode) && access(out, X_OK) == 0)
				return 0;
			denied = true;
		}
		if (!*end)
			break;
		path = end + 1;
	}
	if (denied) {
		fprintf(stderr, "memprof: %s: permission denied\n", name);
		return CLI_EXIT_NOT_EXECUTABLE;
	}
	fprintf(stderr, "memprof: %s: command not found\n", name);
	return CLI_EXIT_NOT_FOUND;
}

/* Whether an ELF file has a program interpreter (PT_INTERP): -1 when it is
 * not ELF (a script: its interpreter is what runs), 0 no, 1 yes. */
static int has_interpreter(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	unsigned char ident[EI_NIDENT];
	int res = -1;
	if (pread(fd, ident, sizeof(ident), 0) != (ssize_t)sizeof(ident) ||
	    memcmp(ident, ELFMAG, SELFMAG) != 0)
		goto out;
	bool is64 = ident[EI_CLASS] == ELFCLASS64;
	uint64_t phoff;
	unsigned phnum, phentsize;
	if (is64) {
		Elf64_Ehdr eh;
		if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
			goto out;
		phoff = eh.e_phoff;
		phnum = eh.e_phnum;
		phentsize = eh.e_phentsize;
	} else {
		Elf32_Ehdr eh;
		if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
			goto out;
		phoff = eh.e_phoff;
		phnum = eh.e_phnum;
		phentsize = eh.e_phentsize;
	}
	if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)))
		goto out;
	res = 0;
	for (unsigned i = 0; i < phnum && i < 4096; i++) {
		uint32_t type;
		if (pread(fd, &type, sizeof(type), (off_t)(phoff + (uint64_t)i * phentsize)) !=
		    (ssize_t)sizeof(type))
			break;
		if (type == PT_INTERP) {
			res = 1;
			break;
		}
	}
out:
	close(fd);
	return res;
}

/* Refuses what LD_PRELOAD cannot trace; 0 or exit status 2. */
static int check_traceable(const char *name, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) {
		fprintf(stderr,
			"memprof: %s is set-user-ID or set-group-ID: the dynamic loader ignores "
			"LD_PRELOAD for it, so memprof cannot trace it\n",
			name);
		return CLI_EXIT_USAGE;
	}
	if (has_interpreter(path) == 0) {
		fprintf(stderr,
			"memprof: %s is statically linked: memprof traces programs through "
			"LD_PRELOAD, which only dynamically linked programs load\n",
			name);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

/* ---- running it ---------------------------------------------------------- */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* The capture path for a target pid: -o's, or memprof.PROG.PID.mpc. */
static void capture_path(const struct run_options *o, long pid, char *out, size_t size)
{
	if (o->output) {
		snprintf(out, size, "%s", o->output);
		return;
	}
	/* the program's name as the tracer spells it: [A-Za-z0-9._+-] only */
	char prog[NAME_MAX + 1];
	snprintf(prog, sizeof(prog), "%s", base_name(o->argv[0]));
	for (char *p = prog; *p; p++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-", *p))
			*p = '_';
	snprintf(out, size, "memprof.%s.%ld.mpc", prog[0] ? prog : "prog", pid);
}

/* Sets up the child's environment and execs; never returns. */
__attribute__((noreturn)) static void child(const struct run_options *o, const char *preload,
					    const char *cwd, int err_fd)
{
	char buf[PATH_MAX * 2 + 64], path[PATH_MAX];
	const char *old = getenv("LD_PRELOAD");
	if (old && old[0])
		snprintf(buf, sizeof(buf), "%s:%s", preload, old);
	else
		snprintf(buf, sizeof(buf), "%s", preload);
	setenv("LD_PRELOAD", buf, 1);
	capture_path(o, (long)getpid(), path, sizeof(path));
	if (path[0] != '/') {
		snprintf(buf, sizeof(buf), "%s/%s", cwd, path);
		setenv("MEMPROF_OUTPUT", buf, 1);
	} else {
		setenv("MEMPROF_OUTPUT", path, 1);
	}
	if (o->depth) {
		snprintf(buf, sizeof(buf), "%lu", o->depth);
		setenv("MEMPROF_DEPTH", buf, 1);
	}
	cli_leaks_child_env(o->leaks);
	if (o->snapshot_signal) { /* objects */
		snprintf(buf, sizeof(buf), "%d", o->snapshot_signal);
		setenv("MEMPROF_SNAPSHOT_SIGNAL", buf, 1);
	}
	if (o->free_stacks)
		setenv("MEMPROF_FREE_STACKS", "1", 1);
	else
		unsetenv("MEMPROF_FREE_STACKS");
	if (o->follow_fork)
		setenv("MEMPROF_FOLLOW_FORK", "1", 1);
	else
		unsetenv("MEMPROF_FOLLOW_FORK");
	execvp(o->argv[0], o->argv);
	int e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(CLI_EXIT_NOT_EXECUTABLE);
	_exit(e == ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_NOT_EXECUTABLE);
}

/* The nice value of the thread that compresses the capture: where it and
 * the program (and the live replay) want more cores than there are, they
 * go first, and it catches up when they wait or end.  Only the compressor:
 * the replay, niced too, fell behind the program and then ran alone after
 * it (two threads churning: 1.6 -> 2.8 s); the compressor niced, 1.56 ->
 * 1.50 s (medians of 6, side by side), churn unchanged. */
#define PACKER_NICE 10

/* Called by the compressing thread first: names it, and it yields to the
 * program (on Linux a thread's nice value is its own). */
static void packer_yields(void)
{
	pthread_setname_np(pthread_self(), "memprof-pack");
	errno = 0;
	int now = getpriority(PRIO_PROCESS, (id_t)gettid());
	if (errno == 0 && now < PACKER_NICE)
		setpriority(PRIO_PROCESS, (id_t)gettid(), PACKER_NICE);
}

/* A thread of memprof's own, with every signal blocked (they are the
 * program's business, or the main thread's); false if it did not start. */
static bool thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	bool started = pthread_create(thread, NULL, fn, arg) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

/* The capture compressed on a thread of its own (reports/compress.c), then
 * put in its place: while the program runs, following the file (follow),
 * or else after it, while the reports are made from the plain file. */
struct packer {
	pthread_t thread;
	bool started;
	bool follow;
	atomic_bool ended; /* follow: the program is over */
	atomic_bool done;  /* the thread has finished (res is set) */
	const char *capture;
	char tmp[PATH_MAX];
	int res;
};

static bool pack_ended(void *arg)
{
	return atomic_load(&((struct packer *)arg)->ended);
}

static void *pack_thread(void *arg)
{
	struct packer *p = arg;
	packer_yields();
	struct reports_error err;
	if (p->follow)
		p->res = reports_capture_compress_follow(p->capture, p->tmp, pack_ended, p, &err);
	else
		p->res = reports_capture_compress(p->capture, p->tmp, &err);
	atomic_store(&p->done, true);
	return NULL;
}

static void pack_start(struct packer *p, const char *capture, bool follow)
{
	p->capture = capture;
	p->started = false;
	p->follow = follow;
	atomic_init(&p->ended, false);
	atomic_init(&p->done, false);
	int n = snprintf(p->tmp, sizeof(p->tmp), "%s.%ld.tmp", capture, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(p->tmp))
		return;
	unlink(p->tmp); /* a leftover of a memprof run killed with our pid */
	p->started = thread_start(&p->thread, pack_thread, p);
}

/* The program is over: a following packer takes what is left. */
static void pack_ended_now(struct packer *p)
{
	atomic_store(&p->ended, true);
}

/* Puts the file tmp in the place of path, as rename() does, and removes
 * what path was (the plain capture).  The two names are swapped rather
 * than tmp renamed over path: ext4 makes a rename that replaces a file
 * start writing the new one out first (its guard against empty files after
 * a crash), which on the churn benchmark's 194 MB capture cost `memprof
 * run` 0.15 to 0.25 s of its 1.8 s, every time, for a file the page cache
 * writes out on its own.  Where swapping is not supported, rename(). */
static int swap_in(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0)
		return unlink(tmp) < 0 && errno != ENOENT ? -1 : 0;
	return rename(tmp, path);
}

static void pack_finish(struct packer *p, bool keep)
{
	if (!p->started)
		return;
	pack_ended_now(p);
	pthread_join(p->thread, NULL);
	p->started = false;
	if (p->res == 0 && (!keep || swap_in(p->tmp, p->capture) < 0))
		unlink(p->tmp);
}

/* ---- the capture followed while the program runs ------------------------ */

struct live {
	pthread_t thread;
	bool started;
	struct packer pack; /* the capture compressed as it grows */
	bool verbose;    /* MEMPROF_LIVE=verbose */
	uint64_t at_end; /* the events replayed when the program ended */
	char path[PATH_MAX];
	pthread_mutex_t lock;
	bool ended;                  /* under lock */
	struct reports_capture *cap; /* under lock until the thread is joined */
	int res;
};

static void *live_main(void *arg)
{
	struct live *l = arg;
	pthread_setname_np(pthread_self(), "memprof-replay");
	struct stat st;
	bool ended = false;
	/* the tracer creates the capture as the program starts */
	while (stat(l->path, &st) < 0) {
		pthread_mutex_lock(&l->lock);
		ended = l->ended;
		pthread_mutex_unlock(&l->lock);
		if (ended) {
			l->res = -ENOENT;
			return NULL;
		}
		reports_growing_wait();
	}
	struct reports_capture *cap = NULL;
	struct reports_error err;
	l->res = reports_capture_follow(l->path, &cap, &err);
	if (l->res < 0)
		return NULL;
	pthread_mutex_lock(&l->lock);
	l->cap = cap;
	if (l->ended)
		l->at_end = reports_capture_follow_end(cap);
	pthread_mutex_unlock(&l->lock);
	l->res = reports_analysis_prepass(cap);
	return NULL;
}

/* MEMPROF_LIVE=0 reads the capture only after the program, as memprof
 * report does; MEMPROF_LIVE=verbose says how far the replay had got when
 * the program ended. */
static void live_start(struct live *l, const char *path)
{
	const char *how = getenv("MEMPROF_LIVE");
	if (how && strcmp(how, "0") == 0)
		return;
	l->verbose = how && strcmp(how, "verbose") == 0;
	snprintf(l->path, sizeof(l->path), "%s", path);
	pack_start(&l->pack, l->path, true);
	pthread_mutex_init(&l->lock, NULL);
	l->started = thread_start(&l->thread, live_main, l);
}

/* The program is over: the follower reads the rest.  Returns the capture
 * with the pass made, or NULL (then read it as usual). */
static struct reports_capture *live_finish(struct live *l)
{
	if (!l->started)
		return NULL;
	pthread_mutex_lock(&l->lock);
	l->ended = true;
	if (l->cap)
		l->at_end = reports_capture_follow_end(l->cap);
	pthread_mutex_unlock(&l->lock);
	pack_ended_now(&l->pack);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_join(l->thread, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_destroy(&l->lock);
	l->started = false;
	if (l->verbose)
		fprintf(stderr,
			"memprof: live: %llu events replayed while the program ran, %s "
			"(%.2f s after it)\n",
			(unsigned long long)l->at_end,
			l->res < 0 ? "then given up: the capture is read again" : "the rest after",
			(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (l->res < 0) {
		reports_capture_destroy(l->cap);
		l->cap = NULL;
	}
	return l->cap;
}

/* Runs the program (and the follower, once it is exec'd); returns its wait
 * status, or -1 after a message (with *exit_code set). */
static int spawn_and_wait(const struct run_options *o, const char *preload, long *pid_out,
			  int *exit_code, struct live *live)
{
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd))) {
		fprintf(stderr, "memprof: cannot get the current directory: %s\n", strerror(errno));
		*exit_code = CLI_EXIT_USAGE;
		return -1;
	}
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		fprintf(stderr, "memprof: cannot run %s: %s\n", o->argv[0], strerror(errno));
		*exit_code = CLI_EXIT_NOT_EXECUTABLE;
		return -1;
	}
	/* Block SIGINT/SIGQUIT across the fork: the parent ignores them from
	 * then on, the child gets back its mask and default dispositions. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &old);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		sigprocmask(SIG_SETMASK, &old, NULL);
		child(o, preload, cwd, pipefd[1]);
	}
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	if (pid > 0) {
		sigaction(SIGINT, &ign, &old_int);
		sigaction(SIGQUIT, &ign, &old_quit);
		/* for good: a report written into a pipe whose reader left
		 * (`memprof run prog 2>&1 | head`) stops there, and memprof
		 * still puts the compressed capture in place and exits with
		 * the program's status, instead of dying of SIGPIPE with the
		 * compression half done */
		sigaction(SIGPIPE, &ign, NULL);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(pipefd[1]);
	if (pid < 0) {
		fprintf(stderr, "memprof: cannot fork: %s\n", strerror(errno));
		close(pipefd[0]);
		*exit_code = CLI_EXIT_NOT_EXECUTABLE;
		return -1;
	}
	int exec_errno = 0;
	ssize_t n;
	do
		n = read(pipefd[0], &exec_errno, sizeof(exec_errno));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == 0) { /* exec'd: the capture is on its way */
		char path[PATH_MAX];
		capture_path(o, (long)pid, path, sizeof(path));
		live_start(live, path);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (n == (ssize_t)sizeof(exec_errno)) {
		fprintf(stderr, "memprof: cannot run %s: %s\n", o->argv[0], strerror(exec_errno));
		*exit_code = exec_errno == ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_NOT_EXECUTABLE;
		return -1;
	}
	*pid_out = (long)pid;
	return status;
}

/* The program's wait status as an exit status (128+N for signal N). */
static int exit_status(int wstatus, struct reports_outcome *oc)
{
	oc->known = true;
	if (WIFSIGNALED(wstatus)) {
		oc->signal = WTERMSIG(wstatus);
		oc->exit_status = 128 + oc->signal;
	} else {
		oc->signal = 0;
		oc->exit_status = WEXITSTATUS(wstatus);
	}
	return oc->exit_status;
}

/* Lists the captures of forked children: STEM.PID[.PID...].mpc written
 * since the run began, STEM being the capture path without ".mpc". */
static void list_children(const char *capture, time_t since)
{
	char dir[PATH_MAX], stem[PATH_MAX];
	const char *slash = strrchr(capture, '/');
	if (slash)
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - capture + 1), capture);
	else
		snprintf(dir, sizeof(dir), "./");
	snprintf(stem, sizeof(stem), "%s", slash ? slash + 1 : capture);
	size_t sl = strlen(stem);
	if (sl > 4 && strcmp(stem + sl - 4, ".mpc") == 0)
		stem[sl -= 4] = '\0';
	DIR *d = opendir(dir);
	if (!d)
		return;
	bool first = true;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		size_t nl = strlen(name);
		if (strncmp(name, stem, sl) != 0 || nl < sl + 6 || name[sl] != '.' ||
		    strcmp(name + nl - 4, ".mpc") != 0)
			continue;
		/* between the stem and ".mpc": digits and dots only */
		bool ok = name[sl + 1] >= '0' && name[sl + 1] <= '9';
		for (size_t i = sl + 1; i < nl - 4 && ok; i++)
			ok = (name[i] >= '0' && name[i] <= '9') || (name[i] == '.' && name[i + 1] != '.');
		char full[PATH_MAX * 2];
		snprintf(full, sizeof(full), "%s%s", slash ? dir : "", name);
		struct stat st;
		if (!ok || stat(full, &st) < 0 || st.st_mtime < since)
			continue;
		if (first)
			fputs("memprof: captures of forked children (see them with 'memprof report FILE'):\n",
			      stderr);
		first = false;
		fprintf(stderr, "  %s\n", full);
	}
	closedir(d);
}

static int run_with(int argc, char **argv, struct run_options *op, FILE **json);

/* Reads the capture and writes the reports; the status is the program's. */
static int report(const struct run_options *o, const char *capture, int capture_fd,
		  FILE **json, struct reports_outcome *oc, struct reports_capture *live,
		  struct packer *live_pack)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	char fd_path[64];
	const char *source = cli_capture_source(capture, capture_fd, fd_path, sizeof(fd_path));
	struct packer own = { .started = false };
	/* a packer that followed the capture and gave up (a file system short
	 * of room while the program ran) leaves it to one after the program */
	if (live_pack && live_pack->started && atomic_load(&live_pack->done) &&
	    live_pack->res < 0)
		pack_finish(live_pack, false);
	struct packer *packer = live_pack && live_pack->started ? live_pack : &own;
	if (packer == &own && source == capture)
		pack_start(&own, capture, false);
	cli_progress_begin(); /* progress.c: cli_outputs_render ends it */
	int loaded = 0;
	if (live)
		cap = live; /* read while the program ran */
	else
		loaded = reports_capture_load_file(source, &cap, &err);
	cli_progress_clear();
	if (loaded < 0) {
		pack_finish(packer, false);
		struct stat st;
		const char *full = cli_capture_fs_problem(capture);
		if (full && oc->signal != SIGKILL)
			fprintf(stderr,
				"memprof: recording stopped: nothing usable could be written to "
				"the capture %s: %s\n",
				capture, full);
		else if (stat(source, &st) < 0 || st.st_size == 0)
			fprintf(stderr,
				"memprof: no capture was written to %s: the program did not load "
				"memprof's tracer, or was killed before it started\n",
				capture);
		else
			fprintf(stderr, "memprof: %s: %s\n", capture, err.message);
		return -1;
	}
	cli_capture_explain(capture, cap, oc);
	struct cli_outputs outs = {
		.text = o->quiet ? NULL : stderr,
		.color = !o->quiet && cli_color_wanted(stderr),
		.json = json,
		.n_json = o->n_json,
		.json_paths = o->json,
		.html = o->html_files,
		.n_html = o->n_html,
		.html_paths = o->html,
		.top = o->top,
		.outcome = *oc,
	};
	cli_leaks_outputs(o->leaks, &outs);
	int res = cli_outputs_render(cap, &outs);
	/* a capture that stopped early stays as the tracer left it: the
	 * warning above names its byte offsets */
	bool keep = !cap->incomplete && source == capture;
	reports_capture_destroy(cap);
	pack_finish(packer, keep);
	return res;
}

int cli_run_main(int argc, char **argv)
{
	/* at most one --json per argument */
	const char **json_paths = calloc((size_t)argc + 1, sizeof(*json_paths));
	FILE **json = calloc((size_t)argc + 1, sizeof(*json));
	if (!json_paths || !json) {
		fprintf(stderr, "memprof: out of memory\n");
		free(json_paths);
		free(json);
		return CLI_EXIT_USAGE;
	}
	/* the same for --html */
	const char **html_paths = calloc((size_t)argc + 1, sizeof(*html_paths));
	FILE **html = calloc((size_t)argc + 1, sizeof(*html));
	struct cli_run_leaks leaks = { 0 };
	struct run_options o = { .json = json_paths, .html = html_paths, .html_files = html,
				 .leaks = &leaks };
	int status = CLI_EXIT_USAGE;
	if (html_paths && html)
		status = run_with(argc, argv, &o, json);
	else
		fprintf(stderr, "memprof: out of memory\n");
	free(html_paths);
	free(html);
	free(json_paths);
	free(json);
	return status;
}

static int run_with(int argc, char **argv, struct run_options *op, FILE **json)
{
	struct run_options o = *op;
	int status = parse_options(argc, argv, &o);
	if (status >= 0)
		return status;

	char preload[PATH_MAX], program[PATH_MAX];
	if ((status = find_program(o.argv[0], program, sizeof(program))) != 0)
		return status;
	if ((status = check_traceable(o.argv[0], program)) != 0)
		return status;
	if (!find_preload(preload, sizeof(preload)))
		return CLI_EXIT_USAGE;

	/* open the report files first: a bad path is a usage error, found
	 * before the program runs rather than after */
	size_t opened = 0;
	for (; opened < o.n_json; opened++) {
		json[opened] = fopen(o.json[opened], "we");
		if (!json[opened]) {
			fprintf(stderr, "memprof: cannot write %s: %s\n", o.json[opened],
				strerror(errno));
			status = CLI_EXIT_USAGE;
			break;
		}
	}
	size_t opened_html = 0;
	for (; status == 0 && opened_html < o.n_html; opened_html++) {
		o.html_files[opened_html] = fopen(o.html[opened_html], "we");
		if (!o.html_files[opened_html]) {
			fprintf(stderr, "memprof: cannot write %s: %s\n", o.html[opened_html],
				strerror(errno));
			status = CLI_EXIT_USAGE;
			break;
		}
	}
	if (status == 0)
		status = cli_leaks_open(o.leaks);
	/* the capture file too (run-capture.c: no links, mode 0600) */
	int capture_fd = -1;
	if (status == 0)
		status = cli_capture_prepare(o.output, &capture_fd);
	time_t started = time(NULL);
	long pid = 0;
	struct live live = { .started = false };
	int wstatus = status == 0 ? spawn_and_wait(&o, preload, &pid, &status, &live) : -1;
	struct reports_capture *followed = live_finish(&live);
	if (wstatus < 0) {
		reports_capture_destroy(followed);
		followed = NULL;
	}
	if (wstatus < 0 && capture_fd >= 0)
		unlink(o.output); /* created for a program that never ran */
	if (wstatus >= 0) {
		struct reports_outcome oc = { 0 };
		char capture[PATH_MAX];
		status = exit_status(wstatus, &oc);
		capture_path(&o, pid, capture, sizeof(capture));
		int reported = report(&o, capture, capture_fd, json, &oc, followed, &live.pack);
		/* the leak gates decide now, the report done */
		status = cli_leaks_status(o.leaks, status, reported >= 0);
		if (o.follow_fork)
			list_children(capture, started);
	}
	pack_finish(&live.pack, false); /* a program that never ran: nothing to keep */
	if (capture_fd >= 0)
		close(capture_fd);
	cli_leaks_close(o.leaks);
	for (size_t i = 0; i < opened; i++) {
		if (fclose(json[i]) != 0)
			fprintf(stderr, "memprof: cannot write %s: %s\n", o.json[i], strerror(errno));
	}
	for (size_t i = 0; i < opened_html; i++) {
		if (fclose(o.html_files[i]) != 0)
			fprintf(stderr, "memprof: cannot write %s: %s\n", o.html[i], strerror(errno));
	}
	return status;
}
