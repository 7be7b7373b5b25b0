/*
 * suppress.c: leak suppression files, LeakSanitizer's and valgrind's formats
 * (see suppress.h for both formats and the semantics memprof follows).
 *
 * Main entry points: supp_set_load_buffer() parses one file's text into
 * struct supp entries (all or nothing), supp_set_match() tells which entry
 * applies to an allocation stack, supp_format_valgrind() writes an entry
 * for --gen-suppressions.
 *
 * Two matchers, both iterative with one backtracking point:
 *   glob_match()   characters: '*' (and '?' for valgrind) against a name,
 *                  O(pattern x name) at worst;
 *   frames_match() valgrind's frame lines, "..." being the star, against
 *                  the frames, O(lines x frames) comparisons at worst.
 * The greedy algorithm is exact for patterns whose non-star elements each
 * match exactly one element: on a mismatch, only the last star needs to
 * take one more element, because the earliest match of every star-free
 * segment leaves the most room for the rest.
 */
#include "suppress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum loc_type {
	LOC_DOTS = 0, /* "..." */
	LOC_FUN = 1,
	LOC_OBJ = 2,
	LOC_SRC = 3,
};

/* One frame line of a valgrind entry. */
struct loc {
	enum loc_type type;
	char *pat; /* NULL for LOC_DOTS */
	size_t patlen;
	size_t minlen; /* characters a name needs at least: the non-'*' ones */
	unsigned line; /* LOC_SRC: 0 for any line */
};

struct supp {
	enum supp_format format;
	char *name;	  /* valgrind: the name; LSan: "leak:" and the pattern */
	const char *file; /* one of set->files */
	unsigned line;
	unsigned kinds;
	/* LSan: the pattern as a glob, anchors turned into stars */
	char *glob;
	size_t globlen;
	size_t globmin;
	bool never; /* LSan "$" or "^$": matches no (non-empty) name */
	/* valgrind */
	struct loc *locs;
	size_t nlocs;
	uint64_t uses;
	uint64_t bytes;
	uint64_t blocks;
};

struct supp_set {
	struct supp *v;
	size_t n;
	size_t cap;
	char **files;
	size_t nfiles;
	char *warnings[SUPP_WARNINGS_MAX];
	size_t nwarnings; /* all of them, kept or not */
};

/* ---- small helpers ----------------------------------------------------- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Copies at most 48 bytes of s into out (64 bytes), non-printable bytes as
 * '?', for quoting hostile text in one-line messages. */
