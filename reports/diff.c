/*
 * diff.c: tracemalloc's Snapshot.compare_to for two captures (`memprof
 * diff OLD NEW`): which allocation sites grew or shrank between two runs.
 * Entry points: reports_diff_create(), reports_render_diff_text(),
 * reports_render_diff_json().
 *
 * Sites are matched by a key made of symbols, never of addresses (they
 * move from run to run): by line, the first frame of the program (the
 * 'lineno' view of the analysis: "file:line", or the function and module
 * without line information); by stack, every frame from the allocation up
 * to main, each "function (file:line)" or module+0xOFFSET.  For each key
 * the bytes allocated in all, those live at the peak, those live at exit
 * and the allocations of both runs are summed and compared.  Entries
 * where nothing changed are left out; the others come biggest change
 * first: the largest of the three byte changes (in absolute value), then
 * the change in count, then the key.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reports-private.h"
#include "reports.h"

#define DEFAULT_TOP 10u

struct item {
	char *key;
	bool is_new;
	struct reports_diff_side v;
	uint32_t stack;
	const char *file, *function, *module;
	unsigned line;
};

struct items {
	struct item *v;
	size_t n, cap;
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* "file:line", else "function (in module)", else module+0xOFFSET. */
static char *key_of_lineno(const struct reports_capture *cap, const struct reports_lineno *l)
{
	char *s = NULL;
	int r;
	const struct reports_module *m = NULL;
	for (size_t i = 0; i < cap->n_modules && !m; i++)
		if (l->address >= cap->modules[i].start && l->address < cap->modules[i].end)
			m = &cap->modules[i];
	if (l->file)
		r = asprintf(&s, "%s:%u", l->file, l->line);
	else if (l->function)
		r = asprintf(&s, "%s (in %s)", l->function, l->module ? base_name(l->module) : "?");
	else if (m && m->path)
		r = asprintf(&s, "%s+0x%" PRIx64, base_name(m->path), l->address - m->load_bias);
	else
		r = asprintf(&s, "0x%" PRIx64, l->address);
	return r < 0 ? NULL : s;
}

/* Frame after frame, innermost first, up to main, one per line. */
static char *key_of_stack(const struct reports_frames *fr)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	size_t start = reports_frames_display_start(fr);
	for (size_t i = start; i < fr->n; i++) {
		const struct reports_frame *f = fr->v[i];
		if (i > start)
			fputc('\n', m);
		if (f->function)
			fputs(f->function, m);
		else if (f->module)
			fprintf(m, "%s+0x%" PRIx64, base_name(f->module), f->offset);
		else
			fprintf(m, "0x%" PRIx64, f->address);
		if (f->file)
			fprintf(m, " (%s:%u)", f->file, f->line);
		if (f->inlined)
			fputs(" [inlined]", m);
		if (f->function && !f->inlined && strcmp(f->function, "main") == 0)
			break;
	}
	if (start >= fr->n)
		fputs("(no stack recorded)", m);
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int push(struct items *it, struct item *x)
{
	if (!x->key)
		return -ENOMEM;
	if (reports_vec_push(&it->v, &it->n, &it->cap, x, sizeof(*x)) < 0) {
		free(x->key);
		return -ENOMEM;
	}
	return 0;
}

static int collect(struct items *it, const struct reports_diff_run *run, bool is_new,
		   enum reports_diff_by by)
{
	const struct reports_analysis *an = run->an;
	int res = 0;
	if (by == REPORTS_DIFF_BY_LINE) {
		for (size_t i = 0; i < an->n_lineno && res == 0; i++) {
			const struct reports_lineno *l = &an->lineno[i];
			struct item x = {
				.key = key_of_lineno(run->cap, l),
				.is_new = is_new,
				.v = {l->allocations, l->bytes, l->peak_bytes, l->leaked_bytes},
				.stack = REPORTS_NO_STACK,
				.file = l->file,
				.function = l->function,
				.module = l->module,
				.line = l->line,
			};
			res = push(it, &x);
		}
		return res;
	}
	struct reports_frames fr = {0};
	for (size_t i = 0; i < an->n_sites && res == 0; i++) {
		const struct reports_site *s = &an->sites[i];
		if ((res = reports_stack_symbolize(run->sym, run->cap, s->stack, &fr)) < 0)
			break;
		struct item x = {
			.key = key_of_stack(&fr),
			.is_new = is_new,
			.v = {s->allocations, s->bytes, s->peak_bytes, s->leaked_bytes},
			.stack = s->stack,
		};
		res = push(it, &x);
	}
	reports_frames_finish(&fr);
	return res;
}

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c)
		return c;
	return (int)x->is_new - (int)y->is_new;
}

