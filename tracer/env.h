/*
 * env.h: the tracer's configuration from the environment, and the capture
 * path rules.
 *
 * Variables (set by `memprof run`):
 *   MEMPROF_OUTPUT       capture path; unset: memprof.<prog>.<pid>.mpc in
 *                        the working directory
 *   MEMPROF_DEPTH        frames kept per stack, 1..256 (default 64)
 *   MEMPROF_FREE_STACKS  "1": a free's whole stack (for a double free's
 *                        first free); otherwise free() and its caller
 *   MEMPROF_FOLLOW_FORK  "1": trace fork children and exec'd programs too.
 *                        The tracer rewrites the value to "2" in its own
 *                        environment, in place, so that the programs it
 *                        execs know they are descendants ("2": follow, and
 *                        this process is not the first one).
 * A descendant (forked, or exec'd with MEMPROF_FOLLOW_FORK=2) writes
 * MEMPROF_OUTPUT with its ".mpc" suffix replaced by ".<pid>.mpc" (the
 * suffix is appended when the path has none).
 *
 * Without follow-fork the tracer removes itself from LD_PRELOAD (in place,
 * keeping the user's other entries) so that exec'd programs run untraced.
 * Then, once its constructor read them, it removes these variables (and
 * LD_PRELOAD when nothing is left in it) from the environment: the
 * program sees the environment it was given (tracer_env_hide).
 * All functions here are pure string work: no allocation.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TRACER_LIB_NAME "libmemprof-preload.so"

/* Value of name in a NULL-terminated environment vector, or NULL. */
const char *tracer_env_lookup(char *const *envp, const char *name);

/* Same over a NUL-separated block (the layout of /proc/self/environ). */
const char *tracer_env_lookup_block(const char *block, size_t len, const char *name);

/* MEMPROF_DEPTH: the default for NULL or garbage, clamped to 1..256. */
unsigned tracer_env_depth(const char *value);

/* Removes, in place, every entry of an LD_PRELOAD value (separated by
 * spaces or colons) whose file name is lib_name.  When one is removed, the
 * other entries keep their order, joined by single spaces (ld.so reads
 * spaces and colons alike); otherwise the value is left untouched.
 * Returns true when the value changed. */
bool tracer_env_strip_preload(char *value, const char *lib_name);

/* Removes, in place, the entries `memprof run` adds for the tracer alone,
 * so that the program sees the environment it was given: MEMPROF_OUTPUT,
 * MEMPROF_DEPTH, MEMPROF_FREE_STACKS, MEMPROF_SNAPSHOT_SIGNAL, MEMPROF_LEAK_CHECK_SIGNAL (the
 * tracer has read them by then), and LD_PRELOAD once it is empty (the
 * tracer stripped itself from it; ld.so reads an empty LD_PRELOAD as none).
 * The other entries keep their order.  Only without follow-fork:
 * descendants need them.  Returns the number of entries removed. */
size_t tracer_env_hide(char **envp);

/* The capture path of a descendant pid of a run whose MEMPROF_OUTPUT is
 * base.  Returns the length, or -ENAMETOOLONG when it does not fit cap. */
int tracer_env_child_path(char *out, size_t cap, const char *base, pid_t pid);

/* memprof.<prog>.<pid>.mpc, prog being the file name of argv0 with every
 * byte outside [A-Za-z0-9._+-] replaced by '_' ("prog" when empty).
 * Returns the length, or -ENAMETOOLONG. */
int tracer_env_default_path(char *out, size_t cap, const char *argv0, pid_t pid);
