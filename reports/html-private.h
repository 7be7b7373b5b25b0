/*
 * html-private.h: what the pieces of the HTML report share inside
 * reports/: the data taken from the events before they are dropped
 * (html-data.c), the flamegraph tree (html-flame.c), the embedded page
 * assets (html-assets.c, generated from reports/html/ by embed.py) and the
 * JSON writer that keeps the page's data block inert (render-html.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reports.h"

/* Limits that keep the page small whatever the capture holds. */
#define HTML_POINTS 500u          /* points of the live-bytes curve */
#define HTML_BREAKDOWNS 100u      /* of them, the ones with a table of sites */
#define HTML_BREAKDOWN_TOP 25u    /* sites in each such table */
#define HTML_SIZE_BUCKETS 65u     /* allocation sizes: 0, then [2^k, 2^(k+1)) */
#define HTML_FLAME_NODES 5000u    /* flamegraph frames, aggregates included */
#define HTML_SITES 500u           /* rows of the sites table (at least) */
#define HTML_LEAK_RECORDS 1000u   /* leak records shown, largest first */
#define HTML_SOURCE_FILES 64u     /* source files read for the snippets */
#define HTML_SOURCE_FILE_MAX (4u << 20)   /* bytes read of each */
#define HTML_SOURCE_TOTAL_MAX (32u << 20) /* bytes read in all */
#define HTML_SNIPPET_CONTEXT 2u   /* lines before and after the line */

/* The flamegraph's costs, in the order of html_flame_node.v[]. */
enum html_cost {
	HTML_COST_PEAK,
	HTML_COST_LEAKED,
	HTML_COST_COUNT,
	HTML_COST_TEMPORARY,
	HTML_COSTS,
};

/* One point of the live-bytes curve: the state after the events up to seq
 * (its time is t_ns), and the highest live bytes since the point before. */
struct html_point {
	uint64_t t_ns;
	uint64_t seq;
	uint64_t live;
	uint64_t max_live;
	uint32_t breakdown; /* index in breakdowns, or UINT32_MAX */
	bool is_peak;
};

/* A site's share of what was live at one point. */
struct html_share {
	uint32_t site; /* index in analysis->sites */
	uint64_t bytes;
	uint64_t blocks;
};

/* What was live at one point, by site: the HTML_BREAKDOWN_TOP largest,
 * the rest summed. */
struct html_breakdown {
	uint32_t point;
	size_t first; /* its shares: shares[first .. first + n) */
	size_t n;
	uint64_t live_blocks;
	uint64_t other_bytes;
	uint64_t other_blocks;
	uint64_t other_sites;
};

struct reports_html_data {
	struct html_point *points;
	size_t n_points;
	struct html_breakdown *breakdowns;
	size_t n_breakdowns;
	struct html_share *shares;
	size_t n_shares;
	bool by_time; /* points are evenly spaced in time (else in seq) */
	/* temporary allocations (reports_temporary_count()) */
	uint64_t *temporary; /* per site of the analysis */
	size_t n_sites;
	uint64_t temporary_total;
	/* allocation sizes: bucket 0 holds size 0, bucket k >= 1 sizes in
	 * [2^(k-1), 2^k) */
	uint64_t size_count[HTML_SIZE_BUCKETS];
	uint64_t size_bytes[HTML_SIZE_BUCKETS];
};

/* ---- the flamegraph (html-flame.c) ---------------------------------------- */

struct html_flame_node {
	uint32_t parent;        /* UINT32_MAX for the root */
	const char *function;   /* NULL when unknown */
	const char *file;
	const char *module;
	unsigned line;
	uint64_t offset;        /* without function: offset in module, or the
				 * address when no module holds it */
	uint64_t v[HTML_COSTS]; /* inclusive costs */
	uint64_t merged;        /* > 0: an aggregate of that many smaller frames */
};

/* The tree of the sites' stacks, root (all allocations) first, outermost
 * frames next to it, each node after its parent.  At most max_nodes
 * nodes: the smallest (in their largest share of any cost) are folded
 * into one aggregate per parent. */
struct html_flame {
	struct html_flame_node *nodes;
	size_t n_nodes;
	size_t n_full; /* nodes of the whole tree, before folding */
};

/* temporary: per site of an (may be NULL).  0 or -ENOMEM. */
int html_flame_build(const struct reports_capture *cap, const struct reports_analysis *an,
		     struct reports_symbolizer *sym, const uint64_t *temporary,
		     size_t max_nodes, struct html_flame *out);
void html_flame_finish(struct html_flame *fl);

/* ---- assets (html-assets.c, generated) ------------------------------------ */

extern const char html_asset_css[];
extern const char html_asset_js[];
/* 'sha256-BASE64' of html_asset_js, for the page's Content-Security-Policy */
extern const char html_asset_js_hash[];

/* ---- the data block (render-html.c) --------------------------------------- */

/* Copies JSON text to out so that it cannot end the script element that
 * holds it: '<', '>', '&', U+2028 and U+2029 (which only JSON strings can
 * hold) become \uXXXX escapes. */
void html_json_copy_inert(FILE *out, const char *json, size_t len);
