/*
 * fuzz-suppress.c: libFuzzer target for the suppression files
 * (reports/suppress.c).  Main entry point: LLVMFuzzerTestOneInput().
 *
 * Each input is loaded as a suppression file; the target checks the load's
 * contract (an error leaves the set empty and names the file and a line),
 * matches the suppressions against fixed stacks and against a stack made
 * of the input's own lines, then checks the --gen-suppressions round trip
 * on that stack: the generated entry loads back and matches it.  Any broken
 * contract aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suppress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 24

static const struct supp_frame fixed[] = {
	{"malloc", NULL, "malloc.c", 3287, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
	{"Parser::push(int)", "_ZN6Parser4pushEi", "/src/app/parser.cc", 42, "/usr/bin/app"},
	{NULL, NULL, NULL, 0, NULL},
	{"main", NULL, "/src/app/main.c", 9, "/usr/bin/app"},
};

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-suppress: broken contract: %s\n", what);
		abort();
	}
}

static void match_all_kinds(struct supp_set *set, const struct supp_frame *f, size_t n)
{
	for (unsigned k = SUPP_DEFINITE; k <= SUPP_REACHABLE; k <<= 1) {
		int m = supp_set_match(set, f, n, (enum supp_leak_kind)k);

		check(m >= -1 && (m < 0 || (size_t)m < supp_set_count(set)), "match index");
		if (m >= 0)
			supp_set_record_use(set, m, 16, 1);
	}
}

/* The input's lines as the names of a stack (into storage, NUL-ended). */
static size_t stack_of(const uint8_t *data, size_t size, char *storage, struct supp_frame *f)
{
	size_t n = 0, i = 0;

	memcpy(storage, data, size);
	storage[size] = '\0';
	while (n < MAX_FRAMES && i <= size) {
		char *line = storage + i, *nl = memchr(line, '\n', size - i);
		size_t len = nl ? (size_t)(nl - line) : size - i;

		line[len] = '\0';
		memset(&f[n], 0, sizeof(f[n]));
		switch (n % 4) {
		case 0:
			f[n].function = line;
			break;
		case 1:
			f[n].function = "demangled";
			f[n].mangled = line;
			break;
		case 2:
			f[n].module = line;
			break;
		default:
			f[n].function = line;
			f[n].file = line;
			f[n].line = (unsigned)len;
			f[n].module = "/lib/x.so";
			break;
		}
		n++;
		i += len + 1;
	}
	return n;
}

static void round_trip(const struct supp_frame *f, size_t n, unsigned kinds)
{
	ssize_t len = supp_format_valgrind(f, n, kinds, f[0].function, NULL, 0);
	char err[256];

	check(len > 0, "format size");
	char *buf = malloc((size_t)len + 1);

	check(buf != NULL, "memory");
	check(supp_format_valgrind(f, n, kinds, f[0].function, buf, (size_t)len + 1) == len,
	      "format length");
	check(strlen(buf) == (size_t)len, "format NUL");

	struct supp_set *set = supp_set_create();

	check(set != NULL, "memory");
	check(supp_set_load_buffer(set, "gen", buf, (size_t)len, err, sizeof(err)) == 0,
	      "generated entry loads");
	check(supp_set_count(set) == 1, "one entry");
	for (unsigned k = SUPP_DEFINITE; k <= SUPP_REACHABLE; k <<= 1)
		check(supp_set_match(set, f, n, (enum supp_leak_kind)k) == ((kinds & k) ? 0 : -1),
		      "generated entry matches its stack");
	supp_set_destroy(set);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct supp_set *set = supp_set_create();
	struct supp_frame frames[MAX_FRAMES];
	struct supp_info info;
	char err[256];
	int r;

	if (!set)
		return 0;
	err[0] = 'x';
	r = supp_set_load_buffer(set, "fuzz.supp", (const char *)data, size, err, sizeof(err));
	if (r != 0) {
		check(supp_set_count(set) == 0, "a failed load adds nothing");
		check(supp_set_warning_count(set) == 0, "a failed load warns of nothing");
		check(strncmp(err, "fuzz.supp:", 10) == 0, "error names the file and line");
	} else {
		check(err[0] == '\0', "no error message on success");
	}
	for (size_t i = 0; i < supp_set_warning_count(set); i++)
		check(i >= SUPP_WARNINGS_MAX || supp_set_warning(set, i) != NULL, "warning");
	match_all_kinds(set, fixed, sizeof(fixed) / sizeof(fixed[0]));

	char *storage = malloc(size + 1);

	if (storage) {
		size_t n = stack_of(data, size, storage, frames);

		match_all_kinds(set, frames, n);
		unsigned kinds = size > 0 ? data[0] & SUPP_ALL_KINDS : 0;

		round_trip(frames, n, kinds ? kinds : SUPP_DEFINITE);
		free(storage);
	}
	for (size_t i = 0; i < supp_set_count(set); i++)
		check(supp_set_get(set, i, &info) && info.name && info.file, "info");
	supp_set_destroy(set);
	return 0;
}
