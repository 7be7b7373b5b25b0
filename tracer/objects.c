/*
 * objects.c: what the preload library does for programs that use
 * libmemprof-heap (refcounted objects, include/memprof/heap.h), the
 * recording half of memprof's objgraph-style reports.
 *
 * Entry points:
 *   memprof_heap_alloc/memprof_heap_free  exported: the library finds them
 *        with dlsym and allocates its objects through them, so every object
 *        is an ordinary recorded block (its stack: the mp_new caller chain);
 *        the blocks are remembered in a set (object blocks).
 *   mp_snapshot, mp_new  interposed: the program's snapshots are written
 *        to the capture (SNAPSHOT, OBJCOUNT), and a snapshot asked for with
 *        the snapshot signal (MEMPROF_SNAPSHOT_SIGNAL) is taken at the next
 *        mp_new or mp_snapshot call, where the program is outside the
 *        library (the handler only counts the request).
 *   objects_at_exit()  from tracer_finish, before the leak scan: one full
 *        collection with MP_GC_DEBUG_SAVEALL moves every unreachable object
 *        (the cycles the program never freed) to the garbage list; then
 *        every live object gets an OBJECT record and every reference
 *        between tracked objects an OBJEDGE; the exit snapshot's counts
 *        close it.  It also builds the table of object blocks and their
 *        header sizes that the scan uses (objects_scan_options).
 *
 * Rules: the library is called only when the program is outside it (an
 * interposed entry point before calling the real one, or the exit handler
 * after main returned), and never when the program did not allocate an
 * object through memprof_heap_alloc.  The library serialises its callers
 * (heap.h), so the object block set needs no lock.
 *
 * Layout knowledge: an object block is [header][body]; the header size of
 * tracked objects is measured (body minus block start); untracked objects
 * have the header without the collector's two links (heap/object-private.h:
 * 16 bytes).  Should the measured size not be the expected one, untracked
 * objects are left out rather than guessed.
 */
#define _GNU_SOURCE
#include "tracer-private.h"
#include "tracer.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memprof/heap.h"
#include "pool.h"
#include "scan.h"

#define EXPORT __attribute__((visibility("default")))
#define LIB_SONAME "libmemprof-heap.so.0"
#define TRACKED_HEADER 32u   /* two collector links, type, refcount */
#define UNTRACKED_HEADER 16u /* type, refcount */
#define MAX_TYPES 4096u
#define TYPE_NAME_MAX 256u
#define RECORD_OBJTYPE_MAX (1u + 3u * RECORD_VARINT_MAX + TYPE_NAME_MAX)
#define RECORD_OBJECT_MAX (1u + 5u * RECORD_VARINT_MAX)
#define RECORD_OBJEDGE_MAX (1u + 3u * RECORD_VARINT_MAX)
#define RECORD_OBJCOUNT_MAX (1u + 4u * RECORD_VARINT_MAX)
#define RECORD_SNAPSHOT_MAX (1u + 4u * RECORD_VARINT_MAX + 64u)

extern void *(*tracer_real_dlopen)(const char *file, int mode);
int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

/* ---- an address set: open addressing in mmap'd memory ------------------- */

#define SET_TOMB ((uintptr_t)1)

struct addr_set {
	uintptr_t *slots;
	size_t cap; /* a power of 2, or 0 */
	size_t count, used; /* live entries; live + tombstones */
};

static size_t set_hash(uintptr_t p, size_t cap)
{
	return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
}

static bool set_has(const struct addr_set *s, uintptr_t p)
{
	if (s->cap == 0)
		return false;
	for (size_t i = set_hash(p, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i] == p)
			return true;
		if (s->slots[i] == 0)
			return false;
	}
}

static void set_put(struct addr_set *s, uintptr_t p);

static bool set_grow(struct addr_set *s)
{
	size_t ncap = s->cap ? s->cap : 1024;
	while (s->count * 2 >= ncap)
		ncap *= 2;
	struct addr_set n = { .cap = ncap };
	n.slots = writer_scratch_map(ncap * sizeof(uintptr_t));
	if (!n.slots)
		return false;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i] > SET_TOMB)
			set_put(&n, s->slots[i]);
	writer_scratch_unmap(s->slots, s->cap * sizeof(uintptr_t));
	*s = n;
	return true;
}

static void set_put(struct addr_set *s, uintptr_t p)
{
	if ((s->used + 1) * 2 > s->cap && !set_grow(s))
		return; /* out of memory: the object is not known as one */
	size_t i = set_hash(p, s->cap);
	while (s->slots[i] > SET_TOMB) {
		if (s->slots[i] == p)
			return;
		i = (i + 1) & (s->cap - 1);
	}
	if (s->slots[i] == 0)
		s->used++;
	s->slots[i] = p;
	s->count++;
}

