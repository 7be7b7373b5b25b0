/*
 * reports-encode.h: a small capture writer for the reports/ unit tests, so
 * that they can build captures of any shape (good, torn or hostile) without
 * the tracer.  Everything is static inline; enc_*() abort on out of memory.
 *
 *   struct enc e; enc_init(&e);            header
 *   enc_chunk_begin(&e, tid); ...records...; enc_chunk_end(&e);
 *   reports_capture_load_buffer(e.buf, e.len, ...); enc_finish(&e);
 */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <memprof/capture.h>
#include <zstd.h>

struct enc {
	uint8_t *buf;
	size_t len, cap;
	size_t chunk_start;
	uint32_t version; /* 2, or 1 after enc_init_v1 (absolute stack ids) */
	uint64_t prev_seq, prev_addr, prev_stack, prev_node, prev_node_ip;
};

static inline void enc_bytes(struct enc *e, const void *p, size_t n)
{
	if (e->len + n > e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 256;
		while (ncap < e->len + n)
			ncap *= 2;
		e->buf = realloc(e->buf, ncap);
		if (!e->buf)
			abort();
		e->cap = ncap;
	}
	memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static inline void enc_u32(struct enc *e, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	enc_bytes(e, b, 4);
}

static inline void enc_put_u32_at(struct enc *e, size_t at, uint32_t v)
{
	e->buf[at] = (uint8_t)v;
	e->buf[at + 1] = (uint8_t)(v >> 8);
	e->buf[at + 2] = (uint8_t)(v >> 16);
	e->buf[at + 3] = (uint8_t)(v >> 24);
}

static inline void enc_init_version(struct enc *e, uint32_t version)
{
	memset(e, 0, sizeof(*e));
	e->version = version;
	enc_bytes(e, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN);
	enc_u32(e, version);
	enc_u32(e, CAPTURE_HEADER_SIZE);
}

static inline void enc_init(struct enc *e)
{
	enc_init_version(e, CAPTURE_VERSION);
}

/* A version 1 capture: stack ids written as they are. */
static inline void enc_init_v1(struct enc *e)
{
	enc_init_version(e, 1);
}

static inline void enc_finish(struct enc *e)
{
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

static inline void enc_chunk_begin(struct enc *e, uint32_t tid)
{
	e->chunk_start = e->len;
	enc_u32(e, CAPTURE_CHUNK_MAGIC);
	enc_u32(e, 0);
	enc_u32(e, tid);
	enc_u32(e, 0);
	e->prev_seq = 0;
	e->prev_addr = 0;
	e->prev_stack = 0;
	e->prev_node = 0;
	e->prev_node_ip = 0;
}

static inline void enc_chunk_end(struct enc *e)
{
	size_t payload = e->chunk_start + CAPTURE_CHUNK_HEADER_SIZE;
	enc_put_u32_at(e, e->chunk_start + 4, (uint32_t)(e->len - payload));
	enc_put_u32_at(e, e->chunk_start + 12, capture_checksum(e->buf + payload, e->len - payload));
}

/* Replaces the bytes from offset from on by head[0, head_len), their
 * length (u32) and their zstd frame. */
static inline void enc_frame(struct enc *e, size_t from, const void *head, size_t head_len)
{
	size_t raw_len = e->len - from;
	uint8_t *raw = malloc(raw_len ? raw_len : 1);
	size_t bound = ZSTD_compressBound(raw_len);
	uint8_t *z = malloc(bound);
	memcpy(raw, e->buf + from, raw_len);
	size_t zlen = ZSTD_compress(z, bound, raw, raw_len, 1);
	e->len = from;
	enc_bytes(e, head, head_len);
	enc_u32(e, (uint32_t)raw_len);
	enc_bytes(e, z, zlen);
	free(raw);
	free(z);
}

/* Ends the chunk as a zchunk: its records compressed with zstd. */
static inline void enc_zchunk_end(struct enc *e)
{
	enc_frame(e, e->chunk_start + CAPTURE_CHUNK_HEADER_SIZE, NULL, 0);
	enc_put_u32_at(e, e->chunk_start, CAPTURE_ZCHUNK_MAGIC);
	enc_chunk_end(e);
}

/* Turns the whole chunks written since start (an offset in e->buf) into
 * one zgroup (version 4): the chunks, headers and all, in one zstd frame. */
static inline void enc_group(struct enc *e, size_t start)
{
	uint8_t head[CAPTURE_CHUNK_HEADER_SIZE] = { 0 };
	enc_frame(e, start, head, sizeof(head));
	e->chunk_start = start;
	enc_put_u32_at(e, start, CAPTURE_ZGROUP_MAGIC);
	enc_chunk_end(e);
}

static inline void enc_u(struct enc *e, uint64_t v)
{
	uint8_t b[10];
	enc_bytes(e, b, capture_put_u64(b, v));
}

static inline void enc_tag(struct enc *e, int tag)
{
	uint8_t b = (uint8_t)tag;
	enc_bytes(e, &b, 1);
}

static inline void enc_str(struct enc *e, const char *s, size_t n)
{
	enc_u(e, n);
	enc_bytes(e, s, n);
}

static inline void enc_cstr(struct enc *e, const char *s)
{
	enc_str(e, s, strlen(s));
}

static inline void enc_process(struct enc *e, uint64_t pid, int argc, const char *const *argv)
{
	enc_tag(e, CAPTURE_PROCESS);
	enc_u(e, pid);
	enc_u(e, 1);
	enc_u(e, 1700000000000000000ull);
	enc_cstr(e, argc > 0 ? argv[0] : "prog");
	enc_u(e, (uint64_t)argc);
	for (int i = 0; i < argc; i++)
		enc_cstr(e, argv[i]);
	enc_u(e, 0);
}

static inline void enc_alloc(struct enc *e, uint64_t seq, uint64_t addr, uint64_t size,
			     uint64_t stack)
{
	enc_tag(e, CAPTURE_ALLOC);
	enc_u(e, seq - e->prev_seq);
	enc_u(e, capture_zigzag((int64_t)(addr - e->prev_addr)));
	enc_u(e, size);
	if (e->version >= 2)
		enc_u(e, capture_zigzag((int64_t)(stack - e->prev_stack)));
	else
		enc_u(e, stack);
	e->prev_seq = seq;
	e->prev_addr = addr;
	e->prev_stack = stack;
}

static inline void enc_free(struct enc *e, uint64_t seq, uint64_t addr)
{
	enc_tag(e, CAPTURE_FREE);
	enc_u(e, seq - e->prev_seq);
	enc_u(e, capture_zigzag((int64_t)(addr - e->prev_addr)));
	e->prev_seq = seq;
	e->prev_addr = addr;
}

static inline void enc_stack(struct enc *e, uint64_t id, uint64_t parent, uint64_t ip)
{
	enc_tag(e, CAPTURE_STACK);
	if (e->version >= 2) {
		enc_u(e, capture_zigzag((int64_t)(id - e->prev_node)));
		enc_u(e, capture_zigzag((int64_t)(id - parent)));
		enc_u(e, capture_zigzag((int64_t)(ip - e->prev_node_ip)));
		e->prev_node = id;
		e->prev_node_ip = ip;
	} else {
		enc_u(e, id);
		enc_u(e, parent);
		enc_u(e, ip);
	}
}

static inline void enc_module(struct enc *e, uint64_t id, uint64_t bias, uint64_t start,
			      uint64_t end, const char *path)
{
	enc_tag(e, CAPTURE_MODULE);
	enc_u(e, id);
	enc_u(e, bias);
	enc_u(e, start);
	enc_u(e, end);
	enc_cstr(e, path);
	enc_str(e, "", 0);
}

static inline void enc_sample(struct enc *e, uint64_t t_ns, uint64_t seq)
{
	enc_tag(e, CAPTURE_SAMPLE);
	enc_u(e, t_ns);
	enc_u(e, seq);
	enc_u(e, 4096);
	enc_u(e, 1 << 20);
	enc_u(e, 0);
}

static inline void enc_end(struct enc *e, uint64_t t_ns, uint64_t seq, uint64_t how,
			   uint64_t status, uint64_t sig)
{
	enc_tag(e, CAPTURE_END);
	enc_u(e, t_ns);
	enc_u(e, seq);
	enc_u(e, how);
	enc_u(e, status);
	enc_u(e, sig);
}

static inline void enc_note(struct enc *e, uint64_t seq, uint64_t level, const char *text)
{
	enc_tag(e, CAPTURE_NOTE);
	enc_u(e, seq);
	enc_u(e, level);
	enc_cstr(e, text);
}

static inline void enc_scan(struct enc *e, uint64_t blocks, uint64_t edges)
{
	enc_tag(e, CAPTURE_SCAN);
	enc_u(e, blocks);
	enc_u(e, edges);
	enc_u(e, 0);
}

static inline void enc_scanblock(struct enc *e, uint64_t addr, uint64_t size, uint64_t stack,
				 uint64_t seq, uint64_t kind, uint64_t indirect_of)
{
	enc_tag(e, CAPTURE_SCANBLOCK);
	enc_u(e, addr);
	enc_u(e, size);
	enc_u(e, stack);
	enc_u(e, seq);
	enc_u(e, kind);
	enc_u(e, indirect_of);
}

static inline void enc_badfree(struct enc *e, uint64_t seq, uint64_t kind, uint64_t addr,
			       uint64_t free_stack, uint64_t alloc_stack, uint64_t first_free)
{
	enc_tag(e, CAPTURE_BADFREE);
	enc_u(e, seq);
	enc_u(e, kind);
	enc_u(e, addr);
	enc_u(e, free_stack);
	enc_u(e, alloc_stack);
	enc_u(e, first_free);
}
