/*
 * html-flame.c: the flamegraph of the HTML report, a tree of the sites'
 * symbolized stacks with the root (every allocation) on top and the
 * outermost frames next to it.  Entry point: html_flame_build().
 *
 * Frames are merged when they have the same parent, function, file and
 * line (a frame without a function: the same module and offset).  Every
 * node carries four inclusive costs: bytes live at the peak, bytes live at
 * exit, allocations and temporary allocations.  A node's share of a cost
 * never exceeds its parent's, so taking nodes by decreasing largest share
 * (parents first on ties) always takes whole subtrees from the top; the
 * nodes left out are folded into one aggregate node per parent, counted in
 * the budget, so that a tree of millions of frames still gives a page that
 * opens at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "html-private.h"
#include "reports-private.h"
#include "reports.h"

#define NONE UINT32_MAX

/* A string's hash, kept by its address: the frames of the sites name the
 * same strings (the symbolizer's, one copy each, alive while the tree is)
 * over and over, and hashing them a character at a time for every frame
 * of every site was most of a deep recursion's flamegraph. */
#define STR_HASHES_LG 12
#define STR_HASHES (1u << STR_HASHES_LG)
struct str_hash {
	const char *s;
	uint64_t h;
};

struct tree {
	struct html_flame_node *nodes;
	uint32_t *depth;
	uint32_t *n_children;
	size_t n, cap, cap_depth, cap_children;
	uint32_t *slots; /* open addressing: node index + 1, 0 empty */
	size_t mask;
	struct str_hash *hashed; /* STR_HASHES, by the strings' addresses */
};

static uint64_t hash_str(uint64_t h, const char *s)
{
	if (!s)
		return reports_hash64(h ^ 0x5bd1e995u);
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return reports_hash64(h);
}

/* Where a frame without function is: its module's offset, or its address
 * when no module holds it. */
static uint64_t frame_where(const struct reports_frame *f)
{
	return f->module ? f->offset : f->address;
}

static uint64_t str_hash(struct tree *t, const char *s)
{
	struct str_hash *c =
		&t->hashed[((uintptr_t)s * 0x9e3779b97f4a7c15ull) >> (64 - STR_HASHES_LG)];
	if (c->s != s || !s) {
		c->s = s;
		c->h = hash_str(0xcbf29ce484222325ull, s);
	}
	return c->h;
}

