/*
 * encode.c: appends capture records (capture.h) to a byte buffer.
 *
 * One function per record kind, record_<kind>_put(), each returning the
 * bytes written.  Fields go through capture.h's varint helpers so that the
 * writer and the reader share one definition of the encoding.  Pure code:
 * no allocation, no lock, no system call (it runs inside malloc and inside
 * fatal-signal handlers).
 */
#include "encode.h"

#include <string.h>

static size_t put_u(uint8_t *out, uint64_t v)
{
	return capture_put_u64(out, v);
}

static size_t put_s(uint8_t *out, int64_t v)
{
	return capture_put_u64(out, capture_zigzag(v));
}

static size_t put_str(uint8_t *out, const char *s, size_t len, size_t max)
{
	if (len > max)
		len = max;
	size_t n = put_u(out, len);
	if (len > 0)
		memcpy(out + n, s, len);
	return n + len;
}

size_t record_put_u(uint8_t *out, uint64_t v)
{
	return put_u(out, v);
}

size_t record_put_cstr(uint8_t *out, const char *s, size_t max)
{
	return s ? put_str(out, s, strnlen(s, max), max) : put_u(out, 0);
}

static void put_le32(uint8_t *out, uint32_t v)
{
	out[0] = (uint8_t)v;
	out[1] = (uint8_t)(v >> 8);
	out[2] = (uint8_t)(v >> 16);
	out[3] = (uint8_t)(v >> 24);
}

size_t record_file_header_put(uint8_t *out)
{
	memcpy(out, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN);
	put_le32(out + 8, CAPTURE_VERSION);
	put_le32(out + 12, CAPTURE_HEADER_SIZE);
	return CAPTURE_HEADER_SIZE;
}

void record_chunk_header_put(uint8_t *out, const uint8_t *payload, uint32_t len,
			     uint32_t tid)
{
	put_le32(out, CAPTURE_CHUNK_MAGIC);
	put_le32(out + 4, len);
	put_le32(out + 8, tid);
	put_le32(out + 12, capture_checksum(payload, len));
}

size_t record_process_max(size_t exe_len, size_t args_len, uint64_t argc)
{
	if (exe_len > CAPTURE_STRING_MAX)
		exe_len = CAPTURE_STRING_MAX;
	/* every argument costs at most its bytes plus a length varint */
	return 1 + 6 * RECORD_VARINT_MAX + exe_len + args_len + argc * RECORD_VARINT_MAX;
}

size_t record_process_put(uint8_t *out, uint64_t pid, uint64_t ppid, uint64_t start_ns,
			  const char *exe, size_t exe_len, const char *args,
			  size_t args_len, uint64_t flags)
{
	uint64_t argc = 0;
	for (size_t i = 0; i < args_len; i++)
		if (args[i] == '\0')
			argc++;
	if (args_len > 0 && args[args_len - 1] != '\0')
		argc++; /* a last argument cut without its NUL */

	size_t n = 0;
	out[n++] = CAPTURE_PROCESS;
	n += put_u(out + n, pid);
	n += put_u(out + n, ppid);
	n += put_u(out + n, start_ns);
	n += put_str(out + n, exe, exe_len, CAPTURE_STRING_MAX);
	n += put_u(out + n, argc);
	size_t i = 0;
	while (i < args_len) {
		const char *end = memchr(args + i, '\0', args_len - i);
		size_t len = end ? (size_t)(end - (args + i)) : args_len - i;
		n += put_str(out + n, args + i, len, CAPTURE_STRING_MAX);
		i += len + 1;
	}
	n += put_u(out + n, flags);
	return n;
}

size_t record_alloc_put(uint8_t *out, struct record_deltas *d, uint64_t seq,
			uint64_t addr, uint64_t size, uint64_t stack_id)
{
	size_t n = 0;
	out[n++] = CAPTURE_ALLOC;
	n += put_u(out + n, seq - d->prev_seq);
	n += put_s(out + n, (int64_t)(addr - d->prev_addr));
	n += put_u(out + n, size);
	n += put_s(out + n, (int64_t)(stack_id - d->prev_stack));
	d->prev_seq = seq;
	d->prev_addr = addr;
	d->prev_stack = stack_id;
	return n;
}

size_t record_free_put(uint8_t *out, struct record_deltas *d, uint64_t seq, uint64_t addr)
{
	size_t n = 0;
	out[n++] = CAPTURE_FREE;
	n += put_u(out + n, seq - d->prev_seq);
	n += put_s(out + n, (int64_t)(addr - d->prev_addr));
	d->prev_seq = seq;
	d->prev_addr = addr;
	return n;
}

size_t record_stack_put(uint8_t *out, struct record_deltas *d, uint64_t id, uint64_t parent,
			uint64_t ip)
{
	size_t n = 0;
	out[n++] = CAPTURE_STACK;
	n += put_s(out + n, (int64_t)(id - d->prev_node));
	n += put_s(out + n, (int64_t)(id - parent));
	n += put_s(out + n, (int64_t)(ip - d->prev_node_ip));
	d->prev_node = id;
	d->prev_node_ip = ip;
	return n;
}

size_t record_module_put(uint8_t *out, uint64_t id, uint64_t bias, uint64_t start,
			 uint64_t end, const char *path, size_t path_len,
			 const uint8_t *build_id, size_t build_id_len)
{
	size_t n = 0;
	out[n++] = CAPTURE_MODULE;
	n += put_u(out + n, id);
	n += put_u(out + n, bias);
	n += put_u(out + n, start);
	n += put_u(out + n, end);
	n += put_str(out + n, path, path_len, RECORD_PATH_MAX);
	n += put_str(out + n, (const char *)build_id, build_id_len, RECORD_BUILD_ID_MAX);
	return n;
}

