/*
 * leaks.c: the leak options of `memprof run` (gates for CI, suppressions,
 * --gen-suppressions, SARIF and JUnit outputs, on-demand scans on a
 * signal) and their part of cli_outputs_render().  Entry points:
 * cli_leaks_option() (one option), cli_leaks_open()/cli_leaks_close()
 * (the report files), cli_leaks_prepare() and cli_leaks_write() (called
 * by common.c), cli_leaks_status() (the exit status once reported).
 *
 * Gates, checked after the suppressions:
 *   --fail-on-leak[=KINDS]  any block of those kinds remains (default
 *                           definite,indirect,possible);
 *   --max-leaked SIZE       definite + indirect + possible bytes > SIZE;
 *   --max-peak SIZE         peak live bytes > SIZE.
 * A failed gate makes `memprof run` exit with 23 (or --leak-exitcode N)
 * and prints one line per failed gate on stderr, after the report.
 * SIZE is cli_parse_size()'s: K, KiB = 1024, KB = 1000, and so on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "suppress.h"

#define DEFAULT_KINDS \
	(1u << REPORTS_LEAK_DEFINITE | 1u << REPORTS_LEAK_INDIRECT | 1u << REPORTS_LEAK_POSSIBLE)

int cli_parse_leak_kinds(const char *s, unsigned *out)
{
	static const char *const names[] = { "definite", "indirect", "possible", "reachable" };
	unsigned kinds = 0;
	if (!s || !*s)
		return -EINVAL;
	while (*s) {
		const char *end = strchrnul(s, ',');
		size_t len = (size_t)(end - s);
		bool known = false;
		if (len == 3 && strncmp(s, "all", 3) == 0) {
			kinds |= DEFAULT_KINDS | 1u << REPORTS_LEAK_REACHABLE;
			known = true;
		}
		for (int k = 0; k < 4 && !known; k++) {
			if (strlen(names[k]) == len && strncmp(s, names[k], len) == 0) {
				kinds |= 1u << k; /* names[] is in REPORTS_LEAK_* order */
				known = true;
			}
		}
		if (!known)
			return -EINVAL;
		s = *end ? end + 1 : end;
		if (*end && !*s)
			return -EINVAL; /* a trailing comma */
	}
	*out = kinds;
	return 0;
}

bool cli_gates_any(const struct cli_gates *g)
{
	return g && (g->fail_on_leak || g->max_leaked_set || g->max_peak_set);
}

/* Signal names of --leak-check-signal: a number, or USR1, SIGUSR1,
 * RTMIN+N... */
static int parse_signal(const char *s)
{
	unsigned long n;
	if (cli_parse_count(s, 1, (unsigned long)SIGRTMAX, &n))
		return (int)n;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	static const struct { const char *name; int sig; } names[] = {
		{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP },
		{ "INT", SIGINT },   { "QUIT", SIGQUIT }, { "TERM", SIGTERM },
		{ "ALRM", SIGALRM }, { "WINCH", SIGWINCH }, { "URG", SIGURG },
		{ "PROF", SIGPROF }, { "VTALRM", SIGVTALRM }, { "PWR", SIGPWR },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].sig;
	if (strncasecmp(s, "RTMIN+", 6) == 0 && cli_parse_count(s + 6, 0, 64, &n) &&
	    SIGRTMIN + (int)n <= SIGRTMAX)
		return SIGRTMIN + (int)n;
	return -1;
}