static void side_add(struct reports_diff_side *s, const struct reports_diff_side *v)
{
	s->allocations += v->allocations;
	s->bytes += v->bytes;
	s->peak_bytes += v->peak_bytes;
	s->leaked_bytes += v->leaked_bytes;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

static uint64_t score(const struct reports_diff_entry *e)
{
	uint64_t s = absdiff(e->old.bytes, e->new.bytes);
	uint64_t p = absdiff(e->old.peak_bytes, e->new.peak_bytes);
	uint64_t l = absdiff(e->old.leaked_bytes, e->new.leaked_bytes);
	return s > p ? (s > l ? s : l) : (p > l ? p : l);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct reports_diff_entry *x = a, *y = b;
	uint64_t sx = score(x), sy = score(y);
	if (sx != sy)
		return sx > sy ? -1 : 1;
	uint64_t cx = absdiff(x->old.allocations, x->new.allocations);
	uint64_t cy = absdiff(y->old.allocations, y->new.allocations);
	if (cx != cy)
		return cx > cy ? -1 : 1;
	return strcmp(x->key, y->key);
}

static bool unchanged(const struct reports_diff_entry *e)
{
	return e->old.allocations == e->new.allocations && e->old.bytes == e->new.bytes &&
	       e->old.peak_bytes == e->new.peak_bytes && e->old.leaked_bytes == e->new.leaked_bytes;
}

struct reports_diff *reports_diff_create(const struct reports_diff_run *old_run,
					 const struct reports_diff_run *new_run,
					 enum reports_diff_by by)
{
	struct reports_diff *d = calloc(1, sizeof(*d));
	struct items it = {0};
	size_t cap_entries = 0;
	if (!d)
		return NULL;
	d->by = by;
	d->old = *old_run;
	d->new = *new_run;
	if (collect(&it, old_run, false, by) < 0 || collect(&it, new_run, true, by) < 0)
		goto fail;
	if (it.n > 1)
		qsort(it.v, it.n, sizeof(*it.v), cmp_item);
	for (size_t i = 0; i < it.n; i++) {
		struct item *x = &it.v[i];
		struct reports_diff_entry *last =
			d->n_entries ? &d->entries[d->n_entries - 1] : NULL;
		if (!last || strcmp(last->key, x->key) != 0) {
			struct reports_diff_entry e = {
				.key = x->key,
				.in_new = x->is_new,
				.stack = x->stack,
				.file = x->file,
				.line = x->line,
				.function = x->function,
				.module = x->module,
			};
			if (reports_vec_push(&d->entries, &d->n_entries, &cap_entries, &e,
					     sizeof(e)) < 0)
				goto fail;
			x->key = NULL; /* the entry owns it now */
			last = &d->entries[d->n_entries - 1];
		}
		side_add(x->is_new ? &last->new : &last->old, &x->v);
		if (x->is_new && !last->in_new) {
			/* describe it by the new run when it has it */
			last->in_new = x->is_new;
			last->stack = x->stack;
			last->file = x->file;
			last->line = x->line;
			last->function = x->function;
			last->module = x->module;
		}
	}
	/* drop the unchanged */
	size_t n = 0;
	for (size_t i = 0; i < d->n_entries; i++) {
		if (unchanged(&d->entries[i])) {
			free(d->entries[i].key);
			d->n_unchanged++;
		} else {
			d->entries[n++] = d->entries[i];
		}
	}
	d->n_entries = n;
	if (n > 1)
		qsort(d->entries, n, sizeof(*d->entries), cmp_entry);
	for (size_t i = 0; i < it.n; i++)
		free(it.v[i].key);
	free(it.v);
	return d;
fail:
	for (size_t i = 0; i < it.n; i++)
		free(it.v[i].key);
	free(it.v);
	reports_diff_destroy(d);
	return NULL;
}

void reports_diff_destroy(struct reports_diff *diff)
{
	if (!diff)
		return;
	for (size_t i = 0; i < diff->n_entries; i++)
		free(diff->entries[i].key);
	free(diff->entries);
	free(diff);
}

/* ---- text ------------------------------------------------------------------- */

static void put_change(FILE *out, uint64_t o, uint64_t n, const char *unit)
{
	if (n >= o)
		fprintf(out, "+%" PRIu64 "%s", n - o, unit);
	else
		fprintf(out, "-%" PRIu64 "%s", o - n, unit);
}

static void put_run(FILE *out, const char *which, const struct reports_diff_run *r)
{
	const struct reports_capture *cap = r->cap;
	fprintf(out, "  %s: ", which);
	reports_put_clean(out, r->path ? r->path : "?", 0);
	fputs(" (", out);
	if (cap->argc > 0) {
		for (size_t i = 0; i < cap->argc && i < 8; i++) {
			fputs(i ? " " : "", out);
			reports_put_clean(out, cap->argv[i], 0);
		}
		if (cap->argc > 8)
			fputs(" ...", out);
	} else {
		reports_put_clean(out, cap->exe ? cap->exe : "unknown program", 0);
	}
	if (cap->has_process)
		fprintf(out, ", pid %" PRIu64, cap->pid);
	fputs(cap->incomplete ? ", incomplete)\n" : ")\n", out);
}

static void put_total(FILE *out, const char *name, uint64_t o, uint64_t n, const char *unit)
{
	char a[48], b[48];
	snprintf(a, sizeof(a), "%" PRIu64 "%s", o, unit);
	snprintf(b, sizeof(b), "%" PRIu64 "%s", n, unit);
	fprintf(out, "  %-18s %16s %16s  ", name, a, b);
	put_change(out, o, n, unit);
	if (o > 0 && n != o)
		fprintf(out, " (%+.1f%%)", ((double)n - (double)o) * 100.0 / (double)o);
	fputc('\n', out);
}

int reports_render_diff_text(FILE *out, const struct reports_diff *d, size_t top)
{
	const struct reports_totals *o = &d->old.an->totals, *n = &d->new.an->totals;
	if (top == 0)
		top = DEFAULT_TOP;
	fputs("memprof diff\n", out);
	put_run(out, "old", &d->old);
	put_run(out, "new", &d->new);
	fprintf(out, "\nTotals %30s %16s  change\n", "old", "new");
	put_total(out, "allocations", o->allocations, n->allocations, "");
	put_total(out, "frees", o->frees, n->frees, "");
	put_total(out, "bytes allocated", o->bytes_allocated, n->bytes_allocated, " B");
	put_total(out, "peak", o->peak_bytes, n->peak_bytes, " B");
	put_total(out, "live at exit", o->live_bytes_at_exit, n->live_bytes_at_exit, " B");
	put_total(out, "blocks at exit", o->live_blocks_at_exit, n->live_blocks_at_exit, "");
	fprintf(out, "\nSites that changed most, by %s (%zu changed, %zu unchanged)\n",
		d->by == REPORTS_DIFF_BY_LINE ? "line" : "stack", d->n_entries, d->n_unchanged);
	if (d->n_entries == 0)
		fputs("  (none)\n", out);
	for (size_t i = 0; i < d->n_entries && i < top; i++) {
		const struct reports_diff_entry *e = &d->entries[i];
		fprintf(out, "  #%zu: ", i + 1);
		if (d->by == REPORTS_DIFF_BY_LINE) {
			reports_put_clean(out, e->key, 0);
			if (e->file && e->function) {
				fputs(" (", out);
				reports_put_clean(out, e->function, 0);
				fputc(')', out);
			}
			fputs(": ", out);
		}
		fprintf(out, "size=%" PRIu64 " B (", e->new.bytes);
		put_change(out, e->old.bytes, e->new.bytes, " B");
		fprintf(out, "), count=%" PRIu64 " (", e->new.allocations);
		put_change(out, e->old.allocations, e->new.allocations, "");
		fprintf(out, "), peak=%" PRIu64 " B (", e->new.peak_bytes);
		put_change(out, e->old.peak_bytes, e->new.peak_bytes, " B");
		fprintf(out, "), live at exit=%" PRIu64 " B (", e->new.leaked_bytes);
		put_change(out, e->old.leaked_bytes, e->new.leaked_bytes, " B");
		fputs(")\n", out);
		if (d->by == REPORTS_DIFF_BY_STACK) {
			/* the key is the stack, one frame per line */
			const char *s = e->key;
			while (*s) {
				const char *nl = strchr(s, '\n');
				size_t len = nl ? (size_t)(nl - s) : strlen(s);
				fputs("       ", out);
				for (size_t k = 0; k < len; k++)
					fputc((unsigned char)s[k] < 0x20 ? '?' : s[k], out);
				fputc('\n', out);
				s += len + (nl ? 1 : 0);
			}
		}
	}
	if (d->n_entries > top)
		fprintf(out, "  (%zu more)\n", d->n_entries - top);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}

/* ---- JSON --------------------------------------------------------------------- */

static void jstr(FILE *out, const char *s)
{
	if (s)
		reports_json_string(out, s, strlen(s));
	else
		fputs("null", out);
}

static void json_side(FILE *out, const struct reports_diff_side *s)
{
	fprintf(out,
		"{\"allocations\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"peak_bytes\": %" PRIu64
		", \"leaked_bytes\": %" PRIu64 "}",
		s->allocations, s->bytes, s->peak_bytes, s->leaked_bytes);
}

static void json_signed(FILE *out, const char *name, uint64_t o, uint64_t n, bool comma)
{
	fprintf(out, "%s\"%s\": ", comma ? ", " : "", name);
	if (n >= o)
		fprintf(out, "%" PRIu64, n - o);
	else
		fprintf(out, "-%" PRIu64, o - n);
}

static void json_change(FILE *out, const struct reports_diff_side *o,
			const struct reports_diff_side *n)
{
	fputc('{', out);
	json_signed(out, "allocations", o->allocations, n->allocations, false);
	json_signed(out, "bytes", o->bytes, n->bytes, true);
	json_signed(out, "peak_bytes", o->peak_bytes, n->peak_bytes, true);
	json_signed(out, "leaked_bytes", o->leaked_bytes, n->leaked_bytes, true);
	fputc('}', out);
}

static void json_totals(FILE *out, const struct reports_totals *t)
{
	fprintf(out,
		"{\"allocations\": %" PRIu64 ", \"frees\": %" PRIu64
		", \"bytes_allocated\": %" PRIu64 ", \"peak_bytes\": %" PRIu64
		", \"live_blocks_at_exit\": %" PRIu64 ", \"live_bytes_at_exit\": %" PRIu64 "}",
		t->allocations, t->frees, t->bytes_allocated, t->peak_bytes, t->live_blocks_at_exit,
		t->live_bytes_at_exit);
}

static void json_run(FILE *out, const struct reports_diff_run *r)
{
	const struct reports_capture *cap = r->cap;
	fputs("{\"capture\": ", out);
	jstr(out, r->path);
	fputs(", \"argv\": [", out);
	for (size_t i = 0; i < cap->argc; i++) {
		fputs(i ? ", " : "", out);
		jstr(out, cap->argv[i]);
	}
	fputs("], \"pid\": ", out);
	if (cap->has_process)
		fprintf(out, "%" PRIu64, cap->pid);
	else
		fputs("null", out);
	fputs(", \"totals\": ", out);
	json_totals(out, &r->an->totals);
	fputc('}', out);
}

static int json_stack(FILE *out, const struct reports_diff_run *r, uint32_t stack,
		      struct reports_frames *fr)
{
	int res = reports_stack_symbolize(r->sym, r->cap, stack, fr);
	if (res < 0)
		return res;
	fputc('[', out);
	size_t start = reports_frames_display_start(fr);
	for (size_t i = start; i < fr->n; i++) {
		const struct reports_frame *f = fr->v[i];
		fputs(i > start ? ", {\"function\": " : "{\"function\": ", out);
		jstr(out, f->function);
		fputs(", \"file\": ", out);
		jstr(out, f->file);
		if (f->file && f->line)
			fprintf(out, ", \"line\": %u", f->line);
		else
			fputs(", \"line\": null", out);
		fputs(", \"module\": ", out);
		jstr(out, f->module ? f->module : "");
		fprintf(out, ", \"address\": \"0x%" PRIx64 "\"", f->address);
		if (f->inlined)
			fputs(", \"inlined\": true", out);
		fputc('}', out);
		if (f->function && !f->inlined && strcmp(f->function, "main") == 0)
			break;
	}
	fputc(']', out);
	return 0;
}

int reports_render_diff_json(FILE *out, const struct reports_diff *d, size_t top)
{
	const struct reports_totals *o = &d->old.an->totals, *n = &d->new.an->totals;
	struct reports_frames fr = {0};
	int res = 0;
	fprintf(out, "{\"format\": \"memprof-diff\", \"version\": 1, \"by\": \"%s\",\n",
		d->by == REPORTS_DIFF_BY_LINE ? "line" : "stack");
	fputs(" \"old\": ", out);
	json_run(out, &d->old);
	fputs(",\n \"new\": ", out);
	json_run(out, &d->new);
	fputs(",\n \"change\": {", out);
	json_signed(out, "allocations", o->allocations, n->allocations, false);
	json_signed(out, "frees", o->frees, n->frees, true);
	json_signed(out, "bytes_allocated", o->bytes_allocated, n->bytes_allocated, true);
	json_signed(out, "peak_bytes", o->peak_bytes, n->peak_bytes, true);
	json_signed(out, "live_blocks_at_exit", o->live_blocks_at_exit, n->live_blocks_at_exit,
		    true);
	json_signed(out, "live_bytes_at_exit", o->live_bytes_at_exit, n->live_bytes_at_exit, true);
	fprintf(out, "},\n \"unchanged\": %zu,\n \"entries\": [", d->n_unchanged);
	size_t shown = top ? (top < d->n_entries ? top : d->n_entries) : d->n_entries;
	for (size_t i = 0; i < shown && res == 0; i++) {
		const struct reports_diff_entry *e = &d->entries[i];
		fputs(i ? ",\n  {\"key\": " : "\n  {\"key\": ", out);
		jstr(out, e->key);
		if (d->by == REPORTS_DIFF_BY_LINE) {
			fputs(", \"file\": ", out);
			jstr(out, e->file);
			if (e->file)
				fprintf(out, ", \"line\": %u", e->line);
			else
				fputs(", \"line\": null", out);
			fputs(", \"function\": ", out);
			jstr(out, e->function);
			fputs(", \"module\": ", out);
			jstr(out, e->module);
		} else {
			fputs(", \"stack\": ", out);
			res = json_stack(out, e->in_new ? &d->new : &d->old, e->stack, &fr);
		}
		fputs(", \"old\": ", out);
		json_side(out, &e->old);
		fputs(", \"new\": ", out);
		json_side(out, &e->new);
		fputs(", \"change\": ", out);
		json_change(out, &e->old, &e->new);
		fputc('}', out);
	}
	fprintf(out, "%s],\n \"more\": %zu}\n", shown ? "\n " : "", d->n_entries - shown);
	reports_frames_finish(&fr);
	if (res < 0)
		return res;
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
