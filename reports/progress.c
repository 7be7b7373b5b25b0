/*
 * progress.c: the hook through which the long steps of reports/ (reading a
 * capture, replaying its events, symbolizing its stacks) say how far they
 * are, so that the command line can show it.  Entry points:
 * reports_progress_set(), reports_progress().
 *
 * reports/ never prints: the hook is the caller's, and without one a call
 * costs a load and a test.
 */
#include <stddef.h>

#include "reports.h"

static reports_progress_fn *hook;
static void *hook_ctx;

void reports_progress_set(reports_progress_fn *fn, void *ctx)
{
	hook = fn;
	hook_ctx = ctx;
}

void reports_progress(const char *step, uint64_t done, uint64_t total)
{
	if (hook)
		hook(hook_ctx, step, done, total);
}
