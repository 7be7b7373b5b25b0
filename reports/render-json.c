/*
 * render-json.c: the JSON report, version 1, with exactly the keys that
 * DESIGN.md fixes (format, version, program, totals, leaks, leak_records,
 * cycles, sites, objects) plus a few more that scripts may use (capture,
 * lineno, bad_frees, notes, allocator).  Entry point: reports_render_json().
 *
 * Every string goes through reports_json_string(): quotes, backslashes and
 * control characters are escaped, and bytes that are not valid UTF-8 (file
 * and symbol names come from the traced program) become U+FFFD.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <memprof/capture.h>

#include "reports.h"

size_t reports_utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void reports_json_string(FILE *out, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', out);
	size_t i = 0;
	while (i < len) {
		/* a run of bytes that go out as they are, in one write (a write
		 * a character made a deep recursion's report take minutes) */
		size_t run = i;
		while (run < len) {
			unsigned char c = s[run];
			if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f)
				break;
			size_t n = c < 0x80 ? 1 : reports_utf8_len(s + run, len - run);
			if (n == 0)
				break;
			run += n;
		}
		if (run > i) {
			fwrite(s + i, 1, run - i, out);
			i = run;
			continue;
		}
		unsigned char c = s[i++];
		switch (c) {
		case '"': fputs("\\\"", out); continue;
		case '\\': fputs("\\\\", out); continue;
		case '\n': fputs("\\n", out); continue;
		case '\r': fputs("\\r", out); continue;
		case '\t': fputs("\\t", out); continue;
		case '\b': fputs("\\b", out); continue;
		case '\f': fputs("\\f", out); continue;
		}
		if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputs("\\ufffd", out); /* not UTF-8: the run stopped at it */
	}
	fputc('"', out);
}

size_t reports_put_clean_n(FILE *out, const char *str, size_t len, char sep)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, chars = 0;
	for (; i < len; chars++) {
		unsigned char c = s[i];
		if (sep && c == (unsigned char)sep) {
			fputc(':', out);
			i++;
			continue;
		}
		size_t n = c < 0x20 || c == 0x7f ? 0 : reports_utf8_len(s + i, len - i);
		if (n == 0) {
			fputc('?', out);
			i++;
			continue;
		}
		fwrite(s + i, 1, n, out);
		i += n;
	}
	return chars;
}

void reports_put_clean(FILE *out, const char *s, char sep)
{
	reports_put_clean_n(out, s, strlen(s), sep);
}

static void jstr(FILE *out, const char *s)
{
	if (s)
		reports_json_string(out, s, strlen(s));
	else
		fputs("null", out);
}

static void jaddr(FILE *out, uint64_t a)
{
	fprintf(out, "\"0x%" PRIx64 "\"", a);
}

static void jseconds(FILE *out, uint64_t ns)
{
	fprintf(out, "%.6f", (double)ns / 1e9);
}

static int json_stack(FILE *out, const struct reports_capture *cap,
		      struct reports_symbolizer *sym, uint32_t stack,
		      struct reports_frames *fr)
{
	int res = reports_stack_symbolize(sym, cap, stack, fr);
	if (res < 0)
		return res;
	fputc('[', out);
	for (size_t i = reports_frames_display_start(fr); i < fr->n; i++) {
		const struct reports_frame *f = fr->v[i];
		fputs(i > reports_frames_display_start(fr) ? ", {" : "{", out);
		fputs("\"function\": ", out);
		jstr(out, f->function);
		fputs(", \"file\": ", out);
		jstr(out, f->file);
		fputs(", \"line\": ", out);
		if (f->file && f->line)
			fprintf(out, "%u", f->line);
		else
			fputs("null", out);
		fputs(", \"module\": ", out);
		jstr(out, f->module ? f->module : "");
		fputs(", \"address\": ", out);
		jaddr(out, f->address);
		if (f->inlined)
			fputs(", \"inlined\": true", out);
		fputc('}', out);
	}
	fputc(']', out);
	return 0;
}

static void json_program(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an,
			 const struct reports_render_options *opts)
{
	struct reports_outcome oc = opts->outcome;
	if (!oc.known)
		reports_capture_outcome(cap, &oc);
	fputs("  \"program\": {\"argv\": [", out);
	for (size_t i = 0; i < cap->argc; i++) {
		if (i)
			fputs(", ", out);
		jstr(out, cap->argv[i]);
	}
	fputs("], \"exe\": ", out);
	jstr(out, cap->exe);
	fputs(", \"pid\": ", out);
	if (cap->has_process)
		fprintf(out, "%" PRIu64, cap->pid);
	else
		fputs("null", out);
	fputs(", \"exit_status\": ", out);
	if (oc.known)
		fprintf(out, "%d", oc.exit_status);
	else
		fputs("null", out);
	fputs(", \"signal\": ", out);
	if (oc.known && oc.signal)
		fprintf(out, "%d", oc.signal);
	else
		fputs("null", out);
	fputs(", \"duration_s\": ", out);
	jseconds(out, an->totals.duration_ns);
	fputs("},\n", out);
}