static void set_del(struct addr_set *s, uintptr_t p)
{
	if (s->cap == 0)
		return;
	for (size_t i = set_hash(p, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i] == 0)
			return;
		if (s->slots[i] == p) {
			s->slots[i] = SET_TOMB;
			s->count--;
			return;
		}
	}
}

static void set_free(struct addr_set *s)
{
	writer_scratch_unmap(s->slots, s->cap * sizeof(uintptr_t));
	memset(s, 0, sizeof(*s));
}

/* ---- state --------------------------------------------------------------- */

static struct addr_set obj_blocks; /* every live object block */
static bool used_hooks;            /* the library allocated through us */
static atomic_uint snap_requests;  /* snapshot signals not yet served */
static int snap_signal;
static uint64_t snap_next_id = 1;

static struct {
	const struct mp_type *type;
	bool written; /* its OBJTYPE is in the capture */
	uint64_t count, bytes; /* at exit */
} types[MAX_TYPES];
static size_t n_types;

/* The exit's object table for the scan, sorted by start. */
static struct scan_object_block *table;
static size_t n_table, cap_table;

/* ---- records ---------------------------------------------------------------- */

size_t objects_scanref_put(uint8_t *o, uint64_t addr, uint64_t from, uint64_t kind,
			   uint64_t tid)
{
	size_t k = 0;
	o[k++] = CAPTURE_SCANREF;
	k += record_put_u(o + k, addr);
	k += record_put_u(o + k, from);
	k += record_put_u(o + k, kind);
	k += record_put_u(o + k, tid);
	return k;
}

/* The capture's id of a type (its index + 1); writes its OBJTYPE the first
 * time.  0 when the table is full. */
static uint64_t type_id(struct tbuf *b, const struct mp_type *type)
{
	size_t i = 0;
	while (i < n_types && types[i].type != type)
		i++;
	if (i == n_types) {
		if (n_types == MAX_TYPES)
			return 0;
		types[n_types++].type = type;
	}
	if (!types[i].written) {
		types[i].written = true;
		uint8_t *o = tbuf_reserve(b, RECORD_OBJTYPE_MAX);
		size_t k = 0;
		o[k++] = CAPTURE_OBJTYPE;
		k += record_put_u(o + k, i + 1);
		k += record_put_cstr(o + k, type->name ? type->name : "?", TYPE_NAME_MAX);
		k += record_put_u(o + k, type->size);
		tbuf_commit(b, k);
	}
	return i + 1;
}

static void put_snapshot(struct tbuf *b, uint64_t id, const char *label)
{
	uint8_t *o = tbuf_reserve(b, RECORD_SNAPSHOT_MAX);
	size_t k = 0;
	o[k++] = CAPTURE_SNAPSHOT;
	k += record_put_u(o + k, id);
	k += record_put_u(o + k, tracer_now_ns() - tracer.t0_ns);
	k += record_put_u(o + k, tbuf_seq_now(b));
	k += record_put_cstr(o + k, label, 63);
	tbuf_commit(b, k);
}

static void put_count(struct tbuf *b, uint64_t snap, uint64_t tid, uint64_t count,
		      uint64_t bytes)
{
	uint8_t *o = tbuf_reserve(b, RECORD_OBJCOUNT_MAX);
	size_t k = 0;
	o[k++] = CAPTURE_OBJCOUNT;
	k += record_put_u(o + k, snap);
	k += record_put_u(o + k, tid);
	k += record_put_u(o + k, count);
	k += record_put_u(o + k, bytes);
	tbuf_commit(b, k);
}

/* ---- the allocation hooks ------------------------------------------------------ */

EXPORT void *memprof_heap_alloc(size_t size);

EXPORT void *memprof_heap_alloc(size_t size)
{
	void *p = malloc(size); /* the pool's blocks are 16-byte aligned */
	if (p) {
		used_hooks = true;
		set_put(&obj_blocks, (uintptr_t)p);
	}
	return p;
}

/* memprof_heap_free() is in preload.c, beside free(), whose caller it
 * records */
void objects_block_freed(void *block)
{
	set_del(&obj_blocks, (uintptr_t)block);
}

/* ---- snapshots ------------------------------------------------------------------- */

/* A function of the library (the program's own copy, not our interposed
 * one), or NULL. */