size_t record_unload_put(uint8_t *out, uint64_t module_id, uint64_t seq)
{
	size_t n = 0;
	out[n++] = CAPTURE_UNLOAD;
	n += put_u(out + n, module_id);
	n += put_u(out + n, seq);
	return n;
}

size_t record_sample_put(uint8_t *out, uint64_t t_ns, uint64_t seq, uint64_t rss,
			 uint64_t heap, uint64_t live)
{
	size_t n = 0;
	out[n++] = CAPTURE_SAMPLE;
	n += put_u(out + n, t_ns);
	n += put_u(out + n, seq);
	n += put_u(out + n, rss);
	n += put_u(out + n, heap);
	n += put_u(out + n, live);
	return n;
}

size_t record_thread_put(uint8_t *out, uint64_t tid, uint64_t seq, uint64_t event,
			 const char *name, size_t name_len)
{
	size_t n = 0;
	out[n++] = CAPTURE_THREAD;
	n += put_u(out + n, tid);
	n += put_u(out + n, seq);
	n += put_u(out + n, event);
	n += put_str(out + n, name, name_len, RECORD_NAME_MAX);
	return n;
}

size_t record_badfree_put(uint8_t *out, uint64_t seq, uint64_t kind, uint64_t addr,
			  uint64_t free_stack, uint64_t alloc_stack,
			  uint64_t first_free_stack)
{
	size_t n = 0;
	out[n++] = CAPTURE_BADFREE;
	n += put_u(out + n, seq);
	n += put_u(out + n, kind);
	n += put_u(out + n, addr);
	n += put_u(out + n, free_stack);
	n += put_u(out + n, alloc_stack);
	n += put_u(out + n, first_free_stack);
	return n;
}

size_t record_stats_put(uint8_t *out, const struct pool_stats *st)
{
	size_t n = 0;
	out[n++] = CAPTURE_STATS;
	n += put_u(out + n, POOL_NUM_CLASSES);
	for (unsigned i = 0; i < POOL_NUM_CLASSES; i++) {
		const struct pool_class_stats *c = &st->classes[i];
		n += put_u(out + n, c->block_size);
		n += put_u(out + n, c->pools);
		n += put_u(out + n, c->blocks_in_use);
		n += put_u(out + n, c->blocks_available);
	}
	n += put_u(out + n, st->arenas_allocated);
	n += put_u(out + n, st->arenas_reclaimed);
	n += put_u(out + n, st->arenas_highwater);
	n += put_u(out + n, st->bytes_quantization);
	n += put_u(out + n, st->bytes_pool_headers);
	n += put_u(out + n, st->bytes_empty_pools);
	n += put_u(out + n, st->large_blocks);
	n += put_u(out + n, st->large_bytes);
	return n;
}

size_t record_note_put(uint8_t *out, uint64_t seq, uint64_t level, const char *text,
		       size_t len)
{
	size_t n = 0;
	out[n++] = CAPTURE_NOTE;
	n += put_u(out + n, seq);
	n += put_u(out + n, level);
	n += put_str(out + n, text, len, RECORD_TEXT_MAX);
	return n;
}

size_t record_flushed_put(uint8_t *out, uint64_t seq)
{
	size_t n = 0;
	out[n++] = CAPTURE_FLUSHED;
	n += put_u(out + n, seq);
	return n;
}

size_t record_lost_put(uint8_t *out, uint64_t events)
{
	size_t n = 0;
	out[n++] = CAPTURE_LOST;
	n += put_u(out + n, events);
	return n;
}

size_t record_end_put(uint8_t *out, uint64_t t_ns, uint64_t seq, uint64_t how,
		      uint64_t status, uint64_t sig)
{
	size_t n = 0;
	out[n++] = CAPTURE_END;
	n += put_u(out + n, t_ns);
	n += put_u(out + n, seq);
	n += put_u(out + n, how);
	n += put_u(out + n, status);
	n += put_u(out + n, sig);
	return n;
}

size_t record_scan_put(uint8_t *out, uint64_t n_blocks, uint64_t n_edges, uint64_t flags)
{
	size_t n = 0;
	out[n++] = CAPTURE_SCAN;
	n += put_u(out + n, n_blocks);
	n += put_u(out + n, n_edges);
	n += put_u(out + n, flags);
	return n;
}

size_t record_scanblock_put(uint8_t *out, uint64_t addr, uint64_t size, uint64_t stack_id,
			    uint64_t seq, uint64_t kind, uint64_t indirect_of)
{
	size_t n = 0;
	out[n++] = CAPTURE_SCANBLOCK;
	n += put_u(out + n, addr);
	n += put_u(out + n, size);
	n += put_u(out + n, stack_id);
	n += put_u(out + n, seq);
	n += put_u(out + n, kind);
	n += put_u(out + n, indirect_of);
	return n;
}

size_t record_scanedge_put(uint8_t *out, uint64_t from, uint64_t offset, uint64_t to)
{
	size_t n = 0;
	out[n++] = CAPTURE_SCANEDGE;
	n += put_u(out + n, from);
	n += put_u(out + n, offset);
	n += put_u(out + n, to);
	return n;
}
