/*
 * views-lines.c: memory_profiler's line-by-line view (`memprof report
 * --lines FUNCTION|FILE`).  Entry point: reports_render_lines().
 *
 * Every source line of the function is printed beside what went through
 * it: the bytes allocated by every stack that passes through that line
 * (inclusive, as a call on that line counts all its callee allocates), the
 * bytes of those that were live at the peak of the heap (the line's
 * increment at the peak), those still live at exit, and how many
 * allocations.  A stack passing twice through one line (recursion) counts
 * once for it.  Naming a source file instead shows each function of that
 * file that allocates, in source order.
 *
 * The lines shown run from the function's declaration line (the
 * subprogram's DW_AT_decl_line, from libdw) to the highest line the line
 * table gives for its code (its closing brace), widened to the lines seen
 * in the stacks; without DWARF they are the lines seen in the stacks and
 * every line between them.  The text comes from the source file named by
 * the debug information when it can be read; otherwise only the lines
 * with numbers are printed.
 */
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reports-private.h"
#include "reports.h"

/* Longest function shown whole; a longer range (bad debug info) shrinks to
 * the lines seen in the stacks. */
#define RANGE_MAX 5000u
#define SOURCE_MAX (16u << 20)

struct line_acc {
	unsigned line;
	uint64_t bytes, peak, leaked, allocations;
};

struct group {
	const char *function;
	const char *file;
	const struct reports_frame *frame; /* one of its frames, for libdw */
	struct line_acc *lines;
	size_t n_lines, cap_lines;
	struct line_acc total;
	unsigned first, last; /* the range shown */
};

struct credit {
	size_t group;
	unsigned line;
};

struct lines_view {
	const struct reports_capture *cap;
	struct reports_symbolizer *sym;
	const char *target;
	bool by_file;
	struct group *groups;
	size_t n_groups, cap_groups;
	struct credit *credited; /* (group, line) already counted for a site */
	size_t n_credited, cap_credited;
};