static void *lib_fn(const char *name)
{
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	void *f = dlsym(RTLD_NEXT, name);
	if (!f && tracer_real_dlopen) {
		/* loaded with RTLD_LOCAL: through its handle */
		void *h = tracer_real_dlopen(LIB_SONAME, RTLD_LAZY | RTLD_NOLOAD);
		if (h) {
			f = dlsym(h, name);
			dlclose(h);
		}
	}
	t->guard = guard;
	return f;
}

/* Writes the library's latest snapshot (just taken) under a new id. */
static void write_snapshot(const char *label)
{
	const struct mp_snapshot *(*get)(unsigned) =
		(const struct mp_snapshot *(*)(unsigned))lib_fn("mp_snapshot_get");
	if (!get || !atomic_load(&tracer.recording))
		return;
	const struct mp_snapshot *s = get(0);
	if (!s)
		return;
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	struct tbuf *b = tracer_buf_begin();
	if (b) {
		uint64_t id = snap_next_id++;
		put_snapshot(b, id, label);
		for (size_t i = 0; i < s->ntypes; i++) {
			uint64_t tid = type_id(b, s->types[i].type);
			if (tid)
				put_count(b, id, tid, s->types[i].count, s->types[i].bytes);
		}
		tracer_buf_end(b);
	}
	t->guard = guard;
}

static int (*real_snapshot)(const char *label);

static void serve_signal(void)
{
	if (atomic_exchange(&snap_requests, 0) == 0)
		return;
	if (!real_snapshot)
		real_snapshot = (int (*)(const char *))lib_fn("mp_snapshot");
	char label[32] = "signal ";
	int n = snap_signal, k = 7;
	char digits[12];
	int d = 0;
	do {
		digits[d++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	while (d > 0)
		label[k++] = digits[--d];
	label[k] = '\0';
	if (real_snapshot && real_snapshot(label) == 0)
		write_snapshot(label);
}

EXPORT int mp_snapshot(const char *label)
{
	if (atomic_load_explicit(&snap_requests, memory_order_relaxed))
		serve_signal();
	if (!real_snapshot)
		real_snapshot = (int (*)(const char *))lib_fn("mp_snapshot");
	if (!real_snapshot)
		return -ENOSYS;
	int r = real_snapshot(label);
	if (r == 0)
		write_snapshot(label ? label : "");
	return r;
}

static void *(*real_new)(const struct mp_type *type);

/* Tail call, so that allocation stacks show the library's mp_new only. */
#if defined(__clang__)
#define TAIL_CALL __attribute__((musttail))
#define TAIL_FN
#else
#define TAIL_CALL
#define TAIL_FN __attribute__((optimize("optimize-sibling-calls")))
#endif

EXPORT TAIL_FN void *mp_new(const struct mp_type *type)
{
	if (__builtin_expect(atomic_load_explicit(&snap_requests, memory_order_relaxed) != 0, 0))
		serve_signal();
	if (__builtin_expect(!real_new, 0)) {
		real_new = (void *(*)(const struct mp_type *))lib_fn("mp_new");
		if (!real_new) {
			errno = ENOSYS;
			return NULL;
		}
	}
	TAIL_CALL return real_new(type);
}

static void on_snapshot_signal(int sig)
{
	atomic_fetch_add(&snap_requests, 1);
}

/* MEMPROF_SNAPSHOT_SIGNAL: a number, or a name with or without SIG. */
static int parse_signal(const char *v)
{
	static const struct { const char *name; int sig; } names[] = {
		{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP },
		{ "INT", SIGINT }, { "QUIT", SIGQUIT }, { "TERM", SIGTERM },
		{ "ALRM", SIGALRM }, { "WINCH", SIGWINCH }, { "URG", SIGURG },
		{ "PROF", SIGPROF }, { "VTALRM", SIGVTALRM }, { "CONT", SIGCONT },
		{ "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU },
		{ "PIPE", SIGPIPE }, { "CHLD", SIGCHLD }, { "PWR", SIGPWR },
	};
	if (!v || !*v)
		return 0;
	if (v[0] >= '0' && v[0] <= '9') {
		int n = 0;
		for (; *v >= '0' && *v <= '9' && n < 1000; v++)
			n = n * 10 + (*v - '0');
		return *v == '\0' && n > 0 && n < NSIG ? n : 0;
	}
	if (strncmp(v, "SIG", 3) == 0)
		v += 3;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(v, names[i].name) == 0)
			return names[i].sig;
	return 0;
}

void objects_init(void)
{
	extern char **environ;
	const char *v = NULL;
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, "MEMPROF_SNAPSHOT_SIGNAL=", 24) == 0)
			v = *e + 24;
	int sig = parse_signal(v);
	if (sig <= 0 || sig == SIGKILL || sig == SIGSTOP)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_snapshot_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (__sigaction(sig, &sa, NULL) == 0)
		snap_signal = sig;
}

