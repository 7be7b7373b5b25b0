/*
 * test-reports-views.c: the views of reports/ on captures built with
 * tests/reports-encode.h: temporary allocations (per thread, realloc in
 * place), folded stacks (order, merging, names, costs), the matching of
 * --lines targets, the timeline chart and the diff of two runs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports-encode.h"
#include "reports.h"

static struct reports_capture *load(const struct enc *e)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	int r = reports_capture_load_buffer(e->buf, e->len, &cap, &err);
	cr_assert_eq(r, 0, "%s", err.message);
	return cap;
}

/* A loaded, symbolized and analysed capture. */
struct run {
	struct enc e;
	struct reports_capture *cap;
	struct reports_symbolizer *sym;
	struct reports_analysis *an;
};

static void run_open(struct run *r)
{
	enc_chunk_end(&r->e);
	r->cap = load(&r->e);
	r->sym = reports_symbolizer_create(r->cap);
	cr_assert_not_null(r->sym);
	r->an = reports_analysis_run(r->cap, r->sym);
	cr_assert_not_null(r->an);
}

static void run_close(struct run *r)
{
	reports_analysis_destroy(r->an);
	reports_symbolizer_destroy(r->sym);
	reports_capture_destroy(r->cap);
	enc_finish(&r->e);
}

/* A module "prog" at [0x1000, 0x9000) with bias 0x1000, no file on disk:
 * its frames are named prog+0xOFFSET. */
static void begin(struct run *r, uint32_t tid)
{
	memset(r, 0, sizeof(*r));
	enc_init(&r->e);
	enc_chunk_begin(&r->e, tid);
	enc_module(&r->e, 1, 0x1000, 0x1000, 0x9000, "prog");
}

static uint64_t temporary_of(struct run *r, uint64_t ip, uint64_t *total)
{
	uint64_t *per = calloc(r->an->n_sites + 1, sizeof(*per));
	cr_assert_not_null(per);
	cr_assert_eq(reports_temporary_count(r->cap, r->an, per, total), 0);
	uint64_t v = UINT64_MAX;
	for (size_t i = 0; i < r->an->n_sites; i++) {
		uint64_t first;
		if (reports_stack_ips(r->cap, r->an->sites[i].stack, &first, 1) && first == ip)
			v = per[i];
	}
	free(per);
	cr_assert_neq(v, UINT64_MAX, "no site for 0x%llx", (unsigned long long)ip);
	return v;
}

Test(reports_views, temporary_means_freed_before_the_next_allocation)
{
	struct run r;
	begin(&r, 1);
	enc_stack(&r.e, 1, 0, 0x1100); /* temporary ones */
	enc_stack(&r.e, 2, 0, 0x1200); /* kept across another allocation */
	enc_alloc(&r.e, 1, 0x100, 10, 1);
	enc_free(&r.e, 2, 0x100); /* temporary */
	enc_alloc(&r.e, 3, 0x200, 20, 2);
	enc_alloc(&r.e, 4, 0x300, 30, 1);
	enc_free(&r.e, 5, 0x300);	  /* temporary */
	enc_free(&r.e, 6, 0x200);	  /* not: 0x300 was allocated in between */
	enc_alloc(&r.e, 7, 0x400, 40, 2); /* never freed: not temporary */
	enc_end(&r.e, 100, 8, CAPTURE_END_EXIT, 0, 0);
	run_open(&r);
	uint64_t total;
	cr_assert_eq(temporary_of(&r, 0x1100, &total), 2);
	cr_assert_eq(temporary_of(&r, 0x1200, &total), 0);
	cr_assert_eq(total, 2);
	run_close(&r);
}

Test(reports_views, temporary_is_judged_per_thread)
{
	struct run r;
	memset(&r, 0, sizeof(r));
	enc_init(&r.e);
	/* thread 1 allocates at seq 1 and frees at seq 3; thread 2 allocates
	 * at seq 2 in between, which does not count against thread 1 */
	enc_chunk_begin(&r.e, 1);
	enc_module(&r.e, 1, 0x1000, 0x1000, 0x9000, "prog");
	enc_stack(&r.e, 1, 0, 0x1100);
	enc_alloc(&r.e, 1, 0x100, 10, 1);
	enc_free(&r.e, 3, 0x100);
	enc_chunk_end(&r.e);
	enc_chunk_begin(&r.e, 2);
	enc_stack(&r.e, 2, 0, 0x1200);
	enc_alloc(&r.e, 2, 0x200, 20, 2);
	enc_end(&r.e, 100, 4, CAPTURE_END_EXIT, 0, 0);
	run_open(&r);
	uint64_t total;
	cr_assert_eq(temporary_of(&r, 0x1100, &total), 1);
	cr_assert_eq(temporary_of(&r, 0x1200, &total), 0);
	cr_assert_eq(total, 1);
	run_close(&r);
}