bool reports_function_matches(const char *function, const char *name)
{
	if (!function || !name || !name[0])
		return false;
	size_t n = strlen(name);
	return strncmp(function, name, n) == 0 && (function[n] == '\0' || function[n] == '(');
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* A file names the target: the same path, or ends with "/target". */
static bool file_matches(const char *file, const char *target)
{
	if (!file)
		return false;
	while (target[0] == '.' && target[1] == '/')
		target += 2;
	size_t fl = strlen(file), tl = strlen(target);
	if (tl == 0 || tl > fl)
		return false;
	if (strcmp(file + fl - tl, target) != 0)
		return false;
	return fl == tl || file[fl - tl - 1] == '/' || target[0] == '/';
}

static bool frame_matches(const struct lines_view *v, const struct reports_frame *f)
{
	return v->by_file ? file_matches(f->file, v->target)
			  : reports_function_matches(f->function, v->target);
}

static int cmp_str(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int group_of(struct lines_view *v, const struct reports_frame *f, size_t *out)
{
	for (size_t i = 0; i < v->n_groups; i++) {
		struct group *g = &v->groups[i];
		if (cmp_str(g->function, f->function) == 0 && cmp_str(g->file, f->file) == 0) {
			if (g->frame->inlined && !f->inlined)
				g->frame = f; /* the out-of-line copy has the whole range */
			*out = i;
			return 0;
		}
	}
	struct group g = {.function = f->function, .file = f->file, .frame = f};
	*out = v->n_groups;
	return reports_vec_push(&v->groups, &v->n_groups, &v->cap_groups, &g, sizeof(g));
}

static void add(struct line_acc *a, const struct reports_site *s)
{
	a->bytes += s->bytes;
	a->peak += s->peak_bytes;
	a->leaked += s->leaked_bytes;
	a->allocations += s->allocations;
}

/* Counts a site once for (group, line); line 0 stands for the group's
 * total.  Returns whether it was counted already. */
static int credit_once(struct lines_view *v, size_t group, unsigned line, bool *seen)
{
	for (size_t i = 0; i < v->n_credited; i++) {
		if (v->credited[i].group == group && v->credited[i].line == line) {
			*seen = true;
			return 0;
		}
	}
	*seen = false;
	struct credit c = {group, line};
	return reports_vec_push(&v->credited, &v->n_credited, &v->cap_credited, &c, sizeof(c));
}

static int credit_line(struct group *g, unsigned line, const struct reports_site *s)
{
	for (size_t i = 0; i < g->n_lines; i++) {
		if (g->lines[i].line == line) {
			add(&g->lines[i], s);
			return 0;
		}
	}
	struct line_acc a = {.line = line};
	add(&a, s);
	return reports_vec_push(&g->lines, &g->n_lines, &g->cap_lines, &a, sizeof(a));
}

static int credit_site(struct lines_view *v, const struct reports_site *s,
		       const struct reports_frames *fr)
{
	v->n_credited = 0;
	for (size_t i = reports_frames_display_start(fr); i < fr->n; i++) {
		const struct reports_frame *f = fr->v[i];
		if (!frame_matches(v, f))
			continue;
		size_t gi;
		bool seen;
		int res;
		if ((res = group_of(v, f, &gi)) < 0 || (res = credit_once(v, gi, 0, &seen)) < 0)
			return res;
		if (!seen)
			add(&v->groups[gi].total, s);
		if (!f->file || !f->line)
			continue;
		if ((res = credit_once(v, gi, f->line, &seen)) < 0)
			return res;
		if (!seen && (res = credit_line(&v->groups[gi], f->line, s)) < 0)
			return res;
	}
	return 0;
}

/* ---- the function's lines from libdw -------------------------------------- */

static const Dwfl_Callbacks offline_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

static const struct reports_module *module_at(const struct reports_capture *cap, uint64_t ip)
{
	for (size_t i = 0; i < cap->n_modules; i++)
		if (ip >= cap->modules[i].start && ip < cap->modules[i].end)
			return &cap->modules[i];
	return NULL;
}

/* The CU holding pc: libdw's lookup (through .debug_aranges), else a walk
 * over every CU's ranges (clang emits no aranges). */
static Dwarf_Die *cu_at(Dwfl_Module *mod, Dwarf_Addr pc, Dwarf_Addr *bias)
{
	Dwarf_Die *cu = dwfl_module_addrdie(mod, pc, bias);
	if (cu)
		return cu;
	while ((cu = dwfl_module_nextcu(mod, cu, bias)))
		if (dwarf_haspc(cu, pc - *bias) > 0)
			return cu;
	return NULL;
}

static bool in_ranges(Dwarf_Die *die, Dwarf_Addr addr)
{
	return dwarf_haspc(die, addr) > 0;
}

/* From the DIE of the function (or inlined call) that frame k of the
 * address stands for: its declaration line and the last line of its code.
 * False when the debug information does not say. */
static bool die_range(Dwarf_Die *cu, Dwarf_Die *die, unsigned *first, unsigned *last)
{
	int decl = 0;
	const char *decl_file = dwarf_decl_file(die);
	if (dwarf_decl_line(die, &decl) != 0 || decl <= 0 || !decl_file)
		return false;
	Dwarf_Lines *lines;
	size_t n;
	if (dwarf_getsrclines(cu, &lines, &n) != 0)
		return false;
	int hi = decl;
	for (size_t i = 0; i < n; i++) {
		Dwarf_Line *l = dwarf_onesrcline(lines, i);
		Dwarf_Addr a;
		int no;
		const char *src;
		if (!l || dwarf_lineaddr(l, &a) != 0 || dwarf_lineno(l, &no) != 0 || no <= hi)
			continue;
		if (!in_ranges(die, a) || !(src = dwarf_linesrc(l, NULL, NULL)) ||
		    strcmp(base_name(src), base_name(decl_file)) != 0)
			continue;
		hi = no;
	}
	*first = (unsigned)decl;
	*last = (unsigned)hi;
	return true;
}

static bool dwarf_range(const struct reports_capture *cap, struct reports_symbolizer *sym,
			const struct reports_frame *f, unsigned *first, unsigned *last)
{
	/* which of the frames of its address f is: the k-th function scope */
	const struct reports_frame *all;
	size_t n = reports_symbolizer_lookup(sym, f->address, &all);
	size_t k = 0;
	while (k < n && &all[k] != f)
		k++;
	const struct reports_module *m = module_at(cap, f->address);
	if (k == n || !m || !m->path || m->path[0] != '/')
		return false;
	Dwfl *dwfl = dwfl_begin(&offline_callbacks);
	if (!dwfl)
		return false;
	bool ok = false;
	dwfl_report_begin(dwfl);
	Dwfl_Module *mod =
		dwfl_report_elf(dwfl, base_name(m->path), m->path, -1, m->load_bias, true);
	dwfl_report_end(dwfl, NULL, NULL);
	Dwarf_Addr pc = f->address - 1, bias = 0;
	Dwarf_Die *cu = mod ? cu_at(mod, pc, &bias) : NULL;
	Dwarf_Die *scopes = NULL;
	int nscopes = cu ? dwarf_getscopes(cu, pc - bias, &scopes) : 0;
	size_t seen = 0;
	for (int i = 0; i < nscopes && !ok; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		if (seen++ == k)
			ok = die_range(cu, &scopes[i], first, last);
		if (tag == DW_TAG_subprogram)
			break;
	}
	free(scopes);
	dwfl_end(dwfl);
	return ok;
}

static void choose_range(struct lines_view *v, struct group *g)
{
	unsigned lo = 0, hi = 0;
	for (size_t i = 0; i < g->n_lines; i++) {
		unsigned l = g->lines[i].line;
		lo = lo == 0 || l < lo ? l : lo;
		hi = l > hi ? l : hi;
	}
	unsigned first, last;
	if (g->file && dwarf_range(v->cap, v->sym, g->frame, &first, &last)) {
		if (lo && lo < first)
			first = lo;
		if (hi > last)
			last = hi;
		if (last - first <= RANGE_MAX) {
			g->first = first;
			g->last = last;
			return;
		}
	}
	g->first = lo;
	g->last = hi;
}

/* ---- printing --------------------------------------------------------------- */

struct source {
	char *text;
	size_t len;
	const char **lines; /* lines[i] starts line i + 1 */
	size_t n;
};

static void source_finish(struct source *s)
{
	free(s->text);
	free(s->lines);
	memset(s, 0, sizeof(*s));
}

/* Reads a source file; false when it cannot be. */
static bool source_load(struct source *s, const char *path)
{
	memset(s, 0, sizeof(*s));
	struct stat st;
	FILE *f = path ? fopen(path, "re") : NULL;
	if (!f)
		return false;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SOURCE_MAX ||
	    !(s->text = malloc((size_t)st.st_size + 1))) {
		fclose(f);
		return false;
	}
	s->len = fread(s->text, 1, (size_t)st.st_size, f);
	fclose(f);
	s->text[s->len] = '\0';
	size_t cap = 0;
	for (size_t i = 0; i < s->len;) {
		const char *start = s->text + i;
		if (reports_vec_push(&s->lines, &s->n, &cap, &start, sizeof(start)) < 0) {
			source_finish(s);
			return false;
		}
		char *nl = memchr(s->text + i, '\n', s->len - i);
		if (!nl)
			break;
		*nl = '\0';
		i = (size_t)(nl - s->text) + 1;
	}
	return true;
}

/* A line of source with tabs expanded, control characters and bytes that
 * are not UTF-8 made harmless (the file may be anybody's). */
static void put_source_line(FILE *out, const char *s)
{
	size_t len = strlen(s), col = 0;
	if (len && s[len - 1] == '\r')
		len--;
	while (len) {
		const char *tab = memchr(s, '\t', len);
		size_t n = tab ? (size_t)(tab - s) : len;
		col += reports_put_clean_n(out, s, n, 0);
		if (!tab)
			break;
		do
			fputc(' ', out);
		while (++col % 8);
		s += n + 1;
		len -= n + 1;
	}
}

/* Exact bytes up to 99999, then KiB, MiB... with one decimal. */
static const char *fmt_bytes(char *buf, size_t size, uint64_t n)
{
	if (n < 100000) {
		snprintf(buf, size, "%" PRIu64 " B", n);
		return buf;
	}
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n / 1024.0;
	unsigned u = 0;
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

static const struct line_acc *find_line(const struct group *g, unsigned line)
{
	for (size_t i = 0; i < g->n_lines; i++)
		if (g->lines[i].line == line)
			return &g->lines[i];
	return NULL;
}

static void print_row(FILE *out, unsigned line, const struct line_acc *a, const char *text)
{
	char b[4][32];
	if (a)
		fprintf(out, "%6u %12s %12s %12s %8" PRIu64, line,
			fmt_bytes(b[0], sizeof(b[0]), a->bytes),
			fmt_bytes(b[1], sizeof(b[1]), a->peak),
			fmt_bytes(b[2], sizeof(b[2]), a->leaked), a->allocations);
	else
		fprintf(out, "%6u %12s %12s %12s %8s", line, "", "", "", "");
	if (text) {
		fputs("  ", out);
		put_source_line(out, text);
	}
	fputc('\n', out);
}

static void print_group(FILE *out, const struct group *g)
{
	char b[3][32];
	fputs("Function: ", out);
	reports_put_clean(out, g->function ? g->function : "???", 0);
	if (g->file) {
		fputs(" in ", out);
		reports_put_clean(out, g->file, 0);
		if (g->first)
			fprintf(out, ", lines %u-%u", g->first, g->last);
	}
	fprintf(out,
		"\n  through it: %s allocated in %" PRIu64 " allocations, %s at the peak, "
		"%s live at exit\n\n",
		fmt_bytes(b[0], sizeof(b[0]), g->total.bytes), g->total.allocations,
		fmt_bytes(b[1], sizeof(b[1]), g->total.peak),
		fmt_bytes(b[2], sizeof(b[2]), g->total.leaked));
	if (!g->first) {
		fputs("  (no line information: was it built with -g?)\n", out);
		return;
	}
	struct source src;
	bool have = source_load(&src, g->file);
	fprintf(out, "%6s %12s %12s %12s %8s  %s\n", "Line #", "Allocated", "At peak", "At exit",
		"Allocs", have ? "Line Contents" : "(source not readable)");
	fputs("=========================================================="
	      "====================\n",
	      out);
	for (unsigned l = g->first; l <= g->last && l != 0; l++) {
		const struct line_acc *a = find_line(g, l);
		const char *text = have && l <= src.n ? src.lines[l - 1] : NULL;
		if (a || have)
			print_row(out, l, a, have ? (text ? text : "") : NULL);
	}
	if (have)
		source_finish(&src);
}

static int cmp_group(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	int c = cmp_str(x->file, y->file);
	if (c)
		return c;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return cmp_str(x->function, y->function);
}

static int cmp_line_acc(const void *a, const void *b)
{
	const struct line_acc *x = a, *y = b;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Whether any frame of any site names the target in the current mode. */
static int any_match(struct lines_view *v, const struct reports_analysis *an,
		     struct reports_frames *fr, bool *found)
{
	*found = false;
	for (size_t i = 0; i < an->n_sites && !*found; i++) {
		int res = reports_stack_symbolize(v->sym, v->cap, an->sites[i].stack, fr);
		if (res < 0)
			return res;
		for (size_t j = reports_frames_display_start(fr); j < fr->n && !*found; j++)
			*found = frame_matches(v, fr->v[j]);
	}
	return 0;
}

int reports_render_lines(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an, struct reports_symbolizer *sym,
			 const char *target)
{
	struct lines_view v = {.cap = cap, .sym = sym, .target = target};
	struct reports_frames fr = {0};
	bool found;
	int res = any_match(&v, an, &fr, &found);
	if (res == 0 && !found) {
		v.by_file = true;
		res = any_match(&v, an, &fr, &found);
	}
	if (res == 0 && !found)
		res = -ENOENT;
	for (size_t i = 0; i < an->n_sites && res == 0; i++) {
		res = reports_stack_symbolize(sym, cap, an->sites[i].stack, &fr);
		if (res == 0)
			res = credit_site(&v, &an->sites[i], &fr);
	}
	if (res == 0) {
		for (size_t i = 0; i < v.n_groups; i++) {
			struct group *g = &v.groups[i];
			if (g->n_lines > 1)
				qsort(g->lines, g->n_lines, sizeof(*g->lines), cmp_line_acc);
			choose_range(&v, g);
		}
		if (v.n_groups > 1)
			qsort(v.groups, v.n_groups, sizeof(*v.groups), cmp_group);
		for (size_t i = 0; i < v.n_groups; i++) {
			if (i)
				fputc('\n', out);
			print_group(out, &v.groups[i]);
		}
	}
	for (size_t i = 0; i < v.n_groups; i++)
		free(v.groups[i].lines);
	free(v.groups);
	free(v.credited);
	reports_frames_finish(&fr);
	if (res < 0)
		return res;
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