/* ---- at exit ------------------------------------------------------------------------ */

struct heap_fns {
	size_t (*foreach)(mp_object_fn fn, void *arg);
	size_t (*garbage_foreach)(mp_object_fn fn, void *arg);
	size_t (*collect)(int generation);
	void (*set_debug)(unsigned flags);
	unsigned (*get_debug)(void);
	const struct mp_type *(*type_of)(const void *obj);
	size_t (*refcount)(const void *obj);
};

struct exit_walk {
	struct heap_fns *fns;
	struct tbuf *b;
	struct addr_set garbage; /* bodies on the garbage list */
	uintptr_t body;          /* the object being traversed */
	bool layout_ok;          /* tracked headers have the expected size */
};

static void table_add(uintptr_t start, uint32_t header)
{
	if (n_table == cap_table) {
		size_t ncap = cap_table ? cap_table * 2 : 4096;
		struct scan_object_block *n = writer_scratch_map(ncap * sizeof(*n));
		if (!n)
			return;
		if (table)
			memcpy(n, table, n_table * sizeof(*n));
		writer_scratch_unmap(table, cap_table * sizeof(*table));
		table = n;
		cap_table = ncap;
	}
	table[n_table].start = start;
	table[n_table].header = header;
	n_table++;
}

static void sift(struct scan_object_block *a, size_t root, size_t end)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= end)
			return;
		if (child + 1 < end && a[child].start < a[child + 1].start)
			child++;
		if (a[root].start >= a[child].start)
			return;
		struct scan_object_block t = a[root];
		a[root] = a[child];
		a[child] = t;
		root = child;
	}
}

static void table_sort(void)
{
	for (size_t k = n_table / 2; k-- > 0;)
		sift(table, k, n_table);
	for (size_t end = n_table; end-- > 1;) {
		struct scan_object_block t = table[0];
		table[0] = table[end];
		table[end] = t;
		sift(table, 0, end);
	}
}

/* Whether start is among the first n entries (sorted). */
static bool table_has(uintptr_t start, size_t n)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (table[mid].start == start)
			return true;
		if (table[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void on_garbage(void *obj, const struct mp_type *type, size_t refcount, void *arg)
{
	struct exit_walk *w = arg;
	set_put(&w->garbage, (uintptr_t)obj);
}

static void visit_edge(void *referent, void *arg)
{
	struct exit_walk *w = arg;
	if (!referent)
		return;
	uint8_t *o = tbuf_reserve(w->b, RECORD_OBJEDGE_MAX);
	size_t k = 0;
	o[k++] = CAPTURE_OBJEDGE;
	k += record_put_u(o + k, w->body);
	k += record_put_u(o + k, (uintptr_t)referent);
	k += record_put_u(o + k, CAPTURE_SNAPSHOT_EXIT);
	tbuf_commit(w->b, k);
}

/* One live object: its OBJECT record, its type's count, its table entry. */
static void record_object(struct exit_walk *w, void *obj, const struct mp_type *type,
			  size_t refcount, bool tracked)
{
	struct pool_block blk;
	if (!type || !pool_lookup(obj, &blk))
		return;
	uintptr_t start = (uintptr_t)blk.start, body = (uintptr_t)obj;
	if (body < start || body - start > 255 || blk.size < body - start)
		return;
	uint64_t tid = type_id(w->b, type);
	bool garbage = set_has(&w->garbage, body);
	uint8_t *o = tbuf_reserve(w->b, RECORD_OBJECT_MAX);
	size_t k = 0;
	o[k++] = CAPTURE_OBJECT;
	k += record_put_u(o + k, body);
	k += record_put_u(o + k, tid);
	k += record_put_u(o + k, garbage && refcount > 0 ? refcount - 1 : refcount);
	k += record_put_u(o + k, (tracked ? CAPTURE_OBJ_TRACKED : 0) |
					 (garbage ? CAPTURE_OBJ_GARBAGE : 0));
	k += record_put_u(o + k, CAPTURE_SNAPSHOT_EXIT);
	tbuf_commit(w->b, k);
	if (tid) {
		types[tid - 1].count++;
		types[tid - 1].bytes += blk.size - (body - start);
	}
	table_add(start, (uint32_t)(body - start));
	if (tracked && type->traverse) {
		w->body = body;
		type->traverse(obj, visit_edge, w);
	}
}

static void on_tracked(void *obj, const struct mp_type *type, size_t refcount, void *arg)
{
	struct exit_walk *w = arg;
	struct pool_block blk;
	if (pool_lookup(obj, &blk) && (uintptr_t)obj - (uintptr_t)blk.start != TRACKED_HEADER)
		w->layout_ok = false;
	record_object(w, obj, type, refcount, true);
}

static bool heap_fns_get(struct heap_fns *f)
{
	f->foreach = (size_t (*)(mp_object_fn, void *))lib_fn("mp_heap_foreach");
	f->garbage_foreach = (size_t (*)(mp_object_fn, void *))lib_fn("mp_gc_garbage_foreach");
	f->collect = (size_t (*)(int))lib_fn("mp_gc_collect");
	f->set_debug = (void (*)(unsigned))lib_fn("mp_gc_set_debug");
	f->get_debug = (unsigned (*)(void))lib_fn("mp_gc_get_debug");
	f->type_of = (const struct mp_type *(*)(const void *))lib_fn("mp_typeof");
	f->refcount = (size_t (*)(const void *))lib_fn("mp_refcount");
	return f->foreach && f->garbage_foreach && f->collect && f->set_debug &&
	       f->get_debug && f->type_of && f->refcount;
}

/* Untracked objects: the object blocks the collector does not list. */
static void untracked_objects(struct exit_walk *w)
{
	size_t n_tracked = n_table; /* sorted; untracked ones follow */
	for (size_t i = 0; i < obj_blocks.cap; i++) {
		uintptr_t start = obj_blocks.slots[i];
		if (start <= SET_TOMB || table_has(start, n_tracked))
			continue;
		struct pool_block blk;
		if (!pool_lookup((void *)start, &blk) || (uintptr_t)blk.start != start ||
		    blk.size < UNTRACKED_HEADER)
			continue;
		void *body = (void *)(start + UNTRACKED_HEADER);
		record_object(w, body, w->fns->type_of(body), w->fns->refcount(body), false);
	}
}

static int tls_size_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_TLS)
			continue;
		size_t align = ph->p_align ? ph->p_align : 1;
		*(size_t *)arg += (ph->p_memsz + align - 1) / align * align;
	}
	return 0;
}