int cli_leaks_option(int opt, const char *arg, struct cli_run_leaks *l,
		     int (*usage)(const char *fmt, ...))
{
	struct cli_gates *g = &l->gates;
	char err[512];
	int r;
	switch (opt) {
	case CLI_OPT_FAIL_ON_LEAK:
		g->fail_on_leak = true;
		g->kinds = DEFAULT_KINDS;
		if (arg && cli_parse_leak_kinds(arg, &g->kinds) < 0)
			return usage("--fail-on-leak wants kinds among definite, indirect, possible, "
				     "reachable (comma separated) or all, not '%s'",
				     arg);
		break;
	case CLI_OPT_LEAK_EXITCODE: {
		unsigned long n;
		if (!cli_parse_count(arg, 0, 255, &n))
			return usage("--leak-exitcode wants a number from 0 to 255, not '%s'", arg);
		g->exitcode = (int)n;
		g->exitcode_set = true;
		break;
	}
	case CLI_OPT_MAX_LEAKED:
	case CLI_OPT_MAX_PEAK: {
		uint64_t v;
		bool leaked = opt == CLI_OPT_MAX_LEAKED;
		if (cli_parse_size(arg, &v) < 0)
			return usage("%s wants a size such as 4096, 10k, 10KB, 10KiB, 1.5GiB, not '%s'",
				     leaked ? "--max-leaked" : "--max-peak", arg);
		if (leaked) {
			g->max_leaked_set = true;
			g->max_leaked = v;
		} else {
			g->max_peak_set = true;
			g->max_peak = v;
		}
		break;
	}
	case CLI_OPT_SUPPRESSIONS:
		if (!l->supp && !(l->supp = supp_set_create()))
			return usage("out of memory");
		if ((r = supp_set_load_file(l->supp, arg, err, sizeof(err))) < 0) {
			fprintf(stderr, "memprof run: %s\n", err);
			return CLI_EXIT_USAGE;
		}
		break;
	case CLI_OPT_GEN_SUPPRESSIONS:
		l->gen_suppressions = true;
		break;
	case CLI_OPT_SARIF:
		if (l->sarif_path)
			return usage("--sarif is given twice");
		l->sarif_path = arg;
		break;
	case CLI_OPT_JUNIT:
		if (l->junit_path)
			return usage("--junit is given twice");
		l->junit_path = arg;
		break;
	case CLI_OPT_LEAK_CHECK_SIGNAL:
		l->leak_check_signal = parse_signal(arg);
		if (l->leak_check_signal <= 0 || l->leak_check_signal == SIGKILL ||
		    l->leak_check_signal == SIGSTOP)
			return usage("--leak-check-signal wants a signal number or name (USR1, "
				     "RTMIN+3...) other than KILL and STOP, not '%s'",
				     arg);
		break;
	default:
		return usage("unknown option");
	}
	return -1;
}

static FILE *open_report(const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f)
		fprintf(stderr, "memprof: cannot write %s: %s\n", path, strerror(errno));
	return f;
}

int cli_leaks_open(struct cli_run_leaks *l)
{
	if (l->sarif_path && !(l->sarif = open_report(l->sarif_path)))
		return CLI_EXIT_USAGE;
	if (l->junit_path && !(l->junit = open_report(l->junit_path)))
		return CLI_EXIT_USAGE;
	return 0;
}

static void close_report(FILE *f, const char *path)
{
	if (f && fclose(f) != 0)
		fprintf(stderr, "memprof: cannot write %s: %s\n", path, strerror(errno));
}

void cli_leaks_close(struct cli_run_leaks *l)
{
	close_report(l->sarif, l->sarif_path);
	close_report(l->junit, l->junit_path);
	l->sarif = l->junit = NULL;
	supp_set_destroy(l->supp);
	l->supp = NULL;
}

void cli_leaks_outputs(struct cli_run_leaks *l, struct cli_outputs *outs)
{
	outs->supp = l->supp;
	outs->gen_suppressions = l->gen_suppressions;
	outs->gates = &l->gates;
	outs->sarif = l->sarif;
	outs->sarif_path = l->sarif_path;
	outs->junit = l->junit;
	outs->junit_path = l->junit_path;
}

void cli_leaks_child_env(const struct cli_run_leaks *l)
{
	if (l->leak_check_signal > 0) {
		char buf[16];
		snprintf(buf, sizeof(buf), "%d", l->leak_check_signal);
		setenv("MEMPROF_LEAK_CHECK_SIGNAL", buf, 1);
	}
}

int cli_leaks_status(struct cli_run_leaks *l, int status, bool reported)
{
	struct cli_gates *g = &l->gates;
	if (!cli_gates_any(g))
		return status;
	if (!reported && !g->checked) {
		g->failed = true;
		snprintf(g->message, sizeof(g->message),
			 "memprof: leak gate failed: there is no capture to check");
	}
	if (!g->failed)
		return status;
	fprintf(stderr, "%s\n", g->message);
	return g->exitcode_set ? g->exitcode : CLI_EXIT_LEAK;
}

/* ---- in cli_outputs_render() ---- */

