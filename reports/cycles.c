/*
 * cycles.c: the unreachable cycles among the lost blocks, objgraph's view
 * of a leak: which blocks keep each other alive with nothing outside
 * pointing at them.  Entry points: reports_cycles_find() (the analysis),
 * reports_scc() (Tarjan's algorithm), reports_render_text_cycles() and
 * reports_json_cycles() (their part of the text and JSON reports).
 *
 * The graph: one node per lost block live at exit (definitely,
 * indirectly or possibly lost; suppressed blocks are not lost), one edge
 * per SCANEDGE record of the scan that classified the leaks.  A cycle is a
 * strongly connected component of two or more nodes, or a node with an
 * edge to itself.  Tarjan's algorithm runs with an explicit stack of
 * (node, next edge) frames, so a chain of a million blocks needs no deep
 * recursion: memory is O(nodes + edges), time linear.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <memprof/capture.h>

#include "reports-private.h"
#include "reports.h"

#define UNVISITED UINT32_MAX

struct call {
	uint32_t node;
	size_t next; /* the next edge of node to follow, in adj[] */
};

long reports_scc(size_t n, const uint32_t *from, const uint32_t *to, size_t m,
		 uint32_t *comp)
{
	if (n >= UINT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < m; i++)
		if (from[i] >= n || to[i] >= n)
			return -EINVAL;
	long res = -ENOMEM;
	size_t *start = calloc(n + 1, sizeof(*start));
	uint32_t *adj = malloc((m ? m : 1) * sizeof(*adj));
	uint32_t *index = malloc((n ? n : 1) * sizeof(*index));
	uint32_t *low = malloc((n ? n : 1) * sizeof(*low));
	uint32_t *stack = malloc((n ? n : 1) * sizeof(*stack));
	bool *on_stack = calloc(n ? n : 1, sizeof(*on_stack));
	struct call *calls = malloc((n ? n : 1) * sizeof(*calls));
	if (!start || !adj || !index || !low || !stack || !on_stack || !calls)
		goto out;
	/* adjacency lists, compressed: the edges of v are adj[start[v], start[v+1]) */
	for (size_t i = 0; i < m; i++)
		start[from[i] + 1]++;
	for (size_t v = 0; v < n; v++)
		start[v + 1] += start[v];
	size_t *fill = calloc(n ? n : 1, sizeof(*fill));
	if (!fill)
		goto out;
	for (size_t i = 0; i < m; i++)
		adj[start[from[i]] + fill[from[i]]++] = to[i];
	free(fill);

	for (size_t v = 0; v < n; v++)
		index[v] = UNVISITED;
	uint32_t next_index = 0, n_comp = 0;
	size_t sp = 0, calls_n = 0;
	for (size_t root = 0; root < n; root++) {
		if (index[root] != UNVISITED)
			continue;
		/* invariant: calls[] is the DFS path; stack[] holds the visited
		 * nodes whose component is not complete yet */
		index[root] = low[root] = next_index++;
		stack[sp++] = (uint32_t)root;
		on_stack[root] = true;
		calls[calls_n++] = (struct call){ (uint32_t)root, start[root] };
		while (calls_n > 0) {
			struct call *c = &calls[calls_n - 1];
			uint32_t v = c->node;
			if (c->next < start[v + 1]) {
				uint32_t w = adj[c->next++];
				if (index[w] == UNVISITED) {
					index[w] = low[w] = next_index++;
					stack[sp++] = w;
					on_stack[w] = true;
					calls[calls_n++] = (struct call){ w, start[w] };
				} else if (on_stack[w] && index[w] < low[v]) {
					low[v] = index[w];
				}
				continue;
			}
			calls_n--;
			if (low[v] == index[v]) {
				uint32_t w;
				do {
					w = stack[--sp];
					on_stack[w] = false;
					comp[w] = n_comp;
				} while (w != v);
				n_comp++;
			}
			if (calls_n > 0) {
				uint32_t u = calls[calls_n - 1].node;
				if (low[v] < low[u])
					low[u] = low[v];
			}
		}
	}
	res = (long)n_comp;
out:
	free(start);
	free(adj);
	free(index);
	free(low);
	free(stack);
	free(on_stack);
	free(calls);
	return res;
}

