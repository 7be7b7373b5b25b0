/*
 * suppress.h: leak suppressions, as read by `memprof run --suppressions FILE`.
 *
 * A suppression set is loaded from any number of files (or buffers), each in
 * LeakSanitizer's format, valgrind's format, or a mix of both, then asked,
 * leak record by leak record, whether the allocation stack of the record is
 * suppressed.  Main entry points: supp_set_load_file(), supp_set_match().
 *
 * How the analysis must use it (the wiring in reports/ and cli/):
 *   - A suppressed block counts as a root of the leak scan: everything that
 *     is reachable from a suppressed block is not reported either (it is
 *     neither "definitely" nor "indirectly" lost), exactly as with valgrind
 *     and LeakSanitizer.  Suppressed records are reported under "suppressed".
 *   - The frames passed to supp_set_match() are the allocation stack,
 *     innermost first, with inlined calls expanded, and frames[0] being the
 *     allocation function the program called (malloc, calloc, realloc,
 *     _Znwm...): valgrind's suppressions usually start with "fun:malloc"
 *     and only match a stack that starts there too.
 *   - fun: lines of valgrind's format match the LINKAGE (mangled) name, so
 *     struct supp_frame carries both names; see below.
 *
 * LeakSanitizer's format (compiler-rt's sanitizer_suppressions.cpp):
 *   one suppression a line, `leak:PATTERN`; blank lines and lines whose
 *   first non-blank character is '#' are skipped; leading spaces and tabs
 *   and trailing spaces, tabs and CRs are trimmed.  PATTERN is matched
 *   against the function name (demangled), the source file path and the
 *   module path of EVERY frame of the stack; it matches when it matches any
 *   of them.  In PATTERN, '*' matches any run of characters, a leading '^'
 *   anchors at the start, a '$' anchors at the end (and ends the pattern:
 *   text after it is ignored, with a warning), otherwise the pattern matches
 *   anywhere (a substring).  '?' is not a wildcard there.  An empty pattern
 *   matches every leak (a warning says so).  Suppressions of the other
 *   sanitizers' types (called_from_lib:, race:, interceptor_via_fun:,
 *   vptr_check:...) are accepted and ignored with a warning; an unknown type
 *   is an error.
 *   Difference: LeakSanitizer anchors '$' on the FIRST occurrence of the
 *   last literal piece ("foo$" does not match "foofoo" there); memprof
 *   anchors it properly, so it matches a superset.
 *
 * valgrind's format (coregrind/m_errormgr.c, memcheck/mc_errors.c):
 *     {
 *        NAME
 *        Memcheck:Leak
 *        match-leak-kinds: definite,indirect     (optional)
 *        fun:PATTERN | obj:PATTERN | src:FILE[:LINE] | ...
 *        ...
 *     }
 *   Lines are trimmed; lines starting with '#' are comments.  The frame lines
 *   match the stack from its innermost frame outwards; "..." matches zero or
 *   more frames; the suppression matches when its frame lines match a PREFIX
 *   of the stack (frames after the last line do not matter).  In patterns,
 *   '*' matches any run of characters and '?' exactly one, against the whole
 *   name:
 *     fun:  the linkage name (supp_frame.mangled, or .function when NULL),
 *           "???" when the frame has no name; valgrind never matches fun:
 *           against the demangled C++ name (its manual: "C++ function names
 *           must be mangled").
 *     obj:  the module path, "???" when unknown.
 *     src:  the source file name without its directory; a frame without a
 *           file does not match; with :LINE, the line must be equal too.
 *   match-leak-kinds takes definite, indirect, possible, reachable (comma
 *   separated; blanks around the words are accepted, valgrind rejects
 *   them), or "all", or "none"; without the line the suppression
 *   applies to all kinds (valgrind's default).  At most SUPP_FRAME_LINES_MAX
 *   frame lines, at least one that is not "...".  Blocks of other kinds
 *   (Memcheck:Cond, Memcheck:Param, Memcheck:Addr4...) and of other tools
 *   (Helgrind:Race...) are skipped up to their '}'; an unknown Memcheck kind
 *   is an error, as in valgrind, and so is a frame line where the kind line
 *   should be (valgrind would skip that block as another tool's).
 *   Difference: valgrind ignores frame lines beyond --num-callers; memprof
 *   uses all of them, so a suppression longer than the recorded stack does
 *   not match.
 *
 * Errors (bad or hostile files): a load returns -EINVAL and writes one line,
 * "FILE:LINE: what is wrong", into the caller's buffer; the suppressions of
 * that file are all dropped (a load is all or nothing) and the set stays as
 * it was.  Loading and matching use memory linear in the input and time
 * O(pattern length x name length) per comparison (no backtracking blow-up).
 *
 * Nothing here prints: warnings are kept in the set (supp_set_warning()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Limits: longer lines, larger files and more frame lines are errors. */
#define SUPP_LINE_MAX 65536u
#define SUPP_FILE_MAX (64u * 1024u * 1024u)
#define SUPP_FRAME_LINES_MAX 500u
/* Warnings kept per set (more are counted, not kept). */
#define SUPP_WARNINGS_MAX 64u

