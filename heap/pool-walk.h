/*
 * pool-walk.h: a walk of the pool allocator's live blocks for the leak
 * scan, faster than pool_foreach_live(): pool by pool in address order,
 * with the pool's metadata arrays handed over as they are instead of one
 * callback per block.  The scan numbers the blocks from it (already
 * sorted, no sort needed) and builds its own address -> block table, so it
 * does not ask pool_lookup_where() for every word it looks at.
 *
 * Implemented in pool-arena.c, which owns the arena map.  The layouts
 * below mirror pool-private.h's (checked there by static asserts).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

/* A block's metadata word: requested size, live flag, owner recorded. */
#define POOL_WALK_SIZE 0xffffu
#define POOL_WALK_LIVE (1u << 16)
#define POOL_WALK_OWNER (1u << 17)

/* A block's owner record, valid when its word has POOL_WALK_OWNER. */
struct pool_walk_info {
	uint64_t seq;
	uint32_t stack_id;
	uint32_t free_stack_id;
};

/* A carved pool that may hold live blocks.  Block k (k < nblocks) starts
 * at base + k * block_size; words[k] and info[k] are its metadata. */
struct pool_walk_pool {
	const void *key;      /* the pool's key, as pool_where.pool */
	uintptr_t base;       /* its first byte: pool_size aligned */
	uint32_t pool_size;   /* POOL_POOL_SIZE, or POOL_MEDIUM_POOL_SIZE */
	uint32_t block_size;  /* its size class's block size */
	uint32_t nblocks;     /* blocks carved so far */
	const uint32_t *words;
	const struct pool_walk_info *info;
};

/* Calls pool_fn for every carved, non-empty pool in address order (arena
 * by arena, pools within an arena by slot), then large_fn for every live
 * large block (in no order); either may be NULL.  Both run with the
 * allocator's locks held: they must not allocate or free through the
 * pool.  As for pool_foreach_live(), other threads must not allocate
 * meanwhile. */
void pool_walk(void (*pool_fn)(const struct pool_walk_pool *p, void *arg),
	       void (*large_fn)(const struct pool_block *blk, void *arg), void *arg);