void reports_cycles_finish(struct reports_cycles *c)
{
	if (!c)
		return;
	free(c->v);
	free(c->members);
	free(c->edges);
	memset(c, 0, sizeof(*c));
}

/* The scan that classified the leaks: the last one made at exit, else
 * the last (analysis.c decides the same way). */
static size_t chosen_scan(const struct reports_capture *cap)
{
	for (size_t i = cap->n_scans; i-- > 0;)
		if (cap->scans[i].flags & CAPTURE_SCAN_AT_EXIT)
			return i;
	return cap->n_scans - 1;
}

bool reports_leaks_on_demand(const struct reports_capture *cap)
{
	return cap->n_scans > 0 && !(cap->scans[chosen_scan(cap)].flags & CAPTURE_SCAN_AT_EXIT);
}

static bool is_lost(enum reports_leak_kind k)
{
	return k == REPORTS_LEAK_DEFINITE || k == REPORTS_LEAK_INDIRECT ||
	       k == REPORTS_LEAK_POSSIBLE;
}

struct comp_info {
	uint64_t blocks, bytes;
	bool self_loop;
	size_t first_member, n_members, first_edge, n_edges;
};

static int cmp_member(const void *a, const void *b)
{
	const struct reports_cycle_member *x = a, *y = b;
	return x->address < y->address ? -1 : x->address > y->address;
}

static int cmp_edge(const void *a, const void *b)
{
	const struct reports_cycle_edge *x = a, *y = b;
	if (x->from != y->from)
		return x->from < y->from ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->to < y->to ? -1 : x->to > y->to;
}

static const struct reports_cycle_member *cycles_members;

static int cmp_cycle(const void *a, const void *b)
{
	const struct reports_cycle *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	uint64_t ax = cycles_members[x->first_member].address;
	uint64_t ay = cycles_members[y->first_member].address;
	return ax < ay ? -1 : ax > ay;
}

/* The lost blocks as nodes: node -> leak block, address -> node. */
struct graph {
	uint32_t *block_of; /* node -> index in an->leak_blocks */
	size_t n;
	struct reports_map node_of; /* address -> node */
	uint32_t *from, *to;        /* edges, as nodes */
	size_t *edge_of;            /* edge -> index in cap->scan_edges */
	size_t m;
};

static void graph_finish(struct graph *g)
{
	free(g->block_of);
	reports_map_finish(&g->node_of);
	free(g->from);
	free(g->to);
	free(g->edge_of);
}

static int graph_build(const struct reports_capture *cap, const struct reports_analysis *an,
		       struct graph *g)
{
	memset(g, 0, sizeof(*g));
	g->block_of = malloc((an->n_leak_blocks ? an->n_leak_blocks : 1) * sizeof(*g->block_of));
	size_t me = cap->n_scan_edges ? cap->n_scan_edges : 1;
	g->from = malloc(me * sizeof(*g->from));
	g->to = malloc(me * sizeof(*g->to));
	g->edge_of = malloc(me * sizeof(*g->edge_of));
	if (!g->block_of || !g->from || !g->to || !g->edge_of)
		return -ENOMEM;
	for (size_t i = 0; i < an->n_leak_blocks && i < UINT32_MAX - 1; i++) {
		if (!is_lost(an->leak_blocks[i].kind))
			continue;
		if (reports_map_put(&g->node_of, an->leak_blocks[i].addr, (uint32_t)g->n) < 0)
			return -ENOMEM;
		g->block_of[g->n++] = (uint32_t)i;
	}
	if (g->n == 0 || cap->n_scans == 0)
		return 0;
	size_t chosen = chosen_scan(cap);
	for (size_t i = 0; i < cap->n_scan_edges; i++) {
		const struct reports_scan_edge *e = &cap->scan_edges[i];
		uint32_t f, t;
		if (e->scan != chosen || !reports_map_get(&g->node_of, e->from, &f) ||
		    !reports_map_get(&g->node_of, e->to, &t))
			continue;
		g->from[g->m] = f;
		g->to[g->m] = t;
		g->edge_of[g->m++] = i;
	}
	return 0;
}

