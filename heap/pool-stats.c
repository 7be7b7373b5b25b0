/*
 * pool-stats.c: the allocator's statistics, in the spirit of CPython's
 * sys._debugmallocstats().  Entry points: pool_get_stats(), which walks
 * every arena and pool under the arena lock (exact when the other threads
 * are not allocating, approximate otherwise), and pool_stats_print(), which
 * writes them as a table to a file descriptor with its own formatting
 * helpers: no printf, no malloc, so it can run inside the preload library.
 */
#include <string.h>
#include <unistd.h>

#include "pool-private.h"

size_t pool_count_live(struct pool_arena *ar, struct pool_hdr *p, size_t *req_bytes)
{
	size_t live = 0, req = 0;
	uint32_t bump = __atomic_load_n(&p->bump, __ATOMIC_RELAXED);
	for (uint32_t i = 0; i < bump; i++) {
		uint32_t w = __atomic_load_n(pool_word_of(p, i), __ATOMIC_RELAXED);
		if (w & POOL_W_LIVE) {
			live++;
			req += w & POOL_W_SIZE;
		}
	}
	*req_bytes = req;
	return live;
}

void pool_get_stats(struct pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++)
		out->classes[c].block_size = pool_class_size(c);
	pool_arena_lock();
	pool_arena_counters(out);
	for (struct pool_arena *ar = pool_arena_first(); ar; ar = ar->all_next) {
		size_t psize = (size_t)1 << ar->shift;
		out->bytes_pool_headers += psize;
		out->bytes_unused_arena += (size_t)(ar->slots - ar->next_slot) * psize;
		for (unsigned s = 1; s < ar->next_slot; s++) {
			struct pool_hdr *p = &ar->pools[s];
			uint8_t st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
			if (st == POOL_STATE_EMPTY) {
				out->pools_empty++;
				out->bytes_empty_pools += psize;
				continue;
			}
			struct pool_class_stats *cs = &out->classes[p->cls];
			size_t req, live = pool_count_live(ar, p, &req);
			cs->pools++;
			cs->blocks_in_use += live;
			cs->blocks_available += p->capacity - live;
			out->bytes_in_small_blocks += req;
			out->bytes_quantization += live * cs->block_size - req;
			out->bytes_pool_headers += (size_t)p->capacity * POOL_META_PER_BLOCK;
			if (live == 0) {
				out->pools_empty++;
				out->bytes_empty_pools += psize;
			}
		}
	}
	pool_arena_unlock();
	pool_large_counters(&out->large_blocks, &out->large_bytes);
}

/* ---- formatting without malloc ------------------------------------------ */

struct outbuf {
	int fd;
	size_t len;
	char buf[1024];
};

static void out_flush(struct outbuf *o)
{
	size_t off = 0;
	while (off < o->len) {
		ssize_t n = write(o->fd, o->buf + off, o->len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	o->len = 0;
}

static void out_str(struct outbuf *o, const char *s)
{
	while (*s) {
		if (o->len == sizeof(o->buf))
			out_flush(o);
		o->buf[o->len++] = *s++;
	}
}

/* v in decimal, right-aligned in width columns. */
static void out_num(struct outbuf *o, size_t v, int width)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	char s[48];
	int k = 0;
	for (int pad = width - n; pad > 0 && k < 24; pad--)
		s[k++] = ' ';
	while (n)
		s[k++] = tmp[--n];
	s[k] = '\0';
	out_str(o, s);
}

static void out_line(struct outbuf *o, const char *label, size_t v)
{
	out_str(o, label);
	out_num(o, v, 16);
	out_str(o, "\n");
}

void pool_stats_print(int fd)
{
	struct pool_stats st;
	pool_get_stats(&st);
	struct outbuf o = { .fd = fd };
	out_str(&o, "Small block threshold = ");
	out_num(&o, POOL_SMALL_MAX, 0);
	out_str(&o, ", in ");
	out_num(&o, POOL_NUM_CLASSES, 0);
	out_str(&o, " size classes.\n\n");
	out_str(&o, "class   size   num pools   blocks in use  avail blocks\n");
	out_str(&o, "-----   ----   ---------   -------------  ------------\n");
	for (unsigned c = 0; c < POOL_NUM_CLASSES; c++) {
		const struct pool_class_stats *cs = &st.classes[c];
		if (!cs->pools)
			continue;
		out_num(&o, c, 5);
		out_num(&o, cs->block_size, 7);
		out_num(&o, cs->pools, 12);
		out_num(&o, cs->blocks_in_use, 16);
		out_num(&o, cs->blocks_available, 14);
		out_str(&o, "\n");
	}
	out_str(&o, "\n");
	out_line(&o, "# arenas allocated total           = ", st.arenas_allocated);
	out_line(&o, "# arenas reclaimed                 = ", st.arenas_reclaimed);
	out_line(&o, "# arenas highwater mark            = ", st.arenas_highwater);
	out_line(&o, "# arenas allocated current         = ", st.arenas_current);
	out_line(&o, "bytes in arenas (1 MiB each)       = ", st.arenas_current * POOL_ARENA_SIZE);
	out_str(&o, "\n");
	out_line(&o, "# bytes in allocated blocks        = ", st.bytes_in_small_blocks);
	out_line(&o, "# bytes lost to quantization       = ", st.bytes_quantization);
	out_line(&o, "# bytes in headers and metadata    = ", st.bytes_pool_headers);
	out_line(&o, "# pools empty                      = ", st.pools_empty);
	out_line(&o, "# bytes in empty pools             = ", st.bytes_empty_pools);
	out_line(&o, "# bytes unused in arenas           = ", st.bytes_unused_arena);
	out_line(&o, "# large blocks (raw allocator)     = ", st.large_blocks);
	out_line(&o, "# bytes in large blocks            = ", st.large_bytes);
	out_flush(&o);
}
