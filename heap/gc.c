/*
 * gc.c: the cycle collector of libmemprof-heap.  Main entry points:
 * mp_gc_collect() and objheap_gc_collect_generations() (from mp_new).
 *
 * Reference counting frees an object when its last reference goes, but
 * never frees a group of objects that reference each other.  The
 * collector finds such groups among the tracked objects (those whose type
 * has a traverse function) without knowing the program's roots: an object
 * that is referenced from outside the set being examined (a C variable,
 * an untracked or older object) has more references than the set itself
 * accounts for.
 *
 * Generations.  Tracked objects live on three doubly linked lists.  New
 * objects join generation 0; the objects that survive a collection of
 * generation N move to generation N+1 (2 stays 2).  Collecting generation
 * N examines N and every younger generation merged together ("young");
 * references from older generations count as outside references.
 *   - gens[0].count: tracked allocations minus deallocations since the
 *     last collection of generation 0; over threshold 0 (default 700),
 *     the next tracked mp_new collects.
 *   - gens[1].count, gens[2].count: collections of the generation below
 *     since this one was last collected (thresholds 10 and 10).
 *   - The oldest generation over its threshold is collected, except that
 *     generation 2 is only collected when long_lived_pending (objects
 *     moved into generation 2 since the last full collection) exceeds
 *     long_lived_total / 4 (objects that survived the last full
 *     collection): full collections then cost amortized linear time.
 *
 * One collection of young, the phases and what holds between them:
 *
 *   update_refs     for each object: gc_refs = refcount, COLLECTING set.
 *                   After: young is singly linked (u holds gc_refs, not
 *                   prev); every object in young has COLLECTING; no other
 *                   object has it.
 *   subtract_refs   traverse each object, gc_refs-- for each referent that
 *                   is COLLECTING.  After: gc_refs >= 0 is the number of
 *                   references to the object from outside young (a
 *                   negative value means the program's refcounts are
 *                   wrong; debug builds abort).  A full collection runs
 *                   both phases as one pass (see visit_decref_full).
 *   move_unreachable  one scan of young in list order.  An object with
 *                   gc_refs > 0 is reachable: it stays, COLLECTING is
 *                   cleared, its prev link is rebuilt, and it is
 *                   traversed: a referent ahead of the scan gets gc_refs =
 *                   1 (the scan will keep it), a referent already moved
 *                   to unreachable goes back to young's tail with gc_refs
 *                   = 1 (the scan will reach it again).  An object with
 *                   gc_refs == 0 moves to unreachable, TENTATIVE, for now.
 *                   After: young is a proper list of exactly the objects
 *                   reachable from outside, flags cleared, merged into
 *                   the older generation; unreachable is a proper list of
 *                   objects with COLLECTING and TENTATIVE, and nothing
 *                   outside it references them, so no code but ours can
 *                   reach them.  Each object is traversed at most once
 *                   and moved at most twice: linear time.
 *   SAVEALL         with MP_GC_DEBUG_SAVEALL, all of unreachable moves to
 *                   the garbage list (one reference held each), untouched.
 *   uncollectable   objects whose type has no clear, and every unreachable
 *                   object they reach, move to the garbage list untouched:
 *                   the collector cannot break them.  After: every object
 *                   left in unreachable has a clear function.
 *   weakrefs        every weak reference to an unreachable object is
 *                   cleared; the callbacks of those that are not
 *                   themselves unreachable run afterwards, once all are
 *                   cleared.  After: no weak reference reaches an object
 *                   of unreachable (so user code cannot either).
 *   finalize        each finalizer not yet run runs, once in the object's
 *                   life (FINALIZED), with a reference held across it.  An
 *                   object that dies meanwhile leaves the list.
 *   resurrection    if any user code ran (callbacks, finalizers), gc_refs
 *                   are recomputed over unreachable (update_refs +
 *                   subtract_refs): if any object is now referenced from
 *                   outside, every object of unreachable survives this
 *                   round and moves to the older generation.
 *   delete_garbage  clear each object (holding a reference across the
 *                   call, CLEARED set after it so that its deallocation
 *                   does not clear it again); objects whose refcount
 *                   reaches 0 are freed and leave the list; those still
 *                   alive at the end (held from outside) move to the older
 *                   generation.  After: unreachable is empty.
 *
 * The count a collection returns is exact: deallocating an object that is
 * COLLECTING marks it GC_DEATH, and freeing it then counts.
 *
 * Deallocating untracks an object and clears COLLECTING and REACHABLE, so
 * flags never outlive the collection that set them.
 */