static int cycles_collect(const struct reports_capture *cap, const struct reports_analysis *an,
			  const struct graph *g, const uint32_t *comp, size_t n_comp,
			  struct reports_cycles *out)
{
	struct comp_info *ci = calloc(n_comp ? n_comp : 1, sizeof(*ci));
	if (!ci)
		return -ENOMEM;
	int res = -ENOMEM;
	for (size_t v = 0; v < g->n; v++) {
		ci[comp[v]].blocks++;
		ci[comp[v]].bytes += an->leak_blocks[g->block_of[v]].size;
	}
	for (size_t i = 0; i < g->m; i++)
		if (g->from[i] == g->to[i])
			ci[comp[g->from[i]]].self_loop = true;
	/* keep the cycles; lay out their slices of members and edges */
	size_t n_members = 0, n_edges = 0, n_cycles = 0;
	for (size_t k = 0; k < n_comp; k++) {
		if (ci[k].blocks < 2 && !ci[k].self_loop) {
			ci[k].blocks = 0; /* not a cycle */
			continue;
		}
		ci[k].first_member = n_members;
		n_members += ci[k].blocks;
		n_cycles++;
	}
	for (size_t i = 0; i < g->m; i++)
		if (comp[g->from[i]] == comp[g->to[i]] && ci[comp[g->from[i]]].blocks)
			ci[comp[g->from[i]]].n_edges++;
	for (size_t k = 0; k < n_comp; k++) {
		if (!ci[k].blocks)
			continue;
		ci[k].first_edge = n_edges;
		n_edges += ci[k].n_edges;
		ci[k].n_edges = 0;
	}
	out->v = calloc(n_cycles ? n_cycles : 1, sizeof(*out->v));
	out->members = calloc(n_members ? n_members : 1, sizeof(*out->members));
	out->edges = calloc(n_edges ? n_edges : 1, sizeof(*out->edges));
	if (!out->v || !out->members || !out->edges)
		goto out;
	for (size_t v = 0; v < g->n; v++) {
		struct comp_info *c = &ci[comp[v]];
		if (!c->blocks)
			continue;
		const struct reports_leak_block *b = &an->leak_blocks[g->block_of[v]];
		out->members[c->first_member + c->n_members++] =
			(struct reports_cycle_member){ b->addr, b->size, b->stack };
	}
	for (size_t i = 0; i < g->m; i++) {
		struct comp_info *c = &ci[comp[g->from[i]]];
		if (comp[g->from[i]] != comp[g->to[i]] || !c->blocks)
			continue;
		const struct reports_scan_edge *e = &cap->scan_edges[g->edge_of[i]];
		out->edges[c->first_edge + c->n_edges++] =
			(struct reports_cycle_edge){ e->from, e->offset, e->to };
	}
	for (size_t k = 0; k < n_comp; k++) {
		struct comp_info *c = &ci[k];
		if (!c->blocks)
			continue;
		qsort(out->members + c->first_member, c->n_members, sizeof(*out->members),
		      cmp_member);
		qsort(out->edges + c->first_edge, c->n_edges, sizeof(*out->edges), cmp_edge);
		out->v[out->n++] = (struct reports_cycle){
			c->blocks, c->bytes, c->first_member, c->n_members, c->first_edge,
			c->n_edges,
		};
	}
	out->n_members = n_members;
	out->n_edges = n_edges;
	cycles_members = out->members;
	qsort(out->v, out->n, sizeof(*out->v), cmp_cycle);
	cycles_members = NULL;
	res = 0;
out:
	free(ci);
	return res;
}

