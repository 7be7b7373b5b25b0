/*
 * common.c: what `memprof run` and `memprof report` share once a capture is
 * loaded: symbolize it, analyse it, write the text and JSON reports.  Entry
 * point: cli_outputs_render().
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

bool cli_color_wanted(FILE *stream)
{
	const char *no = getenv("NO_COLOR");
	if (no && no[0])
		return false;
	return isatty(fileno(stream));
}

bool cli_parse_count(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	if (!s || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int cli_outputs_render(struct reports_capture *cap, const struct cli_outputs *outs)
{
	int ret = -1;
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = sym ? reports_analysis_run(cap, sym) : NULL;
	if (!an) {
		fprintf(stderr, "memprof: out of memory while analysing the capture\n");
		goto out;
	}
	reports_capture_drop_events(cap);
	struct reports_render_options opts = {
		.top = outs->top,
		.color = outs->color,
		.outcome = outs->outcome,
	};
	ret = 0;
	if (outs->text && reports_render_text(outs->text, cap, an, sym, &opts) < 0) {
		fprintf(stderr, "memprof: cannot write the text report: %s\n", strerror(errno));
		ret = -1;
	}
	opts.color = false;
	for (size_t i = 0; i < outs->n_json; i++) {
		if (reports_render_json(outs->json[i], cap, an, sym, &opts) < 0) {
			fprintf(stderr, "memprof: %s: cannot write the JSON report: %s\n",
				outs->json_paths[i], strerror(errno));
			ret = -1;
		}
	}
out:
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	return ret;
}
