/*
 * leaky-cache: the program the README runs memprof on.
 *
 * It parses a few "requests", keeps their results in a small cache, builds
 * a temporary index that makes the memory peak, and forgets three things on
 * the way out: a cache entry dropped without freeing its value (definitely
 * lost), a list of session nodes whose head is lost (one definite, the rest
 * indirect), and two peers that point at each other (a leaked cycle).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char *key;
	char *value;
	struct entry *next;
};

struct session {
	int id;
	struct session *next;
};

struct peer {
	struct peer *other;
	char name[24];
};

static struct entry *cache;

static char *copy_string(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

static void cache_put(const char *key, const char *value)
{
	struct entry *e = malloc(sizeof(*e));
	if (!e)
		return;
	e->key = copy_string(key);
	e->value = copy_string(value);
	e->next = cache;
	cache = e;
}

/* Drops the newest entry, but forgets its value: the leak the report shows
 * first. */
static void cache_evict_one(void)
{
	struct entry *e = cache;
	if (!e)
		return;
	cache = e->next;
	free(e->key);
	free(e);
}

static uint64_t build_index(int n)
{
	uint64_t *index = calloc((size_t)n, sizeof(*index));
	uint64_t sum = 0;
	if (!index)
		return 0;
	for (int i = 0; i < n; i++)
		index[i] = (uint64_t)i * 2654435761u;
	for (int i = 0; i < n; i++)
		sum += index[i];
	free(index);
	return sum;
}

static struct session *open_sessions(int n)
{
	struct session *head = NULL;
	for (int i = 0; i < n; i++) {
		struct session *s = malloc(sizeof(*s));
		if (!s)
			break;
		s->id = i;
		s->next = head;
		head = s;
	}
	return head;
}

static void connect_peers(void)
{
	struct peer *a = calloc(1, sizeof(*a));
	struct peer *b = calloc(1, sizeof(*b));
	if (!a || !b)
		return;
	strcpy(a->name, "alice");
	strcpy(b->name, "bob");
	a->other = b;
	b->other = a;
}

int main(void)
{
	char key[32], value[64];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "request-%d", i);
		snprintf(value, sizeof(value), "response body for request %d", i);
		cache_put(key, value);
	}
	cache_evict_one();
	printf("index checksum: %llu\n", (unsigned long long)build_index(1 << 20));

	struct session *sessions = open_sessions(8);
	printf("first session: %d\n", sessions ? sessions->id : -1);
	sessions = NULL;
	connect_peers();
	printf("cached entries: %d\n", cache ? 99 : 0);
	return 0;
}
