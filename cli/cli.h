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
