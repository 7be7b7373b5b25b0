/*
 * views-folded.c: Brendan Gregg's collapsed ("folded") stacks, the input
 * of flamegraph.pl, inferno and speedscope, and the count of temporary
 * allocations they can weigh stacks by.  Entry points:
 * reports_render_folded(), reports_temporary_count().
 *
 * A line is the frames of one stack, outermost first, joined by ';', then
 * a space and the count: "main;load_config;xstrdup 4096".  Frames are
 * named by their function, an inlined call with flamegraph.pl's "_[i]"
 * annotation, an unknown one by module+0xOFFSET (stable from run to run,
 * unlike addresses).  Like the text report, a stack stops at main: what
 * lies below it is the C library's start-up.  Stacks with the same names
 * (say, two calls from different lines of one function) merge into one
 * line; lines are sorted, so the output of a deterministic program is.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reports-private.h"
#include "reports.h"

bool reports_cost_parse(const char *name, enum reports_cost *out)
{
	static const char *const names[] = {"peak", "leaked", "allocations", "bytes", "temporary"};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum reports_cost)i;
			return true;
		}
	}
	return false;
}

/* ---- temporary allocations ---------------------------------------------- */

int reports_temporary_count(const struct reports_capture *cap, const struct reports_analysis *an,
			    uint64_t *per_site, uint64_t *total)
{
	(void)cap; /* the analysis counted them in its pass (analysis.c) */
	for (size_t i = 0; i < an->n_sites; i++)
		per_site[i] = an->sites[i].temporary;
	*total = an->totals.temporary;
	return 0;
}

/* ---- collapsed stacks ----------------------------------------------------- */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Names go out with ';' (the frame separator) as ':' and control
 * characters (a newline would end the line) as '?'. */
void reports_folded_frame_name(FILE *out, const struct reports_frame *f)
{
	if (f->function && f->function[0]) {
		reports_put_clean(out, f->function, ';');
		if (f->inlined)
			fputs("_[i]", out);
	} else if (f->module && f->module[0]) {
		reports_put_clean(out, base_name(f->module), ';');
		fprintf(out, "+0x%" PRIx64, f->offset);
	} else {
		fprintf(out, "0x%" PRIx64, f->address);
	}
}

struct folded_line {
	char *stack;
	uint64_t count;
};

static uint64_t site_cost(const struct reports_site *s, enum reports_cost cost, uint64_t temp)
{
	switch (cost) {
	case REPORTS_COST_PEAK:
		return s->peak_bytes;
	case REPORTS_COST_LEAKED:
		return s->leaked_bytes;
	case REPORTS_COST_ALLOCATIONS:
		return s->allocations;
	case REPORTS_COST_BYTES:
		return s->bytes;
	case REPORTS_COST_TEMPORARY:
		return temp;
	}
	return 0;
}

/* The folded names of one stack, outermost first, into a new string. */
static char *fold_stack(const struct reports_frames *fr)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	size_t start = reports_frames_display_start(fr), end = fr->n;
	for (size_t i = start; i < fr->n; i++) {
		const char *fn = fr->v[i]->function;
		if (fn && !fr->v[i]->inlined && strcmp(fn, "main") == 0) {
			end = i + 1;
			break;
		}
	}
	if (start >= end)
		fputs("[no stack]", m);
	for (size_t i = end; i-- > start;) {
		reports_folded_frame_name(m, fr->v[i]);
		if (i > start)
			fputc(';', m);
	}
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int cmp_line(const void *a, const void *b)
{
	const struct folded_line *x = a, *y = b;
	return strcmp(x->stack, y->stack);
}

int reports_render_folded(FILE *out, const struct reports_capture *cap,
			  const struct reports_analysis *an, struct reports_symbolizer *sym,
			  enum reports_cost cost, const uint64_t *temporary)
{
	struct folded_line *lines = calloc(an->n_sites ? an->n_sites : 1, sizeof(*lines));
	struct reports_frames fr = {0};
	size_t n = 0;
	int res = lines ? 0 : -ENOMEM;
	for (size_t i = 0; i < an->n_sites && res == 0; i++) {
		uint64_t c = site_cost(&an->sites[i], cost, temporary ? temporary[i] : 0);
		if (c == 0)
			continue;
		if ((res = reports_stack_symbolize(sym, cap, an->sites[i].stack, &fr)) < 0)
			break;
		lines[n].count = c;
		if (!(lines[n++].stack = fold_stack(&fr)))
			res = -ENOMEM;
	}
	reports_frames_finish(&fr);
	if (res == 0 && n > 1)
		qsort(lines, n, sizeof(*lines), cmp_line);
	for (size_t i = 0; i < n && res == 0; i++) {
		uint64_t c = lines[i].count;
		while (i + 1 < n && strcmp(lines[i].stack, lines[i + 1].stack) == 0)
			c += lines[++i].count;
		fprintf(out, "%s %" PRIu64 "\n", lines[i].stack, c);
	}
	for (size_t i = 0; lines && i < n; i++)
		free(lines[i].stack);
	free(lines);
	if (res < 0)
		return res;
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
