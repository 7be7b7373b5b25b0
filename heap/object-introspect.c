/*
 * object-introspect.c: what memprof's reports read from libmemprof-heap:
 * enumeration of the live tracked objects (mp_heap_foreach) and snapshots
 * of the live objects' counts by type (mp_snapshot, mp_snapshot_get),
 * from which a report derives growth between two points of the program.
 *
 * Counts by type come from the type records (object.c), which count every
 * live object, tracked or not, at no cost beyond two additions per
 * allocation and deallocation.  The library keeps the last two snapshots.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "object-private.h"

MP_API size_t mp_heap_foreach(mp_object_fn fn, void *arg)
{
	size_t n = 0;

	OBJHEAP_ENTER();
	if (objheap_gc.collecting)
		goto out;
	for (int g = 0; g <= MP_GC_GENERATIONS; g++) {
		struct gc_link *list = g < MP_GC_GENERATIONS ?
					       &objheap_gc.gens[g].head :
					       &objheap_gc.garbage;
		for (struct gc_link *l = list->next; l != list;) {
			struct gc_link *next = l->next;
			struct obj_head *h = link_head(l);

			fn(link_body(l), head_rec(h)->type, h->refcnt, arg);
			n++;
			l = next;
		}
	}
out:
	OBJHEAP_LEAVE();
	return n;
}

static struct mp_snapshot snaps[2];   /* [0] the latest */
static uint64_t snap_seq;

static int count_cmp(const void *a, const void *b)
{
	const struct mp_type_count *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->name, y->name);
}

MP_API int mp_snapshot(const char *label)
{
	size_t n = 0;

	OBJHEAP_ENTER();
	for (struct type_rec *r = objheap_type_recs; r != NULL; r = r->next_rec)
		n++;
	struct mp_type_count *types = calloc(n ? n : 1, sizeof(*types));
	if (types == NULL) {
		OBJHEAP_LEAVE();
		return -ENOMEM;
	}
	struct mp_snapshot s = { .seq = ++snap_seq, .ntypes = n, .types = types };
	size_t i = 0;
	for (struct type_rec *r = objheap_type_recs; r != NULL; r = r->next_rec, i++) {
		types[i].type = r->type;
		types[i].name = r->type->name ? r->type->name : "?";
		types[i].count = r->live_count;
		types[i].bytes = r->live_bytes;
		s.total_count += r->live_count;
		s.total_bytes += r->live_bytes;
	}
	qsort(types, n, sizeof(*types), count_cmp);
	if (label != NULL) {
		strncpy(s.label, label, sizeof(s.label) - 1);
		s.label[sizeof(s.label) - 1] = '\0';
	}
	free(snaps[1].types);
	snaps[1] = snaps[0];
	snaps[0] = s;
	OBJHEAP_LEAVE();
	return 0;
}

MP_API const struct mp_snapshot *mp_snapshot_get(unsigned which)
{
	if (which > 1 || snaps[which].seq == 0)
		return NULL;
	return &snaps[which];
}

/* Frees the snapshots at unload, so leak checkers see a clean exit. */
__attribute__((destructor)) static void snapshots_free(void)
{
	free(snaps[0].types);
	free(snaps[1].types);
	memset(snaps, 0, sizeof(snaps));
}