static uint64_t frame_hash(struct tree *t, uint32_t parent, const struct reports_frame *f)
{
	uint64_t h = reports_hash64((uint64_t)parent + 0x9e3779b97f4a7c15ull);
	h = reports_hash64(h ^ str_hash(t, f->function));
	h = reports_hash64(h ^ str_hash(t, f->file));
	h = reports_hash64(h ^ f->line);
	if (!f->function)
		h = reports_hash64(h ^ str_hash(t, f->module) ^ frame_where(f));
	return h;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool node_is(const struct html_flame_node *n, uint32_t parent,
		    const struct reports_frame *f)
{
	if (n->parent != parent || n->line != f->line || !same_str(n->function, f->function) ||
	    !same_str(n->file, f->file))
		return false;
	return f->function || (same_str(n->module, f->module) && n->offset == frame_where(f));
}

static int grow_slots(struct tree *t)
{
	size_t nmask = t->mask ? t->mask * 2 + 1 : 1023;
	uint32_t *ns = calloc(nmask + 1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++) {
		if (t->nodes[i].parent == NONE)
			continue;
		struct reports_frame f = { .function = t->nodes[i].function,
					   .file = t->nodes[i].file,
					   .module = t->nodes[i].module,
					   .line = t->nodes[i].line,
					   .offset = t->nodes[i].offset,
					   .address = t->nodes[i].offset };
		size_t j = frame_hash(t, t->nodes[i].parent, &f) & nmask;
		while (ns[j])
			j = (j + 1) & nmask;
		ns[j] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = ns;
	t->mask = nmask;
	return 0;
}

static int add_node(struct tree *t, const struct html_flame_node *n, uint32_t depth)
{
	uint32_t zero = 0;
	if (t->n >= NONE - 1 ||
	    reports_vec_push(&t->nodes, &t->n, &t->cap, n, sizeof(*n)) < 0)
		return -ENOMEM;
	size_t n_depth = t->n - 1, n_children = t->n - 1;
	if (reports_vec_push(&t->depth, &n_depth, &t->cap_depth, &depth, sizeof(depth)) < 0 ||
	    reports_vec_push(&t->n_children, &n_children, &t->cap_children, &zero,
			     sizeof(zero)) < 0) {
		t->n--;
		return -ENOMEM;
	}
	return 0;
}

/* The child of parent for frame f, made when new. */
static int child_of(struct tree *t, uint32_t parent, const struct reports_frame *f,
		    uint32_t *out)
{
	if ((t->n + 1) * 2 > t->mask + 1 && grow_slots(t) < 0)
		return -ENOMEM;
	size_t j = frame_hash(t, parent, f) & t->mask;
	while (t->slots[j]) {
		uint32_t i = t->slots[j] - 1;
		if (node_is(&t->nodes[i], parent, f)) {
			*out = i;
			return 0;
		}
		j = (j + 1) & t->mask;
	}
	struct html_flame_node n = {
		.parent = parent,
		.function = f->function,
		.file = f->file,
		.module = f->module,
		.line = f->line,
		.offset = f->function ? 0 : frame_where(f),
	};
	int res = add_node(t, &n, t->depth[parent] + 1);
	if (res < 0)
		return res;
	*out = (uint32_t)t->n - 1;
	t->slots[j] = *out + 1;
	t->n_children[parent]++;
	return 0;
}

static int build_tree(struct tree *t, const struct reports_capture *cap,
		      const struct reports_analysis *an, struct reports_symbolizer *sym,
		      const uint64_t *temporary)
{
	struct html_flame_node root = { .parent = NONE };
	t->hashed = calloc(STR_HASHES, sizeof(*t->hashed));
	if (!t->hashed)
		return -ENOMEM;
	int res = add_node(t, &root, 0);
	struct reports_frames fr = { 0 };
	for (size_t s = 0; s < an->n_sites && res == 0; s++) {
		const struct reports_site *site = &an->sites[s];
		uint64_t v[HTML_COSTS] = { site->peak_bytes, site->leaked_bytes, site->allocations,
					   temporary ? temporary[s] : 0 };
		if ((res = reports_stack_symbolize(sym, cap, site->stack, &fr)) < 0)
			break;
		uint32_t at = 0;
		for (int c = 0; c < HTML_COSTS; c++)
			t->nodes[0].v[c] += v[c];
		size_t start = reports_frames_display_start(&fr);
		for (size_t i = fr.n; i-- > start && res == 0;) {
			if ((res = child_of(t, at, fr.v[i], &at)) < 0)
				break;
			for (int c = 0; c < HTML_COSTS; c++)
				t->nodes[at].v[c] += v[c];
		}
	}
	reports_frames_finish(&fr);
	return res;
}

struct candidate {
	double score;
	uint32_t depth;
	uint32_t node;
};

static int cmp_candidate(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return x->node < y->node ? -1 : x->node > y->node;
}

/* Keeps the largest nodes within max_nodes (aggregates included) and folds
 * the others; fills out. */
static int fold(struct tree *t, size_t max_nodes, struct html_flame *out)
{
	size_t n = t->n;
	if (n == 0)
		return -EINVAL; /* build_tree always makes the root */
	struct candidate *cand = calloc(n, sizeof(*cand));
	uint32_t *new_index = malloc(n * sizeof(*new_index));
	uint32_t *unkept = malloc(n * sizeof(*unkept));
	uint64_t *subtree = calloc(n, sizeof(*subtree));
	struct html_flame_node *nodes = calloc(max_nodes < n * 2 ? max_nodes : n * 2,
					       sizeof(*nodes));
	int res = -ENOMEM;
	if (!cand || !new_index || !unkept || !subtree || !nodes)
		goto out;
	const uint64_t *total = t->nodes[0].v;
	for (size_t i = 0; i < n; i++) {
		double score = 0;
		for (int c = 0; c < HTML_COSTS; c++)
			if (total[c] && (double)t->nodes[i].v[c] / (double)total[c] > score)
				score = (double)t->nodes[i].v[c] / (double)total[c];
		cand[i] = (struct candidate){ score, t->depth[i], (uint32_t)i };
		new_index[i] = NONE;
		unkept[i] = t->n_children[i];
	}
	/* children come after their parents: sizes add up backwards */
	for (size_t i = n; i-- > 1;) {
		subtree[i]++;
		subtree[t->nodes[i].parent] += subtree[i];
	}
	qsort(cand + 1, n - 1, sizeof(*cand), cmp_candidate); /* the root stays first */
	size_t kept = 0, budget = 1 + (unkept[0] > 0);
	new_index[0] = 0;
	nodes[kept++] = t->nodes[0];
	for (size_t k = 1; k < n; k++) {
		uint32_t i = cand[k].node, p = t->nodes[i].parent;
		if (new_index[p] == NONE)
			break; /* cannot happen: parents sort first */
		size_t need = budget + 1 + (t->n_children[i] > 0) - (unkept[p] == 1);
		if (need > max_nodes)
			break;
		budget = need;
		unkept[p]--;
		new_index[i] = (uint32_t)kept;
		nodes[kept] = t->nodes[i];
		nodes[kept].parent = new_index[p];
		kept++;
	}
	/* one aggregate per kept node with children left out */
	uint32_t *agg_of = unkept; /* reused: kept node -> its aggregate */
	for (size_t i = 0; i < n; i++)
		agg_of[i] = NONE;
	for (size_t i = 1; i < n; i++) {
		uint32_t p = t->nodes[i].parent;
		if (new_index[i] != NONE || new_index[p] == NONE)
			continue;
		if (agg_of[p] == NONE) {
			agg_of[p] = (uint32_t)kept;
			nodes[kept] = (struct html_flame_node){ .parent = new_index[p] };
			kept++;
		}
		struct html_flame_node *a = &nodes[agg_of[p]];
		for (int c = 0; c < HTML_COSTS; c++)
			a->v[c] += t->nodes[i].v[c];
		a->merged += subtree[i];
	}
	out->nodes = nodes;
	out->n_nodes = kept;
	out->n_full = n;
	nodes = NULL;
	res = 0;
out:
	free(cand);
	free(new_index);
	free(unkept);
	free(subtree);
	free(nodes);
	return res;
}

int html_flame_build(const struct reports_capture *cap, const struct reports_analysis *an,
		     struct reports_symbolizer *sym, const uint64_t *temporary,
		     size_t max_nodes, struct html_flame *out)
{
	memset(out, 0, sizeof(*out));
	struct tree t = { 0 };
	if (max_nodes < 2)
		max_nodes = 2;
	int res = build_tree(&t, cap, an, sym, temporary);
	if (res == 0)
		res = fold(&t, max_nodes, out);
	free(t.nodes);
	free(t.depth);
	free(t.n_children);
	free(t.slots);
	free(t.hashed);
	return res;
}

void html_flame_finish(struct html_flame *fl)
{
	free(fl->nodes);
	memset(fl, 0, sizeof(*fl));
}