static const char *quote(const char *s, size_t n, char out[64])
{
	size_t i, k = 0;

	for (i = 0; i < n && k < 48; i++) {
		unsigned char c = (unsigned char)s[i];

		out[k++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (i < n) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
	return out;
}

static void set_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- matching ------------------------------------------------------------ */

/* Whether the whole of s matches the whole of p, where '*' matches any run
 * of characters and, when query is set, '?' any one character. */
static bool glob_match(const char *p, size_t pn, const char *s, size_t sn, bool query)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, star_si = 0;

	/* invariant: p[0..pi) matches s[0..si); when star is set, p[star] is
	 * the last '*' seen, and the text after it is being tried from
	 * s[star_si] on */
	while (si < sn) {
		if (pi < pn && p[pi] == '*') {
			star = pi++;
			star_si = si;
		} else if (pi < pn && (p[pi] == s[si] || (query && p[pi] == '?'))) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++star_si;
		} else {
			return false;
		}
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

static size_t glob_minlen(const char *p, size_t n)
{
	size_t i, m = 0;

	for (i = 0; i < n; i++)
		m += p[i] != '*';
	return m;
}

static const char *known(const char *s)
{
	return (s && s[0]) ? s : NULL;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static bool loc_matches(const struct loc *l, const struct supp_frame *f)
{
	const char *s;

	switch (l->type) {
	case LOC_FUN:
		s = known(f->mangled) ? f->mangled : known(f->function);
		if (!s)
			s = "???";
		break;
	case LOC_OBJ:
		s = known(f->module) ? f->module : "???";
		break;
	case LOC_SRC:
		if (!known(f->file))
			return false;
		if (l->line != 0 && l->line != f->line)
			return false;
		s = base_name(f->file);
		break;
	default:
		return false;
	}
	size_t sn = strlen(s);

	return sn >= l->minlen && glob_match(l->pat, l->patlen, s, sn, true);
}

/* valgrind: whether the frame lines match a prefix of the frames. */
static bool frames_match(const struct loc *locs, size_t nl, const struct supp_frame *frames,
			 size_t nf)
{
	size_t li = 0, fi = 0, star = SIZE_MAX, star_fi = 0;

	while (fi < nf) {
		if (li == nl)
			return true; /* the rest of the stack does not matter */
		if (locs[li].type == LOC_DOTS) {
			star = li++;
			star_fi = fi;
		} else if (loc_matches(&locs[li], &frames[fi])) {
			li++;
			fi++;
		} else if (star != SIZE_MAX) {
			li = star + 1;
			fi = ++star_fi;
		} else {
			return false;
		}
	}
	while (li < nl && locs[li].type == LOC_DOTS)
		li++;
	return li == nl;
}

static bool lsan_name_matches(const struct supp *s, const char *name)
{
	size_t n;

	if (!known(name))
		return false;
	n = strlen(name);
	return n >= s->globmin && glob_match(s->glob, s->globlen, name, n, false);
}

static bool lsan_matches(const struct supp *s, const struct supp_frame *frames, size_t n)
{
	size_t i;

	if (s->never)
		return false;
	for (i = 0; i < n; i++) {
		const struct supp_frame *f = &frames[i];
		const char *fn = known(f->function) ? f->function : f->mangled;

		if (lsan_name_matches(s, f->module) || lsan_name_matches(s, fn) ||
		    lsan_name_matches(s, f->file))
			return true;
	}
	return false;
}

int supp_set_match(const struct supp_set *set, const struct supp_frame *frames, size_t n,
		   enum supp_leak_kind kind)
{
	size_t i;

	if (!set || (!frames && n > 0))
		return -1;
	for (i = 0; i < set->n && i < (size_t)INT32_MAX; i++) {
		const struct supp *s = &set->v[i];

		if (!(s->kinds & (unsigned)kind))
			continue;
		if (s->format == SUPP_FORMAT_LSAN ? lsan_matches(s, frames, n)
						  : frames_match(s->locs, s->nlocs, frames, n))
			return (int)i;
	}
	return -1;
}

/* ---- the set ------------------------------------------------------------- */

struct supp_set *supp_set_create(void)
{
	return calloc(1, sizeof(struct supp_set));
}

static void supp_finish(struct supp *s)
{
	size_t i;

	free(s->name);
	free(s->glob);
	for (i = 0; i < s->nlocs; i++)
		free(s->locs[i].pat);
	free(s->locs);
}

void supp_set_destroy(struct supp_set *set)
{
	size_t i;

	if (!set)
		return;
	for (i = 0; i < set->n; i++)
		supp_finish(&set->v[i]);
	free(set->v);
	for (i = 0; i < set->nfiles; i++)
		free(set->files[i]);
	free(set->files);
	for (i = 0; i < set->nwarnings && i < SUPP_WARNINGS_MAX; i++)
		free(set->warnings[i]);
	free(set);
}

void supp_set_record_use(struct supp_set *set, int index, uint64_t bytes, uint64_t blocks)
{
	struct supp *s;

	if (!set || index < 0 || (size_t)index >= set->n)
		return;
	s = &set->v[index];
	s->uses++;
	s->bytes += bytes;
	s->blocks += blocks;
}

size_t supp_set_count(const struct supp_set *set)
{
	return set ? set->n : 0;
}

bool supp_set_get(const struct supp_set *set, size_t index, struct supp_info *out)
{
	const struct supp *s;

	if (!set || index >= set->n || !out)
		return false;
	s = &set->v[index];
	out->format = s->format;
	out->name = s->name;
	out->file = s->file;
	out->line = s->line;
	out->kinds = s->kinds;
	out->uses = s->uses;
	out->bytes = s->bytes;
	out->blocks = s->blocks;
	return true;
}

size_t supp_set_warning_count(const struct supp_set *set)
{
	return set ? set->nwarnings : 0;
}

const char *supp_set_warning(const struct supp_set *set, size_t index)
{
	if (!set || index >= set->nwarnings || index >= SUPP_WARNINGS_MAX)
		return NULL;
	return set->warnings[index];
}

/* ---- parsing ------------------------------------------------------------- */

/* The state of one load: what it added is rolled back on error. */
struct parser {
	struct supp_set *set;
	const char *file; /* the set's copy of the name */
	const char *buf;
	size_t len;
	size_t pos;
	unsigned lineno;
	char *err;
	size_t errlen;
	/* the current line, trimmed */
	const char *l;
	size_t ln;
};

static int syntax(struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int syntax(struct parser *p, unsigned line, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	set_error(p->err, p->errlen, "%s:%u: %s", p->file, line, what);
	return -EINVAL;
}

static int warn(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int warn(struct parser *p, const char *fmt, ...)
{
	struct supp_set *set = p->set;
	char what[256], line[512];
	va_list ap;

	if (set->nwarnings < SUPP_WARNINGS_MAX) {
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		snprintf(line, sizeof(line), "%s:%u: %s", p->file, p->lineno, what);
		set->warnings[set->nwarnings] = strdup(line);
		if (!set->warnings[set->nwarnings])
			return -ENOMEM;
	}
	set->nwarnings++;
	return 0;
}

/* Reads the next line into p->l/p->ln, trimmed.  1 with a line, 0 at the
 * end of the text, or a negative errno. */
static int next_line(struct parser *p)
{
	const char *s, *e, *nl;

	if (p->pos >= p->len)
		return 0;
	s = p->buf + p->pos;
	nl = memchr(s, '\n', p->len - p->pos);
	e = nl ? nl : p->buf + p->len;
	p->pos = (size_t)(e - p->buf) + (nl ? 1 : 0);
	p->lineno++;
	if ((size_t)(e - s) > SUPP_LINE_MAX)
		return syntax(p, p->lineno, "line longer than %u bytes", SUPP_LINE_MAX);
	if (memchr(s, '\0', (size_t)(e - s)))
		return syntax(p, p->lineno, "NUL byte in the line (not a text file?)");
	while (s < e && is_blank(*s))
		s++;
	while (e > s && is_blank(e[-1]))
		e--;
	p->l = s;
	p->ln = (size_t)(e - s);
	return 1;
}

/* The next line that is neither blank nor a comment. */
static int next_significant(struct parser *p)
{
	int r;

	while ((r = next_line(p)) == 1)
		if (p->ln > 0 && p->l[0] != '#')
			return 1;
	return r;
}

static bool line_is(const struct parser *p, const char *word)
{
	size_t n = strlen(word);

	return p->ln == n && memcmp(p->l, word, n) == 0;
}

static bool line_starts(const struct parser *p, const char *prefix)
{
	size_t n = strlen(prefix);

	return p->ln >= n && memcmp(p->l, prefix, n) == 0;
}

static int push(struct parser *p, struct supp *s)
{
	struct supp_set *set = p->set;

	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		struct supp *v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	if (set->n >= (size_t)INT32_MAX)
		return syntax(p, p->lineno, "too many suppressions");
	set->v[set->n++] = *s;
	return 0;
}

/* ---- LeakSanitizer ---- */

/* The types of the other sanitizers' suppressions: accepted, ignored. */
static const char *const other_types[] = {
	/* ThreadSanitizer */
	"race",
	"race_top",
	"mutex",
	"thread",
	"signal",
	"deadlock",
	"called_from_lib",
	/* AddressSanitizer */
	"interceptor_name",
	"interceptor_via_fun",
	"interceptor_via_lib",
	"odr_violation",
	/* UndefinedBehaviorSanitizer */
	"vptr_check",
	"alignment",
	"bool",
	"bounds",
	"builtin",
	"enum",
	"float-cast-overflow",
	"float-divide-by-zero",
	"function",
	"implicit-integer-sign-change",
	"implicit-signed-integer-truncation",
	"implicit-unsigned-integer-truncation",
	"integer-divide-by-zero",
	"invalid-builtin-use",
	"invalid-objc-cast",
	"nonnull-attribute",
	"null",
	"nullability-arg",
	"nullability-assign",
	"nullability-return",
	"object-size",
	"pointer-overflow",
	"return",
	"returns-nonnull-attribute",
	"shift-base",
	"shift-exponent",
	"signed-integer-overflow",
	"unreachable",
	"unsigned-integer-overflow",
	"unsigned-shift-base",
	"vla-bound",
	"vptr",
	/* NumericalStabilitySanitizer */
	"fcmp",
	"consistency",
};

static bool is_other_type(const char *t, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(other_types) / sizeof(other_types[0]); i++)
		if (strlen(other_types[i]) == n && memcmp(other_types[i], t, n) == 0)
			return true;
	return false;
}

/* A "leak:PATTERN" line: PATTERN is p->l[5..]. */
static int parse_lsan_leak(struct parser *p)
{
	const char *pat = p->l + 5, *dollar;
	size_t n = p->ln - 5, body_n;
	bool start = false, end = false;
	struct supp s = {0};
	char *g;
	int r;

	if (n > 0 && (pat[0] == ' ' || pat[0] == '\t')) {
		r = warn(p, "the blank after 'leak:' is part of the pattern, as with "
			    "LeakSanitizer");
		if (r < 0)
			return r;
	}
	if (n == 0) {
		r = warn(p, "empty pattern: 'leak:' suppresses every leak");
		if (r < 0)
			return r;
	}
	const char *body = pat;

	body_n = n;
	if (body_n > 0 && body[0] == '^') {
		start = true;
		body++;
		body_n--;
	}
	dollar = memchr(body, '$', body_n);
	if (dollar) {
		end = true;
		if ((size_t)(dollar - body) + 1 < body_n) {
			r = warn(p, "the text after '$' is ignored");
			if (r < 0)
				return r;
		}
		body_n = (size_t)(dollar - body);
	}
	/* LeakSanitizer: a '$' that follows no '*' and no literal text
	 * requires an empty name, and names are never empty. */
	s.never = end && body_n == 0;
	g = malloc(body_n + 3);
	if (!g)
		return -ENOMEM;
	size_t k = 0;

	if (!start)
		g[k++] = '*';
	memcpy(g + k, body, body_n);
	k += body_n;
	if (!end)
		g[k++] = '*';
	g[k] = '\0';
	s.format = SUPP_FORMAT_LSAN;
	s.glob = g;
	s.globlen = k;
	s.globmin = glob_minlen(g, k);
	s.name = dup_n(p->l, p->ln);
	s.file = p->file;
	s.line = p->lineno;
	s.kinds = SUPP_ALL_KINDS;
	if (!s.name) {
		free(g);
		return -ENOMEM;
	}
	r = push(p, &s);
	if (r < 0)
		supp_finish(&s);
	return r;
}

static int parse_lsan_line(struct parser *p)
{
	const char *colon = memchr(p->l, ':', p->ln);
	char q[64];
	size_t tn;

	if (line_is(p, "}"))
		return syntax(p, p->lineno, "'}' without a '{' before it");
	if (!colon)
		return syntax(p, p->lineno,
			      "expected 'leak:PATTERN' or a valgrind '{' block, got '%s'",
			      quote(p->l, p->ln, q));
	tn = (size_t)(colon - p->l);
	if (tn == 4 && memcmp(p->l, "leak", 4) == 0)
		return parse_lsan_leak(p);
	if (is_other_type(p->l, tn))
		return warn(p, "'%s' suppressions do not apply to memory leaks: ignored",
			    quote(p->l, tn, q));
	if ((tn == 3 &&
	     (!memcmp(p->l, "fun", 3) || !memcmp(p->l, "obj", 3) || !memcmp(p->l, "src", 3))) ||
	    line_starts(p, "match-leak-kinds:"))
		return syntax(p, p->lineno, "'%s' outside a valgrind '{ }' block",
			      quote(p->l, tn + 1, q));
	return syntax(p, p->lineno,
		      "unknown suppression type '%s' (memprof applies 'leak:' lines and "
		      "valgrind blocks)",
		      quote(p->l, tn, q));
}

/* ---- valgrind ---- */

/* Memcheck's suppression kinds other than Leak (memcheck/mc_errors.c). */
static const char *const memcheck_kinds[] = {
	"Param",  "User",    "CoreMem",	   "Cond",	  "Value0",	  "Value1",
	"Value2", "Value4",  "Value8",	   "Value16",	  "Value32",	  "Addr1",
	"Addr2",  "Addr4",   "Addr8",	   "Addr16",	  "Addr32",	  "Jump",
	"Free",	  "Overlap", "FishyValue", "ReallocZero", "SizeMismatch", "AlignMismatch",
};

static bool is_memcheck_kind(const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(memcheck_kinds) / sizeof(memcheck_kinds[0]); i++)
		if (strlen(memcheck_kinds[i]) == n && memcmp(memcheck_kinds[i], k, n) == 0)
			return true;
	return false;
}

/* Whether tool is one of the comma-separated names of list[0..n). */
static bool tool_listed(const char *list, size_t n, const char *tool)
{
	size_t tl = strlen(tool), i = 0;

	while (i <= n) {
		size_t j = i;

		while (j < n && list[j] != ',')
			j++;
		if (j - i == tl && memcmp(list + i, tool, tl) == 0)
			return true;
		i = j + 1;
	}
	return false;
}

/* "match-leak-kinds: definite,indirect", valgrind's enum set with "all"
 * and "none" (which go alone).  Blanks around the words are allowed. */
static int parse_leak_kinds(struct parser *p, unsigned *out)
{
	static const char *const words[] = {"definite", "indirect", "possible", "reachable"};
	const char *s = p->l + 17, *e = p->l + p->ln;
	bool all = false, none = false;
	unsigned kinds = 0;
	char q[64];

	for (;;) {
		const char *w, *we, *comma;
		size_t i;

		comma = memchr(s, ',', (size_t)(e - s));
		we = comma ? comma : e;
		w = s;
		while (w < we && is_blank(*w))
			w++;
		while (we > w && is_blank(we[-1]))
			we--;
		if (w == we)
			return syntax(p, p->lineno, "empty leak kind in 'match-leak-kinds:'");
		if ((size_t)(we - w) == 3 && !memcmp(w, "all", 3)) {
			all = true;
		} else if ((size_t)(we - w) == 4 && !memcmp(w, "none", 4)) {
			none = true;
		} else {
			for (i = 0; i < 4; i++)
				if (strlen(words[i]) == (size_t)(we - w) &&
				    !memcmp(words[i], w, (size_t)(we - w)))
					break;
			if (i == 4)
				return syntax(p, p->lineno,
					      "unknown leak kind '%s' (expected definite, "
					      "indirect, possible, reachable, all or none)",
					      quote(w, (size_t)(we - w), q));
			kinds |= 1u << i;
		}
		if (!comma)
			break;
		s = comma + 1;
	}
	if ((all || none) && (kinds || (all && none)))
		return syntax(p, p->lineno, "'all' and 'none' go alone in 'match-leak-kinds:'");
	*out = all ? SUPP_ALL_KINDS : kinds;
	return 0;
}

static int parse_loc(struct parser *p, struct loc *l)
{
	char q[64];

	memset(l, 0, sizeof(*l));
	if (line_is(p, "...")) {
		l->type = LOC_DOTS;
		return 0;
	}
	if (line_starts(p, "fun:"))
		l->type = LOC_FUN;
	else if (line_starts(p, "obj:"))
		l->type = LOC_OBJ;
	else if (line_starts(p, "src:"))
		l->type = LOC_SRC;
	else if (line_starts(p, "match-leak-kinds:"))
		return syntax(p, p->lineno,
			      "'match-leak-kinds:' must come right after 'Memcheck:Leak'");
	else if (line_is(p, "{"))
		return syntax(p, p->lineno, "'{' inside a block: a '}' is missing before it");
	else
		return syntax(p, p->lineno,
			      "expected a frame line ('fun:', 'obj:', 'src:' or '...'), got '%s'",
			      quote(p->l, p->ln, q));
	const char *pat = p->l + 4;
	size_t n = p->ln - 4;

	if (l->type == LOC_SRC) {
		/* valgrind: the file name ends at the first ':', the line
		 * number follows it */
		const char *colon = memchr(pat, ':', n);

		if (colon) {
			const char *d = colon + 1, *e = pat + n;
			unsigned long line = 0;

			if (d == e)
				return syntax(p, p->lineno, "'src:FILE:' without a line number");
			for (; d < e; d++) {
				if (*d < '0' || *d > '9' || line > 100000000ul)
					return syntax(p, p->lineno,
						      "bad line number in 'src:FILE:LINE': '%s'",
						      quote(colon + 1, (size_t)(e - colon - 1), q));
				line = line * 10 + (unsigned long)(*d - '0');
			}
			l->line = (unsigned)line;
			n = (size_t)(colon - pat);
		}
	}
	l->pat = dup_n(pat, n);
	if (!l->pat)
		return -ENOMEM;
	l->patlen = n;
	l->minlen = glob_minlen(pat, n);
	return 0;
}

static int skip_block(struct parser *p, unsigned open_line)
{
	int r;

	while ((r = next_significant(p)) == 1)
		if (line_is(p, "}"))
			return 0;
	if (r < 0)
		return r;
	return syntax(p, p->lineno, "end of file inside the block opened at line %u (no '}')",
		      open_line);
}

/* A valgrind block, from the line after its '{'. */
static int parse_valgrind_block(struct parser *p)
{
	unsigned open_line = p->lineno;
	struct supp s = {0};
	size_t cap = 0;
	char q[64];
	int r;

	r = next_significant(p);
	if (r < 0)
		return r;
	if (r == 0)
		return syntax(p, p->lineno, "end of file inside the block opened at line %u",
			      open_line);
	if (line_is(p, "}"))
		return syntax(p, p->lineno, "empty block: expected the suppression's name");
	s.format = SUPP_FORMAT_VALGRIND;
	s.file = p->file;
	s.line = open_line;
	s.kinds = SUPP_ALL_KINDS;
	s.name = dup_n(p->l, p->ln);
	if (!s.name)
		return -ENOMEM;

	/* Tool1,Tool2:Kind */
	r = next_significant(p);
	if (r <= 0) {
		free(s.name);
		return r < 0 ? r
			     : syntax(p, p->lineno,
				      "end of file inside the block opened at line %u", open_line);
	}
	const char *colon = memchr(p->l, ':', p->ln);

	if (line_is(p, "}") || line_is(p, "...") || !colon) {
		free(s.name);
		return syntax(p, p->lineno,
			      "expected the kind line ('Memcheck:Leak') after the name, got '%s'",
			      quote(p->l, p->ln, q));
	}
	size_t tn = (size_t)(colon - p->l), kn = p->ln - tn - 1;

	/* valgrind would take "fun:x" for a block of a tool named "fun" and
	 * skip it: a frame line here means that the kind line is missing */
	if (line_starts(p, "fun:") || line_starts(p, "obj:") || line_starts(p, "src:") ||
	    line_starts(p, "match-leak-kinds:")) {
		free(s.name);
		return syntax(p, p->lineno,
			      "expected the kind line ('Memcheck:Leak') after the name, got '%s'",
			      quote(p->l, p->ln, q));
	}
	if (!tool_listed(p->l, tn, "Memcheck") || !(kn == 4 && memcmp(colon + 1, "Leak", 4) == 0)) {
		if (tool_listed(p->l, tn, "Memcheck") && !is_memcheck_kind(colon + 1, kn)) {
			free(s.name);
			return syntax(p, p->lineno, "unknown Memcheck suppression kind '%s'",
				      quote(colon + 1, kn, q));
		}
		free(s.name);
		return skip_block(p, open_line); /* not a leak: ignored */
	}

	/* optional match-leak-kinds, then the frame lines */
	bool first = true;

	for (;;) {
		r = next_significant(p);
		if (r < 0)
			goto fail;
		if (r == 0) {
			r = syntax(p, p->lineno,
				   "end of file inside the block opened at line %u (no '}')",
				   open_line);
			goto fail;
		}
		if (line_is(p, "}"))
			break;
		if (first && line_starts(p, "match-leak-kinds:")) {
			first = false;
			r = parse_leak_kinds(p, &s.kinds);
			if (r < 0)
				goto fail;
			continue;
		}
		first = false;
		if (s.nlocs == SUPP_FRAME_LINES_MAX) {
			r = syntax(p, p->lineno, "more than %u frame lines in one block",
				   SUPP_FRAME_LINES_MAX);
			goto fail;
		}
		if (s.nlocs == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct loc *v = realloc(s.locs, ncap * sizeof(*v));

			if (!v) {
				r = -ENOMEM;
				goto fail;
			}
			s.locs = v;
			cap = ncap;
		}
		r = parse_loc(p, &s.locs[s.nlocs]);
		if (r < 0)
			goto fail;
		s.nlocs++;
	}
	size_t i;

	for (i = 0; i < s.nlocs && s.locs[i].type == LOC_DOTS; i++)
		;
	if (i == s.nlocs) {
		r = syntax(p, p->lineno,
			   s.nlocs ? "the block needs a frame line other than '...'"
				   : "the block has no frame lines ('fun:', 'obj:', 'src:')");
		goto fail;
	}
	r = push(p, &s);
	if (r < 0)
		goto fail;
	return 0;
fail:
	supp_finish(&s);
	return r;
}

static int parse(struct parser *p)
{
	int r;

	while ((r = next_significant(p)) == 1) {
		if (line_is(p, "{"))
			r = parse_valgrind_block(p);
		else
			r = parse_lsan_line(p);
		if (r < 0)
			return r;
	}
	return r;
}

/* The set's copy of a file name (kept for struct supp_info), or NULL. */
static const char *add_file(struct supp_set *set, const char *name)
{
	char **v = realloc(set->files, (set->nfiles + 1) * sizeof(*v));

	if (!v)
		return NULL;
	set->files = v;
	v[set->nfiles] = strdup(name);
	if (!v[set->nfiles])
		return NULL;
	return v[set->nfiles++];
}

int supp_set_load_buffer(struct supp_set *set, const char *name, const char *buf, size_t len,
			 char *err, size_t errlen)
{
	struct parser p = {0};
	size_t n0, w0, i;
	int r;

	if (!set || (!buf && len > 0)) {
		set_error(err, errlen, "%s: no suppression set or text", name ? name : "?");
		return -EINVAL;
	}
	if (!name)
		name = "<buffer>";
	if (len > SUPP_FILE_MAX) {
		set_error(err, errlen, "%s: larger than %u bytes", name, SUPP_FILE_MAX);
		return -EFBIG;
	}
	p.set = set;
	p.file = add_file(set, name);
	if (!p.file) {
		set_error(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	p.buf = buf;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	n0 = set->n;
	w0 = set->nwarnings;
	r = parse(&p);
	if (r < 0) {
		if (r == -ENOMEM)
			set_error(err, errlen, "%s:%u: out of memory", name, p.lineno);
		for (i = n0; i < set->n; i++)
			supp_finish(&set->v[i]);
		set->n = n0;
		for (i = w0; i < set->nwarnings && i < SUPP_WARNINGS_MAX; i++) {
			free(set->warnings[i]);
			set->warnings[i] = NULL;
		}
		set->nwarnings = w0;
		return r;
	}
	if (err && errlen > 0)
		err[0] = '\0';
	return 0;
}

/* Reads a whole file (a pipe too: `--suppressions <(...)`) into a buffer
 * that the caller frees.  0 or -errno. */
static int read_all(const char *path, char **out, size_t *outlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (len > SUPP_FILE_MAX) {
			r = -EFBIG;
			break;
		}
		if (len == cap) {
			/* room for SUPP_FILE_MAX bytes and one more, to see it
			 * is too large */
			size_t ncap = cap ? cap * 2 : 65536;
			char *nb;

			if (ncap > SUPP_FILE_MAX + 1)
				ncap = SUPP_FILE_MAX + 1;
			nb = realloc(buf, ncap);
			if (!nb) {
				r = -ENOMEM;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t got = read(fd, buf + len, cap - len);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int supp_set_load_file(struct supp_set *set, const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (!set || !path) {
		set_error(err, errlen, "no suppression set or file name");
		return -EINVAL;
	}
	r = read_all(path, &buf, &len);
	if (r == -EFBIG) {
		set_error(err, errlen, "%s: larger than %u bytes, not a suppression file?", path,
			  SUPP_FILE_MAX);
		return r;
	}
	if (r < 0) {
		set_error(err, errlen, "%s: cannot read the suppression file: %s", path,
			  strerror(-r));
		return r;
	}
	r = supp_set_load_buffer(set, path, buf, len, err, errlen);
	free(buf);
	return r;
}

/* ---- --gen-suppressions ------------------------------------------------- */

/* snprintf-like output into a caller's buffer. */
struct out {
	char *buf;
	size_t len;
	size_t n; /* bytes the whole text takes */
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->n < o->len) {
		size_t room = o->len - 1 - o->n;

		memcpy(o->buf + o->n, s, n < room ? n : room);
	}
	o->n += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

#define NAME_MAX_OUT 4096u

/* Writes a name so that it reads back as a pattern that matches it:
 * control characters and blanks at either end (trimmed on reading) become
 * '?', which matches them; a name too long is cut and ends with '*'. */
static void put_name(struct out *o, const char *s)
{
	size_t n = strlen(s), i, lim = n;
	bool cut = false;

	if (n > NAME_MAX_OUT) {
		lim = NAME_MAX_OUT - 1;
		cut = true;
	}
	for (i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)s[i];
		bool edge = i == 0 || (!cut && i == n - 1);

		if (c < 0x20 || c == 0x7f || (edge && is_blank((char)c)))
			c = '?';
		put(o, (const char *)&c, 1);
	}
	if (cut)
		put(o, "*", 1);
}

ssize_t supp_format_valgrind(const struct supp_frame *frames, size_t n, unsigned kinds,
			     const char *name, char *buf, size_t len)
{
	static const char *const words[] = {"definite", "indirect", "possible", "reachable"};
	struct out o = {buf, buf ? len : 0, 0};
	size_t i;
	bool sep = false;

	if (!frames || n == 0 || (kinds & SUPP_ALL_KINDS) == 0)
		return -EINVAL;
	puts_(&o, "{\n   ");
	if (known(name)) {
		/* a name must not read back as a comment nor as the '}' */
		size_t start = o.n;

		put_name(&o, name);
		if (o.len > 0 && start < o.len - 1 && (o.buf[start] == '#' || o.buf[start] == '}'))
			o.buf[start] = '_';
	} else {
		puts_(&o, "<insert_a_suppression_name_here>");
	}
	puts_(&o, "\n   Memcheck:Leak\n   match-leak-kinds: ");
	for (i = 0; i < 4; i++) {
		if (!(kinds & (1u << i)))
			continue;
		if (sep)
			puts_(&o, ",");
		puts_(&o, words[i]);
		sep = true;
	}
	puts_(&o, "\n");
	for (i = 0; i < n && i < SUPP_FRAME_LINES_MAX; i++) {
		const struct supp_frame *f = &frames[i];
		const char *fn = known(f->mangled) ? f->mangled : known(f->function);

		if (fn) {
			puts_(&o, "   fun:");
			put_name(&o, fn);
		} else if (known(f->module)) {
			puts_(&o, "   obj:");
			put_name(&o, f->module);
		} else {
			puts_(&o, "   obj:*");
		}
		puts_(&o, "\n");
	}
	puts_(&o, "}\n");
	if (o.len > 0)
		o.buf[o.n < o.len ? o.n : o.len - 1] = '\0';
	return (ssize_t)o.n;
}
