/*
 * bigheap: a big live heap for the at-exit leak scan.  Builds N blocks of
 * 128 bytes (default 16 million, 2 GiB), then exits with them all live.
 * They form chains of four (each block's first word points to the next);
 * a global table points to the head of every other chain, so half the
 * blocks are reachable and the other half are lost (a definite head with
 * three indirect blocks behind it).  The other words hold small integers,
 * words the scan must look at and reject.  Usage: bigheap [N]
 * Under memprof, the report's notes give the scan's duration.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BLOCK 128
#define CHAIN 4

/* the roots: one pointer per chain, NULL for a lost chain (not static: a
 * static the program never reads may be optimised away) */
void **heads;

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 16000000u;
	size_t chains = (n + CHAIN - 1) / CHAIN;
	heads = calloc(chains, sizeof(*heads));
	if (!heads) {
		perror("bigheap");
		return 1;
	}
	size_t made = 0;
	for (size_t k = 0; k < chains; k++) {
		uintptr_t *next = NULL;
		/* allocate the chain front to back, link it back to front */
		uintptr_t *blk[CHAIN];
		size_t len = 0;
		for (; len < CHAIN && made < n; len++, made++) {
			blk[len] = malloc(BLOCK);
			if (!blk[len]) {
				perror("bigheap");
				return 1;
			}
			for (size_t w = 1; w < BLOCK / sizeof(uintptr_t); w++)
				blk[len][w] = made * 16 + w;
		}
		for (size_t j = len; j-- > 0;) {
			blk[j][0] = (uintptr_t)next;
			next = blk[j];
		}
		heads[k] = k % 2 == 0 ? (void *)next : NULL;
	}
	printf("bigheap: %zu blocks of %d bytes, %zu chains, half of them lost\n", made,
	       BLOCK, chains);
	return 0;
}
