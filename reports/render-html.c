/*
 * render-html.c: the HTML report, one self-contained page that works from
 * file:// without any network access.  Entry point: reports_render_html().
 *
 * The page is a fixed skeleton, the stylesheet and the script embedded at
 * build time (reports/html/, through html-assets.c), and the data as one
 * JSON object in a <script type="application/json"> element that the
 * script reads and draws from: summary, memory over time, flamegraph,
 * sites, leaks with their source lines, objects, sizes, allocator.
 *
 * Every string of the capture (function, file and program names, argv) is
 * data: it is written as a JSON string (invalid UTF-8 replaced by U+FFFD)
 * whose '<', '>', '&', U+2028 and U+2029 are escaped as \uXXXX, so nothing
 * in it can close the script element, and the script only ever inserts
 * text nodes.  The page's Content-Security-Policy allows no fetch of any
 * kind and no script but its own (by hash), so markup that got in anyway
 * could still not run.
 *
 * Strings and frames are written once, in tables ("strings", "frames") that
 * the rest refers to by index; tables are capped (html-private.h) and the
 * page says what was left out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memprof/capture.h>

#include "config.h"
#include "html-private.h"
#include "reports-private.h"
#include "reports.h"

#define NONE UINT32_MAX
#define RSS_POINTS 1000u
#define BAD_FREES_MAX 100u
#define SNIPPETS_MAX 500u
#define SNIPPET_LINE_MAX 400u
#define CYCLES_MAX 50u
#define CYCLE_MEMBERS_MAX 60u
#define CYCLE_EDGES_MAX 240u

struct source_file {
	char *path;
	char *data; /* NULL when it could not be read */
	size_t len;
};

struct snippet {
	const char *file;
	unsigned line;
	uint32_t file_index; /* in sources */
};

struct page {
	FILE *out; /* the JSON being written (a memory stream) */
	const struct reports_capture *cap;
	const struct reports_analysis *an;
	struct reports_symbolizer *sym;
	const struct reports_html_data *hd;
	struct reports_frames fr;

	/* strings: interned, open addressing over index + 1 */
	const char **strings;
	size_t n_strings, cap_strings;
	uint32_t *string_slots;
	size_t string_mask;

	/* frames by symbolizer pointer */
	struct reports_map frame_index;
	const struct reports_frame **frames;
	size_t n_frames, cap_frames;

	struct source_file *sources;
	size_t n_sources, cap_sources;
	size_t source_bytes;
	struct snippet *snippets;
	size_t n_snippets, cap_snippets;

	uint32_t *site_out; /* analysis site -> row in the page, or NONE */
	size_t n_site_rows;
	int error;
};

/* ---- tables ----------------------------------------------------------- */

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return reports_hash64(h);
}

static int grow_strings(struct page *pg)
{
	size_t nmask = pg->string_mask ? pg->string_mask * 2 + 1 : 255;
	uint32_t *ns = calloc(nmask + 1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < pg->n_strings; i++) {
		size_t j = str_hash(pg->strings[i]) & nmask;
		while (ns[j])
			j = (j + 1) & nmask;
		ns[j] = (uint32_t)i + 1;
	}
	free(pg->string_slots);
	pg->string_slots = ns;
	pg->string_mask = nmask;
	return 0;
}

/* The index of s in the string table, -1 for NULL (or out of memory,
 * remembered in pg->error). */
static long str_index(struct page *pg, const char *s)
{
	if (!s)
		return -1;
	if ((pg->n_strings + 1) * 2 > pg->string_mask + 1 && grow_strings(pg) < 0)
		goto nomem;
	size_t j = str_hash(s) & pg->string_mask;
	while (pg->string_slots[j]) {
		uint32_t i = pg->string_slots[j] - 1;
		if (strcmp(pg->strings[i], s) == 0)
			return (long)i;
		j = (j + 1) & pg->string_mask;
	}
	if (reports_vec_push(&pg->strings, &pg->n_strings, &pg->cap_strings, &s, sizeof(s)) < 0)
		goto nomem;
	pg->string_slots[j] = (uint32_t)pg->n_strings;
	return (long)pg->n_strings - 1;
nomem:
	pg->error = -ENOMEM;
	return -1;
}

