/*
 * render-text.c: the report a person reads at the end of `memprof run`.
 * Entry point: reports_render_text().
 *
 * In order: the program and how it ended, totals (allocations, frees,
 * bytes, the peak and when, what was live at exit), the top allocation
 * sites by peak, by bytes and by count, the 'lineno' traceback view, every
 * block still live at exit grouped by stack the way memcheck prints its loss
 * records, the leak summary, the allocator's statistics, bad frees with
 * their stacks, and the notes (incomplete capture, lost events, the
 * tracer's own remarks).  Colour is the caller's choice (a TTY without
 * NO_COLOR).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <memprof/capture.h>

#include "reports.h"

#define DEFAULT_TOP 5u
/* Frames shown per stack. */
#define TEXT_FRAMES_MAX 12u

struct text {
	FILE *out;
	const struct reports_capture *cap;
	const struct reports_analysis *an;
	struct reports_symbolizer *sym;
	const struct reports_render_options *opts;
	struct reports_frames fr;
};

static const char *color(const struct text *t, const char *code)
{
	return t->opts->color ? code : "";
}

#define BOLD "\033[1m"
#define RED "\033[31m"
#define YELLOW "\033[33m"
#define RESET "\033[0m"

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void heading(struct text *t, const char *title)
{
	fprintf(t->out, "\n%s%s%s\n", color(t, BOLD), title, color(t, RESET));
}

/* A byte count: exact, with a readable unit for large ones. */
static void print_bytes(FILE *out, uint64_t n)
{
	if (n < 10240) {
		fprintf(out, "%" PRIu64 " bytes", n);
		return;
	}
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n / 1024.0;
	unsigned u = 0;
	while (v >= 1024.0 && u < 3) {
		v /= 1024.0;
		u++;
	}
	fprintf(out, "%" PRIu64 " bytes (%.1f %s)", n, v, units[u]);
}

static void print_frame(struct text *t, const struct reports_frame *f, bool first,
			const char *indent)
{
	fprintf(t->out, "%s%s 0x%" PRIx64 ": ", indent, first ? "at" : "by", f->address);
	reports_put_clean(t->out, f->function ? f->function : "???", 0);
	if (f->file) {
		fputs(" (", t->out);
		reports_put_clean(t->out, base_name(f->file), 0);
		if (f->line)
			fprintf(t->out, ":%u", f->line);
		fputc(')', t->out);
	} else if (f->module) {
		fputs(" (in ", t->out);
		reports_put_clean(t->out, f->module, 0);
		if (!f->function)
			fprintf(t->out, "+0x%" PRIx64, f->offset);
		fputc(')', t->out);
	}
	if (f->inlined)
		fputs(" [inlined]", t->out);
	fputc('\n', t->out);
}

static int print_stack(struct text *t, uint32_t stack, const char *indent)
{
	int res = reports_stack_symbolize(t->sym, t->cap, stack, &t->fr);
	if (res < 0)
		return res;
	size_t start = reports_frames_display_start(&t->fr);
	if (start >= t->fr.n) {
		fprintf(t->out, "%s(no stack recorded)\n", indent);
		return 0;
	}
	/* like memcheck, nothing below main: the C library's start-up frames */
	size_t end = t->fr.n;
	for (size_t i = start; i < t->fr.n; i++) {
		const char *fn = t->fr.v[i]->function;
		if (fn && !t->fr.v[i]->inlined && strcmp(fn, "main") == 0) {
			end = i + 1;
			break;
		}
	}
	size_t shown = 0;
	for (size_t i = start; i < end && shown < TEXT_FRAMES_MAX; i++, shown++)
		print_frame(t, t->fr.v[i], i == start, indent);
	if (end - start > shown)
		fprintf(t->out, "%s... %zu more frames\n", indent, end - start - shown);
	return 0;
}

/* One frame on one line: "func (file.c:12)". */
static void print_frame_short(struct text *t, const struct reports_frame *f)
{
	reports_put_clean(t->out, f->function ? f->function : "???", 0);
	if (f->file) {
		fputs(" (", t->out);
		reports_put_clean(t->out, base_name(f->file), 0);
		fprintf(t->out, ":%u)", f->line);
	} else if (f->module) {
		fputs(" (in ", t->out);
		reports_put_clean(t->out, base_name(f->module), 0);
		fputc(')', t->out);
	}
}

/* A stack on one line: its first two frames of the program. */
static int print_stack_short(struct text *t, uint32_t stack)
{
	int res = reports_stack_symbolize(t->sym, t->cap, stack, &t->fr);
	if (res < 0)
		return res;
	size_t shown = 0;
	for (size_t i = 0; i < t->fr.n && shown < 2; i++) {
		const struct reports_frame *f = t->fr.v[i];
		if (reports_frame_is_allocator(f))
			continue;
		fputs(shown ? " < " : "", t->out);
		print_frame_short(t, f);
		shown++;
		if (f->function && !f->inlined && strcmp(f->function, "main") == 0)
			break;
	}
	if (shown == 0)
		fputs("(no stack recorded)", t->out);
	fputc('\n', t->out);
	return 0;
}

