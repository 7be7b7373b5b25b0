/*
 * modules.c: the map of loaded ELF objects, written as MODULE and UNLOAD
 * records.
 *
 * Main entry point: modules_rescan(), called at start and after every
 * dlopen/dlclose.  It walks dl_iterate_phdr(), writes a MODULE record for
 * every object not seen before (load bias, the range covered by its
 * executable segments, its path, the main program's resolved through
 * /proc/self/exe, and the GNU build-id from its PT_NOTE) and an UNLOAD for
 * every object gone since the last walk.  The known objects live in an
 * mmap'd array guarded by a lock taken only here (and around fork).
 */
#define _GNU_SOURCE
#include "tracer-private.h"

#include <elf.h>
#include <link.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

struct module {
	uint64_t id;
	uintptr_t bias, start, end;
	uint64_t name_hash;
	bool seen;
};

static struct module *mods;
static size_t n_mods, cap_mods;
static uint64_t next_id = 1;
static atomic_int mod_lock;

void modules_lock(void)
{
	while (atomic_exchange_explicit(&mod_lock, 1, memory_order_acquire) != 0)
		sched_yield();
}

void modules_unlock(void)
{
	atomic_store_explicit(&mod_lock, 0, memory_order_release);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static bool exec_range(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi)
{
	bool found = false;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
		if (!found || a < *lo)
			*lo = a;
		if (!found || b > *hi)
			*hi = b;
		found = true;
	}
	return found;
}

static size_t build_id(const struct dl_phdr_info *info, const uint8_t **out)
{
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		size_t align = ph->p_align > 4 ? 8 : 4;
		while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			size_t name_sz = (nh->n_namesz + align - 1) & ~(align - 1);
			size_t desc_sz = (nh->n_descsz + align - 1) & ~(align - 1);
			const uint8_t *name = p + sizeof(*nh);
			const uint8_t *desc = name + name_sz;
			if ((size_t)(end - name) < name_sz || (size_t)(end - desc) < nh->n_descsz)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0) {
				*out = desc;
				return nh->n_descsz;
			}
			p = desc + desc_sz;
		}
	}
	return 0;
}

static bool grow_mods(void)
{
	size_t ncap = cap_mods ? cap_mods * 2 : 256;
	void *p = cap_mods ? mremap(mods, cap_mods * sizeof(*mods), ncap * sizeof(*mods),
				    MREMAP_MAYMOVE)
			   : mmap(NULL, ncap * sizeof(*mods), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	mods = p;
	cap_mods = ncap;
	return true;
}

struct walk {
	struct tbuf *b;
	unsigned index;
};

static int on_object(struct dl_phdr_info *info, size_t size, void *data)
{
	struct walk *w = data;
	unsigned index = w->index++;
	uintptr_t lo, hi;
	if (!exec_range(info, &lo, &hi))
		return 0;
	const char *path = info->dlpi_name ? info->dlpi_name : "";
	if (*path == '\0' && index == 0)
		path = tracer.exe;
	uint64_t h = hash_str(path);
	for (size_t i = 0; i < n_mods; i++) {
		struct module *m = &mods[i];
		if (m->bias == info->dlpi_addr && m->start == lo && m->name_hash == h) {
			m->seen = true;
			return 0;
		}
	}
	if (n_mods == cap_mods && !grow_mods())
		return 0;
	struct module *m = &mods[n_mods++];
	*m = (struct module){ .id = next_id++, .bias = info->dlpi_addr, .start = lo,
			      .end = hi, .name_hash = h, .seen = true };
	const uint8_t *bid = NULL;
	size_t bid_len = build_id(info, &bid);
	if (w->b) {
		uint8_t *o = tbuf_reserve(w->b, RECORD_MODULE_MAX);
		tbuf_commit(w->b, record_module_put(o, m->id, m->bias, m->start, m->end, path,
						    strlen(path), bid, bid_len));
	}
	return 0;
}

void modules_rescan(void)
{
	struct tbuf *b = tracer_buf_begin();
	modules_lock();
	for (size_t i = 0; i < n_mods; i++)
		mods[i].seen = false;
	struct walk w = { .b = b };
	dl_iterate_phdr(on_object, &w);
	size_t kept = 0;
	for (size_t i = 0; i < n_mods; i++) {
		if (mods[i].seen) {
			mods[kept++] = mods[i];
			continue;
		}
		if (b) {
			uint64_t seq = tbuf_seq(b, 1, 0);
			uint8_t *o = tbuf_reserve(b, RECORD_UNLOAD_MAX);
			tbuf_commit(b, record_unload_put(o, mods[i].id, seq));
		}
	}
	n_mods = kept;
	modules_unlock();
	if (b)
		tracer_buf_end(b);
}

void modules_emit_all(void)
{
	modules_lock();
	n_mods = 0; /* forget them: the walk writes every object again */
	modules_unlock();
	modules_rescan();
}

struct find {
	uintptr_t addr, lo, hi;
	bool found;
};

static int on_find(struct dl_phdr_info *info, size_t size, void *data)
{
	struct find *f = data;
	bool mine = false;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && f->addr >= a && f->addr < a + ph->p_memsz)
			mine = true;
	}
	if (!mine)
		return 0;
	f->found = exec_range(info, &f->lo, &f->hi);
	return 1;
}

bool modules_text_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
	struct find f = { .addr = addr };
	dl_iterate_phdr(on_find, &f);
	if (!f.found)
		return false;
	*lo = f.lo;
	*hi = f.hi;
	return true;
}

/* The preload library's writable segments, found once at start: the scan
 * asks for them while other threads are stopped, when dl_iterate_phdr()
 * could wait for a lock a stopped thread holds. */
static struct {
	uintptr_t lo, hi;
} self_data[4];
static unsigned n_self_data;

static int on_self(struct dl_phdr_info *info, size_t size, void *data)
{
	struct find f = { .addr = (uintptr_t)data };
	on_find(info, size, &f);
	if (!f.found)
		return 0;
	for (unsigned i = 0; i < info->dlpi_phnum && n_self_data < 4; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
			uintptr_t a = info->dlpi_addr + ph->p_vaddr;
			self_data[n_self_data].lo = a;
			self_data[n_self_data].hi = a + ph->p_memsz;
			n_self_data++;
		}
	}
	return 1;
}

void modules_self_init(void)
{
	n_self_data = 0;
	dl_iterate_phdr(on_self, (void *)&tracer);
}

void modules_self_data(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg)
{
	for (unsigned i = 0; i < n_self_data; i++)
		fn(self_data[i].lo, self_data[i].hi, arg);
	if (mods && cap_mods) {
		uintptr_t lo = (uintptr_t)mods;
		fn(lo, lo + cap_mods * sizeof(*mods), arg);
	}
}
