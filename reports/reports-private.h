/*
 * reports-private.h: helpers shared inside reports/ and nowhere else: a
 * growing-array helper and an open-addressing map from 64-bit keys to
 * 32-bit indices (table.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Makes room for at least need elements of elem bytes in *v (capacity in
 * *cap, doubled as needed).  0 or -ENOMEM; *v is untouched on failure. */
int reports_vec_reserve(void *v, size_t *cap, size_t need, size_t elem);

/* Appends one element (copied from item) to *v holding *n of them. */
int reports_vec_push(void *v, size_t *n, size_t *cap, const void *item, size_t elem);

/* A map of 64-bit keys to 32-bit values, linear probing with backward-shift
 * deletion.  Zero-initialised is an empty map. */
struct reports_map {
	uint64_t *keys;
	uint32_t *vals; /* value + 1; 0 marks an empty slot */
	size_t mask;    /* slots - 1, or 0 before the first insertion */
	size_t count;
};

uint64_t reports_hash64(uint64_t x);
void reports_map_finish(struct reports_map *map);
/* Whether key is in the map; its value goes to *val (when not NULL). */
bool reports_map_get(const struct reports_map *map, uint64_t key, uint32_t *val);
/* Inserts or replaces.  0 or -ENOMEM. */
int reports_map_put(struct reports_map *map, uint64_t key, uint32_t val);
/* Removes key; returns whether it was there (and its value in *val). */
bool reports_map_remove(struct reports_map *map, uint64_t key, uint32_t *val);

/* A copy of len bytes as a NUL-terminated string, or NULL. */
char *reports_strndup(const char *s, size_t len);

/* qsort order of struct reports_leak_record, as memcheck lists loss records
 * (analysis.c; leaks.c re-sorts with it after applying suppressions). */
int reports_leak_record_cmp(const void *a, const void *b);