static void print_header(struct text *t)
{
	const struct reports_capture *cap = t->cap;
	struct reports_outcome oc = t->opts->outcome;
	if (!oc.known)
		reports_capture_outcome(cap, &oc);
	fprintf(t->out, "%smemprof report%s: ", color(t, BOLD), color(t, RESET));
	if (cap->argc > 0) {
		for (size_t i = 0; i < cap->argc && i < 8; i++) {
			fputs(i ? " " : "", t->out);
			reports_put_clean(t->out, cap->argv[i], 0);
		}
		if (cap->argc > 8)
			fputs(" ...", t->out);
	} else {
		reports_put_clean(t->out, cap->exe ? cap->exe : "(unknown program)", 0);
	}
	if (cap->has_process)
		fprintf(t->out, " (pid %" PRIu64 "%s)", cap->pid,
			cap->process_flags & CAPTURE_PROCESS_FORKED ? ", a forked child" : "");
	if (!oc.known && cap->has_end && cap->end_how == CAPTURE_END_EXEC)
		fputs(", replaced by another program (exec)", t->out);
	else if (!oc.known)
		fputs(", end not recorded", t->out);
	else if (oc.signal)
		fprintf(t->out, ", killed by signal %d (%s)", oc.signal, strsignal(oc.signal));
	else
		fprintf(t->out, ", exited with status %d", oc.exit_status);
	fprintf(t->out, " after %.3f s\n", (double)t->an->totals.duration_ns / 1e9);
}

static void print_totals(struct text *t)
{
	const struct reports_totals *tot = &t->an->totals;
	heading(t, "Totals");
	fprintf(t->out, "  allocations: %" PRIu64 ", frees: %" PRIu64 ", allocated: ",
		tot->allocations, tot->frees);
	print_bytes(t->out, tot->bytes_allocated);
	fputs("\n  peak: ", t->out);
	print_bytes(t->out, tot->peak_bytes);
	fprintf(t->out, " live at %.3f s\n  live at exit: ", (double)tot->peak_time_ns / 1e9);
	print_bytes(t->out, tot->live_bytes_at_exit);
	fprintf(t->out, " in %" PRIu64 " blocks\n", tot->live_blocks_at_exit);
}

static int print_sites(struct text *t, enum reports_site_order how, const char *title,
		       size_t *order)
{
	const struct reports_analysis *an = t->an;
	size_t top = t->opts->top ? t->opts->top : DEFAULT_TOP;
	if (an->n_sites == 0)
		return 0;
	heading(t, title);
	size_t shown = reports_sites_top(an, how, order, top);
	for (size_t i = 0; i < shown && i < top; i++) {
		const struct reports_site *s = &an->sites[order[i]];
		int res;
		fprintf(t->out, "  #%zu: ", i + 1);
		if (how == REPORTS_SITES_BY_PEAK) {
			/* the traceback view: the whole stack of each */
			print_bytes(t->out, s->peak_bytes);
			fprintf(t->out, " at peak, %" PRIu64 " allocations, ", s->allocations);
			print_bytes(t->out, s->bytes);
			fputs(" in all, ", t->out);
			print_bytes(t->out, s->leaked_bytes);
			fputs(" live at exit\n", t->out);
			res = print_stack(t, s->stack, "     ");
		} else {
			if (how == REPORTS_SITES_BY_BYTES) {
				print_bytes(t->out, s->bytes);
				fprintf(t->out, " in %" PRIu64 " allocations: ", s->allocations);
			} else {
				fprintf(t->out, "%" PRIu64 " allocations, ", s->allocations);
				print_bytes(t->out, s->bytes);
				fputs(": ", t->out);
			}
			res = print_stack_short(t, s->stack);
		}
		if (res < 0)
			return res;
	}
	if (an->n_sites > top)
		fprintf(t->out, "  (%zu more sites)\n", an->n_sites - top);
	return 0;
}

