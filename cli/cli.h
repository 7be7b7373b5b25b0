/*
 * cli.h: what the sub-commands of the memprof executable share: their
 * entry points (run.c, report.c), their help texts, and the rendering of
 * a loaded capture to the outputs asked for (common.c).
 *
 * Exit statuses (DESIGN.md): the target's own for `memprof run` (128+N when
 * it died of signal N), 2 for memprof's usage errors and unreadable
 * captures, 127 when the program cannot be found, 126 when it cannot be
 * executed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reports.h"

#define CLI_EXIT_USAGE 2
#define CLI_EXIT_NOT_FOUND 127
#define CLI_EXIT_NOT_EXECUTABLE 126

int cli_run_main(int argc, char **argv);
int cli_report_main(int argc, char **argv);

void cli_run_help(FILE *out);
void cli_report_help(FILE *out);

/* Where the report of one capture goes. */
struct cli_outputs {
	FILE *text;        /* NULL: no text report */
	bool color;
	FILE **json;       /* n_json streams for the JSON report */
	size_t n_json;
	const char *const *json_paths;
	size_t top;
	struct reports_outcome outcome;
	/* the HTML report: n_html streams (render-html.c) */
	FILE **html;
	size_t n_html;
	const char *const *html_paths;
	/* leaks (cli/leaks.c): suppressions, gates, SARIF/JUnit/Graphviz */
	struct supp_set *supp;      /* NULL: none */
	bool gen_suppressions;
	struct cli_gates *gates;    /* NULL: none; gates->failed is set */
	FILE *sarif, *junit, *dot;  /* NULL: not asked */
	const char *sarif_path, *junit_path, *dot_path;
};

/* Symbolizes, analyses and renders cap to every output (its events are
 * freed once analysed).  Prints its own
 * errors ("memprof: FILE: ...") and returns 0, or -1 when an output could
 * not be written or memory ran out. */
int cli_outputs_render(struct reports_capture *cap, const struct cli_outputs *outs);

/* Whether colour suits a stream: a terminal, and NO_COLOR not set. */
bool cli_color_wanted(FILE *stream);

/* Parses a whole decimal number in [min, max]; false when it is not one. */
bool cli_parse_count(const char *s, unsigned long min, unsigned long max,
		     unsigned long *out);

/* Parses a size: a number with an optional fraction and unit, "10k",
 * "10KiB" (10240), "10KB" (10000), "1.5M", "2G", "512B", "4096".  K, M, G,
 * T, P, E alone or with "iB" are powers of 1024, with "B" powers of 1000;
 * letters in any case.  0, or -EINVAL (not a size) or -ERANGE (too big). */
int cli_parse_size(const char *s, uint64_t *out);

/* ---- the capture file of `memprof run` (run-capture.c) ---- */

/* Before the run: refuses (message, CLI_EXIT_USAGE) an -o path that is a
 * symbolic link, not a regular file, or cannot be created, and a current
 * directory that cannot be written when output is NULL.  Otherwise creates
 * the file (mode 0600, never through a link) and returns 0 with *fd a
 * descriptor of it, or -1 when output is NULL. */
int cli_capture_prepare(const char *output, int *fd);
/* After the run: the path to read the capture from: path itself, or
 * /proc/self/fd/N (into buf, with a warning) when path was removed during
 * the run but fd still holds the file. */
const char *cli_capture_source(const char *path, int fd, char *buf, size_t size);
/* Why the capture's file system refuses writes ("its file system is
 * full", "...read-only"), or NULL when it seems fine. */
const char *cli_capture_fs_problem(const char *path);
/* After the run: says on stderr that recording stopped early, where and
 * why, when the program ended otherwise than by SIGKILL but the capture
 * ends before it. */
void cli_capture_explain(const char *path, const struct reports_capture *cap,
			 const struct reports_outcome *oc);

/* ---- views, diff and progress (views.c, diff.c, progress.c) ---- */

int cli_diff_main(int argc, char **argv);
void cli_diff_help(FILE *out);

/* What `memprof report` draws instead of a report. */
struct cli_view {
	enum { CLI_VIEW_FOLDED, CLI_VIEW_LINES, CLI_VIEW_TIMELINE } kind;
	enum reports_cost cost;   /* folded */
	const char *lines_target; /* lines: a function or a source file */
	bool ascii;               /* timeline: no UTF-8 block characters */
};

/* Symbolizes and analyses cap, then draws the view into out (named
 * out_name in messages).  Prints its own errors; returns 0, -ENOENT when
 * nothing goes through the --lines target, another -errno else. */
int cli_view_render(struct reports_capture *cap, const struct cli_view *v, FILE *out,
		    const char *out_name);

/* Whether the locale (LC_ALL, LC_CTYPE, LANG) speaks UTF-8. */
bool cli_utf8_wanted(void);