static const char *kind_phrase(int k)
{
	static const char *const p[] = { "definitely lost", "indirectly lost", "possibly lost",
					 "still reachable" };
	return p[k];
}

/* Appends one line to the gates' message. */
__attribute__((format(printf, 2, 3))) static void fail(struct cli_gates *g, const char *fmt, ...)
{
	size_t len = strlen(g->message);
	if (len > 0 && len + 1 < sizeof(g->message))
		g->message[len++] = '\n';
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(g->message + len, sizeof(g->message) - len, "memprof: leak gate failed: ");
	if (n > 0 && (size_t)n < sizeof(g->message) - len)
		vsnprintf(g->message + len + n, sizeof(g->message) - len - (size_t)n, fmt, ap);
	va_end(ap);
	g->failed = true;
}

static void check_gates(struct cli_gates *g, const struct reports_analysis *an)
{
	g->checked = true;
	g->failed = false;
	g->message[0] = '\0';
	if (g->fail_on_leak) {
		for (int k = REPORTS_LEAK_DEFINITE; k <= REPORTS_LEAK_REACHABLE; k++) {
			if ((g->kinds & (1u << k)) && an->leaks[k].blocks)
				fail(g,
				     "%" PRIu64 " bytes in %" PRIu64 " blocks are %s "
				     "(--fail-on-leak allows none)",
				     an->leaks[k].bytes, an->leaks[k].blocks, kind_phrase(k));
		}
	}
	uint64_t leaked = an->leaks[REPORTS_LEAK_DEFINITE].bytes +
			  an->leaks[REPORTS_LEAK_INDIRECT].bytes +
			  an->leaks[REPORTS_LEAK_POSSIBLE].bytes;
	if (g->max_leaked_set && leaked > g->max_leaked)
		fail(g,
		     "%" PRIu64 " bytes leaked (definitely, indirectly and possibly lost), %" PRIu64
		     " bytes over --max-leaked %" PRIu64,
		     leaked, leaked - g->max_leaked, g->max_leaked);
	uint64_t peak = an->totals.peak_bytes;
	if (g->max_peak_set && peak > g->max_peak)
		fail(g, "peak of %" PRIu64 " bytes, %" PRIu64 " bytes over --max-peak %" PRIu64, peak,
		     peak - g->max_peak, g->max_peak);
}

int cli_leaks_prepare(const struct reports_capture *cap, struct reports_analysis *an,
		      struct reports_symbolizer *sym, const struct cli_outputs *outs,
		      struct reports_render_options *opts)
{
	int ret = 0;
	if (outs->supp && reports_leaks_suppress(an, cap, sym, outs->supp) < 0) {
		fprintf(stderr, "memprof: out of memory while applying the suppressions\n");
		ret = -1;
	}
	opts->supp = outs->supp;
	opts->gen_suppressions = outs->gen_suppressions;
	if (outs->gates) {
		check_gates(outs->gates, an);
		opts->gates = cli_gates_any(outs->gates);
		opts->gate_failure = outs->gates->failed ? outs->gates->message : NULL;
		opts->leaks_reachable = outs->gates->fail_on_leak &&
					(outs->gates->kinds & 1u << REPORTS_LEAK_REACHABLE);
	}
	return ret;
}

int cli_leaks_write(const struct reports_capture *cap, const struct reports_analysis *an,
		    struct reports_symbolizer *sym, const struct cli_outputs *outs,
		    const struct reports_render_options *opts)
{
	struct reports_render_options o = *opts;
	o.color = false;
	int ret = 0;
	if (outs->sarif && reports_render_sarif(outs->sarif, cap, an, sym, &o) < 0) {
		fprintf(stderr, "memprof: %s: cannot write the SARIF report: %s\n",
			outs->sarif_path, strerror(errno));
		ret = -1;
	}
	if (outs->junit && reports_render_junit(outs->junit, cap, an, sym, &o) < 0) {
		fprintf(stderr, "memprof: %s: cannot write the JUnit report: %s\n",
			outs->junit_path, strerror(errno));
		ret = -1;
	}
	if (outs->dot && reports_render_dot(outs->dot, cap, an, sym, &o) < 0) {
		fprintf(stderr, "memprof: %s: cannot write the Graphviz report: %s\n",
			outs->dot_path, strerror(errno));
		ret = -1;
	}
	return ret;
}
