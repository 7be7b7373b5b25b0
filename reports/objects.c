/*
 * objects.c: objgraph's reports for programs that use libmemprof-heap,
 * from the object records of a capture (capture.h: OBJTYPE, OBJECT,
 * OBJEDGE, SNAPSHOT, OBJCOUNT, and the scan's SCANBLOCK and SCANREF).
 * Entry point: reports_objects_analyse(); then the text section, the JSON
 * "objects" value and DOT subgraphs (reports_objects_render_*).
 *
 *   types        the exit snapshot's counts by type (objgraph's
 *                most_common_types), most objects first;
 *   growth       for each pair of consecutive snapshots of the program (its
 *                mp_snapshot() calls, the snapshot signal), the types whose
 *                count grew (show_growth);
 *   cycles       the objects the exit collection found unreachable (flag
 *                GARBAGE), grouped into strongly connected components of
 *                their references: the cycles the program never freed;
 *   leaks        refcount leaks (get_leaking_objects): a live object, not
 *                garbage, whose refcount exceeds the references other
 *                objects hold to it, and whose block the leak scan did not
 *                reach from any root: a reference was taken and never
 *                dropped by code that no longer knows the object;
 *   chains       find_backref_chain: for each type with reachable objects,
 *                the one whose SCANREF chain to a root is shortest, the
 *                root named as a global (the module's symbol table, through
 *                libdw), a thread's stack, TLS, or a register.
 */
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "memprof/capture.h"
#include "reports-private.h"
#include "reports.h"

#define CHAIN_MAX 64u       /* links followed before giving up */
#define CHAINS_MAX 16u      /* chains computed (one per type) */
#define MEMBERS_SHOWN 8u    /* objects listed per cycle in the text */

/* ---- lookups over the capture ------------------------------------------------- */

struct ctx {
	const struct reports_capture *cap;
	struct reports_symbolizer *sym;
	struct reports_objects *o;
	size_t scan;                 /* the exit scan, or SIZE_MAX */
	const struct reports_scan_block **blocks; /* of that scan, by addr */
	size_t n_blocks;
	const struct reports_scan_ref **refs;     /* of that scan, by addr */
	size_t n_refs;
	const struct reports_object **objs;       /* exit objects, by addr */
	size_t n_objs;
	uint64_t *in_edges;                       /* per objs[] entry */
	const Dwfl_Callbacks *cb;
};

static int cmp_block(const void *a, const void *b)
{
	uint64_t x = (*(const struct reports_scan_block *const *)a)->addr;
	uint64_t y = (*(const struct reports_scan_block *const *)b)->addr;
	return x < y ? -1 : x > y;
}

static int cmp_ref(const void *a, const void *b)
{
	uint64_t x = (*(const struct reports_scan_ref *const *)a)->addr;
	uint64_t y = (*(const struct reports_scan_ref *const *)b)->addr;
	return x < y ? -1 : x > y;
}

static int cmp_obj(const void *a, const void *b)
{
	uint64_t x = (*(const struct reports_object *const *)a)->addr;
	uint64_t y = (*(const struct reports_object *const *)b)->addr;
	return x < y ? -1 : x > y;
}

/* The scan block that contains a (interior addresses included). */
static const struct reports_scan_block *block_of(const struct ctx *c, uint64_t a)
{
	size_t lo = 0, hi = c->n_blocks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->blocks[mid]->addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct reports_scan_block *b = c->blocks[lo - 1];
	return a - b->addr < (b->size ? b->size : 1) ? b : NULL;
}

static const struct reports_scan_ref *ref_of(const struct ctx *c, uint64_t block)
{
	size_t lo = 0, hi = c->n_refs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->refs[mid]->addr < block)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n_refs && c->refs[lo]->addr == block ? c->refs[lo] : NULL;
}

/* Index in c->objs of the object whose body is at addr, or -1. */
static long obj_index(const struct ctx *c, uint64_t addr)
{
	size_t lo = 0, hi = c->n_objs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->objs[mid]->addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n_objs && c->objs[lo]->addr == addr ? (long)lo : -1;
}

/* The object whose block starts at block, or -1. */
static long obj_in_block(const struct ctx *c, const struct reports_scan_block *b)
{
	size_t lo = 0, hi = c->n_objs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->objs[mid]->addr < b->addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->n_objs && c->objs[lo]->addr - b->addr < b->size)
		return (long)lo;
	return -1;
}

static const char *type_name(const struct reports_capture *cap, uint64_t id)
{
	for (size_t i = 0; i < cap->n_objtypes; i++)
		if (cap->objtypes[i].id == id)
			return cap->objtypes[i].name ? cap->objtypes[i].name : "?";
	return "?";
}

static void obj_fill(const struct ctx *c, size_t i, struct reports_obj *out)
{
	const struct reports_object *ob = c->objs[i];
	const struct reports_scan_block *b = block_of(c, ob->addr);
	out->addr = ob->addr;
	out->type = type_name(c->cap, ob->type_id);
	out->size = b ? b->size : 0;
	out->refcount = ob->refcount;
	out->referrers = c->in_edges[i];
	out->stack = b ? b->stack : REPORTS_NO_STACK;
}

/* ---- types and growth -------------------------------------------------------------- */