/* Shows on a terminal how far reading and analysing a capture are, once
 * they have taken a second (MEMPROF_PROGRESS_DELAY_MS overrides it).
 * clear erases the line, which comes back at the next step; end erases it
 * for good.  Each may be called more than once. */
void cli_progress_begin(void);
void cli_progress_clear(void);
void cli_progress_end(void);

/* ---- leaks: gates, suppressions, CI formats (leaks.c) ---- */

#define CLI_EXIT_LEAK 23

struct supp_set;

/* The leak gates of `memprof run` and, after cli_outputs_render(), their
 * verdict. */
struct cli_gates {
	bool fail_on_leak;
	unsigned kinds;          /* bits 1 << REPORTS_LEAK_* */
	bool max_leaked_set;
	uint64_t max_leaked;     /* definite + indirect + possible bytes */
	bool max_peak_set;
	uint64_t max_peak;
	int exitcode;            /* --leak-exitcode N */
	bool exitcode_set;       /* else CLI_EXIT_LEAK */
	bool checked;            /* the analysis was there to check */
	bool failed;
	char message[512];       /* the first failed gate, one line */
};

/* Parses --fail-on-leak's KINDS: definite, indirect, possible, reachable
 * (comma separated) or all.  0 or -EINVAL. */
int cli_parse_leak_kinds(const char *s, unsigned *out);

/* Whether any gate is set. */
bool cli_gates_any(const struct cli_gates *g);

/* Called by cli_outputs_render() once the capture is analysed: applies
 * the suppressions, decides the gates and fills the options the
 * renderers need.  0, or -1 after a message. */
int cli_leaks_prepare(const struct reports_capture *cap, struct reports_analysis *an,
		      struct reports_symbolizer *sym, const struct cli_outputs *outs,
		      struct reports_render_options *opts);
/* Writes the SARIF, JUnit and Graphviz outputs asked for.  0, or -1 after
 * a message. */
int cli_leaks_write(const struct reports_capture *cap, const struct reports_analysis *an,
		    struct reports_symbolizer *sym, const struct cli_outputs *outs,
		    const struct reports_render_options *opts);

/* What `memprof run` keeps of its leak options. */
struct cli_run_leaks {
	struct cli_gates gates;
	struct supp_set *supp;
	bool gen_suppressions;
	const char *sarif_path, *junit_path;
	FILE *sarif, *junit;
	int leak_check_signal; /* 0: none */
};

/* The leak options of `memprof run`, as getopt_long entries. */
enum {
	CLI_OPT_FAIL_ON_LEAK = 2048,
	CLI_OPT_LEAK_EXITCODE,
	CLI_OPT_MAX_LEAKED,
	CLI_OPT_MAX_PEAK,
	CLI_OPT_SUPPRESSIONS,
	CLI_OPT_GEN_SUPPRESSIONS,
	CLI_OPT_SARIF,
	CLI_OPT_JUNIT,
	CLI_OPT_LEAK_CHECK_SIGNAL,
};
#define CLI_LEAKS_LONGOPTS                                                          \
	{ "fail-on-leak", optional_argument, NULL, CLI_OPT_FAIL_ON_LEAK },          \
	{ "leak-exitcode", required_argument, NULL, CLI_OPT_LEAK_EXITCODE },        \
	{ "max-leaked", required_argument, NULL, CLI_OPT_MAX_LEAKED },              \
	{ "max-peak", required_argument, NULL, CLI_OPT_MAX_PEAK },                  \
	{ "suppressions", required_argument, NULL, CLI_OPT_SUPPRESSIONS },          \
	{ "gen-suppressions", no_argument, NULL, CLI_OPT_GEN_SUPPRESSIONS },        \
	{ "sarif", required_argument, NULL, CLI_OPT_SARIF },                        \
	{ "junit", required_argument, NULL, CLI_OPT_JUNIT },                        \
	{ "leak-check-signal", required_argument, NULL, CLI_OPT_LEAK_CHECK_SIGNAL }

/* Handles one of those options: -1 to go on, or the exit status after a
 * message (usage prints it). */
int cli_leaks_option(int opt, const char *arg, struct cli_run_leaks *l,
		     int (*usage)(const char *fmt, ...));
/* Opens the SARIF and JUnit files: 0, or CLI_EXIT_USAGE after a message. */
int cli_leaks_open(struct cli_run_leaks *l);
/* Closes them and frees the suppressions. */
void cli_leaks_close(struct cli_run_leaks *l);
/* Points the outputs of one capture at them. */
void cli_leaks_outputs(struct cli_run_leaks *l, struct cli_outputs *outs);
/* In the child, before exec: MEMPROF_LEAK_CHECK_SIGNAL. */
void cli_leaks_child_env(const struct cli_run_leaks *l);
/* The exit status once the report is done (reported: the capture was
 * read): the program's, or the gates' after their message on stderr. */
int cli_leaks_status(struct cli_run_leaks *l, int status, bool reported);
