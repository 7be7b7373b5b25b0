/*
 * bintree: the binary-trees benchmark (deep recursion, many small nodes).
 * Builds and checks trees of increasing depth up to the given maximum
 * (default 18), keeping one long-lived tree.  Usage: bintree [DEPTH]
 */
#include <stdio.h>
#include <stdlib.h>

struct node {
	struct node *left, *right;
};

static struct node *make_tree(int depth)
{
	struct node *n = malloc(sizeof(*n));
	if (!n)
		abort();
	if (depth > 0) {
		n->left = make_tree(depth - 1);
		n->right = make_tree(depth - 1);
	} else {
		n->left = n->right = NULL;
	}
	return n;
}

static long check_tree(const struct node *n)
{
	if (!n->left)
		return 1;
	return 1 + check_tree(n->left) + check_tree(n->right);
}

static void free_tree(struct node *n)
{
	if (n->left) {
		free_tree(n->left);
		free_tree(n->right);
	}
	free(n);
}

int main(int argc, char **argv)
{
	int max_depth = argc > 1 ? atoi(argv[1]) : 18;
	if (max_depth < 6)
		max_depth = 6;
	struct node *stretch = make_tree(max_depth + 1);
	printf("stretch tree of depth %d\t check: %ld\n", max_depth + 1, check_tree(stretch));
	free_tree(stretch);

	struct node *long_lived = make_tree(max_depth);
	for (int d = 4; d <= max_depth; d += 2) {
		long iterations = 1L << (max_depth - d + 4);
		long check = 0;
		for (long i = 0; i < iterations; i++) {
			struct node *t = make_tree(d);
			check += check_tree(t);
			free_tree(t);
		}
		printf("%ld\t trees of depth %d\t check: %ld\n", iterations, d, check);
	}
	printf("long lived tree of depth %d\t check: %ld\n", max_depth, check_tree(long_lived));
	free_tree(long_lived);
	return 0;
}