#include "config.h"

#include "object-private.h"

#define GEN_INIT(n, t)                                                      \
	{                                                                   \
		.head = { &objheap_gc.gens[n].head,                         \
			  { .prev = &objheap_gc.gens[n].head } },           \
		.threshold = (t),                                           \
	}

struct gc_state objheap_gc = {
	.gens = { GEN_INIT(0, 700), GEN_INIT(1, 10), GEN_INIT(2, 10) },
	.garbage = { &objheap_gc.garbage, { .prev = &objheap_gc.garbage } },
	.enabled = true,
};

size_t gc_list_size(const struct gc_link *list)
{
	size_t n = 0;

	for (const struct gc_link *l = list->next; l != list; l = l->next)
		n++;
	return n;
}

static inline const struct type_rec *link_rec(const struct gc_link *l)
{
	return head_rec(link_head(l));
}

#if MEMPROF_DEBUG_LEVEL >= 3
/* Expensive check: the list is doubly linked, all flags as expected. */
static void validate_list(const struct gc_link *list, unsigned want_flags)
{
	const struct gc_link *prev = list;

	for (const struct gc_link *l = list->next; l != list; l = l->next) {
		if (l->u.prev != prev)
			objheap_fatal("collector list %p broken at %p", (void *)list,
				      (void *)l);
		unsigned f = link_head(l)->rec_flags &
			     (OBJ_COLLECTING | OBJ_TENTATIVE);
		if (f != want_flags)
			objheap_fatal("object %p has flags %#x, expected %#x",
				      link_body(l), f, want_flags);
		prev = l;
	}
}
#else
#define validate_list(list, flags) ((void)0)
#endif

/* ---- computing reachability ------------------------------------------- */

static void update_refs(struct gc_link *young)
{
	for (struct gc_link *l = young->next; l != young; l = l->next) {
		struct obj_head *h = link_head(l);

		l->u.refs = (intptr_t)h->refcnt;
		head_set(h, OBJ_COLLECTING);
	}
}

static inline void refs_decrement(struct obj_head *h, struct gc_link *l)
{
	if (MEMPROF_DEBUG_LEVEL >= 1 && l->u.refs <= 0)
		objheap_fatal("collector: the %s object %p is referenced more "
			      "often than its refcount says (a missing mp_incref "
			      "in the calling program)",
			      head_rec(h)->type->name ? head_rec(h)->type->name : "?",
			      obj_body(h));
	l->u.refs--;
}

static void visit_decref(void *ref, void *arg)
{
	if (ref == NULL)
		return;
	struct obj_head *h = obj_head(ref);
	if (!head_has(h, OBJ_COLLECTING))
		return;
	refs_decrement(h, obj_link(ref));
}

static void subtract_refs(struct gc_link *young)
{
	for (struct gc_link *l = young->next; l != young; l = l->next)
		link_rec(l)->traverse(link_body(l), visit_decref, NULL);
}

/* A full collection examines every tracked object on a generation list:
 * those are the tracked objects outside the garbage list and not being
 * deallocated (off every list, next == NULL).  That test lets update_refs
 * and subtract_refs run as one pass, each object's gc_refs initialized when
 * first met, as the scan's object or as a referent. */
static void visit_decref_full(void *ref, void *arg)
{
	if (ref == NULL)
		return;
	struct obj_head *h = obj_head(ref);
	struct gc_link *l = obj_link(ref);
	if (!head_has(h, OBJ_COLLECTING)) {
		if (!head_rec(h)->tracked || head_has(h, OBJ_GARBAGE) ||
		    l->next == NULL)
			return;
		l->u.refs = (intptr_t)h->refcnt;
		head_set(h, OBJ_COLLECTING);
	}
	refs_decrement(h, l);
}