static long frame_index(struct page *pg, const struct reports_frame *f)
{
	uint32_t i;
	if (reports_map_get(&pg->frame_index, (uint64_t)(uintptr_t)f, &i))
		return i;
	i = (uint32_t)pg->n_frames;
	if (reports_vec_push(&pg->frames, &pg->n_frames, &pg->cap_frames, &f, sizeof(f)) < 0 ||
	    reports_map_put(&pg->frame_index, (uint64_t)(uintptr_t)f, i) < 0) {
		pg->error = -ENOMEM;
		return -1;
	}
	return i;
}

static void jstr(FILE *out, const char *s)
{
	if (s)
		reports_json_string(out, s, strlen(s));
	else
		fputs("null", out);
}

static void jseconds(FILE *out, uint64_t ns)
{
	fprintf(out, "%.6f", (double)ns / 1e9);
}

static void jbool(FILE *out, bool b)
{
	fputs(b ? "true" : "false", out);
}

/* ---- source snippets ----------------------------------------------------- */

static struct source_file *source_get(struct page *pg, const char *path, uint32_t *index)
{
	for (size_t i = 0; i < pg->n_sources; i++) {
		if (strcmp(pg->sources[i].path, path) == 0) {
			*index = (uint32_t)i;
			return pg->sources[i].data ? &pg->sources[i] : NULL;
		}
	}
	if (pg->n_sources >= HTML_SOURCE_FILES || pg->source_bytes >= HTML_SOURCE_TOTAL_MAX)
		return NULL;
	struct source_file sf = { .path = strdup(path) };
	if (!sf.path)
		return NULL;
	/* only regular files: never a FIFO or a device named by a capture */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		size_t want = (size_t)st.st_size;
		if (want > HTML_SOURCE_FILE_MAX)
			want = HTML_SOURCE_FILE_MAX;
		if (want > HTML_SOURCE_TOTAL_MAX - pg->source_bytes)
			want = HTML_SOURCE_TOTAL_MAX - pg->source_bytes;
		sf.data = malloc(want + 1);
		ssize_t got = sf.data ? read(fd, sf.data, want) : -1;
		if (got < 0) {
			free(sf.data);
			sf.data = NULL;
		} else {
			sf.len = (size_t)got;
			sf.data[sf.len] = '\0';
			pg->source_bytes += sf.len;
			/* a file with NUL bytes is not source text */
			if (memchr(sf.data, '\0', sf.len)) {
				free(sf.data);
				sf.data = NULL;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	if (reports_vec_push(&pg->sources, &pg->n_sources, &pg->cap_sources, &sf, sizeof(sf)) < 0) {
		free(sf.path);
		free(sf.data);
		return NULL;
	}
	*index = (uint32_t)pg->n_sources - 1;
	return sf.data ? &pg->sources[*index] : NULL;
}

/* Start of line n (1-based) of sf, or NULL when the file is shorter. */
static const char *line_start(const struct source_file *sf, unsigned n)
{
	const char *p = sf->data, *end = sf->data + sf->len;
	for (unsigned i = 1; i < n; i++) {
		p = memchr(p, '\n', (size_t)(end - p));
		if (!p)
			return NULL;
		p++;
	}
	return p < end ? p : NULL;
}

/* The snippet of the allocating frame of a stack (the first frame of the
 * program with a file and line), or -1. */
static long snippet_of_stack(struct page *pg, const struct reports_frames *fr)
{
	const struct reports_frame *pick = NULL;
	for (size_t i = reports_frames_display_start(fr); i < fr->n && !pick; i++)
		if (!reports_frame_is_allocator(fr->v[i]) && fr->v[i]->file && fr->v[i]->line)
			pick = fr->v[i];
	if (!pick)
		return -1;
	for (size_t i = 0; i < pg->n_snippets; i++)
		if (pg->snippets[i].line == pick->line &&
		    strcmp(pg->snippets[i].file, pick->file) == 0)
			return (long)i;
	if (pg->n_snippets >= SNIPPETS_MAX)
		return -1;
	uint32_t fi;
	const struct source_file *sf = source_get(pg, pick->file, &fi);
	if (!sf || !line_start(sf, pick->line))
		return -1;
	struct snippet sn = { pick->file, pick->line, fi };
	if (reports_vec_push(&pg->snippets, &pg->n_snippets, &pg->cap_snippets, &sn, sizeof(sn)) < 0) {
		pg->error = -ENOMEM;
		return -1;
	}
	return (long)pg->n_snippets - 1;
}

static void write_snippets(struct page *pg)
{
	FILE *out = pg->out;
	fputs("\"snippets\":[", out);
	for (size_t i = 0; i < pg->n_snippets; i++) {
		const struct snippet *sn = &pg->snippets[i];
		const struct source_file *sf = &pg->sources[sn->file_index];
		unsigned first = sn->line > HTML_SNIPPET_CONTEXT ? sn->line - HTML_SNIPPET_CONTEXT : 1;
		fprintf(out, "%s{\"file\":%ld,\"line\":%u,\"first\":%u,\"lines\":[", i ? "," : "",
			str_index(pg, sn->file), sn->line, first);
		const char *p = line_start(sf, first), *end = sf->data + sf->len;
		for (unsigned l = first; p && l <= sn->line + HTML_SNIPPET_CONTEXT; l++) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t len = (size_t)((nl ? nl : end) - p);
			if (len && p[len - 1] == '\r')
				len--;
			if (l > first)
				fputc(',', out);
			reports_json_string(out, p, len > SNIPPET_LINE_MAX ? SNIPPET_LINE_MAX : len);
			if (!nl || nl + 1 >= end)
				break;
			p = nl + 1;
		}
		fputs("]}", out);
	}
	fputs("],\n", out);
}

/* ---- stacks ------------------------------------------------------------- */

/* Writes a stack as frame indices, innermost first; returns its snippet
 * (or -1) when want_snippet. */
static long write_stack(struct page *pg, uint32_t stack, bool want_snippet)
{
	FILE *out = pg->out;
	if (reports_stack_symbolize(pg->sym, pg->cap, stack, &pg->fr) < 0) {
		pg->error = -ENOMEM;
		fputs("[]", out);
		return -1;
	}
	fputc('[', out);
	size_t start = reports_frames_display_start(&pg->fr);
	for (size_t i = start; i < pg->fr.n; i++)
		fprintf(out, "%s%ld", i > start ? "," : "", frame_index(pg, pg->fr.v[i]));
	fputc(']', out);
	return want_snippet ? snippet_of_stack(pg, &pg->fr) : -1;
}

static void write_frames(struct page *pg)
{
	FILE *out = pg->out;
	fputs("\"frames\":[", out);
	for (size_t i = 0; i < pg->n_frames; i++) {
		const struct reports_frame *f = pg->frames[i];
		fprintf(out, "%s[%ld,%ld,%u,%ld,\"0x%" PRIx64 "\",%d,%d]", i ? ",\n" : "\n",
			str_index(pg, f->function), str_index(pg, f->file),
			f->file ? f->line : 0, str_index(pg, f->module), f->address,
			reports_frame_is_allocator(f) ? 1 : 0, f->inlined ? 1 : 0);
	}
	fputs("],\n", out);
}

static void write_strings(struct page *pg)
{
	FILE *out = pg->out;
	fputs("\"strings\":[", out);
	for (size_t i = 0; i < pg->n_strings; i++) {
		fputs(i ? ",\n" : "\n", out);
		jstr(out, pg->strings[i]);
	}
	fputs("]\n", out);
}

/* ---- sections --------------------------------------------------------------- */

static void write_program(struct page *pg, const struct reports_render_options *opts)
{
	FILE *out = pg->out;
	const struct reports_capture *cap = pg->cap;
	const struct reports_analysis *an = pg->an;
	struct reports_outcome oc = opts->outcome;
	if (!oc.known)
		reports_capture_outcome(cap, &oc);
	fputs("\"program\":{\"argv\":[", out);
	for (size_t i = 0; i < cap->argc; i++) {
		if (i)
			fputc(',', out);
		jstr(out, cap->argv[i]);
	}
	fputs("],\"exe\":", out);
	jstr(out, cap->exe);
	fputs(",\"pid\":", out);
	if (cap->has_process)
		fprintf(out, "%" PRIu64, cap->pid);
	else
		fputs("null", out);
	fputs(",\"exit_status\":", out);
	if (oc.known)
		fprintf(out, "%d", oc.exit_status);
	else
		fputs("null", out);
	fputs(",\"signal\":", out);
	if (oc.known && oc.signal)
		fprintf(out, "%d", oc.signal);
	else
		fputs("null", out);
	fputs(",\"exec\":", out);
	jbool(out, cap->has_end && cap->end_how == CAPTURE_END_EXEC);
	fputs(",\"forked_child\":", out);
	jbool(out, cap->process_flags & CAPTURE_PROCESS_FORKED);
	fputs(",\"start_realtime_s\":", out);
	if (cap->has_process)
		fprintf(out, "%" PRIu64, cap->start_realtime_ns / 1000000000u);
	else
		fputs("null", out);
	fputs(",\"duration_s\":", out);
	jseconds(out, an->totals.duration_ns);
	fputs("},\n", out);
}

static void write_totals(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_analysis *an = pg->an;
	const struct reports_totals *t = &an->totals;
	const struct reports_capture *cap = pg->cap;
	fprintf(out,
		"\"totals\":{\"allocations\":%" PRIu64 ",\"frees\":%" PRIu64
		",\"bytes_allocated\":%" PRIu64 ",\"peak_bytes\":%" PRIu64 ",\"peak_time_s\":",
		t->allocations, t->frees, t->bytes_allocated, t->peak_bytes);
	jseconds(out, t->peak_time_ns);
	fprintf(out,
		",\"live_blocks_at_exit\":%" PRIu64 ",\"live_bytes_at_exit\":%" PRIu64
		",\"temporary\":%" PRIu64 ",\"unmatched_frees\":%" PRIu64 "},\n",
		t->live_blocks_at_exit, t->live_bytes_at_exit,
		pg->hd ? pg->hd->temporary_total : 0, an->unmatched_frees);
	fputs("\"leaks\":{", out);
	for (int k = 0; k < REPORTS_LEAK_KINDS; k++)
		fprintf(out, "%s\"%s\":{\"bytes\":%" PRIu64 ",\"blocks\":%" PRIu64 "}", k ? "," : "",
			reports_leak_kind_name(k), an->leaks[k].bytes, an->leaks[k].blocks);
	fputs("},\n\"capture\":{\"incomplete\":", out);
	jbool(out, cap->incomplete);
	fputs(",\"truncated\":", out);
	jbool(out, cap->truncated);
	fprintf(out, ",\"lost_events\":%" PRIu64 ",\"scanned\":", cap->lost_events);
	jbool(out, an->scanned);
	fputs(",\"scan_partial\":", out);
	jbool(out, an->scan_partial);
	fputs(",\"events_known\":", out);
	jbool(out, pg->hd != NULL);
	fputs("},\n", out);
}

static void write_notes(struct page *pg)
{
	static const char *const levels[] = { "info", "warning", "error" };
	FILE *out = pg->out;
	fputs("\"notes\":[", out);
	for (size_t i = 0; i < pg->cap->n_notes; i++) {
		const struct reports_note *n = &pg->cap->notes[i];
		fprintf(out, "%s{\"level\":\"%s\",\"text\":", i ? "," : "",
			levels[n->level < 3 ? n->level : 2]);
		jstr(out, n->text);
		fputc('}', out);
	}
	fputs("],\n", out);
}

static uint64_t site_temporary(const struct page *pg, size_t s)
{
	return pg->hd && s < pg->hd->n_sites ? pg->hd->temporary[s] : 0;
}

struct site_sort {
	const struct page *pg;
	int by;
};

static int cmp_site_by(const void *a, const void *b, void *arg)
{
	const struct site_sort *ss = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const struct reports_site *sx = &ss->pg->an->sites[x], *sy = &ss->pg->an->sites[y];
	uint64_t vx = ss->by ? site_temporary(ss->pg, x) : sx->leaked_bytes;
	uint64_t vy = ss->by ? site_temporary(ss->pg, y) : sy->leaked_bytes;
	if (vx != vy)
		return vx > vy ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Chooses the sites of the table: the HTML_SITES first by each column,
 * and every site a breakdown refers to; in the analysis' order (peak). */
static int choose_sites(struct page *pg)
{
	const struct reports_analysis *an = pg->an;
	size_t n = an->n_sites;
	pg->site_out = malloc((n ? n : 1) * sizeof(*pg->site_out));
	size_t *order = malloc((n ? n : 1) * sizeof(*order));
	if (!pg->site_out || !order) {
		free(order);
		return -ENOMEM;
	}
	bool all = n <= HTML_SITES;
	for (size_t i = 0; i < n; i++)
		pg->site_out[i] = all || i < HTML_SITES ? 0 : NONE;
	if (!all) {
		for (int how = 0; how < 4; how++) {
			if (how < 2) {
				reports_sites_top(an,
						  how ? REPORTS_SITES_BY_COUNT : REPORTS_SITES_BY_BYTES,
						  order, HTML_SITES);
			} else {
				struct site_sort ss = { pg, how - 2 };
				for (size_t i = 0; i < n; i++)
					order[i] = i;
				qsort_r(order, n, sizeof(*order), cmp_site_by, &ss);
			}
			for (size_t i = 0; i < HTML_SITES; i++)
				pg->site_out[order[i]] = 0;
		}
		if (pg->hd)
			for (size_t i = 0; i < pg->hd->n_shares; i++)
				pg->site_out[pg->hd->shares[i].site] = 0;
	}
	free(order);
	pg->n_site_rows = 0;
	for (size_t i = 0; i < n; i++)
		if (pg->site_out[i] != NONE)
			pg->site_out[i] = (uint32_t)pg->n_site_rows++;
	return 0;
}

static void write_sites(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_analysis *an = pg->an;
	fprintf(out, "\"sites\":{\"total\":%zu,\"shown\":%zu,\"rows\":[", an->n_sites,
		pg->n_site_rows);
	bool first = true;
	for (size_t i = 0; i < an->n_sites; i++) {
		if (pg->site_out[i] == NONE)
			continue;
		const struct reports_site *s = &an->sites[i];
		fprintf(out,
			"%s{\"a\":%" PRIu64 ",\"b\":%" PRIu64 ",\"p\":%" PRIu64 ",\"l\":%" PRIu64
			",\"lb\":%" PRIu64 ",\"t\":%" PRIu64 ",\"s\":",
			first ? "\n" : ",\n", s->allocations, s->bytes, s->peak_bytes,
			s->leaked_bytes, s->leaked_blocks, site_temporary(pg, i));
		long sn = write_stack(pg, s->stack, true);
		fprintf(out, ",\"src\":%ld}", sn);
		first = false;
	}
	fputs("]},\n", out);
}

static void write_leak(struct page *pg, const struct reports_leak_record *r, bool first)
{
	fprintf(pg->out,
		"%s{\"k\":\"%s\",\"b\":%" PRIu64 ",\"n\":%" PRIu64 ",\"ib\":%" PRIu64
		",\"in\":%" PRIu64 ",\"s\":",
		first ? "\n" : ",\n", reports_leak_kind_name(r->kind), r->bytes, r->blocks,
		r->indirect_bytes, r->indirect_blocks);
	long sn = write_stack(pg, r->stack, true);
	fprintf(pg->out, ",\"src\":%ld}", sn);
}

/* The leak records, the worst kinds first and the largest first in each
 * (the analysis sorts them by increasing size), at most
 * HTML_LEAK_RECORDS. */
static void write_leaks(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_analysis *an = pg->an;
	size_t shown = an->n_leak_records < HTML_LEAK_RECORDS ? an->n_leak_records
							      : HTML_LEAK_RECORDS;
	fprintf(out, "\"leak_records\":{\"total\":%zu,\"shown\":%zu,\"rows\":[",
		an->n_leak_records, shown);
	size_t k = 0;
	for (int kind = 0; kind < REPORTS_LEAK_KINDS; kind++) {
		for (size_t i = an->n_leak_records; i-- > 0 && k < shown;) {
			if ((int)an->leak_records[i].kind == kind)
				write_leak(pg, &an->leak_records[i], k++ == 0);
		}
	}
	fputs("]},\n", out);
}

static void write_bad_frees(struct page *pg)
{
	static const char *const kinds[] = { "foreign", "double", "invalid", "foreign" };
	FILE *out = pg->out;
	const struct reports_capture *cap = pg->cap;
	fprintf(out, "\"bad_frees\":{\"total\":%zu,\"rows\":[", cap->n_badfrees);
	for (size_t i = 0; i < cap->n_badfrees && i < BAD_FREES_MAX; i++) {
		const struct reports_badfree *b = &cap->badfrees[i];
		fprintf(out, "%s{\"kind\":\"%s\",\"address\":\"0x%" PRIx64 "\",\"s\":", i ? "," : "",
			kinds[b->kind < 4 ? b->kind : 0], b->addr);
		write_stack(pg, b->free_stack, false);
		fputs(",\"as\":", out);
		write_stack(pg, b->alloc_stack, false);
		fputc('}', out);
	}
	fputs("]},\n", out);
}

static void write_flame(struct page *pg)
{
	FILE *out = pg->out;
	struct html_flame fl;
	if (html_flame_build(pg->cap, pg->an, pg->sym, pg->hd ? pg->hd->temporary : NULL,
			     HTML_FLAME_NODES, &fl) < 0) {
		pg->error = -ENOMEM;
		fputs("\"flame\":null,\n", out);
		return;
	}
	fprintf(out, "\"flame\":{\"total_nodes\":%zu,\"max_nodes\":%u,\"nodes\":[", fl.n_full,
		HTML_FLAME_NODES);
	for (size_t i = 0; i < fl.n_nodes; i++) {
		const struct html_flame_node *n = &fl.nodes[i];
		fprintf(out, "%s[%ld,%ld,%ld,%u,%ld,\"0x%" PRIx64 "\",%" PRIu64 ",%" PRIu64
			",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]",
			i ? ",\n" : "\n", n->parent == NONE ? -1L : (long)n->parent,
			str_index(pg, n->function), str_index(pg, n->file), n->file ? n->line : 0,
			str_index(pg, n->module), n->offset, n->v[HTML_COST_PEAK],
			n->v[HTML_COST_LEAKED], n->v[HTML_COST_COUNT], n->v[HTML_COST_TEMPORARY],
			n->merged);
	}
	fputs("]},\n", out);
	html_flame_finish(&fl);
}

static void write_timeline(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_capture *cap = pg->cap;
	const struct reports_html_data *hd = pg->hd;
	fputs("\"timeline\":{\"by_time\":", out);
	jbool(out, hd && hd->by_time);
	fputs(",\"points\":[", out);
	for (size_t i = 0; hd && i < hd->n_points; i++) {
		const struct html_point *p = &hd->points[i];
		fprintf(out, "%s[", i ? "," : "");
		jseconds(out, p->t_ns);
		fprintf(out, ",%" PRIu64 ",%" PRIu64 ",%ld,%d]", p->live, p->max_live,
			p->breakdown == UINT32_MAX ? -1L : (long)p->breakdown, p->is_peak ? 1 : 0);
	}
	fputs("],\n\"rss\":[", out);
	/* at most RSS_POINTS samples: the largest of each run */
	size_t n = cap->n_samples, step = (n + RSS_POINTS - 1) / RSS_POINTS;
	for (size_t i = 0, k = 0; i < n; i += step, k++) {
		size_t best = i;
		for (size_t j = i; j < i + step && j < n; j++)
			if (cap->samples[j].rss_bytes > cap->samples[best].rss_bytes)
				best = j;
		const struct reports_sample *s = &cap->samples[best];
		fprintf(out, "%s[", k ? "," : "");
		jseconds(out, s->t_ns);
		fprintf(out, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]", s->rss_bytes, s->heap_bytes,
			s->live_bytes);
	}
	fputs("],\n\"breakdowns\":[", out);
	for (size_t i = 0; hd && i < hd->n_breakdowns; i++) {
		const struct html_breakdown *b = &hd->breakdowns[i];
		fprintf(out, "%s{\"point\":%" PRIu32 ",\"blocks\":%" PRIu64 ",\"rows\":[",
			i ? ",\n" : "\n", b->point, b->live_blocks);
		for (size_t j = 0; j < b->n; j++) {
			const struct html_share *sh = &hd->shares[b->first + j];
			fprintf(out, "%s[%" PRIu32 ",%" PRIu64 ",%" PRIu64 "]", j ? "," : "",
				pg->site_out[sh->site], sh->bytes, sh->blocks);
		}
		fprintf(out, "],\"other\":[%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]}", b->other_bytes,
			b->other_blocks, b->other_sites);
	}
	fputs("]},\n", out);
}

static void write_sizes(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_html_data *hd = pg->hd;
	fputs("\"sizes\":[", out);
	bool first = true;
	for (unsigned k = 0; hd && k < HTML_SIZE_BUCKETS; k++) {
		if (!hd->size_count[k])
			continue;
		/* bucket k >= 1: sizes from 2^(k-1) up to 2^k - 1 */
		uint64_t lo = k ? (uint64_t)1 << (k - 1) : 0;
		uint64_t hi = k ? (k == 64 ? UINT64_MAX : ((uint64_t)1 << k) - 1) : 0;
		fprintf(out, "%s[%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]", first ? "" : ",",
			lo, hi, hd->size_count[k], hd->size_bytes[k]);
		first = false;
	}
	fputs("],\n", out);
}

static void write_allocator(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_stats *st = &pg->cap->stats;
	fputs("\"allocator\":", out);
	if (!st->present) {
		fputs("null,\n", out);
		return;
	}
	fprintf(out,
		"{\"arenas_allocated\":%" PRIu64 ",\"arenas_reclaimed\":%" PRIu64
		",\"arenas_highwater\":%" PRIu64 ",\"bytes_quantization\":%" PRIu64
		",\"bytes_pool_headers\":%" PRIu64 ",\"bytes_empty_pools\":%" PRIu64
		",\"large_blocks\":%" PRIu64 ",\"large_bytes\":%" PRIu64 ",\"classes\":[",
		st->arenas_allocated, st->arenas_reclaimed, st->arenas_highwater,
		st->bytes_quantization, st->bytes_pool_headers, st->bytes_empty_pools,
		st->large_blocks, st->large_bytes);
	for (size_t i = 0; i < st->n_classes; i++) {
		const struct reports_pool_class *k = &st->classes[i];
		fprintf(out, "%s[%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]", i ? "," : "",
			k->block_size, k->pools, k->in_use, k->available);
	}
	fputs("]},\n", out);
}

/* The member of a cycle at addr (members sorted by address), or -1. */
static long cycle_member(const struct reports_cycle_member *m, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m[mid].address == addr)
			return (long)mid;
		if (m[mid].address < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The unreachable cycles: members (capped) with their stacks, and the
 * edges between the members kept, as member indices. */
static void write_cycles(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_cycles *cy = pg->an->cycles;
	size_t n = cy ? cy->n : 0;
	fprintf(out, "\"cycles\":{\"total\":%zu,\"rows\":[", n);
	for (size_t i = 0; i < n && i < CYCLES_MAX; i++) {
		const struct reports_cycle *c = &cy->v[i];
		const struct reports_cycle_member *m = cy->members + c->first_member;
		size_t nm = c->n_members < CYCLE_MEMBERS_MAX ? c->n_members : CYCLE_MEMBERS_MAX;
		fprintf(out, "%s{\"blocks\":%" PRIu64 ",\"bytes\":%" PRIu64
			",\"n_members\":%zu,\"members\":[",
			i ? ",\n" : "\n", c->blocks, c->bytes, c->n_members);
		for (size_t j = 0; j < nm; j++) {
			fprintf(out, "%s[\"0x%" PRIx64 "\",%" PRIu64 ",", j ? "," : "", m[j].address,
				m[j].size);
			write_stack(pg, m[j].stack, false);
			fputc(']', out);
		}
		fputs("],\"edges\":[", out);
		size_t shown = 0;
		for (size_t e = 0; e < c->n_edges && shown < CYCLE_EDGES_MAX; e++) {
			const struct reports_cycle_edge *ed = &cy->edges[c->first_edge + e];
			long from = cycle_member(m, nm, ed->from), to = cycle_member(m, nm, ed->to);
			if (from < 0 || to < 0)
				continue;
			fprintf(out, "%s[%ld,%ld,%" PRIu64 "]", shown ? "," : "", from, to, ed->offset);
			shown++;
		}
		fputs("]}", out);
	}
	fputs("]},\n", out);
}

/* Objects of libmemprof-heap by type, from the last snapshot. */
static void write_objects(struct page *pg)
{
	FILE *out = pg->out;
	const struct reports_capture *cap = pg->cap;
	size_t nt = cap->n_objtypes;
	uint64_t *count = calloc(nt ? nt : 1, sizeof(*count));
	fputs("\"objects\":{\"snapshot\":", out);
	uint64_t last = 0;
	bool any = false;
	for (size_t i = 0; i < cap->n_objects; i++) {
		if (!any || cap->objects[i].snapshot > last)
			last = cap->objects[i].snapshot;
		any = true;
	}
	const char *label = NULL;
	for (size_t i = 0; i < cap->n_snapshots; i++)
		if (cap->snapshots[i].id == last)
			label = cap->snapshots[i].label;
	if (any)
		jstr(out, label ? label : "");
	else
		fputs("null", out);
	fputs(",\"types\":[", out);
	if (!count) {
		pg->error = -ENOMEM;
		fputs("]},\n", out);
		return;
	}
	uint64_t untyped = 0;
	for (size_t i = 0; i < cap->n_objects; i++) {
		if (cap->objects[i].snapshot != last)
			continue;
		size_t t = 0;
		while (t < nt && cap->objtypes[t].id != cap->objects[i].type_id)
			t++;
		if (t < nt)
			count[t]++;
		else
			untyped++;
	}
	bool first = true;
	for (size_t t = 0; t < nt; t++) {
		if (!count[t])
			continue;
		fputs(first ? "{\"name\":" : ",{\"name\":", out);
		jstr(out, cap->objtypes[t].name ? cap->objtypes[t].name : "?");
		fprintf(out, ",\"count\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", count[t],
			count[t] * cap->objtypes[t].body_size);
		first = false;
	}
	if (untyped)
		fprintf(out, "%s{\"name\":\"(unknown type)\",\"count\":%" PRIu64 ",\"bytes\":0}",
			first ? "" : ",", untyped);
	fputs("]},\n", out);
	free(count);
}

static void write_data(struct page *pg, const struct reports_render_options *opts)
{
	FILE *out = pg->out;
	fputs("{\"format\":\"memprof-html\",\"version\":1,\"memprof\":\"" MEMPROF_VERSION "\",\n",
	      out);
	fprintf(out,
		"\"limits\":{\"sites\":%u,\"flame_nodes\":%u,\"leak_records\":%u,"
		"\"breakdown_top\":%u,\"source_files\":%u},\n",
		HTML_SITES, HTML_FLAME_NODES, HTML_LEAK_RECORDS, HTML_BREAKDOWN_TOP,
		HTML_SOURCE_FILES);
	write_program(pg, opts);
	write_totals(pg);
	write_notes(pg);
	if (choose_sites(pg) < 0) {
		pg->error = -ENOMEM;
		return;
	}
	write_sites(pg);
	write_leaks(pg);
	write_bad_frees(pg);
	write_flame(pg);
	write_timeline(pg);
	write_sizes(pg);
	write_allocator(pg);
	write_objects(pg);
	write_cycles(pg);
	write_snippets(pg);
	write_frames(pg); /* after every stack */
	write_strings(pg); /* last: everything above names its strings */
	fputs("}", out);
}

/* ---- the page ---------------------------------------------------------------- */

void html_json_copy_inert(FILE *out, const char *json, size_t len)
{
	const unsigned char *s = (const unsigned char *)json;
	size_t done = 0;
	for (size_t i = 0; i < len; i++) {
		const char *esc = NULL;
		size_t skip = 1;
		if (s[i] == '<')
			esc = "\\u003c";
		else if (s[i] == '>')
			esc = "\\u003e";
		else if (s[i] == '&')
			esc = "\\u0026";
		else if (s[i] == 0xe2 && i + 2 < len && s[i + 1] == 0x80 &&
			 (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
			esc = s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
			skip = 3;
		}
		if (!esc)
			continue;
		fwrite(json + done, 1, i - done, out);
		fputs(esc, out);
		i += skip - 1;
		done = i + 1;
	}
	fwrite(json + done, 1, len - done, out);
}

static void page_finish(struct page *pg)
{
	reports_frames_finish(&pg->fr);
	free(pg->strings);
	free(pg->string_slots);
	reports_map_finish(&pg->frame_index);
	free(pg->frames);
	for (size_t i = 0; i < pg->n_sources; i++) {
		free(pg->sources[i].path);
		free(pg->sources[i].data);
	}
	free(pg->sources);
	free(pg->snippets);
	free(pg->site_out);
}

int reports_render_html(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an, struct reports_symbolizer *sym,
			const struct reports_html_data *hd,
			const struct reports_render_options *opts)
{
	char *json = NULL;
	size_t len = 0;
	struct page pg = { .cap = cap, .an = an, .sym = sym, .hd = hd };
	pg.out = open_memstream(&json, &len);
	if (!pg.out)
		return -ENOMEM;
	write_data(&pg, opts);
	if (fclose(pg.out) != 0 && pg.error == 0)
		pg.error = -ENOMEM;
	page_finish(&pg);
	if (pg.error < 0) {
		free(json);
		return pg.error;
	}
	fprintf(out,
		"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		"<meta name=\"color-scheme\" content=\"light dark\">\n"
		"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		"style-src 'unsafe-inline'; script-src '%s'; img-src data:; base-uri 'none'; "
		"form-action 'none'\">\n"
		"<meta name=\"generator\" content=\"memprof " MEMPROF_VERSION "\">\n"
		"<title>memprof report</title>\n<style>\n",
		html_asset_js_hash);
	fputs(html_asset_css, out);
	fputs("</style>\n</head>\n<body>\n"
	      "<noscript><p class=\"noscript\">This report draws its charts and tables with "
	      "JavaScript; enable it to see them.</p></noscript>\n"
	      "<div id=\"mp-app\" aria-live=\"polite\"></div>\n"
	      "<pre id=\"mp-errors\" hidden></pre>\n"
	      "<script type=\"application/json\" id=\"mp-data\">",
	      out);
	html_json_copy_inert(out, json, len);
	free(json);
	fputs("</script>\n<script>", out);
	fputs(html_asset_js, out);
	fputs("</script>\n</body>\n</html>\n", out);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
