/*
 * encode.h: the tracer's record encoder, the writing half of capture.h.
 *
 * Every function appends one record (tag byte and fields) at out and
 * returns the number of bytes written; out must have room for the record's
 * maximum size (the RECORD_*_MAX constants, or record_*_max() for records
 * with strings).  Strings longer than their limit are cut at the limit.
 * ALLOC, FREE and STACK are delta-coded against a struct record_deltas
 * that the caller resets at the start of every chunk (record_deltas_reset).
 * Nothing here allocates, locks or makes a system call: the encoder runs
 * inside malloc and inside signal handlers.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "memprof/capture.h"
#include "pool.h"

#define RECORD_VARINT_MAX 10u
#define RECORD_ALLOC_MAX (1u + 4u * RECORD_VARINT_MAX)
#define RECORD_FREE_MAX (1u + 2u * RECORD_VARINT_MAX)
#define RECORD_STACK_MAX (1u + 3u * RECORD_VARINT_MAX)
#define RECORD_UNLOAD_MAX (1u + 2u * RECORD_VARINT_MAX)
#define RECORD_SAMPLE_MAX (1u + 5u * RECORD_VARINT_MAX)
#define RECORD_BADFREE_MAX (1u + 6u * RECORD_VARINT_MAX)
#define RECORD_LOST_MAX (1u + RECORD_VARINT_MAX)
#define RECORD_FLUSHED_MAX (1u + RECORD_VARINT_MAX)
#define RECORD_END_MAX (1u + 5u * RECORD_VARINT_MAX)
#define RECORD_SCAN_MAX (1u + 3u * RECORD_VARINT_MAX)
#define RECORD_SCANBLOCK_MAX (1u + 6u * RECORD_VARINT_MAX)
#define RECORD_SCANEDGE_MAX (1u + 3u * RECORD_VARINT_MAX)
#define RECORD_STATS_MAX \
	(1u + RECORD_VARINT_MAX * (1u + 4u * POOL_NUM_CLASSES + 8u))

/* String limits of the tracer (all below CAPTURE_STRING_MAX, so that any
 * record but PROCESS fits a per-thread buffer). */
#define RECORD_PATH_MAX 4096u
#define RECORD_BUILD_ID_MAX 64u
#define RECORD_NAME_MAX 64u
#define RECORD_TEXT_MAX 1024u

#define RECORD_MODULE_MAX \
	(1u + 6u * RECORD_VARINT_MAX + RECORD_PATH_MAX + RECORD_BUILD_ID_MAX)
#define RECORD_THREAD_MAX (1u + 4u * RECORD_VARINT_MAX + RECORD_NAME_MAX)
#define RECORD_NOTE_MAX (1u + 3u * RECORD_VARINT_MAX + RECORD_TEXT_MAX)

struct record_deltas {
	uint64_t prev_seq;
	uint64_t prev_addr;
	uint64_t prev_stack;    /* the last ALLOC's stack id */
	uint64_t prev_node;     /* the last STACK's id */
	uint64_t prev_node_ip;  /* ...and ip */
};

static inline void record_deltas_reset(struct record_deltas *d)
{
	*d = (struct record_deltas){ 0 };
}

/* Field writers, for records encoded outside this file (objects.c): an
 * unsigned varint, and a NUL-terminated string (NULL is "") cut at max
 * bytes.  Each returns the bytes written. */
size_t record_put_u(uint8_t *out, uint64_t v);
size_t record_put_cstr(uint8_t *out, const char *s, size_t max);

/* The 16-byte file header. */
size_t record_file_header_put(uint8_t *out);

/* A chunk header for payload[0, len) of the thread tid (checksum computed
 * here). */
void record_chunk_header_put(uint8_t *out, const uint8_t *payload, uint32_t len,
			     uint32_t tid);

/* PROCESS: argv is argc NUL-terminated strings one after the other (the
 * layout of /proc/self/cmdline) in args[0, args_len).  record_process_max()
 * bounds the size for given inputs. */
size_t record_process_max(size_t exe_len, size_t args_len, uint64_t argc);
size_t record_process_put(uint8_t *out, uint64_t pid, uint64_t ppid, uint64_t start_ns,
			  const char *exe, size_t exe_len, const char *args,
			  size_t args_len, uint64_t flags);

size_t record_alloc_put(uint8_t *out, struct record_deltas *d, uint64_t seq,
			uint64_t addr, uint64_t size, uint64_t stack_id);
size_t record_free_put(uint8_t *out, struct record_deltas *d, uint64_t seq, uint64_t addr);
size_t record_stack_put(uint8_t *out, struct record_deltas *d, uint64_t id, uint64_t parent,
			uint64_t ip);
size_t record_module_put(uint8_t *out, uint64_t id, uint64_t bias, uint64_t start,
			 uint64_t end, const char *path, size_t path_len,
			 const uint8_t *build_id, size_t build_id_len);
size_t record_unload_put(uint8_t *out, uint64_t module_id, uint64_t seq);
size_t record_sample_put(uint8_t *out, uint64_t t_ns, uint64_t seq, uint64_t rss,
			 uint64_t heap, uint64_t live);
size_t record_thread_put(uint8_t *out, uint64_t tid, uint64_t seq, uint64_t event,
			 const char *name, size_t name_len);
size_t record_badfree_put(uint8_t *out, uint64_t seq, uint64_t kind, uint64_t addr,
			  uint64_t free_stack, uint64_t alloc_stack,
			  uint64_t first_free_stack);
size_t record_stats_put(uint8_t *out, const struct pool_stats *st);
size_t record_note_put(uint8_t *out, uint64_t seq, uint64_t level, const char *text,
		       size_t len);
size_t record_lost_put(uint8_t *out, uint64_t events);
size_t record_flushed_put(uint8_t *out, uint64_t seq);
size_t record_end_put(uint8_t *out, uint64_t t_ns, uint64_t seq, uint64_t how,
		      uint64_t status, uint64_t sig);
size_t record_scan_put(uint8_t *out, uint64_t n_blocks, uint64_t n_edges, uint64_t flags);
size_t record_scanblock_put(uint8_t *out, uint64_t addr, uint64_t size, uint64_t stack_id,
			    uint64_t seq, uint64_t kind, uint64_t indirect_of);
size_t record_scanedge_put(uint8_t *out, uint64_t from, uint64_t offset, uint64_t to);