static void update_and_subtract_refs_full(struct gc_link *young)
{
	for (struct gc_link *l = young->next; l != young; l = l->next) {
		struct obj_head *h = link_head(l);

		if (!head_has(h, OBJ_COLLECTING)) {
			l->u.refs = (intptr_t)h->refcnt;
			head_set(h, OBJ_COLLECTING);
		}
		head_rec(h)->traverse(link_body(l), visit_decref_full, NULL);
	}
}

/* What move_unreachable found among the unreachable objects, so that the
 * phases with nothing to do are skipped. */
struct unreachable_info {
	size_t reachable;  /* objects left in young */
	size_t no_clear;   /* objects whose type has no clear */
	size_t weakrefs;   /* objects with weak references */
	size_t finalize;   /* objects whose finalizer has yet to run */
};

static inline void info_count(struct unreachable_info *info,
			      struct obj_head *h, int sign)
{
	const struct type_rec *rec = head_rec(h);

	/* Most types have clear, no finalizer, no weak references. */
	if (rec->has_clear && !rec->has_finalize &&
	    !head_has(h, OBJ_WEAKREFS))
		return;
	if (!rec->has_clear)
		info->no_clear += (size_t)sign;
	if (head_has(h, OBJ_WEAKREFS))
		info->weakrefs += (size_t)sign;
	if (rec->has_finalize && !head_has(h, OBJ_FINALIZED))
		info->finalize += (size_t)sign;
}

struct reach_ctx {
	struct gc_link *young;
	struct gc_link *unreachable;
	struct unreachable_info *info;
};

static void visit_reachable(void *ref, void *arg)
{
	if (ref == NULL)
		return;
	struct obj_head *h = obj_head(ref);
	if (!head_has(h, OBJ_COLLECTING))
		return;   /* not in young, or already scanned reachable */
	struct gc_link *l = obj_link(ref);
	if (!head_has(h, OBJ_TENTATIVE)) {
		/* Ahead of the scan: the scan will find it reachable. */
		if (l->u.refs == 0)
			l->u.refs = 1;
		return;
	}
	/* Behind the scan, tentatively unreachable: back to young's tail,
	 * where the scan will reach it again. */
	struct reach_ctx *ctx = arg;
	struct gc_link *young = ctx->young;
	struct gc_link *last = young->u.prev;

	gc_list_remove(l);
	head_unset(h, OBJ_TENTATIVE);
	info_count(ctx->info, h, -1);
	last->next = l;
	l->next = young;
	young->u.prev = l;
	l->u.refs = 1;
}

/* Moves the objects of young not reachable from outside to unreachable.
 * Returns what it found in info. */
static void move_unreachable(struct gc_link *young, struct gc_link *unreachable,
			     struct unreachable_info *info)
{
	struct reach_ctx ctx = { young, unreachable, info };
	struct gc_link *prev = young;
	struct gc_link *l = young->next;

	/* Invariant: young, from its head to prev, is a proper doubly linked
	 * list of objects scanned reachable (COLLECTING cleared); after prev
	 * come the objects yet to scan, u holding gc_refs, singly linked;
	 * young->u.prev is the last of them.  unreachable is a proper list of
	 * objects with COLLECTING and TENTATIVE, all behind the scan. */
	while (l != young) {
		struct obj_head *h = link_head(l);

		if (l->u.refs > 0) {
			link_rec(l)->traverse(link_body(l), visit_reachable, &ctx);
			l->u.prev = prev;
			head_unset(h, OBJ_COLLECTING);
			info->reachable++;
			prev = l;
		} else {
			/* Tentatively unreachable: a later object may still
			 * reach it and move it back. */
			prev->next = l->next;
			head_set(h, OBJ_TENTATIVE);
			info_count(info, h, 1);
			gc_list_append(l, unreachable);
		}
		l = prev->next;
	}
	young->u.prev = prev;
}