static int cmp_type(const void *a, const void *b)
{
	const struct reports_obj_type *x = a, *y = b;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int cmp_growth(const void *a, const void *b)
{
	const struct reports_obj_type *x = a, *y = b;
	if (x->delta != y->delta)
		return x->delta < y->delta ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int exit_types(struct ctx *c)
{
	const struct reports_capture *cap = c->cap;
	struct reports_objects *o = c->o;
	size_t cap_types = 0;
	for (size_t i = 0; i < cap->n_objcounts; i++) {
		const struct reports_objcount *k = &cap->objcounts[i];
		if (k->snapshot != CAPTURE_SNAPSHOT_EXIT || k->count == 0)
			continue;
		struct reports_obj_type t = { type_name(cap, k->type_id), k->count, k->bytes, 0 };
		if (reports_vec_push(&o->types, &o->n_types, &cap_types, &t, sizeof(t)) < 0)
			return -ENOMEM;
		o->total_count += k->count;
		o->total_bytes += k->bytes;
	}
	if (o->n_types > 1)
		qsort(o->types, o->n_types, sizeof(*o->types), cmp_type);
	return 0;
}

static uint64_t count_at(const struct reports_capture *cap, uint64_t snap, uint64_t type_id)
{
	for (size_t i = 0; i < cap->n_objcounts; i++)
		if (cap->objcounts[i].snapshot == snap && cap->objcounts[i].type_id == type_id)
			return cap->objcounts[i].count;
	return 0;
}

static int cmp_snap(const void *a, const void *b)
{
	uint64_t x = (*(const struct reports_snapshot *const *)a)->id;
	uint64_t y = (*(const struct reports_snapshot *const *)b)->id;
	return x < y ? -1 : x > y;
}

static int growth(struct ctx *c)
{
	const struct reports_capture *cap = c->cap;
	struct reports_objects *o = c->o;
	const struct reports_snapshot **s = calloc(cap->n_snapshots + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	size_t n = 0, cap_g = 0, cap_t = 0;
	for (size_t i = 0; i < cap->n_snapshots; i++)
		if (cap->snapshots[i].id != CAPTURE_SNAPSHOT_EXIT)
			s[n++] = &cap->snapshots[i];
	qsort(s, n, sizeof(*s), cmp_snap);
	for (size_t k = 1; k < n; k++) {
		struct reports_obj_growth g = { s[k - 1]->label, s[k]->label, s[k - 1]->id,
						s[k]->id, o->n_growth_types, 0 };
		for (size_t t = 0; t < cap->n_objtypes; t++) {
			uint64_t id = cap->objtypes[t].id;
			uint64_t now = count_at(cap, s[k]->id, id);
			uint64_t before = count_at(cap, s[k - 1]->id, id);
			if (now <= before)
				continue;
			struct reports_obj_type ty = { type_name(cap, id), now, 0,
						       (int64_t)(now - before) };
			if (reports_vec_push(&o->growth_types, &o->n_growth_types, &cap_t, &ty,
					     sizeof(ty)) < 0) {
				free(s);
				return -ENOMEM;
			}
			g.n++;
		}
		if (g.n > 1)
			qsort(o->growth_types + g.first, g.n, sizeof(*o->growth_types),
			      cmp_growth);
		if (reports_vec_push(&o->growth, &o->n_growth, &cap_g, &g, sizeof(g)) < 0) {
			free(s);
			return -ENOMEM;
		}
	}
	free(s);
	return 0;
}

/* ---- cycles ------------------------------------------------------------------------ */

struct cyc_tmp {
	uint32_t comp;
	size_t obj;
};

static int cmp_cyc_tmp(const void *a, const void *b)
{
	const struct cyc_tmp *x = a, *y = b;
	if (x->comp != y->comp)
		return x->comp < y->comp ? -1 : 1;
	return x->obj < y->obj ? -1 : x->obj > y->obj;
}

static int cmp_cycle(const void *a, const void *b)
{
	const struct reports_obj_cycle *x = a, *y = b;
	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The garbage objects' references, as node numbers among them. */
static int garbage_graph(struct ctx *c, size_t **g_obj, size_t *n_g, uint32_t **from,
			 uint32_t **to, size_t *m, uint32_t **node_of)
{
	const struct reports_capture *cap = c->cap;
	*node_of = malloc((c->n_objs + 1) * sizeof(**node_of));
	*g_obj = malloc((c->n_objs + 1) * sizeof(**g_obj));
	*from = malloc((cap->n_objedges + 1) * sizeof(**from));
	*to = malloc((cap->n_objedges + 1) * sizeof(**to));
	if (!*node_of || !*g_obj || !*from || !*to)
		return -ENOMEM;
	*n_g = 0;
	for (size_t i = 0; i < c->n_objs; i++) {
		(*node_of)[i] = UINT32_MAX;
		if (c->objs[i]->flags & CAPTURE_OBJ_GARBAGE) {
			(*node_of)[i] = (uint32_t)*n_g;
			(*g_obj)[(*n_g)++] = i;
		}
	}
	*m = 0;
	for (size_t e = 0; e < cap->n_objedges; e++) {
		const struct reports_objedge *ed = &cap->objedges[e];
		if (ed->snapshot != CAPTURE_SNAPSHOT_EXIT)
			continue;
		long a = obj_index(c, ed->from), b = obj_index(c, ed->to);
		if (a < 0 || b < 0 || (*node_of)[a] == UINT32_MAX || (*node_of)[b] == UINT32_MAX)
			continue;
		(*from)[*m] = (*node_of)[a];
		(*to)[*m] = (*node_of)[b];
		(*m)++;
	}
	return 0;
}

static int add_cycle(struct ctx *c, const struct cyc_tmp *t, size_t n, const size_t *g_obj,
		     const uint32_t *from, const uint32_t *to, size_t m, const uint32_t *comp,
		     size_t *caps)
{
	struct reports_objects *o = c->o;
	struct reports_obj_cycle cy = { 0, o->n_members, n, o->n_cycle_types, 0, o->n_edges, 0 };
	bool self_loop = false;
	for (size_t e = 0; e < m; e++) {
		if (comp[from[e]] != t[0].comp || comp[to[e]] != t[0].comp)
			continue;
		self_loop |= from[e] == to[e];
		struct reports_obj_edge ed = { c->objs[g_obj[from[e]]]->addr,
					       c->objs[g_obj[to[e]]]->addr };
		if (reports_vec_push(&o->edges, &o->n_edges, &caps[0], &ed, sizeof(ed)) < 0)
			return -ENOMEM;
		cy.n_edge++;
	}
	if (n < 2 && !self_loop) {
		o->n_edges = cy.first_edge;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct reports_obj mb;
		obj_fill(c, t[i].obj, &mb);
		cy.bytes += mb.size;
		if (reports_vec_push(&o->members, &o->n_members, &caps[1], &mb, sizeof(mb)) < 0)
			return -ENOMEM;
		bool seen = false;
		for (size_t k = cy.first_type; k < o->n_cycle_types && !seen; k++)
			seen = strcmp(o->cycle_types[k], mb.type) == 0;
		if (!seen) {
			if (reports_vec_push(&o->cycle_types, &o->n_cycle_types, &caps[2], &mb.type,
					     sizeof(mb.type)) < 0)
				return -ENOMEM;
			cy.n_type++;
		}
	}
	qsort(o->cycle_types + cy.first_type, cy.n_type, sizeof(*o->cycle_types), cmp_str);
	return reports_vec_push(&o->cycles, &o->n_cycles, &caps[3], &cy, sizeof(cy));
}

static int cycles(struct ctx *c)
{
	size_t *g_obj = NULL, n_g = 0, m = 0;
	uint32_t *from = NULL, *to = NULL, *node_of = NULL, *comp = NULL;
	struct cyc_tmp *t = NULL;
	int res = garbage_graph(c, &g_obj, &n_g, &from, &to, &m, &node_of);
	if (res == 0 && n_g > 0) {
		comp = malloc(n_g * sizeof(*comp));
		t = malloc(n_g * sizeof(*t));
		long nc = comp && t ? reports_scc(n_g, from, to, m, comp) : -ENOMEM;
		if (nc < 0)
			res = (int)nc;
	}
	if (res == 0 && n_g > 0) {
		for (size_t i = 0; i < n_g; i++)
			t[i] = (struct cyc_tmp){ comp[i], g_obj[i] };
		qsort(t, n_g, sizeof(*t), cmp_cyc_tmp);
		size_t caps[4] = { 0 };
		for (size_t i = 0; i < n_g && res == 0;) {
			size_t j = i;
			while (j < n_g && t[j].comp == t[i].comp)
				j++;
			res = add_cycle(c, t + i, j - i, g_obj, from, to, m, comp, caps);
			i = j;
		}
	}
	free(g_obj);
	free(from);
	free(to);
	free(node_of);
	free(comp);
	free(t);
	if (res == 0 && c->o->n_cycles > 1)
		qsort(c->o->cycles, c->o->n_cycles, sizeof(*c->o->cycles), cmp_cycle);
	return res;
}

/* ---- refcount leaks -------------------------------------------------------------------- */

static int leaks(struct ctx *c)
{
	struct reports_objects *o = c->o;
	size_t cap_l = 0;
	if (c->scan == SIZE_MAX)
		return 0; /* no scan: reachability unknown */
	for (size_t i = 0; i < c->n_objs; i++) {
		const struct reports_object *ob = c->objs[i];
		if (ob->flags & CAPTURE_OBJ_GARBAGE || ob->refcount <= c->in_edges[i])
			continue;
		const struct reports_scan_block *b = block_of(c, ob->addr);
		if (!b || b->kind == CAPTURE_LEAK_REACHABLE)
			continue;
		struct reports_obj l;
		obj_fill(c, i, &l);
		if (reports_vec_push(&o->leaks, &o->n_leaks, &cap_l, &l, sizeof(l)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- back-reference chains ------------------------------------------------------------ */

/* A data address as "name+off in module", or NULL. */
static char *data_symbol(struct ctx *c, uint64_t addr)
{
	static const Dwfl_Callbacks cb = {
		.find_elf = dwfl_build_id_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.section_address = dwfl_offline_section_address,
	};
	const struct reports_capture *cap = c->cap;
	char *out = NULL;
	for (size_t i = 0; i < cap->n_modules && !out; i++) {
		const struct reports_module *m = &cap->modules[i];
		if (!m->path || m->path[0] != '/' || m->unloaded || addr < m->load_bias)
			continue;
		Dwfl *d = dwfl_begin(&cb);
		if (!d)
			return NULL;
		dwfl_report_begin(d);
		const char *base = strrchr(m->path, '/');
		Dwfl_Module *mod = dwfl_report_elf(d, base ? base + 1 : m->path, m->path, -1,
						   m->load_bias, false);
		dwfl_report_end(d, NULL, NULL);
		Dwarf_Addr lo = 0, hi = 0;
		if (mod && dwfl_module_info(mod, NULL, &lo, &hi, NULL, NULL, NULL, NULL) &&
		    addr >= lo && addr < hi) {
			GElf_Off off = 0;
			GElf_Sym s;
			const char *name = dwfl_module_addrinfo(mod, addr, &off, &s, NULL, NULL,
								NULL);
			if (name && off < (s.st_size ? s.st_size : 1)) {
				size_t len = strlen(name) + strlen(base ? base + 1 : m->path) + 40;
				out = malloc(len);
				if (out && off)
					snprintf(out, len, "%s+%" PRIu64 " in %s", name, (uint64_t)off,
						 base ? base + 1 : m->path);
				else if (out)
					snprintf(out, len, "%s in %s", name, base ? base + 1 : m->path);
			} else {
				size_t len = strlen(m->path) + 48;
				out = malloc(len);
				if (out)
					snprintf(out, len, "data at 0x%" PRIx64 " in %s", addr,
						 base ? base + 1 : m->path);
			}
		}
		dwfl_end(d);
	}
	return out;
}

static char *root_name(struct ctx *c, const struct reports_scan_ref *r)
{
	char buf[96];
	switch (r->kind) {
	case CAPTURE_REF_STACK:
		snprintf(buf, sizeof(buf), "stack of thread %" PRIu64, r->tid);
		break;
	case CAPTURE_REF_TLS:
		snprintf(buf, sizeof(buf), "TLS of thread %" PRIu64, r->tid);
		break;
	case CAPTURE_REF_REGISTER:
		snprintf(buf, sizeof(buf), "a register of thread %" PRIu64, r->tid);
		break;
	default: {
		char *s = data_symbol(c, r->from);
		if (s)
			return s;
		snprintf(buf, sizeof(buf), "memory at 0x%" PRIx64, r->from);
	}
	}
	return reports_strndup(buf, strlen(buf));
}

/* Follows the SCANREF chain of object i; its length (links up to the
 * root) or -1 when it does not reach one. */
static long chain_walk(const struct ctx *c, size_t i, struct reports_obj_link *links,
		       const struct reports_scan_ref **root)
{
	const struct reports_scan_block *b = block_of(c, c->objs[i]->addr);
	long n = 0;
	for (unsigned steps = 0; b && steps < CHAIN_MAX; steps++) {
		const struct reports_scan_ref *r = ref_of(c, b->addr);
		if (!r)
			return -1;
		if (r->kind != CAPTURE_REF_BLOCK) {
			*root = r;
			return n;
		}
		b = block_of(c, r->from);
		if (!b)
			return -1;
		if (links) {
			long k = obj_in_block(c, b);
			links[n] = (struct reports_obj_link){
				b->addr, r->from - b->addr, b->size,
				k >= 0 ? type_name(c->cap, c->objs[k]->type_id) : NULL, b->stack };
		}
		n++;
	}
	return -1;
}

static int chains(struct ctx *c)
{
	struct reports_objects *o = c->o;
	size_t cap_c = 0, cap_l = 0;
	if (c->n_refs == 0)
		return 0;
	for (size_t t = 0; t < o->n_types && o->n_chains < CHAINS_MAX; t++) {
		long best = -1, best_len = 0;
		for (size_t i = 0; i < c->n_objs; i++) {
			const struct reports_scan_ref *root = NULL;
			if (strcmp(type_name(c->cap, c->objs[i]->type_id), o->types[t].name) != 0)
				continue;
			long len = chain_walk(c, i, NULL, &root);
			if (len >= 0 && (best < 0 || len < best_len)) {
				best = (long)i;
				best_len = len;
			}
		}
		if (best < 0)
			continue;
		struct reports_obj_chain ch = { .first = o->n_links, .n = (size_t)best_len };
		obj_fill(c, (size_t)best, &ch.obj);
		if (reports_vec_reserve(&o->links, &cap_l, o->n_links + (size_t)best_len + 1,
					sizeof(*o->links)) < 0)
			return -ENOMEM;
		const struct reports_scan_ref *root = NULL;
		chain_walk(c, (size_t)best, o->links + o->n_links, &root);
		o->n_links += (size_t)best_len;
		ch.root_kind = root->kind;
		ch.root_addr = root->from;
		ch.root_tid = root->tid;
		ch.root = root_name(c, root);
		if (!ch.root || reports_vec_push(&o->chains, &o->n_chains, &cap_c, &ch,
						 sizeof(ch)) < 0) {
			free(ch.root);
			return -ENOMEM;
		}
	}
	return 0;
}

/* ---- the analysis ------------------------------------------------------------------- */

static int index_capture(struct ctx *c)
{
	const struct reports_capture *cap = c->cap;
	c->scan = SIZE_MAX;
	for (size_t i = 0; i < cap->n_scans; i++)
		if (cap->scans[i].flags & CAPTURE_SCAN_AT_EXIT)
			c->scan = i;
	c->blocks = malloc((cap->n_scan_blocks + 1) * sizeof(*c->blocks));
	c->refs = malloc((cap->n_scan_refs + 1) * sizeof(*c->refs));
	c->objs = malloc((cap->n_objects + 1) * sizeof(*c->objs));
	c->in_edges = calloc(cap->n_objects + 1, sizeof(*c->in_edges));
	if (!c->blocks || !c->refs || !c->objs || !c->in_edges)
		return -ENOMEM;
	for (size_t i = 0; i < cap->n_scan_blocks; i++)
		if (cap->scan_blocks[i].scan == c->scan)
			c->blocks[c->n_blocks++] = &cap->scan_blocks[i];
	for (size_t i = 0; i < cap->n_scan_refs; i++)
		if (cap->scan_refs[i].scan == c->scan)
			c->refs[c->n_refs++] = &cap->scan_refs[i];
	for (size_t i = 0; i < cap->n_objects; i++)
		if (cap->objects[i].snapshot == CAPTURE_SNAPSHOT_EXIT)
			c->objs[c->n_objs++] = &cap->objects[i];
	qsort(c->blocks, c->n_blocks, sizeof(*c->blocks), cmp_block);
	qsort(c->refs, c->n_refs, sizeof(*c->refs), cmp_ref);
	qsort(c->objs, c->n_objs, sizeof(*c->objs), cmp_obj);
	for (size_t e = 0; e < cap->n_objedges; e++) {
		const struct reports_objedge *ed = &cap->objedges[e];
		long k = ed->snapshot == CAPTURE_SNAPSHOT_EXIT ? obj_index(c, ed->to) : -1;
		if (k >= 0 && obj_index(c, ed->from) >= 0)
			c->in_edges[k]++;
	}
	return 0;
}

struct reports_objects *reports_objects_analyse(const struct reports_capture *cap,
						struct reports_symbolizer *sym, int *err)
{
	*err = 0;
	if (cap->n_snapshots == 0 && cap->n_objects == 0)
		return NULL;
	struct ctx c = { .cap = cap, .sym = sym };
	c.o = calloc(1, sizeof(*c.o));
	int res = c.o ? index_capture(&c) : -ENOMEM;
	if (res == 0)
		res = exit_types(&c);
	if (res == 0)
		res = growth(&c);
	if (res == 0)
		res = cycles(&c);
	if (res == 0)
		res = leaks(&c);
	if (res == 0)
		res = chains(&c);
	free(c.blocks);
	free(c.refs);
	free(c.objs);
	free(c.in_edges);
	if (res < 0) {
		reports_objects_destroy(c.o);
		*err = res;
		return NULL;
	}
	return c.o;
}

void reports_objects_destroy(struct reports_objects *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_chains; i++)
		free(o->chains[i].root);
	free(o->types);
	free(o->growth);
	free(o->growth_types);
	free(o->cycles);
	free(o->members);
	free(o->cycle_types);
	free(o->edges);
	free(o->leaks);
	free(o->chains);
	free(o->links);
	free(o);
}

/* ---- rendering helpers --------------------------------------------------------------- */

/* The first frame of a stack that is no allocator wrapper and, for an
 * object (lib), not libmemprof-heap itself (objheap_object_new, mp_new). */
static const struct reports_frame *site_of(struct reports_symbolizer *sym,
					   const struct reports_capture *cap, uint32_t stack,
					   struct reports_frames *fr, size_t *at, bool lib)
{
	if (!sym || stack == REPORTS_NO_STACK || reports_stack_symbolize(sym, cap, stack, fr) < 0)
		return NULL;
	for (size_t i = 0; i < fr->n; i++) {
		const struct reports_frame *f = fr->v[i];
		const char *mod = f->module ? strrchr(f->module, '/') : NULL;
		mod = mod ? mod + 1 : f->module;
		if (reports_frame_is_allocator(f) ||
		    (lib && mod && strncmp(mod, "libmemprof-heap", 15) == 0))
			continue;
		*at = i;
		return f;
	}
	return NULL;
}

static void text_site(FILE *out, struct reports_symbolizer *sym,
		      const struct reports_capture *cap, uint32_t stack,
		      struct reports_frames *fr, const char *indent, bool lib)
{
	size_t at = 0;
	const struct reports_frame *f = site_of(sym, cap, stack, fr, &at, lib);
	if (!f)
		return;
	fprintf(out, "%sallocated at ", indent);
	for (size_t i = at; i < fr->n && i < at + 3; i++) {
		const struct reports_frame *g = fr->v[i];
		const char *file = g->file ? strrchr(g->file, '/') : NULL;
		file = file ? file + 1 : g->file;
		fputs(i > at ? " < " : "", out);
		reports_put_clean(out, g->function ? g->function : "???", 0);
		if (file) {
			fputs(" (", out);
			reports_put_clean(out, file, 0);
			fprintf(out, ":%u)", g->line);
		}
	}
	fputc('\n', out);
}

/* Same type, and allocated by the same line of the program. */
static bool same_site(struct reports_symbolizer *sym, const struct reports_capture *cap,
		      const struct reports_obj *a, const struct reports_obj *b,
		      struct reports_frames *fr)
{
	if (strcmp(a->type, b->type) != 0)
		return false;
	if (a->stack == b->stack)
		return true;
	size_t at = 0;
	const struct reports_frame *f = site_of(sym, cap, a->stack, fr, &at, true);
	const char *fn = f ? f->function : NULL, *file = f ? f->file : NULL;
	unsigned line = f ? f->line : 0;
	const struct reports_frame *g = site_of(sym, cap, b->stack, fr, &at, true);
	if (!f || !g || !fn || !g->function || strcmp(fn, g->function) != 0 || line != g->line)
		return false;
	return (!file && !g->file) || (file && g->file && strcmp(file, g->file) == 0);
}

/* ---- text ------------------------------------------------------------------------------ */

int reports_objects_render_text(FILE *out, const struct reports_objects *o,
				const struct reports_capture *cap,
				struct reports_symbolizer *sym, size_t top)
{
	if (!o)
		return 0;
	struct reports_frames fr = { 0 };
	size_t shown = top ? top : 10;
	fprintf(out, "\nObjects (libmemprof-heap) alive at exit: %" PRIu64 " objects, %" PRIu64
		     " bytes\n", o->total_count, o->total_bytes);
	if (o->n_types > 0)
		fprintf(out, "  %10s %12s  %s\n", "count", "bytes", "type");
	for (size_t i = 0; i < o->n_types && i < shown; i++) {
		fprintf(out, "  %10" PRIu64 " %12" PRIu64 "  ", o->types[i].count,
			o->types[i].bytes);
		reports_put_clean(out, o->types[i].name, 0);
		fputc('\n', out);
	}
	if (o->n_types > shown)
		fprintf(out, "  (%zu more types)\n", o->n_types - shown);
	for (size_t g = 0; g < o->n_growth; g++) {
		const struct reports_obj_growth *gr = &o->growth[g];
		fputs("\nGrowth of objects by type, snapshot \"", out);
		reports_put_clean(out, gr->from_label, 0);
		fputs("\" -> \"", out);
		reports_put_clean(out, gr->to_label, 0);
		fputs("\"\n", out);
		if (gr->n == 0)
			fputs("  (no type grew)\n", out);
		for (size_t i = 0; i < gr->n; i++) {
			const struct reports_obj_type *t = &o->growth_types[gr->first + i];
			fputs("  ", out);
			reports_put_clean(out, t->name, 0);
			size_t len = strlen(t->name);
			fprintf(out, "%*s %10" PRIu64 " %+10" PRId64 "\n", len < 24 ? (int)(24 - len) : 0,
				"", t->count, t->delta);
		}
	}
	if (o->n_cycles > 0)
		fputs("\nCycles of objects never freed (unreachable at exit, kept by the "
		      "collector)\n", out);
	for (size_t k = 0; k < o->n_cycles; k++) {
		const struct reports_obj_cycle *cy = &o->cycles[k];
		fprintf(out, "  cycle %zu: %zu objects, %" PRIu64 " bytes, types:", k + 1, cy->n,
			cy->bytes);
		for (size_t t = 0; t < cy->n_type; t++) {
			fputs(t ? ", " : " ", out);
			reports_put_clean(out, o->cycle_types[cy->first_type + t], 0);
		}
		fputc('\n', out);
		/* members grouped by type and allocation site */
		size_t groups = 0;
		for (size_t i = 0; i < cy->n; i++) {
			const struct reports_obj *mb = &o->members[cy->first + i];
			size_t same = 0, j = 0;
			for (; j < i; j++)
				if (same_site(sym, cap, &o->members[cy->first + j], mb, &fr))
					break;
			if (j < i)
				continue; /* counted with the first of its group */
			for (j = i; j < cy->n; j++)
				same += same_site(sym, cap, &o->members[cy->first + j], mb, &fr);
			if (++groups > MEMBERS_SHOWN)
				continue;
			fprintf(out, "    %zu x ", same);
			reports_put_clean(out, mb->type, 0);
			fprintf(out, " (first at 0x%" PRIx64 ", refcount %" PRIu64 ")\n", mb->addr,
				mb->refcount);
			text_site(out, sym, cap, mb->stack, &fr, "      ", true);
		}
		if (groups > MEMBERS_SHOWN)
			fprintf(out, "    (%zu more allocation sites)\n", groups - MEMBERS_SHOWN);
	}
	if (o->n_leaks > 0)
		fputs("\nRefcount leaks (live objects that no root and no object explains: "
		      "a missing mp_decref)\n", out);
	for (size_t i = 0; i < o->n_leaks; i++) {
		const struct reports_obj *l = &o->leaks[i];
		fputs("  ", out);
		reports_put_clean(out, l->type, 0);
		fprintf(out, " at 0x%" PRIx64 ": refcount %" PRIu64 ", %" PRIu64
			     " from other objects, unreachable\n", l->addr, l->refcount, l->referrers);
		text_site(out, sym, cap, l->stack, &fr, "    ", true);
	}
	if (o->n_chains > 0)
		fputs("\nBack-reference chains (why objects are still alive)\n", out);
	for (size_t k = 0; k < o->n_chains; k++) {
		const struct reports_obj_chain *ch = &o->chains[k];
		fputs("  ", out);
		reports_put_clean(out, ch->obj.type, 0);
		fprintf(out, " at 0x%" PRIx64 "\n", ch->obj.addr);
		text_site(out, sym, cap, ch->obj.stack, &fr, "     ", true);
		for (size_t i = 0; i < ch->n; i++) {
			const struct reports_obj_link *l = &o->links[ch->first + i];
			if (l->type) {
				fputs("    <- ", out);
				reports_put_clean(out, l->type, 0);
				fprintf(out, " object at 0x%" PRIx64 " (+%" PRIu64 ")\n", l->block,
					l->offset);
			} else
				fprintf(out, "    <- block of %" PRIu64 " bytes at 0x%" PRIx64
					     " (+%" PRIu64 ")\n", l->size, l->block, l->offset);
			text_site(out, sym, cap, l->stack, &fr, "       ", l->type != NULL);
		}
		fputs("    <- ", out);
		reports_put_clean(out, ch->root, 0);
		fputc('\n', out);
	}
	reports_frames_finish(&fr);
	return ferror(out) ? -EIO : 0;
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void json_str(FILE *out, const char *s)
{
	if (s)
		reports_json_string(out, s, strlen(s));
	else
		fputs("null", out);
}

static int json_obj(FILE *out, const struct reports_obj *ob, const struct reports_capture *cap,
		    struct reports_symbolizer *sym, struct reports_frames *fr)
{
	fputs("{\"type\": ", out);
	json_str(out, ob->type);
	fprintf(out, ", \"address\": \"0x%" PRIx64 "\", \"size\": %" PRIu64 ", \"refcount\": %" PRIu64
		     ", \"referrers\": %" PRIu64 ", \"stack\": ", ob->addr, ob->size, ob->refcount,
		ob->referrers);
	int res = ob->stack == REPORTS_NO_STACK ? (fputs("[]", out), 0)
						 : reports_json_stack(out, cap, sym, ob->stack, fr);
	fputc('}', out);
	return res;
}

static const char *const ref_kinds[] = { "block", "global", "stack", "tls", "register" };

int reports_objects_render_json(FILE *out, const struct reports_objects *o,
				const struct reports_capture *cap,
				struct reports_symbolizer *sym)
{
	struct reports_frames fr = { 0 };
	int res = 0;
	fputs("{\"types\": [", out);
	for (size_t i = 0; o && i < o->n_types; i++) {
		fputs(i ? ", {\"name\": " : "{\"name\": ", out);
		json_str(out, o->types[i].name);
		fprintf(out, ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", o->types[i].count,
			o->types[i].bytes);
	}
	fputs("], \"uncollectable_cycles\": [", out);
	for (size_t k = 0; o && k < o->n_cycles && res == 0; k++) {
		const struct reports_obj_cycle *cy = &o->cycles[k];
		fprintf(out, "%s{\"objects\": %zu, \"bytes\": %" PRIu64 ", \"types\": [",
			k ? ", " : "", cy->n, cy->bytes);
		for (size_t t = 0; t < cy->n_type; t++) {
			fputs(t ? ", " : "", out);
			json_str(out, o->cycle_types[cy->first_type + t]);
		}
		fputs("], \"members\": [", out);
		for (size_t i = 0; i < cy->n && res == 0; i++) {
			fputs(i ? ", " : "", out);
			res = json_obj(out, &o->members[cy->first + i], cap, sym, &fr);
		}
		fputs("], \"edges\": [", out);
		for (size_t e = 0; e < cy->n_edge; e++) {
			const struct reports_obj_edge *ed = &o->edges[cy->first_edge + e];
			fprintf(out, "%s{\"from\": \"0x%" PRIx64 "\", \"to\": \"0x%" PRIx64 "\"}",
				e ? ", " : "", ed->from, ed->to);
		}
		fputs("]}", out);
	}
	fputs("],\n    \"growth\": [", out);
	for (size_t g = 0; o && g < o->n_growth; g++) {
		const struct reports_obj_growth *gr = &o->growth[g];
		fputs(g ? ", {\"from\": " : "{\"from\": ", out);
		json_str(out, gr->from_label);
		fputs(", \"to\": ", out);
		json_str(out, gr->to_label);
		fprintf(out, ", \"from_id\": %" PRIu64 ", \"to_id\": %" PRIu64 ", \"types\": [",
			gr->from_id, gr->to_id);
		for (size_t i = 0; i < gr->n; i++) {
			const struct reports_obj_type *t = &o->growth_types[gr->first + i];
			fputs(i ? ", {\"name\": " : "{\"name\": ", out);
			json_str(out, t->name);
			fprintf(out, ", \"count\": %" PRIu64 ", \"delta\": %" PRId64 "}", t->count,
				t->delta);
		}
		fputs("]}", out);
	}
	fputs("],\n    \"refcount_leaks\": [", out);
	for (size_t i = 0; o && i < o->n_leaks && res == 0; i++) {
		fputs(i ? ", " : "", out);
		res = json_obj(out, &o->leaks[i], cap, sym, &fr);
	}
	fputs("],\n    \"backref_chains\": [", out);
	for (size_t k = 0; o && k < o->n_chains && res == 0; k++) {
		const struct reports_obj_chain *ch = &o->chains[k];
		fputs(k ? ", {\"object\": " : "{\"object\": ", out);
		res = json_obj(out, &ch->obj, cap, sym, &fr);
		fputs(", \"chain\": [", out);
		for (size_t i = 0; i < ch->n; i++) {
			const struct reports_obj_link *l = &o->links[ch->first + i];
			fprintf(out, "%s{\"address\": \"0x%" PRIx64 "\", \"offset\": %" PRIu64
				     ", \"size\": %" PRIu64 ", \"type\": ", i ? ", " : "", l->block,
				l->offset, l->size);
			json_str(out, l->type);
			fputc('}', out);
		}
		fprintf(out, "], \"root\": {\"kind\": \"%s\", \"name\": ",
			ch->root_kind <= CAPTURE_REF_REGISTER ? ref_kinds[ch->root_kind] : "?");
		json_str(out, ch->root);
		fprintf(out, ", \"address\": \"0x%" PRIx64 "\", \"thread\": %" PRIu64 "}}",
			ch->root_addr, ch->root_tid);
	}
	fputs("]}", out);
	reports_frames_finish(&fr);
	if (res < 0)
		return res;
	return ferror(out) ? -EIO : 0;
}

/* ---- DOT ----------------------------------------------------------------------------- */

static void dot_text(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fputc('\\', out);
		fputc(ch < 0x20 || ch >= 0x7f ? '?' : ch, out);
	}
}

static void dot_node(FILE *out, const char *id_prefix, uint64_t addr, const char *type,
		     uint64_t size, struct reports_symbolizer *sym,
		     const struct reports_capture *cap, uint32_t stack, struct reports_frames *fr,
		     const char *color)
{
	size_t at = 0;
	const struct reports_frame *f = site_of(sym, cap, stack, fr, &at, type != NULL);
	fprintf(out, "    %s%" PRIx64 " [fillcolor=\"%s\", label=\"", id_prefix, addr, color);
	dot_text(out, type ? type : "block");
	fprintf(out, "\\n%" PRIu64 " bytes", size);
	if (f) {
		fputs("\\n", out);
		dot_text(out, f->function ? f->function : "???");
	}
	fprintf(out, "\\n0x%" PRIx64 "\"];\n", addr);
}

int reports_objects_render_dot(FILE *out, const struct reports_objects *o,
			       const struct reports_capture *cap,
			       struct reports_symbolizer *sym)
{
	if (!o)
		return 0;
	struct reports_frames fr = { 0 };
	for (size_t k = 0; k < o->n_cycles; k++) {
		const struct reports_obj_cycle *cy = &o->cycles[k];
		fprintf(out, "  subgraph cluster_obj_cycle_%zu {\n    label=\"object cycle %zu: %zu "
			     "objects, %" PRIu64 " bytes\";\n    color=\"#c03030\";\n",
			k + 1, k + 1, cy->n, cy->bytes);
		for (size_t i = 0; i < cy->n; i++) {
			const struct reports_obj *mb = &o->members[cy->first + i];
			dot_node(out, "o", mb->addr, mb->type, mb->size, sym, cap, mb->stack, &fr,
				 "#ffd5d5");
		}
		fputs("  }\n", out);
		for (size_t e = 0; e < cy->n_edge; e++) {
			const struct reports_obj_edge *ed = &o->edges[cy->first_edge + e];
			fprintf(out, "  o%" PRIx64 " -> o%" PRIx64 ";\n", ed->from, ed->to);
		}
	}
	for (size_t k = 0; k < o->n_chains; k++) {
		const struct reports_obj_chain *ch = &o->chains[k];
		fprintf(out, "  subgraph cluster_obj_chain_%zu {\n    label=\"why a ", k + 1);
		dot_text(out, ch->obj.type);
		fputs(" is alive\";\n    color=\"#3060c0\";\n", out);
		char id[32];
		snprintf(id, sizeof(id), "c%zu_", k + 1);
		dot_node(out, id, ch->obj.addr, ch->obj.type, ch->obj.size, sym, cap,
			 ch->obj.stack, &fr, "#d5ffd5");
		uint64_t prev = ch->obj.addr;
		for (size_t i = 0; i < ch->n; i++) {
			const struct reports_obj_link *l = &o->links[ch->first + i];
			dot_node(out, id, l->block, l->type, l->size, sym, cap, l->stack, &fr,
				 "#d5e8ff");
			fprintf(out, "    %s%" PRIx64 " -> %s%" PRIx64 " [label=\"+%" PRIu64 "\"];\n",
				id, l->block, id, prev, l->offset);
			prev = l->block;
		}
		fprintf(out, "    root_%zu [shape=ellipse, fillcolor=\"#ffffff\", label=\"", k + 1);
		dot_text(out, ch->root);
		fprintf(out, "\"];\n    root_%zu -> %s%" PRIx64 ";\n  }\n", k + 1, id, prev);
	}
	reports_frames_finish(&fr);
	return ferror(out) ? -EIO : 0;
}