Test(reports_views, realloc_in_place_frees_the_old_block_not_the_new)
{
	struct run r;
	begin(&r, 1);
	enc_stack(&r.e, 1, 0, 0x1100);
	enc_stack(&r.e, 2, 0, 0x1200);
	enc_alloc(&r.e, 1, 0x100, 10, 1);
	/* realloc in place: ALLOC of the same address, FREE of the old block */
	enc_alloc(&r.e, 2, 0x100, 50, 2);
	enc_free(&r.e, 3, 0x100);
	enc_end(&r.e, 100, 4, CAPTURE_END_EXIT, 0, 0);
	run_open(&r);
	uint64_t total;
	/* the old block was freed after another allocation; the new one lives */
	cr_assert_eq(temporary_of(&r, 0x1100, &total), 0);
	cr_assert_eq(temporary_of(&r, 0x1200, &total), 0);
	cr_assert_eq(total, 0);
	cr_assert_eq(r.an->totals.live_bytes_at_exit, 50);
	run_close(&r);
}

static char *folded(struct run *r, enum reports_cost cost, const uint64_t *temp)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	cr_assert_not_null(m);
	cr_assert_eq(reports_render_folded(m, r->cap, r->an, r->sym, cost, temp), 0);
	fclose(m);
	return buf;
}

/* main (0x1500) calls a (0x1300) twice from different lines... here two
 * addresses of one function merge; b (0x1400) allocates once. */
static void build_folded(struct run *r)
{
	begin(r, 1);
	enc_stack(&r->e, 1, 0, 0x1500); /* main */
	enc_stack(&r->e, 2, 1, 0x1300); /* main > prog+0x300 */
	enc_stack(&r->e, 3, 1, 0x1400); /* main > prog+0x400 */
	enc_stack(&r->e, 4, 0, 0x1500); /* the same as 1, another node */
	enc_alloc(&r->e, 1, 0x100, 100, 2);
	enc_alloc(&r->e, 2, 0x200, 200, 3);
	enc_alloc(&r->e, 3, 0x300, 300, 1);
	enc_free(&r->e, 4, 0x200);
	enc_alloc(&r->e, 5, 0x400, 7, 4);
	enc_end(&r->e, 100, 6, CAPTURE_END_EXIT, 0, 0);
	run_open(r);
}

Test(reports_views, folded_lines_are_sorted_outermost_first_and_summed)
{
	struct run r;
	build_folded(&r);
	char *s = folded(&r, REPORTS_COST_BYTES, NULL);
	cr_assert_str_eq(s, "prog+0x500 307\n"
			    "prog+0x500;prog+0x300 100\n"
			    "prog+0x500;prog+0x400 200\n");
	free(s);
	s = folded(&r, REPORTS_COST_ALLOCATIONS, NULL);
	cr_assert_str_eq(s, "prog+0x500 2\nprog+0x500;prog+0x300 1\nprog+0x500;prog+0x400 1\n");
	free(s);
	/* what is live at exit: 100 + 300 + 7; the freed site is left out */
	s = folded(&r, REPORTS_COST_LEAKED, NULL);
	cr_assert_str_eq(s, "prog+0x500 307\nprog+0x500;prog+0x300 100\n");
	free(s);
	/* the peak: 600 bytes when the first three were live */
	s = folded(&r, REPORTS_COST_PEAK, NULL);
	cr_assert_str_eq(s, "prog+0x500 300\nprog+0x500;prog+0x300 100\n"
			    "prog+0x500;prog+0x400 200\n");
	free(s);
	run_close(&r);
}

Test(reports_views, folded_temporary_cost_reads_the_counts_given)
{
	struct run r;
	build_folded(&r);
	uint64_t *per = calloc(r.an->n_sites, sizeof(*per));
	uint64_t total;
	cr_assert_eq(reports_temporary_count(r.cap, r.an, per, &total), 0);
	cr_assert_eq(total, 0); /* 0x200 was freed after two more allocations */
	char *s = folded(&r, REPORTS_COST_TEMPORARY, per);
	cr_assert_str_eq(s, "");
	free(s);
	for (size_t i = 0; i < r.an->n_sites; i++)
		per[i] = i + 1;
	s = folded(&r, REPORTS_COST_TEMPORARY, per);
	cr_assert_eq(strlen(s) > 0, true);
	free(s);
	free(per);
	run_close(&r);
}