/* One frame of an allocation stack.  Every string may be NULL (unknown);
 * an empty string counts as unknown too. */
struct supp_frame {
	const char *function; /* the name as people read it: demangled for C++ */
	const char *mangled;  /* the linkage name when it differs (C++), or NULL */
	const char *file;     /* source file path */
	unsigned line;	      /* 0 when unknown */
	const char *module;   /* path of the executable or shared object */
};

/* valgrind's leak kinds, as bits. */
enum supp_leak_kind {
	SUPP_DEFINITE = 1,
	SUPP_INDIRECT = 2,
	SUPP_POSSIBLE = 4,
	SUPP_REACHABLE = 8,
};
#define SUPP_ALL_KINDS (SUPP_DEFINITE | SUPP_INDIRECT | SUPP_POSSIBLE | SUPP_REACHABLE)

enum supp_format {
	SUPP_FORMAT_LSAN = 0,
	SUPP_FORMAT_VALGRIND = 1,
};

/* What supp_set_get() tells of one suppression, for the report's list of
 * used and unused suppressions.  The strings belong to the set. */
struct supp_info {
	enum supp_format format;
	const char *name; /* valgrind: the block's name; LSan: "leak:PATTERN" */
	const char *file; /* the file (or buffer name) it was loaded from */
	unsigned line;	  /* its line there: the '{' or the leak: line */
	unsigned kinds;	  /* the enum supp_leak_kind bits it applies to */
	uint64_t uses;	  /* supp_set_record_use() calls */
	uint64_t bytes;
	uint64_t blocks;
};

struct supp_set;

/* An empty set, or NULL when out of memory. */
struct supp_set *supp_set_create(void);
/* Frees the set and everything it holds; accepts NULL. */
void supp_set_destroy(struct supp_set *set);

/* Adds the suppressions of a file.  0; -EINVAL for a syntax error; -errno
 * when the file cannot be read; -EFBIG past SUPP_FILE_MAX; -ENOMEM.  On
 * error, err (when errlen > 0) holds one NUL-terminated line naming the
 * file (and the line number for syntax errors), and nothing was added. */
int supp_set_load_file(struct supp_set *set, const char *path, char *err, size_t errlen);

/* The same for len bytes of text in memory; name stands for the file in
 * messages and in struct supp_info.  The text need not end with a newline
 * nor with a NUL; a NUL byte inside it is an error. */
int supp_set_load_buffer(struct supp_set *set, const char *name, const char *buf, size_t len,
			 char *err, size_t errlen);

/* The index of the first suppression, in load order, that applies to a
 * record of this kind (a single enum supp_leak_kind bit) allocated at this
 * stack (n frames, innermost first), or -1.  LSan suppressions apply to
 * every kind.  Does not count the use: see supp_set_record_use(). */
int supp_set_match(const struct supp_set *set, const struct supp_frame *frames, size_t n,
		   enum supp_leak_kind kind);

/* Counts one use of suppression index (a leak record it suppressed, of
 * that many bytes and blocks).  An index out of range is ignored. */
void supp_set_record_use(struct supp_set *set, int index, uint64_t bytes, uint64_t blocks);

/* The number of suppressions in the set (the ignored entries of other
 * kinds and tools are not in it). */
size_t supp_set_count(const struct supp_set *set);

/* Fills out for suppression index (< supp_set_count()).  Returns false
 * (and leaves out alone) for an index out of range. */
bool supp_set_get(const struct supp_set *set, size_t index, struct supp_info *out);

/* The warnings of the loads so far, e.g. "f.supp:3: 'race' suppressions do
 * not apply to memory leaks: ignored".  supp_set_warning_count() counts them
 * all; only the first SUPP_WARNINGS_MAX are kept, the others return NULL. */
size_t supp_set_warning_count(const struct supp_set *set);
const char *supp_set_warning(const struct supp_set *set, size_t index);

/* --gen-suppressions: writes a ready-to-paste valgrind entry for a stack
 * into buf, like snprintf: at most len bytes, NUL included, and returns
 * the length of the whole entry (so buf is complete when the result is
 * < len; call with len 0 to size it).  name NULL gives valgrind's
 * "<insert_a_suppression_name_here>".  kinds: a non-empty set of
 * enum supp_leak_kind bits.  Frames give "fun:" with the linkage name when
 * known, else "obj:" with the module, else "obj:*"; characters that the
 * format cannot hold (control characters, blanks at either end) become
 * '?', a name (the entry's first line) starting with '#' or being '}'
 * starts with '_' instead, names longer than 4096 bytes are cut and end
 * with '*', and at most SUPP_FRAME_LINES_MAX frames are written: the
 * entry, loaded back, always matches the stack.  -EINVAL when n is 0 or kinds is empty. */
ssize_t supp_format_valgrind(const struct supp_frame *frames, size_t n, unsigned kinds,
			     const char *name, char *buf, size_t len);