static size_t tls_size;

void objects_at_exit(void)
{
	struct heap_fns fns;
	if (!used_hooks || !atomic_load(&tracer.recording) || !heap_fns_get(&fns))
		return;
	struct tracer_tls *t = &tracer_tls;
	int guard = t->guard;
	t->guard = 1;
	/* every cycle the program never freed, kept (not freed) */
	unsigned debug = fns.get_debug();
	fns.set_debug(debug | MP_GC_DEBUG_SAVEALL);
	fns.collect(-1);
	fns.set_debug(debug);

	struct exit_walk w = { .fns = &fns, .layout_ok = true };
	fns.garbage_foreach(on_garbage, &w);
	w.b = tracer_buf_begin();
	if (!w.b) {
		set_free(&w.garbage);
		t->guard = guard;
		return;
	}
	put_snapshot(w.b, CAPTURE_SNAPSHOT_EXIT, "exit");
	for (size_t i = 0; i < n_types; i++)
		types[i].count = types[i].bytes = 0;
	fns.foreach(on_tracked, &w);
	table_sort();
	if (w.layout_ok) {
		untracked_objects(&w);
		table_sort();
	}
	for (size_t i = 0; i < n_types; i++)
		if (types[i].count > 0)
			put_count(w.b, CAPTURE_SNAPSHOT_EXIT, i + 1, types[i].count,
				  types[i].bytes);
	tracer_buf_end(w.b);
	set_free(&w.garbage);
	tls_size = 0;
	dl_iterate_phdr(tls_size_cb, &tls_size);
	t->guard = guard;
}

void objects_scan_options(struct scan_options *o)
{
	if (n_table == 0)
		return;
	o->objects = table;
	o->n_objects = n_table;
	o->report_refs = true;
	o->tls_size = tls_size;
}

void objects_scan_done(void)
{
	writer_scratch_unmap(table, cap_table * sizeof(*table));
	table = NULL;
	n_table = cap_table = 0;
}

void objects_foreach_own_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg)
{
	if (obj_blocks.slots)
		fn((uintptr_t)obj_blocks.slots,
		   (uintptr_t)obj_blocks.slots + obj_blocks.cap * sizeof(uintptr_t), arg);
	if (table)
		fn((uintptr_t)table, (uintptr_t)table + cap_table * sizeof(*table), arg);
}