static void json_totals(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an)
{
	const struct reports_totals *t = &an->totals;
	fprintf(out,
		"  \"totals\": {\"allocations\": %" PRIu64 ", \"frees\": %" PRIu64
		", \"bytes_allocated\": %" PRIu64 ", \"peak_bytes\": %" PRIu64
		", \"peak_time_s\": ",
		t->allocations, t->frees, t->bytes_allocated, t->peak_bytes);
	jseconds(out, t->peak_time_ns);
	fprintf(out,
		", \"live_blocks_at_exit\": %" PRIu64 ", \"live_bytes_at_exit\": %" PRIu64
		"},\n",
		t->live_blocks_at_exit, t->live_bytes_at_exit);
	fprintf(out,
		"  \"capture\": {\"incomplete\": %s, \"truncated\": %s, \"has_end\": %s"
		", \"lost_events\": %" PRIu64 ", \"scanned\": %s, \"scan_partial\": %s"
		", \"scan_on_demand\": %s"
		", \"exec\": %s, \"forked_child\": %s, \"free_stacks\": \"%s\"},\n",
		cap->incomplete ? "true" : "false", cap->truncated ? "true" : "false",
		cap->has_end ? "true" : "false", cap->lost_events,
		an->scanned ? "true" : "false", an->scan_partial ? "true" : "false",
		an->scan_on_demand ? "true" : "false",
		cap->has_end && cap->end_how == CAPTURE_END_EXEC ? "true" : "false",
		cap->process_flags & CAPTURE_PROCESS_FORKED ? "true" : "false",
		cap->process_flags & CAPTURE_PROCESS_FREE_CALLER ? "caller" : "whole");
}

static int json_leaks(FILE *out, const struct reports_capture *cap,
		      const struct reports_analysis *an, struct reports_symbolizer *sym,
		      struct reports_frames *fr)
{
	fputs("  \"leaks\": {", out);
	for (int k = 0; k < REPORTS_LEAK_KINDS; k++)
		fprintf(out, "%s\"%s\": {\"bytes\": %" PRIu64 ", \"blocks\": %" PRIu64 "}",
			k ? ", " : "", reports_leak_kind_name(k), an->leaks[k].bytes,
			an->leaks[k].blocks);
	fputs("},\n  \"leak_records\": [", out);
	for (size_t i = 0; i < an->n_leak_records; i++) {
		const struct reports_leak_record *r = &an->leak_records[i];
		fprintf(out,
			"%s\n    {\"kind\": \"%s\", \"bytes\": %" PRIu64 ", \"blocks\": %" PRIu64
			", \"indirect_bytes\": %" PRIu64 ", \"indirect_blocks\": %" PRIu64
			", \"stack\": ",
			i ? "," : "", reports_leak_kind_name(r->kind), r->bytes, r->blocks,
			r->indirect_bytes, r->indirect_blocks);
		int res = json_stack(out, cap, sym, r->stack, fr);
		if (res < 0)
			return res;
		fputc('}', out);
	}
	fputs("],\n  \"cycles\": ", out);
	int res = reports_json_cycles(out, cap, an, sym, fr);
	fputs(",\n", out);
	return res;
}

static int json_sites(FILE *out, const struct reports_capture *cap,
		      const struct reports_analysis *an, struct reports_symbolizer *sym,
		      struct reports_frames *fr)
{
	fputs("  \"sites\": [", out);
	for (size_t i = 0; i < an->n_sites; i++) {
		const struct reports_site *s = &an->sites[i];
		fprintf(out,
			"%s\n    {\"allocations\": %" PRIu64 ", \"bytes\": %" PRIu64
			", \"peak_bytes\": %" PRIu64 ", \"leaked_bytes\": %" PRIu64 ", \"stack\": ",
			i ? "," : "", s->allocations, s->bytes, s->peak_bytes, s->leaked_bytes);
		int res = json_stack(out, cap, sym, s->stack, fr);
		if (res < 0)
			return res;
		fputc('}', out);
	}
	fputs("],\n  \"lineno\": [", out);
	for (size_t i = 0; i < an->n_lineno; i++) {
		const struct reports_lineno *l = &an->lineno[i];
		fprintf(out, "%s\n    {\"file\": ", i ? "," : "");
		jstr(out, l->file);
		fputs(", \"line\": ", out);
		if (l->file && l->line)
			fprintf(out, "%u", l->line);
		else
			fputs("null", out);
		fputs(", \"function\": ", out);
		jstr(out, l->function);
		fputs(", \"module\": ", out);
		jstr(out, l->module ? l->module : "");
		fputs(", \"address\": ", out);
		jaddr(out, l->address);
		fprintf(out,
			", \"allocations\": %" PRIu64 ", \"bytes\": %" PRIu64
			", \"peak_bytes\": %" PRIu64 ", \"leaked_bytes\": %" PRIu64 "}",
			l->allocations, l->bytes, l->peak_bytes, l->leaked_bytes);
	}
	fputs("],\n", out);
	return 0;
}

