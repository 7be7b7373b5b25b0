/*
 * test-reports-html.c: the HTML report's pieces on captures built by hand:
 * the data block cannot close its script element whatever the strings,
 * the page needs nothing from the network, the flamegraph keeps to its
 * budget without losing any cost, and the curve of live bytes, its
 * breakdown at the peak and the size histogram add up.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html-private.h"
#include "reports-encode.h"
#include "reports.h"

static struct reports_capture *load(struct enc *e)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	cr_assert_eq(reports_capture_load_buffer(e->buf, e->len, &cap, &err), 0, "%s",
		     err.message);
	enc_finish(e);
	return cap;
}

/* Renders the page into a string (free it). */
static char *render(struct reports_capture *cap, bool with_events)
{
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	cr_assert_not_null(sym);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	cr_assert_not_null(an);
	struct reports_html_data *hd = NULL;
	if (with_events)
		cr_assert_not_null(hd = reports_html_data_build(cap, an));
	char *page = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&page, &len);
	struct reports_render_options opts = { 0 };
	cr_assert_eq(reports_render_html(out, cap, an, sym, hd, &opts), 0);
	fclose(out);
	reports_html_data_destroy(hd);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	return page;
}

/* The text of the data block (free it). */
static char *data_block(const char *page)
{
	const char *open = "<script type=\"application/json\" id=\"mp-data\">";
	const char *start = strstr(page, open);
	cr_assert_not_null(start);
	start += strlen(open);
	const char *end = strstr(start, "</script>");
	cr_assert_not_null(end);
	return strndup(start, (size_t)(end - start));
}

Test(reports_html, inert_copy_escapes_what_could_end_a_script)
{
	const char json[] = "{\"a\":\"</script><b>&amp;\xe2\x80\xa8|\xe2\x80\xa9|\xe2\x80\xa7\"}";
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	html_json_copy_inert(out, json, strlen(json));
	fclose(out);
	cr_assert_str_eq(buf, "{\"a\":\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026amp;"
			      "\\u2028|\\u2029|\xe2\x80\xa7\"}");
	free(buf);
}

Test(reports_html, hostile_strings_stay_data)
{
	const char *argv[] = { "prog", "</script><script>alert(1)</script>",
			       "bad \xff\xfe utf8", "line\xe2\x80\xa8sep", "<!--", "a&b>c" };
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 7);
	enc_process(&e, 1, 6, argv);
	enc_stack(&e, 1, 0, 0x10);
	enc_alloc(&e, 1, 0x1000, 10, 1);
	enc_note(&e, 2, 1, "<img src=x onerror=alert(2)>");
	enc_end(&e, 1000, 3, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	char *page = render(cap, true);
	char *data = data_block(page);
	cr_assert_null(strchr(data, '<'), "a '<' in the data block");
	cr_assert_null(strchr(data, '>'), "a '>' in the data block");
	cr_assert_null(strchr(data, '&'), "a '&' in the data block");
	cr_assert_null(strstr(data, "\xe2\x80\xa8"));
	cr_assert_not_null(strstr(data, "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"));
	cr_assert_not_null(strstr(data, "bad \\ufffd\\ufffd utf8"));
	cr_assert_not_null(strstr(data, "line\\u2028sep"));
	cr_assert_not_null(strstr(data, "\\u003cimg src=x onerror=alert(2)\\u003e"));
	/* exactly the page's own two script elements */
	size_t scripts = 0;
	for (const char *p = page; (p = strstr(p, "<script")); p++)
		scripts++;
	cr_assert_eq(scripts, 2);
	free(data);
	free(page);
	reports_capture_destroy(cap);
}

