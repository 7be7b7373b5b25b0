/*
 * symbolize.c: turns the return addresses of a capture into functions,
 * files and lines with elfutils' libdwfl, after the run.  Entry points:
 * reports_symbolizer_create(), reports_symbolizer_lookup(),
 * reports_stack_symbolize().
 *
 * Every MODULE record gets its own offline Dwfl, opened on first use from
 * the file on disk at the recorded path and load bias (so a library that was
 * dlclose'd before the end, or two libraries mapped at the same address at
 * different times, still resolve).  Separate debug info is found by
 * build-id through dwfl_standard_find_debuginfo; a file whose build-id no
 * longer matches the recorded one is not trusted.  An address inside
 * inlined calls expands into several frames, innermost first, from
 * dwarf_getscopes(); without DWARF the symbol table names the function, and
 * without that the frame is module+offset.  Results are cached per address.
 */
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports-private.h"
#include "reports.h"

#if REPORTS_HAVE_DEMANGLE
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);
#endif

/* Most frames one address expands to (inlining depth). */
#define INLINE_MAX 64u
#define FRAME_BLOCK 1024u

/* An address range of a compilation unit (see find_cu). */
struct cu_range {
	Dwarf_Addr lo, hi;
	Dwarf_Die *cu;
	Dwarf_Addr bias;
};

struct symmod {
	const struct reports_module *m;
	Dwfl *dwfl;
	Dwfl_Module *mod;
	bool tried;
	bool ranges_built;
	struct cu_range *ranges;
	size_t n_ranges, cap_ranges;
};

struct frame_block {
	struct frame_block *next;
	size_t used;
	struct reports_frame frames[FRAME_BLOCK];
};

struct cached {
	struct reports_frame *frames;
	size_t n;
};

struct reports_symbolizer {
	const struct reports_capture *cap;
	struct symmod *mods;
	size_t n_mods;
	struct frame_block *blocks;
	struct reports_map cache; /* ip -> index in entries */
	struct cached *entries;
	size_t n_entries, cap_entries;
	char **owned; /* strings to free (demangled names) */
	size_t n_owned, cap_owned;
	struct reports_frame fallback; /* when out of memory */
};

static const Dwfl_Callbacks offline_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

struct reports_symbolizer *reports_symbolizer_create(const struct reports_capture *cap)
{
	struct reports_symbolizer *sym = calloc(1, sizeof(*sym));
	if (!sym)
		return NULL;
	sym->cap = cap;
	sym->mods = calloc(cap->n_modules ? cap->n_modules : 1, sizeof(*sym->mods));
	if (!sym->mods) {
		free(sym);
		return NULL;
	}
	sym->n_mods = cap->n_modules;
	for (size_t i = 0; i < cap->n_modules; i++)
		sym->mods[i].m = &cap->modules[i];
	return sym;
}