static const char *badfree_kind(uint64_t kind)
{
	switch (kind) {
	case CAPTURE_BADFREE_DOUBLE: return "double";
	case CAPTURE_BADFREE_INVALID: return "invalid";
	default: return "foreign";
	}
}

static int json_badfrees(FILE *out, const struct reports_capture *cap,
			 struct reports_symbolizer *sym, struct reports_frames *fr)
{
	fputs("  \"bad_frees\": [", out);
	for (size_t i = 0; i < cap->n_badfrees; i++) {
		const struct reports_badfree *b = &cap->badfrees[i];
		fprintf(out, "%s\n    {\"kind\": \"%s\", \"address\": ", i ? "," : "",
			badfree_kind(b->kind));
		jaddr(out, b->addr);
		fputs(", \"stack\": ", out);
		int res = json_stack(out, cap, sym, b->free_stack, fr);
		if (res == 0) {
			fputs(", \"alloc_stack\": ", out);
			res = json_stack(out, cap, sym, b->alloc_stack, fr);
		}
		if (res == 0) {
			fputs(", \"first_free_stack\": ", out);
			res = json_stack(out, cap, sym, b->first_free_stack, fr);
		}
		if (res < 0)
			return res;
		fputc('}', out);
	}
	fputs("],\n", out);
	return 0;
}

static void json_notes(FILE *out, const struct reports_capture *cap)
{
	static const char *const levels[] = { "info", "warning", "error" };
	fputs("  \"notes\": [", out);
	for (size_t i = 0; i < cap->n_notes; i++) {
		fprintf(out, "%s{\"level\": \"%s\", \"text\": ", i ? ", " : "",
			levels[cap->notes[i].level < 3 ? cap->notes[i].level : 2]);
		jstr(out, cap->notes[i].text);
		fputc('}', out);
	}
	fputs("],\n", out);
}

static void json_allocator(FILE *out, const struct reports_capture *cap)
{
	const struct reports_stats *st = &cap->stats;
	fputs("  \"allocator\": ", out);
	if (!st->present) {
		fputs("null,\n", out);
		return;
	}
	fprintf(out,
		"{\"arenas_allocated\": %" PRIu64 ", \"arenas_reclaimed\": %" PRIu64
		", \"arenas_highwater\": %" PRIu64 ", \"bytes_quantization\": %" PRIu64
		", \"bytes_pool_headers\": %" PRIu64 ", \"bytes_empty_pools\": %" PRIu64
		", \"large_blocks\": %" PRIu64 ", \"large_bytes\": %" PRIu64 ", \"classes\": [",
		st->arenas_allocated, st->arenas_reclaimed, st->arenas_highwater,
		st->bytes_quantization, st->bytes_pool_headers, st->bytes_empty_pools,
		st->large_blocks, st->large_bytes);
	for (size_t i = 0; i < st->n_classes; i++) {
		const struct reports_pool_class *k = &st->classes[i];
		fprintf(out,
			"%s{\"block_size\": %" PRIu64 ", \"pools\": %" PRIu64
			", \"in_use\": %" PRIu64 ", \"available\": %" PRIu64 "}",
			i ? ", " : "", k->block_size, k->pools, k->in_use, k->available);
	}
	fputs("]},\n", out);
}

int reports_render_json(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an,
			struct reports_symbolizer *sym,
			const struct reports_render_options *opts)
{
	struct reports_frames fr = { 0 };
	fputs("{\n  \"format\": \"memprof-report\",\n  \"version\": 1,\n", out);
	json_program(out, cap, an, opts);
	json_totals(out, cap, an);
	int res = json_leaks(out, cap, an, sym, &fr);
	if (res == 0)
		res = json_sites(out, cap, an, sym, &fr);
	if (res == 0)
		res = json_badfrees(out, cap, sym, &fr);
	reports_frames_finish(&fr);
	if (res < 0)
		return res;
	json_notes(out, cap);
	json_allocator(out, cap);
	fputs("  \"objects\": ", out); /* objects: objects.c */
	res = reports_objects_render_json(out, an->objects, cap, sym);
	if (res < 0)
		return res;
	fputs("\n}\n", out);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}

/* leaks: the frame list of a stack, for cycles.c */
int reports_json_stack(FILE *out, const struct reports_capture *cap,
		       struct reports_symbolizer *sym, uint32_t stack,
		       struct reports_frames *fr)
{
	return json_stack(out, cap, sym, stack, fr);
}
