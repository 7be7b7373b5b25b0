/*
 * graph-cycle: the README's example of libmemprof-heap.
 *
 * It builds a small document tree of refcounted objects in which every
 * child keeps a strong reference to its parent, a cycle the program
 * forgets to break.  Dropping the root frees nothing: refcounting alone
 * cannot free a cycle.  The program shows it with two snapshots of the
 * live objects by type, then lets the cycle collector find and free them.
 *
 *   graph-cycle           build, drop, show the leak, collect
 *   graph-cycle --leak    build, drop, exit with the cycle still alive
 *                         (what `memprof run` reports as a leaked cycle)
 */
#include <stdio.h>
#include <string.h>

#include "memprof/heap.h"

struct element {
	void *name;                /* an interned string */
	struct element *parent;    /* strong: the cycle */
	struct element *children[3];
};

static void element_traverse(void *obj, mp_visit_fn visit, void *arg)
{
	struct element *e = obj;

	visit(e->name, arg);
	visit(e->parent, arg);
	for (int i = 0; i < 3; i++)
		visit(e->children[i], arg);
}

static void drop(void **slot)
{
	void *obj = *slot;

	*slot = NULL;
	mp_decref(obj);
}

static void element_clear(void *obj)
{
	struct element *e = obj;

	drop(&e->name);
	drop((void **)&e->parent);
	for (int i = 0; i < 3; i++)
		drop((void **)&e->children[i]);
}

static const struct mp_type element_type = {
	.name = "element",
	.size = sizeof(struct element),
	.traverse = element_traverse,
	.clear = element_clear,
};

static struct element *element_new(const char *name, struct element *parent,
				   int slot)
{
	struct element *e = mp_new(&element_type);

	if (e == NULL)
		return NULL;
	e->name = mp_intern(name);
	if (parent != NULL) {
		e->parent = mp_incref(parent);          /* child -> parent */
		parent->children[slot] = mp_incref(e);  /* parent -> child */
	}
	return e;
}

/* A root with three sections of three paragraphs each. */
static struct element *build_document(void)
{
	struct element *root = element_new("document", NULL, 0);

	for (int i = 0; i < 3 && root != NULL; i++) {
		struct element *sec = element_new("section", root, i);
		for (int j = 0; j < 3 && sec != NULL; j++)
			mp_decref(element_new("paragraph", sec, j));
		mp_decref(sec);
	}
	return root;
}

static void print_growth(void)
{
	const struct mp_snapshot *now = mp_snapshot_get(0);
	const struct mp_snapshot *before = mp_snapshot_get(1);

	printf("live objects by type, %s -> %s:\n", before->label, now->label);
	for (size_t i = 0; i < now->ntypes; i++) {
		size_t old = 0;
		for (size_t j = 0; j < before->ntypes; j++) {
			if (before->types[j].type == now->types[i].type)
				old = before->types[j].count;
		}
		printf("  %-10s %4zu  (%+ld)\n", now->types[i].name,
		       now->types[i].count, (long)now->types[i].count - (long)old);
	}
}

int main(int argc, char **argv)
{
	bool leak = argc > 1 && strcmp(argv[1], "--leak") == 0;

	mp_gc_disable();   /* collect only when this program says so */
	mp_snapshot("start");
	struct element *doc = build_document();
	if (doc == NULL) {
		fprintf(stderr, "graph-cycle: out of memory\n");
		return 1;
	}
	mp_decref(doc);    /* the last outside reference: nothing is freed */
	mp_snapshot("root dropped");
	print_growth();
	if (leak) {
		printf("exiting with the cycle alive\n");
		return 0;
	}
	size_t freed = mp_gc_collect(-1);
	mp_snapshot("collected");
	printf("the collector freed %zu objects\n", freed);
	print_growth();
	return 0;
}