static void print_lineno(struct text *t)
{
	const struct reports_analysis *an = t->an;
	size_t top = t->opts->top ? t->opts->top : DEFAULT_TOP;
	if (an->n_lineno == 0)
		return;
	heading(t, "Allocations by line (first frame of the program)");
	for (size_t i = 0; i < an->n_lineno && i < top; i++) {
		const struct reports_lineno *l = &an->lineno[i];
		fputs("  ", t->out);
		if (l->file) {
			reports_put_clean(t->out, l->file, 0);
			fprintf(t->out, ":%u", l->line);
		} else if (l->function) {
			reports_put_clean(t->out, l->function, 0);
			if (l->module) {
				fputs(" (in ", t->out);
				reports_put_clean(t->out, base_name(l->module), 0);
				fputc(')', t->out);
			}
		} else {
			fprintf(t->out, "0x%" PRIx64, l->address);
		}
		fprintf(t->out, ": size=%" PRIu64 " B, count=%" PRIu64 ", peak=%" PRIu64
			" B, live at exit=%" PRIu64 " B\n",
			l->bytes, l->allocations, l->peak_bytes, l->leaked_bytes);
	}
	if (an->n_lineno > top)
		fprintf(t->out, "  (%zu more lines)\n", an->n_lineno - top);
}

static const char *leak_phrase(enum reports_leak_kind k)
{
	switch (k) {
	case REPORTS_LEAK_DEFINITE: return "definitely lost";
	case REPORTS_LEAK_INDIRECT: return "indirectly lost";
	case REPORTS_LEAK_POSSIBLE: return "possibly lost";
	case REPORTS_LEAK_REACHABLE: return "still reachable";
	default: return "suppressed";
	}
}

static int print_leak_records(struct text *t)
{
	const struct reports_analysis *an = t->an;
	if (an->n_leak_records == 0)
		return 0;
	heading(t, "Blocks live at exit");
	for (size_t i = 0; i < an->n_leak_records; i++) {
		const struct reports_leak_record *r = &an->leak_records[i];
		bool lost = r->kind == REPORTS_LEAK_DEFINITE || r->kind == REPORTS_LEAK_POSSIBLE;
		fputs(color(t, lost ? RED : ""), t->out);
		if (r->indirect_blocks)
			fprintf(t->out, "%" PRIu64 " (%" PRIu64 " direct, %" PRIu64 " indirect)",
				r->bytes + r->indirect_bytes, r->bytes, r->indirect_bytes);
		else
			fprintf(t->out, "%" PRIu64, r->bytes);
		fprintf(t->out, " bytes in %" PRIu64 " blocks are %s in loss record %zu of %zu%s\n",
			r->blocks, leak_phrase(r->kind), i + 1, an->n_leak_records,
			color(t, lost ? RESET : ""));
		int res = print_stack(t, r->stack, "   ");
		if (res == 0 && t->opts->gen_suppressions && r->kind != REPORTS_LEAK_SUPPRESSED)
			res = reports_render_text_suppression(t->out, t->cap, t->sym, r);
		if (res < 0)
			return res;
		fputc('\n', t->out);
	}
	return 0;
}

static void print_leak_summary(struct text *t)
{
	const struct reports_analysis *an = t->an;
	static const char *const labels[REPORTS_LEAK_KINDS] = {
		"definitely lost", "indirectly lost", "  possibly lost", "still reachable",
		"     suppressed",
	};
	heading(t, "Leak summary");
	for (int k = 0; k < REPORTS_LEAK_KINDS; k++)
		fprintf(t->out, "   %s: %" PRIu64 " bytes in %" PRIu64 " blocks\n", labels[k],
			an->leaks[k].bytes, an->leaks[k].blocks);
	if (!an->scanned)
		fputs("   (no reachability scan was recorded: every live block is counted as "
		      "still reachable)\n",
		      t->out);
	else if (an->scan_partial)
		fputs("   (the scan could not stop every thread: some blocks may be "
		      "misclassified)\n",
		      t->out);
	if (an->scanned && an->scan_on_demand)
		fputs("   (no scan at exit: these are the kinds of the last on-demand scan; "
		      "blocks allocated after it count as still reachable)\n",
		      t->out);
}

static void print_allocator(struct text *t)
{
	const struct reports_stats *st = &t->cap->stats;
	if (!st->present)
		return;
	uint64_t pools = 0, in_use = 0;
	for (size_t i = 0; i < st->n_classes; i++) {
		pools += st->classes[i].pools;
		in_use += st->classes[i].in_use;
	}
	heading(t, "Allocator at exit");
	fprintf(t->out,
		"  arenas: %" PRIu64 " allocated, %" PRIu64 " reclaimed, %" PRIu64
		" at most; pools: %" PRIu64 ", small blocks in use: %" PRIu64 "\n",
		st->arenas_allocated, st->arenas_reclaimed, st->arenas_highwater, pools, in_use);
	fprintf(t->out, "  large blocks: %" PRIu64 ", ", st->large_blocks);
	print_bytes(t->out, st->large_bytes);
	fputs("; lost to rounding: ", t->out);
	print_bytes(t->out, st->bytes_quantization);
	fputs(", empty pools: ", t->out);
	print_bytes(t->out, st->bytes_empty_pools);
	fputc('\n', t->out);
}