int reports_cycles_find(const struct reports_capture *cap, struct reports_analysis *an)
{
	struct reports_cycles *out = an->cycles;
	if (!out && !(out = an->cycles = calloc(1, sizeof(*out))))
		return -ENOMEM;
	reports_cycles_finish(out);
	struct graph g;
	int res = graph_build(cap, an, &g);
	uint32_t *comp = NULL;
	if (res == 0 && g.n > 0) {
		comp = malloc(g.n * sizeof(*comp));
		long n_comp = comp ? reports_scc(g.n, g.from, g.to, g.m, comp) : -ENOMEM;
		res = n_comp < 0 ? (int)n_comp
				 : cycles_collect(cap, an, &g, comp, (size_t)n_comp, out);
	}
	free(comp);
	graph_finish(&g);
	if (res < 0)
		reports_cycles_finish(out);
	return res;
}

/* ---- the text and JSON reports ---------------------------------------------- */

int reports_render_text_cycles(FILE *out, const struct reports_capture *cap,
			       const struct reports_analysis *an,
			       struct reports_symbolizer *sym)
{
	const struct reports_cycles *cy = an->cycles;
	if (!cy || cy->n == 0)
		return 0;
	struct reports_frames fr = { 0 };
	fprintf(out, "\nCycles (lost blocks that point to each other)\n");
	for (size_t k = 0; k < cy->n; k++) {
		const struct reports_cycle *c = &cy->v[k];
		fprintf(out, "  cycle %zu of %zu: %" PRIu64 " bytes in %" PRIu64 " blocks\n", k + 1,
			cy->n, c->bytes, c->blocks);
		for (size_t i = 0; i < c->n_members; i++) {
			const struct reports_cycle_member *mb = &cy->members[c->first_member + i];
			fprintf(out, "    0x%" PRIx64 ": %" PRIu64 " bytes, allocated by ", mb->address,
				mb->size);
			const struct reports_frame *f = reports_stack_alloc_site(sym, cap, mb->stack, &fr);
			reports_put_clean(out, f && f->function ? f->function : "???", 0);
			if (f && f->file) {
				const char *base = strrchr(f->file, '/');
				fputs(" (", out);
				reports_put_clean(out, base ? base + 1 : f->file, 0);
				fprintf(out, ":%u)", f->line);
			}
			fputc('\n', out);
		}
		for (size_t i = 0; i < c->n_edges; i++) {
			const struct reports_cycle_edge *e = &cy->edges[c->first_edge + i];
			fprintf(out, "    0x%" PRIx64 "+%" PRIu64 " -> 0x%" PRIx64 "\n", e->from,
				e->offset, e->to);
		}
	}
	reports_frames_finish(&fr);
	return ferror(out) ? -EIO : 0;
}

int reports_json_cycles(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an, struct reports_symbolizer *sym,
			struct reports_frames *fr)
{
	const struct reports_cycles *cy = an->cycles;
	fputc('[', out);
	for (size_t k = 0; cy && k < cy->n; k++) {
		const struct reports_cycle *c = &cy->v[k];
		fprintf(out, "%s\n    {\"blocks\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"members\": [",
			k ? "," : "", c->blocks, c->bytes);
		for (size_t i = 0; i < c->n_members; i++) {
			const struct reports_cycle_member *mb = &cy->members[c->first_member + i];
			fprintf(out, "%s{\"address\": \"0x%" PRIx64 "\", \"size\": %" PRIu64
				", \"stack\": ",
				i ? ", " : "", mb->address, mb->size);
			int res = reports_json_stack(out, cap, sym, mb->stack, fr);
			if (res < 0)
				return res;
			fputc('}', out);
		}
		fputs("], \"edges\": [", out);
		for (size_t i = 0; i < c->n_edges; i++) {
			const struct reports_cycle_edge *e = &cy->edges[c->first_edge + i];
			fprintf(out, "%s{\"from\": \"0x%" PRIx64 "\", \"offset\": %" PRIu64
				", \"to\": \"0x%" PRIx64 "\"}",
				i ? ", " : "", e->from, e->offset, e->to);
		}
		fputs("]}", out);
	}
	fputc(']', out);
	return 0;
}
