/*
 * views.c: the views of `memprof report` that are not whole reports:
 * folded stacks for flame graphs (--format folded), the line-by-line view
 * of a function or file (--lines) and the timeline chart (--timeline).
 * Entry point: cli_view_render().
 *
 * Like cli_outputs_render() it symbolizes and analyses the capture; the
 * timeline and the temporary-allocation cost also replay its events, so
 * they are kept until the view is drawn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int render(FILE *out, struct reports_capture *cap, struct reports_analysis *an,
		  struct reports_symbolizer *sym, const struct cli_view *v)
{
	int res;
	uint64_t *temporary = NULL, total = 0;
	switch (v->kind) {
	case CLI_VIEW_FOLDED:
		if (v->cost == REPORTS_COST_TEMPORARY) {
			temporary = calloc(an->n_sites ? an->n_sites : 1, sizeof(*temporary));
			if (!temporary)
				return -ENOMEM;
			if ((res = reports_temporary_count(cap, an, temporary, &total)) < 0) {
				free(temporary);
				return res;
			}
		}
		cli_progress_end();
		res = reports_render_folded(out, cap, an, sym, v->cost, temporary);
		free(temporary);
		return res;
	case CLI_VIEW_LINES:
		cli_progress_end();
		return reports_render_lines(out, cap, an, sym, v->lines_target);
	case CLI_VIEW_TIMELINE: {
		struct reports_timeline_options o = {.ascii = v->ascii};
		cli_progress_end();
		return reports_render_timeline(out, cap, an, &o);
	}
	}
	return -EINVAL;
}

int cli_view_render(struct reports_capture *cap, const struct cli_view *v, FILE *out,
		    const char *out_name)
{
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = sym ? reports_analysis_run(cap, sym) : NULL;
	int res = an ? render(out, cap, an, sym, v) : -ENOMEM;
	cli_progress_end();
	if (res == -ENOENT)
		fprintf(stderr,
			"memprof: no allocation goes through a function or source file named "
			"'%s'\n",
			v->lines_target);
	else if (res == -ENOMEM)
		fprintf(stderr, "memprof: out of memory while analysing the capture\n");
	else if (res < 0)
		fprintf(stderr, "memprof: cannot write %s: %s\n", out_name, strerror(-res));
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	return res;
}
