/*
 * intern.c: interned strings of libmemprof-heap.  Main entry point:
 * mp_intern.
 *
 * One immutable string object per content.  The table does not own its
 * strings: a string's finalizer takes it out of the table when its last
 * reference goes, and the next mp_intern of the same content makes a new
 * one.  The table is a chained hash table, chained through the strings
 * themselves, doubled when it holds more strings than buckets.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "object-private.h"

struct str_body {
	size_t len;
	uint64_t hash;
	struct str_body *chain;
	char data[];
};

static struct str_body **buckets;
static size_t nbuckets;   /* a power of 2, or 0 */
static size_t nstrings;

static uint64_t str_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void str_finalize(void *obj)
{
	struct str_body *str = obj;
	struct str_body **p = &buckets[str->hash & (nbuckets - 1)];

	while (*p != NULL && *p != str)
		p = &(*p)->chain;
	if (*p == NULL)
		return;
	*p = str->chain;
	if (--nstrings == 0) {
		free(buckets);
		buckets = NULL;
		nbuckets = 0;
	}
}

const struct mp_type mp_str_type = {
	.name = "str",
	.size = sizeof(struct str_body),
	.finalize = str_finalize,
};

size_t objheap_str_extra(const void *str_obj)
{
	return ((const struct str_body *)str_obj)->len + 1;
}

/* Doubles the table (or makes the first one); on failure the table stays
 * as it was, still usable when it exists. */
static int grow(void)
{
	size_t n = nbuckets ? nbuckets * 2 : 64;
	struct str_body **nb = calloc(n, sizeof(*nb));

	if (nb == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < nbuckets; i++) {
		struct str_body *s = buckets[i];
		while (s != NULL) {
			struct str_body *next = s->chain;
			struct str_body **b = &nb[s->hash & (n - 1)];
			s->chain = *b;
			*b = s;
			s = next;
		}
	}
	free(buckets);
	buckets = nb;
	nbuckets = n;
	return 0;
}

MP_API void *mp_intern(const char *s)
{
	if (s == NULL) {
		errno = EINVAL;
		return NULL;
	}
	OBJHEAP_ENTER();
	size_t len = strlen(s);
	uint64_t hash = str_hash(s, len);
	struct str_body *str = NULL;

	if (nbuckets != 0) {
		for (str = buckets[hash & (nbuckets - 1)]; str != NULL; str = str->chain) {
			if (str->hash == hash && str->len == len &&
			    memcmp(str->data, s, len) == 0)
				break;
		}
	}
	if (str != NULL) {
		obj_head(str)->refcnt++;
		goto out;
	}
	if ((nstrings >= nbuckets && grow() < 0 && nbuckets == 0) ||
	    len > SIZE_MAX - sizeof(struct str_body) - 64) {
		errno = ENOMEM;
		goto out;
	}
	str = objheap_object_new(&mp_str_type, len + 1);
	if (str == NULL)
		goto out;
	str->len = len;
	str->hash = hash;
	memcpy(str->data, s, len + 1);
	struct str_body **b = &buckets[hash & (nbuckets - 1)];
	str->chain = *b;
	*b = str;
	nstrings++;
out:
	OBJHEAP_LEAVE();
	return str;
}

MP_API const char *mp_str(const void *str_obj)
{
	if (str_obj == NULL)
		return NULL;
	OBJHEAP_CHECK(str_obj);
	if (MEMPROF_DEBUG_LEVEL >= 1 &&
	    head_rec(obj_head(str_obj))->type != &mp_str_type)
		objheap_fatal("mp_str(%p): not a string from mp_intern but a %s "
			      "object (a bug in the calling program)", str_obj,
			      head_rec(obj_head(str_obj))->type->name);
	return ((const struct str_body *)str_obj)->data;
}

MP_API size_t mp_str_len(const void *str_obj)
{
	if (mp_str(str_obj) == NULL)
		return 0;
	return ((const struct str_body *)str_obj)->len;
}
