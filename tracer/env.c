/*
 * env.c: environment look-ups, LD_PRELOAD stripping and capture path
 * templating for the tracer (see env.h for the rules).
 *
 * Pure string functions without allocation: they run at the tracer's
 * initialisation, possibly inside the program's first malloc.
 */
#include "env.h"

#include <errno.h>
#include <string.h>

static const char *match_entry(const char *entry, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(entry, name, n) == 0 && entry[n] == '=')
		return entry + n + 1;
	return NULL;
}

const char *tracer_env_lookup(char *const *envp, const char *name)
{
	if (!envp)
		return NULL;
	for (; *envp; envp++) {
		const char *v = match_entry(*envp, name);
		if (v)
			return v;
	}
	return NULL;
}

const char *tracer_env_lookup_block(const char *block, size_t len, const char *name)
{
	size_t n = strlen(name);
	size_t i = 0;
	while (i < len) {
		const char *entry = block + i;
		const char *end = memchr(entry, '\0', len - i);
		size_t elen = end ? (size_t)(end - entry) : len - i;
		if (elen > n && memcmp(entry, name, n) == 0 && entry[n] == '=')
			return end ? entry + n + 1 : NULL; /* a cut entry is no value */
		i += elen + 1;
	}
	return NULL;
}

unsigned tracer_env_depth(const char *value)
{
	if (!value || *value == '\0')
		return 64;
	unsigned long v = 0;
	for (const char *p = value; *p; p++) {
		if (*p < '0' || *p > '9')
			return 64;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 256)
			v = 256;
	}
	if (v == 0)
		return 64;
	return (unsigned)v;
}

static bool is_sep(char c)
{
	return c == ' ' || c == ':' || c == '\t' || c == '\n';
}

static bool entry_is(const char *entry, size_t len, const char *lib_name)
{
	const char *base = entry;
	for (size_t i = 0; i < len; i++)
		if (entry[i] == '/')
			base = entry + i + 1;
	size_t blen = len - (size_t)(base - entry);
	return blen == strlen(lib_name) && memcmp(base, lib_name, blen) == 0;
}

bool tracer_env_strip_preload(char *value, const char *lib_name)
{
	bool found = false;
	for (const char *p = value; *p;) {
		while (*p && is_sep(*p))
			p++;
		const char *start = p;
		while (*p && !is_sep(*p))
			p++;
		if (p > start && entry_is(start, (size_t)(p - start), lib_name))
			found = true;
	}
	if (!found)
		return false;

	/* write position never passes read position: the result is shorter */
	char *w = value;
	const char *p = value;
	while (*p) {
		while (*p && is_sep(*p))
			p++;
		const char *start = p;
		while (*p && !is_sep(*p))
			p++;
		size_t len = (size_t)(p - start);
		if (len == 0 || entry_is(start, len, lib_name))
			continue;
		if (w != value)
			*w++ = ' ';
		memmove(w, start, len);
		w += len;
	}
	*w = '\0';
	return true;
}

static bool hidden(const char *entry)
{
	static const char *const names[] = {"MEMPROF_OUTPUT", "MEMPROF_DEPTH",
					    "MEMPROF_FREE_STACKS", "MEMPROF_SNAPSHOT_SIGNAL",
					    "MEMPROF_LEAK_CHECK_SIGNAL"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (match_entry(entry, names[i]))
			return true;
	const char *v = match_entry(entry, "LD_PRELOAD");
	return v && *v == '\0';
}

size_t tracer_env_hide(char **envp)
{
	if (!envp)
		return 0;
	char **w = envp;
	size_t removed = 0;
	for (char **e = envp; *e; e++) {
		if (hidden(*e))
			removed++;
		else
			*w++ = *e;
	}
	*w = NULL;
	return removed;
}

/* Appends the decimal form of v at out; returns its length. */
static size_t put_dec(char *out, unsigned long v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

int tracer_env_child_path(char *out, size_t cap, const char *base, pid_t pid)
{
	size_t len = strlen(base);
	if (len >= 4 && strcmp(base + len - 4, ".mpc") == 0)
		len -= 4;
	if (len + 1 + 24 + 4 + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(out, base, len);
	size_t n = len;
	out[n++] = '.';
	n += put_dec(out + n, (unsigned long)pid);
	memcpy(out + n, ".mpc", 5);
	return (int)(n + 4);
}

static bool safe_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '+' || c == '-';
}

int tracer_env_default_path(char *out, size_t cap, const char *argv0, pid_t pid)
{
	const char *prog = argv0 ? argv0 : "";
	const char *slash = strrchr(prog, '/');
	if (slash)
		prog = slash + 1;
	size_t plen = strlen(prog);
	if (plen > 128)
		plen = 128;
	if (plen == 0 || (plen <= 2 && prog[0] == '.' && (plen == 1 || prog[1] == '.'))) {
		prog = "prog";
		plen = 4;
	}
	if (8 + plen + 1 + 24 + 4 + 1 > cap)
		return -ENAMETOOLONG;
	size_t n = 0;
	memcpy(out, "memprof.", 8);
	n = 8;
	for (size_t i = 0; i < plen; i++)
		out[n++] = safe_char(prog[i]) ? prog[i] : '_';
	out[n++] = '.';
	n += put_dec(out + n, (unsigned long)pid);
	memcpy(out + n, ".mpc", 5);
	return (int)(n + 4);
}