static char *frame_name(const struct reports_frame *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	reports_folded_frame_name(m, f);
	fclose(m);
	return buf;
}

Test(reports_views, folded_frame_names_cannot_break_the_format)
{
	struct reports_frame f = {.address = 0x1234, .function = "ns::f(a;b)\nx"};
	char *s = frame_name(&f);
	cr_assert_str_eq(s, "ns::f(a:b)?x");
	free(s);
	f.function = "inl";
	f.inlined = true;
	s = frame_name(&f);
	cr_assert_str_eq(s, "inl_[i]");
	free(s);
	f.function = NULL;
	f.module = "/usr/lib/libx.so";
	f.offset = 0x42;
	s = frame_name(&f);
	cr_assert_str_eq(s, "libx.so+0x42");
	free(s);
	f.module = NULL;
	s = frame_name(&f);
	cr_assert_str_eq(s, "0x1234");
	free(s);
}

Test(reports_views, cost_names_parse)
{
	enum reports_cost c;
	cr_assert(reports_cost_parse("temporary", &c) && c == REPORTS_COST_TEMPORARY);
	cr_assert(reports_cost_parse("peak", &c) && c == REPORTS_COST_PEAK);
	cr_assert(reports_cost_parse("leaked", &c) && c == REPORTS_COST_LEAKED);
	cr_assert_not(reports_cost_parse("Peak", &c));
	cr_assert_not(reports_cost_parse("", &c));
}

Test(reports_views, functions_match_by_name_or_without_parameters)
{
	cr_assert(reports_function_matches("build_table", "build_table"));
	cr_assert(reports_function_matches("ns::f(int, char const*)", "ns::f"));
	cr_assert(reports_function_matches("ns::f(int)", "ns::f(int)"));
	cr_assert_not(reports_function_matches("ns::fg(int)", "ns::f"));
	cr_assert_not(reports_function_matches("build_table2", "build_table"));
	cr_assert_not(reports_function_matches("f", ""));
	cr_assert_not(reports_function_matches(NULL, "f"));
}

Test(reports_views, lines_of_an_unknown_target_is_enoent)
{
	struct run r;
	build_folded(&r);
	FILE *devnull = fopen("/dev/null", "w");
	cr_assert_eq(reports_render_lines(devnull, r.cap, r.an, r.sym, "nope"), -ENOENT);
	fclose(devnull);
	run_close(&r);
}

static void enc_rss(struct enc *e, uint64_t t_ns, uint64_t seq, uint64_t rss)
{
	enc_tag(e, CAPTURE_SAMPLE);
	enc_u(e, t_ns);
	enc_u(e, seq);
	enc_u(e, rss);
	enc_u(e, 0);
	enc_u(e, 0);
}

static char *timeline(struct run *r, const struct reports_timeline_options *o)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	cr_assert_eq(reports_render_timeline(m, r->cap, r->an, o), 0);
	fclose(m);
	return buf;
}

/* 4 seconds: 3 MiB allocated at 1 s, freed at 3 s; RSS 2 MiB then 4 MiB. */
static void build_timeline(struct run *r)
{
	begin(r, 1);
	enc_stack(&r->e, 1, 0, 0x1100);
	enc_rss(&r->e, 500000000, 1, 2u << 20);
	enc_alloc(&r->e, 2, 0x100, 3u << 20, 1);
	enc_rss(&r->e, 2000000000, 3, 4u << 20);
	enc_free(&r->e, 4, 0x100);
	enc_end(&r->e, 4000000000, 5, CAPTURE_END_EXIT, 0, 0);
	run_open(r);
}