/* After update_refs on list: gives back the prev links. */
static void restore_prev(struct gc_link *list)
{
	struct gc_link *prev = list;

	for (struct gc_link *l = list->next; l != list; l = l->next) {
		l->u.prev = prev;
		prev = l;
	}
	list->u.prev = prev;
}

/* ---- dealing with the unreachable ---------------------------------------- */

/* Moves a whole list to the garbage list, which holds a reference to each
 * object.  Returns the number moved. */
static size_t move_to_garbage(struct gc_link *list)
{
	size_t n = 0;

	for (struct gc_link *l = list->next; l != list; l = l->next) {
		struct obj_head *h = link_head(l);

		h->refcnt++;
		head_unset(h, OBJ_COLLECTING | OBJ_TENTATIVE);
		head_set(h, OBJ_GARBAGE);
		n++;
	}
	gc_list_merge(list, &objheap_gc.garbage);
	objheap_gc.garbage_count += n;
	return n;
}

static void visit_move_uncollectable(void *ref, void *arg)
{
	if (ref == NULL)
		return;
	struct obj_head *h = obj_head(ref);
	if (!head_has(h, OBJ_COLLECTING))
		return;
	head_unset(h, OBJ_COLLECTING);
	gc_list_move(obj_link(ref), arg);
}

/* Moves the objects without clear, and all they reach in unreachable, to
 * uncoll.  Objects on uncoll have COLLECTING cleared, so each moves once. */
static void move_uncollectable(struct gc_link *unreachable,
			       struct gc_link *uncoll)
{
	struct gc_link *l = unreachable->next;

	while (l != unreachable) {
		struct gc_link *next = l->next;

		if (!link_rec(l)->has_clear) {
			head_unset(link_head(l), OBJ_COLLECTING);
			gc_list_move(l, uncoll);
		}
		l = next;
	}
	/* Referents are appended behind l: the loop reaches them too. */
	for (l = uncoll->next; l != uncoll; l = l->next)
		link_rec(l)->traverse(link_body(l), visit_move_uncollectable,
				       uncoll);
}

/* Clears the weak references to unreachable objects, then runs the
 * callbacks of the surviving ones.  Returns the number of callbacks run. */
static size_t handle_weakrefs(struct gc_link *unreachable)
{
	struct mp_weakref *pending = NULL;

	for (struct gc_link *l = unreachable->next; l != unreachable; l = l->next) {
		struct obj_head *h = link_head(l);

		if (head_has(h, OBJ_WEAKREFS))
			objheap_weakref_clear_all(h, true, &pending);
	}
	return objheap_weakref_run_callbacks(pending);
}

/* Runs the finalizers not yet run.  Returns how many ran. */
static size_t finalize_garbage(struct gc_link *unreachable)
{
	struct gc_link seen;
	size_t n = 0;

	gc_list_init(&seen);
	while (!gc_list_is_empty(unreachable)) {
		struct gc_link *l = unreachable->next;
		struct obj_head *h = link_head(l);
		const struct mp_type *type = head_rec(h)->type;

		gc_list_move(l, &seen);
		if (type->finalize == NULL || head_has(h, OBJ_FINALIZED))
			continue;
		head_set(h, OBJ_FINALIZED);
		h->refcnt++;
		type->finalize(link_body(l));
		n++;
		/* The finalizer may have dropped the references that kept
		 * the object alive: then it dies now, leaving seen. */
		if (--h->refcnt == 0)
			objheap_object_dealloc(h);
	}
	gc_list_merge(&seen, unreachable);
	return n;
}

/* Whether any object of unreachable is referenced from outside it now. */
static bool any_resurrected(struct gc_link *unreachable)
{
	bool any = false;

	update_refs(unreachable);
	subtract_refs(unreachable);
	for (struct gc_link *l = unreachable->next; l != unreachable; l = l->next) {
		if (l->u.refs > 0) {
			any = true;
			break;
		}
	}
	restore_prev(unreachable);
	return any;
}

