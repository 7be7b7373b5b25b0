/*
 * progress.c: "memprof: reading the capture… 45%" on the terminal while a
 * big capture is read, replayed and symbolized.  Entry points:
 * cli_progress_begin(), cli_progress_end().
 *
 * Only on a terminal (standard error is a TTY) and only once the work has
 * taken a second: a small capture prints nothing, and neither does a run
 * whose standard error goes to a file or a pipe.  The line is redrawn in
 * place with a carriage return at most ten times a second and erased by
 * cli_progress_end(), before anything else is printed.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define DELAY_NS 1000000000ull
#define REDRAW_NS 100000000ull

static struct {
	bool active;
	bool shown;
	bool utf8;
	uint64_t start_ns, drawn_ns, delay_ns;
	const char *step;
	unsigned percent;
} progress;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool cli_utf8_wanted(void)
{
	const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++) {
		const char *v = getenv(vars[i]);
		if (v && v[0])
			return strcasestr(v, "UTF-8") || strcasestr(v, "utf8");
	}
	return false;
}

static const char *step_text(const char *step)
{
	if (strcmp(step, "reading") == 0)
		return "reading the capture";
	if (strcmp(step, "analysing") == 0)
		return "replaying the allocations";
	if (strcmp(step, "symbolizing") == 0)
		return "symbolizing the stacks";
	return step;
}

static void hook(void *ctx, const char *step, uint64_t done, uint64_t total)
{
	(void)ctx;
	uint64_t now = now_ns();
	if (now - progress.start_ns < progress.delay_ns)
		return;
	unsigned percent = total ? (unsigned)((long double)done * 100 / total) : 0;
	if (percent > 100)
		percent = 100;
	bool same_step = progress.step && strcmp(progress.step, step) == 0;
	if (progress.shown && same_step &&
	    (percent == progress.percent || now - progress.drawn_ns < REDRAW_NS))
		return;
	progress.step = step;
	progress.percent = percent;
	progress.drawn_ns = now;
	progress.shown = true;
	fprintf(stderr, "\rmemprof: %s%s %u%%\033[K", step_text(step),
		progress.utf8 ? "\xe2\x80\xa6" : "...", percent);
	fflush(stderr);
}

void cli_progress_begin(void)
{
	if (progress.active || !isatty(STDERR_FILENO))
		return;
	memset(&progress, 0, sizeof(progress));
	progress.active = true;
	progress.utf8 = cli_utf8_wanted();
	progress.start_ns = now_ns();
	/* for the tests: MEMPROF_PROGRESS_DELAY_MS=0 shows it at once */
	const char *delay = getenv("MEMPROF_PROGRESS_DELAY_MS");
	unsigned long ms;
	if (delay && cli_parse_count(delay, 0, 3600000, &ms))
		progress.delay_ns = ms * 1000000ull;
	else
		progress.delay_ns = DELAY_NS;
	reports_progress_set(hook, NULL);
}

void cli_progress_clear(void)
{
	if (progress.shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	progress.shown = false;
	progress.step = NULL;
}

void cli_progress_end(void)
{
	if (!progress.active)
		return;
	reports_progress_set(NULL, NULL);
	cli_progress_clear();
	progress.active = false;
}