void reports_symbolizer_destroy(struct reports_symbolizer *sym)
{
	if (!sym)
		return;
	for (size_t i = 0; i < sym->n_mods; i++) {
		if (sym->mods[i].dwfl)
			dwfl_end(sym->mods[i].dwfl);
		free(sym->mods[i].ranges);
	}
	free(sym->mods);
	while (sym->blocks) {
		struct frame_block *b = sym->blocks;
		sym->blocks = b->next;
		free(b);
	}
	reports_map_finish(&sym->cache);
	free(sym->entries);
	for (size_t i = 0; i < sym->n_owned; i++)
		free(sym->owned[i]);
	free(sym->owned);
	free(sym);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Opens the module's file once; false when it cannot be used. */
static bool symmod_open(struct symmod *sm)
{
	if (sm->tried)
		return sm->mod != NULL;
	sm->tried = true;
	const struct reports_module *m = sm->m;
	if (!m->path || m->path[0] != '/')
		return false; /* the vdso, or a module without a file */
	sm->dwfl = dwfl_begin(&offline_callbacks);
	if (!sm->dwfl)
		return false;
	dwfl_report_begin(sm->dwfl);
	sm->mod = dwfl_report_elf(sm->dwfl, base_name(m->path), m->path, -1, m->load_bias, true);
	dwfl_report_end(sm->dwfl, NULL, NULL);
	if (sm->mod && m->build_id_len > 0) {
		const unsigned char *bits;
		GElf_Addr vaddr;
		int n = dwfl_module_build_id(sm->mod, &bits, &vaddr);
		if (n > 0 && ((size_t)n != m->build_id_len || memcmp(bits, m->build_id, (size_t)n)))
			sm->mod = NULL; /* the file changed since the run */
	}
	if (!sm->mod) {
		dwfl_end(sm->dwfl);
		sm->dwfl = NULL;
	}
	return sm->mod != NULL;
}

static struct symmod *module_of(struct reports_symbolizer *sym, uint64_t ip)
{
	for (size_t i = 0; i < sym->n_mods; i++)
		if (ip >= sym->mods[i].m->start && ip < sym->mods[i].m->end)
			return &sym->mods[i];
	return NULL;
}

static const char *own(struct reports_symbolizer *sym, char *s)
{
	if (!s)
		return NULL;
	if (reports_vec_push(&sym->owned, &sym->n_owned, &sym->cap_owned, &s, sizeof(s)) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

static const char *demangle(struct reports_symbolizer *sym, const char *name)
{
#if REPORTS_HAVE_DEMANGLE
	if (name && name[0] == '_' && name[1] == 'Z') {
		int status = -1;
		char *d = __cxa_demangle(name, NULL, NULL, &status);
		if (d && status == 0) {
			const char *kept = own(sym, d);
			if (kept)
				return kept;
		} else {
			free(d);
		}
	}
#endif
	return name;
}

static const char *die_name(struct reports_symbolizer *sym, Dwarf_Die *die,
			    const char **mangled)
{
	Dwarf_Attribute attr;
	const char *name = NULL;
	*mangled = NULL;
	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
		name = dwarf_formstring(&attr);
	if (name) {
		const char *d = demangle(sym, name);
		if (d != name)
			*mangled = name;
		return d;
	}
	if (dwarf_attr_integrate(die, DW_AT_name, &attr))
		return dwarf_formstring(&attr);
	return NULL;
}

/* leaks: whether a module is memprof's preload library, whose frames are
 * named by their public (ELF) symbol only: the function the program
 * called, never an internal helper inlined into it. */
static bool is_preload_module(const char *path)
{
	return path && strncmp(base_name(path), "libmemprof-preload", 18) == 0;
}

/* A source path as people read it: a relative one joined to the
 * compilation directory, "." and ".." folded away. */
static const char *full_path(struct reports_symbolizer *sym, const char *dir, const char *file)
{
	if (!file)
		return NULL;
	if (file[0] == '/') {
		if (!strstr(file, "/./") && !strstr(file, "/../"))
			return file;
		dir = "/";
	} else if (!dir || dir[0] != '/') {
		return file;
	}
	size_t dl = strlen(dir), fl = strlen(file);
	char *p = malloc(dl + fl + 2);
	if (!p)
		return file;
	/* copy component by component, folding as we go */
	size_t n = 0;
	const char *parts[2] = { dir, file };
	for (int k = 0; k < 2; k++) {
		const char *s = parts[k];
		while (*s) {
			while (*s == '/')
				s++;
			const char *e = s;
			while (*e && *e != '/')
				e++;
			size_t len = (size_t)(e - s);
			if (len == 0 || (len == 1 && s[0] == '.')) {
				/* nothing */
			} else if (len == 2 && s[0] == '.' && s[1] == '.') {
				while (n > 0 && p[n - 1] != '/')
					n--;
				if (n > 0)
					n--;
			} else {
				p[n++] = '/';
				memcpy(p + n, s, len);
				n += len;
			}
			s = e;
		}
	}
	if (n == 0)
		p[n++] = '/';
	p[n] = '\0';
	const char *kept = own(sym, p);
	return kept ? kept : file;
}

static const char *cu_dir(Dwarf_Die *cudie)
{
	Dwarf_Attribute attr;
	return dwarf_attr(cudie, DW_AT_comp_dir, &attr) ? dwarf_formstring(&attr) : NULL;
}

/* The call site (file, line) of an inlined_subroutine DIE. */
static void call_site(Dwarf_Die *cudie, Dwarf_Die *die, const char **file, unsigned *line)
{
	Dwarf_Attribute attr;
	Dwarf_Word v;
	*file = NULL;
	*line = 0;
	if (dwarf_attr(die, DW_AT_call_line, &attr) && dwarf_formudata(&attr, &v) == 0)
		*line = (unsigned)v;
	Dwarf_Files *files;
	size_t nfiles;
	if (dwarf_attr(die, DW_AT_call_file, &attr) && dwarf_formudata(&attr, &v) == 0 &&
	    dwarf_getsrcfiles(cudie, &files, &nfiles) == 0 && v < nfiles)
		*file = dwarf_filesrc(files, (size_t)v, NULL, NULL);
}

static int cmp_range(const void *a, const void *b)
{
	const struct cu_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The compilation unit holding pc when libdw's own lookup fails: elfutils
 * before 0.190 finds CUs through .debug_aranges only, which clang does not
 * emit.  The CUs' ranges are gathered once per module, then searched. */
static Dwarf_Die *find_cu(struct symmod *sm, Dwarf_Addr pc, Dwarf_Addr *bias)
{
	if (!sm->ranges_built) {
		sm->ranges_built = true;
		Dwarf_Die *cu = NULL;
		Dwarf_Addr b;
		while ((cu = dwfl_module_nextcu(sm->mod, cu, &b))) {
			Dwarf_Addr base, lo, hi;
			ptrdiff_t off = 0;
			while ((off = dwarf_ranges(cu, off, &base, &lo, &hi)) > 0) {
				struct cu_range r = { lo + b, hi + b, cu, b };
				if (reports_vec_push(&sm->ranges, &sm->n_ranges, &sm->cap_ranges, &r,
						     sizeof(r)) < 0)
					return NULL;
			}
		}
		if (sm->n_ranges > 1)
			qsort(sm->ranges, sm->n_ranges, sizeof(*sm->ranges), cmp_range);
	}
	/* ranges may nest or overlap: check the candidates below pc */
	size_t lo = 0, hi = sm->n_ranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sm->ranges[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && lo - i <= 64;) {
		if (pc < sm->ranges[i].hi) {
			*bias = sm->ranges[i].bias;
			return sm->ranges[i].cu;
		}
	}
	return NULL;
}

/* Room for n contiguous frames, stable until destroy. */
static struct reports_frame *frames_alloc(struct reports_symbolizer *sym, size_t n)
{
	struct frame_block *b = sym->blocks;
	if (!b || FRAME_BLOCK - b->used < n) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		b->next = sym->blocks;
		sym->blocks = b;
	}
	struct reports_frame *f = &b->frames[b->used];
	b->used += n;
	return f;
}

/* Resolves one address into tmp[] (at most INLINE_MAX frames). */
static size_t resolve(struct reports_symbolizer *sym, uint64_t ip,
		      struct reports_frame *tmp)
{
	/* every recorded ip is a return address: look up the call itself */
	uint64_t pc = ip == 0 ? ip : ip - 1;
	struct reports_frame base = { .address = ip };
	struct symmod *sm = ip ? module_of(sym, ip) : NULL;
	if (!sm) {
		tmp[0] = base;
		return 1;
	}
	base.module = sm->m->path;
	base.offset = ip - sm->m->load_bias;
	if (!symmod_open(sm)) {
		tmp[0] = base;
		return 1;
	}
	GElf_Off off;
	GElf_Sym elfsym;
	const char *symname = dwfl_module_addrinfo(sm->mod, pc, &off, &elfsym, NULL, NULL, NULL);
	const char *at = symname ? strchr(symname, '@') : NULL;
	if (at && at != symname) /* a symbol version: malloc@@GLIBC_2.2.5 */
		symname = own(sym, reports_strndup(symname, (size_t)(at - symname)));
	const char *linkage = symname;
	symname = demangle(sym, symname);
	const char *sym_mangled = symname != linkage ? linkage : NULL;
	if (is_preload_module(sm->m->path)) {
		base.function = symname;
		base.mangled = sym_mangled;
		tmp[0] = base;
		return 1;
	}

	Dwarf_Addr bias = 0;
	Dwarf_Die *cudie = dwfl_module_addrdie(sm->mod, pc, &bias);
	if (!cudie)
		cudie = find_cu(sm, pc, &bias);
	const char *file = NULL;
	int lineno = 0;
	Dwarf_Line *line = cudie ? dwarf_getsrc_die(cudie, pc - bias) : NULL;
	if (line) {
		file = full_path(sym, cu_dir(cudie), dwarf_linesrc(line, NULL, NULL));
		if (dwarf_lineno(line, &lineno) != 0)
			lineno = 0;
	}
	unsigned cur_line = lineno > 0 ? (unsigned)lineno : 0;

	size_t n = 0;
	Dwarf_Die *scopes = NULL;
	int nscopes = cudie ? dwarf_getscopes(cudie, pc - bias, &scopes) : 0;
	bool done = false;
	for (int i = 0; i < nscopes && !done && n < INLINE_MAX - 1; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		struct reports_frame f = base;
		f.file = file;
		f.line = cur_line;
		if (tag == DW_TAG_inlined_subroutine) {
			f.function = die_name(sym, &scopes[i], &f.mangled);
			f.inlined = true;
			call_site(cudie, &scopes[i], &file, &cur_line);
			file = full_path(sym, cu_dir(cudie), file);
		} else if (symname) {
			f.function = symname;
			f.mangled = sym_mangled;
			done = true;
		} else {
			f.function = die_name(sym, &scopes[i], &f.mangled);
			done = true;
		}
		tmp[n++] = f;
	}
	free(scopes);
	if (!done) {
		struct reports_frame f = base;
		f.function = symname;
		f.mangled = sym_mangled;
		f.file = file;
		f.line = cur_line;
		tmp[n++] = f;
	}
	return n;
}

size_t reports_symbolizer_lookup(struct reports_symbolizer *sym, uint64_t ip,
				 const struct reports_frame **frames)
{
	struct reports_map *cache = &sym->cache;
	uint32_t hit;
	if (reports_map_get(cache, ip, &hit)) {
		*frames = sym->entries[hit].frames;
		return sym->entries[hit].n;
	}
	struct reports_frame tmp[INLINE_MAX];
	size_t n = resolve(sym, ip, tmp);
	struct reports_frame *stored = frames_alloc(sym, n);
	struct cached entry = { stored, n };
	if (!stored || sym->n_entries >= UINT32_MAX - 1 ||
	    reports_vec_push(&sym->entries, &sym->n_entries, &sym->cap_entries, &entry,
			     sizeof(entry)) < 0) {
		sym->fallback = (struct reports_frame){ .address = ip };
		*frames = &sym->fallback;
		return 1;
	}
	memcpy(stored, tmp, n * sizeof(*tmp));
	if (reports_map_put(cache, ip, (uint32_t)sym->n_entries - 1) < 0)
		sym->n_entries--; /* not cached; the frames stay valid */
	*frames = stored;
	return n;
}

int reports_stack_symbolize(struct reports_symbolizer *sym,
			    const struct reports_capture *cap, uint32_t stack,
			    struct reports_frames *out)
{
	uint64_t ips[REPORTS_STACK_DEPTH_MAX];
	size_t n = reports_stack_ips(cap, stack, ips, REPORTS_STACK_DEPTH_MAX);
	out->n = 0;
	for (size_t i = 0; i < n; i++) {
		const struct reports_frame *f;
		size_t k = reports_symbolizer_lookup(sym, ips[i], &f);
		int r = reports_vec_reserve(&out->v, &out->cap, out->n + k, sizeof(*out->v));
		if (r < 0)
			return r;
		for (size_t j = 0; j < k; j++)
			out->v[out->n++] = &f[j];
	}
	return 0;
}

void reports_frames_finish(struct reports_frames *frames)
{
	free(frames->v);
	memset(frames, 0, sizeof(*frames));
}

static const char *const allocator_functions[] = {
	"malloc", "calloc", "realloc", "free", "reallocarray", "memalign",
	"posix_memalign", "aligned_alloc", "valloc", "pvalloc", "strdup",
	"strndup", "__strdup", "__strndup", "__libc_malloc", "__libc_calloc",
	"__libc_realloc", "__libc_memalign", "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t",
	"_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
};

bool reports_frame_is_allocator(const struct reports_frame *frame)
{
	if (frame->module && strncmp(base_name(frame->module), "libmemprof-preload", 18) == 0)
		return true;
	const char *fn = frame->function;
	if (!fn)
		return false;
	if (strncmp(fn, "operator new", 12) == 0 || strncmp(fn, "operator delete", 15) == 0)
		return true;
	for (size_t i = 0; i < sizeof(allocator_functions) / sizeof(*allocator_functions); i++)
		if (strcmp(fn, allocator_functions[i]) == 0)
			return true;
	return false;
}

const struct reports_frame *reports_stack_alloc_site(struct reports_symbolizer *sym,
						   const struct reports_capture *cap,
						   uint32_t stack, struct reports_frames *fr)
{
	if (reports_stack_symbolize(sym, cap, stack, fr) < 0)
		return NULL;
	for (size_t i = 0; i < fr->n; i++)
		if (!reports_frame_is_allocator(fr->v[i]))
			return fr->v[i];
	return NULL;
}

static bool is_own(const struct reports_frame *f)
{
	return f->module && strncmp(base_name(f->module), "libmemprof-preload", 18) == 0;
}

size_t reports_frames_display_start(const struct reports_frames *frames)
{
	size_t i = 0;
	while (i + 1 < frames->n && is_own(frames->v[i]) && is_own(frames->v[i + 1]))
		i++;
	return i;
}