Test(reports_html, page_loads_nothing_from_the_network)
{
	const char *argv[] = { "prog" };
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_process(&e, 1, 1, argv);
	enc_stack(&e, 1, 0, 0x10);
	enc_alloc(&e, 1, 0x1000, 10, 1);
	enc_end(&e, 1000, 2, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	char *page = render(cap, true);
	cr_assert_not_null(strstr(page, "default-src 'none'"));
	cr_assert_not_null(strstr(page, html_asset_js_hash));
	cr_assert_not_null(strstr(page, html_asset_js));
	cr_assert_not_null(strstr(page, html_asset_css));
	const char *bad[] = { "src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import",
			      "url(http", "url(//" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_null(strstr(page, bad[i]), "the page has %s", bad[i]);
	free(page);
	reports_capture_destroy(cap);
}

Test(reports_html, page_without_events_says_so)
{
	const char *argv[] = { "prog" };
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_process(&e, 1, 1, argv);
	enc_stack(&e, 1, 0, 0x10);
	enc_alloc(&e, 1, 0x1000, 10, 1);
	enc_end(&e, 1000, 2, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	char *page = render(cap, false);
	char *data = data_block(page);
	cr_assert_not_null(strstr(data, "\"events_known\":false"));
	cr_assert_not_null(strstr(data, "\"points\":[]"));
	cr_assert_not_null(strstr(data, "\"allocations\":1,"));
	free(data);
	free(page);
	reports_capture_destroy(cap);
}

/* n sites, each on a stack of its own: main -> f_i -> leaf_i_j... */
static struct reports_capture *wide_capture(unsigned n)
{
	const char *argv[] = { "wide" };
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_process(&e, 1, 1, argv);
	enc_stack(&e, 1, 0, 0x100); /* the outermost frame, shared */
	uint64_t seq = 1;
	for (unsigned i = 0; i < n; i++) {
		enc_stack(&e, 2 + 2 * i, 1, 0x1000 + 16 * i);
		enc_stack(&e, 3 + 2 * i, 2 + 2 * i, 0x100000 + 16 * i);
		/* site i: i % 7 + 1 allocations of 8 (i + 1) bytes, every
		 * third one leaked */
		for (unsigned k = 0; k < i % 7 + 1; k++) {
			uint64_t addr = 0x10000000 + ((uint64_t)i << 8) + 16 * k;
			enc_alloc(&e, seq++, addr, 8 * (i + 1), 3 + 2 * i);
			if (i % 3)
				enc_free(&e, seq++, addr);
		}
	}
	enc_end(&e, 1000000, seq, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	return load(&e);
}

Test(reports_html, flamegraph_keeps_to_its_budget_and_its_totals)
{
	struct reports_capture *cap = wide_capture(3000);
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	cr_assert_not_null(an);
	struct reports_html_data *hd = reports_html_data_build(cap, an);
	cr_assert_not_null(hd);
	struct html_flame fl;
	cr_assert_eq(html_flame_build(cap, an, sym, hd->temporary, 500, &fl), 0);
	cr_assert_eq(fl.n_full, 1 + 1 + 2 * 3000, "root, the shared frame, two per site");
	cr_assert_leq(fl.n_nodes, 500);
	cr_assert_gt(fl.n_nodes, 400, "the budget is used");
	cr_assert_eq(fl.nodes[0].parent, UINT32_MAX);
	cr_assert_eq(fl.nodes[0].v[HTML_COST_COUNT], an->totals.allocations);
	cr_assert_eq(fl.nodes[0].v[HTML_COST_LEAKED], an->totals.live_bytes_at_exit);
	cr_assert_eq(fl.nodes[0].v[HTML_COST_TEMPORARY], hd->temporary_total);
	uint64_t (*sum)[HTML_COSTS] = calloc(fl.n_nodes, sizeof(*sum));
	uint64_t merged = 0, frames = 0;
	for (size_t i = 1; i < fl.n_nodes; i++) {
		const struct html_flame_node *n = &fl.nodes[i];
		cr_assert_lt(n->parent, i, "node %zu comes after its parent", i);
		for (int c = 0; c < HTML_COSTS; c++)
			sum[n->parent][c] += n->v[c];
		if (n->merged)
			merged += n->merged;
		else
			frames++;
	}
	/* every frame left out is counted in an aggregate */
	cr_assert_eq(frames + merged, fl.n_full - 1);
	cr_assert_gt(merged, 0);
	/* nothing lost: the children of a node add up to it (no site ends
	 * above the leaves here) */
	for (size_t i = 0; i < fl.n_nodes; i++)
		if (sum[i][HTML_COST_COUNT])
			for (int c = 0; c < HTML_COSTS; c++)
				cr_assert_eq(sum[i][c], fl.nodes[i].v[c], "node %zu cost %d", i, c);
	free(sum);
	html_flame_finish(&fl);
	reports_html_data_destroy(hd);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}

/* Site A (stack 1): three blocks of 100 bytes; site B (stack 2): one of
 * 50, then A's are freed (the peak, 350, is at seq 4); thread 2 makes a
 * temporary block of 10 bytes at the end. */
Test(reports_html, live_bytes_peak_breakdown_and_sizes_add_up)
{
	const char *argv[] = { "peaky" };
	struct enc e;
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_process(&e, 1, 1, argv);
	enc_stack(&e, 1, 0, 0x10);
	enc_stack(&e, 2, 0, 0x20);
	enc_stack(&e, 3, 0, 0x30);
	enc_alloc(&e, 1, 0x1000, 100, 1);
	enc_alloc(&e, 2, 0x2000, 100, 1);
	enc_alloc(&e, 3, 0x3000, 100, 1);
	enc_alloc(&e, 4, 0x4000, 50, 2);
	enc_free(&e, 5, 0x1000);
	enc_free(&e, 6, 0x2000);
	enc_free(&e, 7, 0x3000);
	enc_sample(&e, 500000, 7);
	enc_chunk_end(&e);
	enc_chunk_begin(&e, 2);
	enc_alloc(&e, 8, 0x9000, 10, 3);
	enc_free(&e, 9, 0x9000);
	enc_end(&e, 1000000, 10, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = load(&e);
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	cr_assert_not_null(an);
	cr_assert_eq(an->totals.peak_bytes, 350);
	struct reports_html_data *hd = reports_html_data_build(cap, an);
	cr_assert_not_null(hd);
	cr_assert(hd->by_time);
	cr_assert_leq(hd->n_points, HTML_POINTS + 1);
	cr_assert_leq(hd->n_breakdowns, HTML_BREAKDOWNS);

	const struct html_point *peak = NULL;
	uint64_t highest = 0;
	for (size_t i = 0; i < hd->n_points; i++) {
		if (i > 0)
			cr_assert_geq(hd->points[i].t_ns, hd->points[i - 1].t_ns);
		cr_assert_geq(hd->points[i].max_live, hd->points[i].live);
		if (hd->points[i].max_live > highest)
			highest = hd->points[i].max_live;
		if (hd->points[i].is_peak) {
			cr_assert_null(peak, "one peak");
			peak = &hd->points[i];
		}
	}
	cr_assert_eq(highest, 350);
	cr_assert_not_null(peak);
	cr_assert_eq(peak->live, 350);
	cr_assert_eq(peak->seq, 4);
	cr_assert_neq(peak->breakdown, UINT32_MAX);
	const struct html_breakdown *bd = &hd->breakdowns[peak->breakdown];
	cr_assert_eq(bd->n, 2);
	cr_assert_eq(bd->live_blocks, 4);
	const struct html_share *sh = &hd->shares[bd->first];
	cr_assert_eq(sh[0].bytes, 300);
	cr_assert_eq(sh[0].blocks, 3);
	cr_assert_eq(an->sites[sh[0].site].stack, an->sites[0].stack, "A is the peak's site");
	cr_assert_eq(sh[1].bytes, 50);
	cr_assert_eq(bd->other_bytes, 0);
	cr_assert_eq(hd->points[hd->n_points - 1].live, 50, "B lives to the end");

	/* 100 bytes: [64, 128) is bucket 7; 50: bucket 6; 10: bucket 4 */
	cr_assert_eq(hd->size_count[7], 3);
	cr_assert_eq(hd->size_bytes[7], 300);
	cr_assert_eq(hd->size_count[6], 1);
	cr_assert_eq(hd->size_count[4], 1);
	cr_assert_eq(hd->size_bytes[4], 10);
	/* thread 1 allocated again before freeing A's blocks; thread 2's
	 * block was freed at once */
	cr_assert_eq(hd->temporary_total, 1);
	reports_html_data_destroy(hd);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}