Test(reports_views, timeline_has_axes_units_and_the_peak)
{
	struct run r;
	build_timeline(&r);
	struct reports_timeline_options o = {.width = 40, .height = 8, .ascii = true};
	char *s = timeline(&r, &o);
	/* a round top holding 4 MiB, four ticks, time in seconds */
	cr_assert(strstr(s, "     4 MiB +"), "%s", s);
	cr_assert(strstr(s, "     2 MiB +"), "%s", s);
	cr_assert(strstr(s, "     0 MiB +----------+"), "%s", s);
	cr_assert(strstr(s, " 0 s "), "%s", s);
	cr_assert(strstr(s, "3.00 s"), "%s", s);
	cr_assert(strstr(s, "^ peak"), "%s", s);
	cr_assert(strstr(s, "peak 3145728 B"), "%s", s);
	cr_assert(strstr(s, "RSS: at most 4194304 B"), "%s", s);
	cr_assert(strstr(s, "#"), "%s", s);
	cr_assert(strstr(s, "*"), "%s", s);
	for (const char *p = s; *p; p++)
		cr_assert((unsigned char)*p < 0x80, "not ASCII: %s", s);
	/* the peak (1.25 s, interpolated between the samples at seq 1 and 3)
	 * is marked under its column: 40 * 1.25 / 4 = 12 */
	const char *m = strstr(s, "^ peak");
	const char *line = m;
	while (line > s && line[-1] != '\n')
		line--;
	cr_assert_eq(m - line, 10 + 1 + 1 + 12, "%s", s);
	cr_assert(strstr(s, "peak 3145728 B at 1.25 s"), "%s", s);
	free(s);
	run_close(&r);
}

Test(reports_views, timeline_draws_block_characters_in_utf8)
{
	struct run r;
	build_timeline(&r);
	char *s = timeline(&r, NULL);
	cr_assert(strstr(s, "\xe2\x96\x88"), "%s", s); /* full block */
	cr_assert(strstr(s, "\xe2\x94\xa4"), "%s", s); /* tick */
	cr_assert(strstr(s, "\xe2\x96\xb2 peak"), "%s", s);
	free(s);
	run_close(&r);
}

Test(reports_views, timeline_without_time_uses_the_events)
{
	struct run r;
	begin(&r, 1);
	enc_stack(&r.e, 1, 0, 0x1100);
	enc_alloc(&r.e, 1, 0x100, 100, 1);
	enc_alloc(&r.e, 2, 0x200, 100, 1);
	run_open(&r); /* no END, no samples */
	struct reports_timeline_options o = {.ascii = true};
	char *s = timeline(&r, &o);
	cr_assert(strstr(s, "no time recorded"), "%s", s);
	cr_assert(strstr(s, "RSS: no samples"), "%s", s);
	free(s);
	run_close(&r);
}

static void build_diff_run(struct run *r, uint64_t grow)
{
	begin(r, 1);
	enc_stack(&r->e, 1, 0, 0x1100);
	enc_stack(&r->e, 2, 0, 0x1200);
	enc_stack(&r->e, 3, 0, 0x1300);
	enc_alloc(&r->e, 1, 0x100, 100, 1);	       /* the same in both */
	enc_alloc(&r->e, 2, 0x200, 1000 + grow, 2);    /* grows, kept */
	enc_alloc(&r->e, 3, 0x300, 50 + grow / 50, 3); /* grows a little, freed */
	enc_free(&r->e, 4, 0x300);
	enc_end(&r->e, 100, 5, CAPTURE_END_EXIT, 0, 0);
	run_open(r);
}

Test(reports_views, diff_puts_the_grown_site_first)
{
	struct run a, b;
	build_diff_run(&a, 0);
	build_diff_run(&b, 500);
	for (int by = REPORTS_DIFF_BY_LINE; by <= REPORTS_DIFF_BY_STACK; by++) {
		struct reports_diff_run ra = {"a", a.cap, a.an, a.sym};
		struct reports_diff_run rb = {"b", b.cap, b.an, b.sym};
		struct reports_diff *d = reports_diff_create(&ra, &rb, (enum reports_diff_by)by);
		cr_assert_not_null(d);
		cr_assert_eq(d->n_entries, 2);
		cr_assert_eq(d->n_unchanged, 1);
		cr_assert_eq(d->entries[1].new.bytes - d->entries[1].old.bytes, 10);
		const struct reports_diff_entry *e = &d->entries[0];
		cr_assert_eq(e->old.bytes, 1000);
		cr_assert_eq(e->new.bytes, 1500);
		cr_assert_eq(e->new.leaked_bytes, 1500);
		cr_assert_eq(e->new.peak_bytes, 1500);
		cr_assert(strstr(e->key, "prog"), "%s", e->key);
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		cr_assert_eq(reports_render_diff_text(m, d, 0), 0);
		fclose(m);
		cr_assert(strstr(buf, "size=1500 B (+500 B), count=1 (+0), peak=1500 B (+500 B)"),
			  "%s", buf);
		cr_assert(strstr(buf, "(2 changed, 1 unchanged)"), "%s", buf);
		cr_assert(strstr(buf, "size=60 B (+10 B), count=1 (+0), peak=60 B (+10 B)"), "%s",
			  buf);
		free(buf);
		reports_diff_destroy(d);
	}
	run_close(&a);
	run_close(&b);
}
