/*
 * stacks.h: interning of call stacks in a prefix tree of frames.
 *
 * A node is (parent id, ip) -> id; ids count from 1 and 0 is the root, so a
 * stack is named by the id of its innermost node and read back by walking
 * parents up to 0.  Stacks are interned from their outermost frame, so
 * stacks sharing their callers share nodes.  The table is an open-addressing
 * hash in mmap'd memory: lookups take no lock, inserting a new node takes
 * the table's insert lock.  stack_table_intern() reports each new node once
 * through a callback (the tracer writes it as a STACK record).
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STACK_DEPTH_MAX 256u
#define STACK_DEPTH_DEFAULT 64u

struct stack_tab;
struct stack_node;
struct stack_ext;

#define STACK_NODE_CHUNK_BITS 16u
#define STACK_NODE_CHUNK (1u << STACK_NODE_CHUNK_BITS)

struct stack_table {
	_Atomic(struct stack_tab *) cur; /* current table, published */
	atomic_int lock;                 /* insert lock (a spin lock) */
	size_t count;                        /* nodes, under the lock */
	size_t hashed;                       /* nodes in the hash, under the lock */
	uint32_t next_id;                    /* under the lock */
	bool full;                           /* out of ids or memory */
	/* every table ever mapped, kept mapped for readers still probing an
	 * old one; [0] is the oldest.  Capacities double, so 40 is plenty. */
	struct stack_tab *tables[40];
	size_t table_bytes[40];
	unsigned n_tables;
	/* ---- the nodes by id, in chunks of STACK_NODE_CHUNK (an mmap'd
	 * directory of chunk pointers, each published once).  A node holds
	 * its first few children itself; only the later ones go to the hash
	 * (stacks.c). ---- */
	_Atomic(struct stack_node *) *chunks;
	/* the extension blocks by index, in chunks (their directory, in the
	 * same mapping as the nodes'), and the next index, under the lock */
	_Atomic(struct stack_ext *) *ext_slabs;
	uint32_t ext_next;
};

/* Per-thread memory of the stacks interned lately: the last one, so that
 * the frames it shares with the next one (their callers, usually) are not
 * looked up again (ids[k] is the node of the stack cut to its k+1 outermost
 * frames), and a few whole stacks by hash.  Ids never change, so neither
 * ever needs clearing; a zeroed cache is an empty one. */
#define STACK_MEMO_SLOTS 64u
#define STACK_MEMO_DEPTH 24u
struct stack_memo {
	uint64_t hash;
	uint32_t n, id;  /* id 0: an empty slot */
	uint32_t parent; /* the node the frames are inside */
	uint64_t ips[STACK_MEMO_DEPTH]; /* innermost first, as captured */
};

struct stack_cache {
	uint32_t n;
	uint64_t ips[STACK_DEPTH_MAX]; /* outermost first */
	uint32_t ids[STACK_DEPTH_MAX];
	/* stacks seen lately, as (node of their outer frames, up to
	 * STACK_MEMO_DEPTH inner frames), by hash: a program alternating
	 * between a few stacks (its malloc and free sites) finds each in one
	 * compare */
	struct stack_memo memo[STACK_MEMO_SLOTS];
	uint32_t memo_misses, memo_skip; /* the memo's misses in a row, and
					  * how many stacks it sits out */
	uint64_t token; /* the hint token of the stack in ips/ids, 0 if none */
};

/* What the caller knows of a stack before it is interned: it was named
 * token, the stack before it on its thread prev (tokens are never 0), and
 * its same outermost frames are that stack's.  When the cache's stack is
 * prev, those frames need no comparing. */
struct stack_hint {
	uint64_t prev, token;
	uint32_t same;
};

typedef void (*stack_new_fn)(void *arg, uint32_t id, uint32_t parent, uint64_t ip);

/* Maps the first table.  Returns 0 or -ENOMEM. */
int stack_table_init(struct stack_table *t);

/* Unmaps every table (only when no thread can use t any more). */
void stack_table_finish(struct stack_table *t);

/* Interns the stack ips[0, n), innermost frame first, and returns its id
 * (0 for an empty stack).  New nodes are reported through fn (may be NULL)
 * before this returns.  cache may be NULL.  When the table is full the
 * stack is cut to the frames that could be interned (outermost ones). */
uint32_t stack_table_intern(struct stack_table *t, struct stack_cache *cache,
			    const uint64_t *ips, size_t n, stack_new_fn fn, void *arg);

/* stack_table_intern(), with what the caller knows of the stack (hint may
 * be NULL). */
uint32_t stack_table_intern_hinted(struct stack_table *t, struct stack_cache *cache,
				   const uint64_t *ips, size_t n, const struct stack_hint *hint,
				   stack_new_fn fn, void *arg);

/* The node (parent, ip) if it exists, else 0.  Lock-free. */
uint32_t stack_table_lookup(struct stack_table *t, uint32_t parent, uint64_t ip);

/* Calls fn for every node (order unspecified).  Holds the insert lock. */
void stack_table_foreach(struct stack_table *t, stack_new_fn fn, void *arg);

/* Calls fn for every range of memory the table occupies. */
void stack_table_foreach_range(struct stack_table *t,
			       void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
			       void *arg);

size_t stack_table_count(struct stack_table *t);

/* The insert lock, for fork: taken before fork, released in both processes
 * after (stack_table_unlock also works in the child). */
void stack_table_lock(struct stack_table *t);
void stack_table_unlock(struct stack_table *t);
