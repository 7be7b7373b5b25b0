/*
 * churn: small-object churn through a few stack frames.  N allocations
 * (default 20 million) of 8..4096 bytes, skewed towards small sizes, with a
 * sliding window of live blocks.  Usage: churn [N]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 4096

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t pick_size(void)
{
	uint64_t r = next_random();
	/* three quarters small (8..256), the rest up to 4096 */
	if ((r & 3) != 0)
		return 8 + (size_t)((r >> 8) % 249);
	return 8 + (size_t)((r >> 8) % 4089);
}

__attribute__((noinline)) static void *make_block(size_t size)
{
	char *p = malloc(size);
	if (p)
		p[0] = (char)size;
	return p;
}

__attribute__((noinline)) static void *make_record(void)
{
	return make_block(pick_size());
}

__attribute__((noinline)) static void *make_message(void)
{
	return make_record();
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000000L;
	static void *window[WINDOW];
	uint64_t sum = 0;
	for (long i = 0; i < n; i++) {
		size_t slot = (size_t)(next_random() % WINDOW);
		free(window[slot]);
		window[slot] = (i & 1) ? make_message() : make_record();
		sum += (uintptr_t)window[slot] & 0xff;
	}
	for (size_t i = 0; i < WINDOW; i++)
		free(window[i]);
	printf("churn: %ld allocations, checksum %llu\n", n, (unsigned long long)sum);
	return 0;
}