/* Moves every object of list to old, clearing the collection's flags. */
static void survive_all(struct gc_link *list, struct gc_link *old)
{
	for (struct gc_link *l = list->next; l != list; l = l->next)
		head_unset(link_head(l), OBJ_COLLECTING | OBJ_TENTATIVE);
	gc_list_merge(list, old);
}

/* Clears every object.  Most die while another one is being cleared or
 * right after their own clear; one still alive then waits on "cleared"
 * (it may die later in the loop) and at the end moves to old. */
static void delete_garbage(struct gc_link *unreachable, struct gc_link *old)
{
	struct gc_link cleared;

	gc_list_init(&cleared);
	while (!gc_list_is_empty(unreachable)) {
		struct gc_link *l = unreachable->next;
		struct obj_head *h = link_head(l);

		h->refcnt++;
		head_rec(h)->clear(link_body(l));
		/* Its death must not clear it a second time. */
		head_set(h, OBJ_CLEARED);
		if (--h->refcnt == 0)
			objheap_object_dealloc(h);
		else
			gc_list_move(l, &cleared);
	}
	/* Survivors: someone outside holds them; they may hold references
	 * again before they die. */
	for (struct gc_link *l = cleared.next; l != &cleared; l = l->next)
		head_unset(link_head(l), OBJ_COLLECTING | OBJ_TENTATIVE |
						 OBJ_CLEARED);
	gc_list_merge(&cleared, old);
}

/* ---- one collection ------------------------------------------------------- */

static size_t collect(int gen)
{
	struct gc_state *gc = &objheap_gc;
	struct gc_link *young = &gc->gens[gen].head;
	struct gc_link *old = gen < MP_GC_GENERATIONS - 1 ?
				      &gc->gens[gen + 1].head : young;
	struct gc_link unreachable, uncoll;
	size_t collected = 0, uncollectable = 0;

	gc->collecting = true;
	if (gen < MP_GC_GENERATIONS - 1)
		gc->gens[gen + 1].count++;
	for (int i = 0; i <= gen; i++)
		gc->gens[i].count = 0;
	for (int i = 0; i < gen; i++)
		gc_list_merge(&gc->gens[i].head, young);
	validate_list(young, 0);

	if (gen == MP_GC_GENERATIONS - 1) {
		update_and_subtract_refs_full(young);
	} else {
		update_refs(young);
		subtract_refs(young);
	}
	gc_list_init(&unreachable);
	struct unreachable_info info = { 0 };
	move_unreachable(young, &unreachable, &info);
	size_t nreach = info.reachable;
	if (young != old)
		gc_list_merge(young, old);
	if (gen == MP_GC_GENERATIONS - 2) {
		gc->long_lived_pending += nreach;
	} else if (gen == MP_GC_GENERATIONS - 1) {
		gc->long_lived_pending = 0;
		gc->long_lived_total = nreach;
	}
	validate_list(old, 0);
	validate_list(&unreachable, OBJ_COLLECTING | OBJ_TENTATIVE);

	size_t deaths_before = gc->gc_deaths;
	if (gc_list_is_empty(&unreachable))
		goto done;
	if (gc->debug & MP_GC_DEBUG_SAVEALL) {
		collected = move_to_garbage(&unreachable);
		goto done;
	}
	if (info.no_clear != 0) {
		gc_list_init(&uncoll);
		move_uncollectable(&unreachable, &uncoll);
		uncollectable = move_to_garbage(&uncoll);
	}
	size_t ran = 0;
	if (info.weakrefs != 0)
		ran += handle_weakrefs(&unreachable);
	if (info.finalize != 0)
		ran += finalize_garbage(&unreachable);
	if (ran != 0 && any_resurrected(&unreachable))
		survive_all(&unreachable, old);
	else
		delete_garbage(&unreachable, old);
	/* Every unreachable object freed since split, in any phase. */
	collected = gc->gc_deaths - deaths_before;
done:
	gc->gens[gen].stats.collections++;
	gc->gens[gen].stats.collected += collected;
	gc->gens[gen].stats.uncollectable += uncollectable;
	gc->collecting = false;
	return collected;
}