static int print_badfrees(struct text *t)
{
	const struct reports_capture *cap = t->cap;
	if (cap->n_badfrees == 0)
		return 0;
	heading(t, "Bad frees");
	for (size_t i = 0; i < cap->n_badfrees; i++) {
		const struct reports_badfree *b = &cap->badfrees[i];
		const char *what = b->kind == CAPTURE_BADFREE_DOUBLE    ? "Double free"
				   : b->kind == CAPTURE_BADFREE_INVALID ? "Invalid free"
									: "Free of memory memprof does not own";
		fprintf(t->out, "%s%s of 0x%" PRIx64 "%s\n", color(t, RED), what, b->addr,
			color(t, RESET));
		int res = print_stack(t, b->free_stack, "   ");
		if (res == 0 && b->first_free_stack != REPORTS_NO_STACK) {
			fputs(cap->process_flags & CAPTURE_PROCESS_FREE_CALLER
				      ? " Block was first freed at (its caller only: memprof run "
					"--free-stacks records whole stacks)\n"
				      : " Block was first freed at\n",
			      t->out);
			res = print_stack(t, b->first_free_stack, "   ");
		}
		if (res == 0 && b->alloc_stack != REPORTS_NO_STACK) {
			fputs(" Block was allocated at\n", t->out);
			res = print_stack(t, b->alloc_stack, "   ");
		}
		if (res < 0)
			return res;
		fputc('\n', t->out);
	}
	return 0;
}

static void print_notes(struct text *t)
{
	const struct reports_capture *cap = t->cap;
	const struct reports_analysis *an = t->an;
	/* a forked child frees blocks it inherited: not worth a note there */
	bool forked = cap->process_flags & CAPTURE_PROCESS_FORKED;
	uint64_t unmatched = forked ? 0 : an->unmatched_frees;
	bool any = cap->incomplete || cap->lost_events || cap->n_notes || unmatched;
	if (!any)
		return;
	heading(t, "Notes");
	const char *warn = color(t, YELLOW), *reset = color(t, RESET);
	/* the program ended on its own: the tracer could not write the rest */
	const char *stopped = t->opts->outcome.known && t->opts->outcome.signal == 0
				      ? "memprof stopped recording: it could not write the rest"
				      : NULL;
	if (cap->truncated)
		fprintf(t->out,
			"  %swarning:%s the capture is incomplete: it ends inside a chunk at byte "
			"%" PRIu64 " (%s)\n",
			warn, reset, cap->truncated_at,
			stopped ? stopped : "the program was killed while writing it");
	else if (cap->incomplete)
		fprintf(t->out,
			"  %swarning:%s the capture is incomplete: the end of the program was not "
			"recorded (%s)\n",
			warn, reset, stopped ? stopped : "killed, or still running");
	if (cap->lost_events)
		fprintf(t->out, "  %swarning:%s %" PRIu64 " events could not be recorded\n", warn,
			reset, cap->lost_events);
	if (unmatched)
		fprintf(t->out, "  %" PRIu64 " frees of blocks whose allocation was not recorded\n",
			unmatched);
	static const char *const levels[] = { "info", "warning", "error" };
	for (size_t i = 0; i < cap->n_notes; i++) {
		uint64_t lv = cap->notes[i].level < 3 ? cap->notes[i].level : 2;
		fprintf(t->out, "  %s%s:%s ", lv ? warn : "", levels[lv], lv ? reset : "");
		reports_put_clean(t->out, cap->notes[i].text, 0);
		fputc('\n', t->out);
	}
}

int reports_render_text(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an,
			struct reports_symbolizer *sym,
			const struct reports_render_options *opts)
{
	struct text t = { out, cap, an, sym, opts, { 0 } };
	size_t *order = calloc(an->n_sites ? an->n_sites : 1, sizeof(*order));
	if (!order)
		return -ENOMEM;
	print_header(&t);
	print_totals(&t);
	int res = print_sites(&t, REPORTS_SITES_BY_PEAK, "Top allocation sites by peak", order);
	if (res == 0)
		res = print_sites(&t, REPORTS_SITES_BY_BYTES, "Top allocation sites by bytes", order);
	if (res == 0)
		res = print_sites(&t, REPORTS_SITES_BY_COUNT, "Top allocation sites by count",
				  order);
	if (res == 0) {
		print_lineno(&t);
		res = print_leak_records(&t);
	}
	if (res == 0)
		res = reports_render_text_cycles(out, cap, an, sym);
	if (res == 0) /* objects: objects.c */
		res = reports_objects_render_text(out, an->objects, cap, sym, opts->top);
	if (res == 0) {
		print_leak_summary(&t);
		print_allocator(&t);
		res = print_badfrees(&t);
	}
	if (res == 0)
		print_notes(&t);
	if (res == 0 && opts->supp)
		reports_render_text_supp_summary(out, opts->supp, opts->color);
	free(order);
	reports_frames_finish(&t.fr);
	if (res < 0)
		return res;
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