void objheap_gc_collect_generations(void)
{
	struct gc_state *gc = &objheap_gc;

	for (int i = MP_GC_GENERATIONS - 1; i >= 0; i--) {
		if (gc->gens[i].count <= gc->gens[i].threshold)
			continue;
		if (i == MP_GC_GENERATIONS - 1 &&
		    gc->long_lived_pending < gc->long_lived_total / 4)
			continue;
		collect(i);
		break;
	}
}

/* ---- the public interface ------------------------------------------------- */

MP_API size_t mp_gc_collect(int generation)
{
	if (generation < -1 || generation >= MP_GC_GENERATIONS)
		return 0;
	if (generation == -1)
		generation = MP_GC_GENERATIONS - 1;
	OBJHEAP_ENTER();
	size_t n = objheap_gc.collecting ? 0 : collect(generation);
	OBJHEAP_LEAVE();
	return n;
}

MP_API void mp_gc_enable(void)
{
	objheap_gc.enabled = true;
}

MP_API void mp_gc_disable(void)
{
	objheap_gc.enabled = false;
}

MP_API bool mp_gc_isenabled(void)
{
	return objheap_gc.enabled;
}

MP_API void mp_gc_set_threshold(unsigned gen0, unsigned gen1, unsigned gen2)
{
	objheap_gc.gens[0].threshold = gen0;
	objheap_gc.gens[1].threshold = gen1;
	objheap_gc.gens[2].threshold = gen2;
}

MP_API void mp_gc_get_threshold(unsigned thresholds[MP_GC_GENERATIONS])
{
	for (int i = 0; i < MP_GC_GENERATIONS; i++)
		thresholds[i] = objheap_gc.gens[i].threshold;
}

MP_API void mp_gc_get_count(unsigned counts[MP_GC_GENERATIONS])
{
	for (int i = 0; i < MP_GC_GENERATIONS; i++)
		counts[i] = objheap_gc.gens[i].count;
}

MP_API void mp_gc_get_stats(struct mp_gc_stats stats[MP_GC_GENERATIONS])
{
	for (int i = 0; i < MP_GC_GENERATIONS; i++)
		stats[i] = objheap_gc.gens[i].stats;
}

MP_API void mp_gc_set_debug(unsigned flags)
{
	objheap_gc.debug = flags;
}

MP_API unsigned mp_gc_get_debug(void)
{
	return objheap_gc.debug;
}

MP_API size_t mp_gc_garbage_foreach(mp_object_fn fn, void *arg)
{
	size_t n = 0;
	struct gc_link *list = &objheap_gc.garbage;

	OBJHEAP_ENTER();
	for (struct gc_link *l = list->next; l != list;) {
		struct gc_link *next = l->next;
		struct obj_head *h = link_head(l);

		fn(link_body(l), head_rec(h)->type, h->refcnt, arg);
		n++;
		l = next;
	}
	OBJHEAP_LEAVE();
	return n;
}

MP_API size_t mp_gc_garbage_count(void)
{
	return objheap_gc.garbage_count;
}

MP_API size_t mp_gc_garbage_release(void)
{
	struct gc_link local;
	size_t n = 0;

	OBJHEAP_ENTER();
	gc_list_init(&local);
	gc_list_merge(&objheap_gc.garbage, &local);
	objheap_gc.garbage_count = 0;
	/* Each object keeps the list's reference until its own turn, so
	 * freeing one never frees another still on local. */
	while (!gc_list_is_empty(&local)) {
		struct gc_link *l = local.next;
		struct obj_head *h = link_head(l);

		head_unset(h, OBJ_GARBAGE);
		gc_list_move(l, &objheap_gc.gens[MP_GC_GENERATIONS - 1].head);
		n++;
		if (--h->refcnt == 0)
			objheap_object_dealloc(h);
	}
	OBJHEAP_LEAVE();
	return n;
}
