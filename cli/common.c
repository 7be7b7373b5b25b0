/*
 * common.c: what `memprof run` and `memprof report` share once a capture is
 * loaded: symbolize it, analyse it, write the text and JSON reports.  Entry
 * point: cli_outputs_render().
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

bool cli_color_wanted(FILE *stream)
{
	const char *no = getenv("NO_COLOR");
	if (no && no[0])
		return false;
	return isatty(fileno(stream));
}

bool cli_parse_count(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	if (!s || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ---- sizes (--max-leaked, --max-peak, --fail-if-grew) ---- */

/* Decimal suffixes (KB, MB...) are powers of 1000; binary ones (K, KiB...)
 * and the bare letters are powers of 1024, as ls -h and memory_profiler
 * read them.  Letters in any case; an optional B; a fraction allowed. */
int cli_parse_size(const char *s, uint64_t *out)
{
	static const char prefixes[] = "KMGTPE";
	if (!s || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	uint64_t whole = 0, frac = 0, frac_div = 1;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (frac_div < 1000000000000ull) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				frac_div *= 10;
			}
		}
	}
	uint64_t unit = 1;
	int letter = *p & ~0x20; /* upper case; 0 for the end and for ' ' */
	const char *pre = letter ? strchr(prefixes, letter) : NULL;
	if (pre) {
		bool decimal = (p[1] == 'B' || p[1] == 'b') && !p[2];
		bool binary = !p[1] || ((p[1] == 'i' || p[1] == 'I') &&
					(p[2] == 'B' || p[2] == 'b') && !p[3]);
		if (!decimal && !binary)
			return -EINVAL;
		for (long i = 0; i <= pre - prefixes; i++)
			unit *= decimal ? 1000u : 1024u;
	} else if (*p && !((*p == 'B' || *p == 'b') && !p[1])) {
		return -EINVAL;
	}
	if (whole > UINT64_MAX / unit)
		return -ERANGE;
	uint64_t v = whole * unit;
	/* the fraction, rounded down to whole bytes */
	uint64_t f = (uint64_t)((unsigned __int128)frac * unit / frac_div);
	if (v > UINT64_MAX - f)
		return -ERANGE;
	*out = v + f;
	return 0;
}

/* The text report's stream: stderr (memprof run's) is unbuffered, and the
 * report went out in a write() a field or a character (945 for churn's
 * report), so it is written through a buffered stream of its own on the
 * same file (flushed before the next message); out itself otherwise. */
static FILE *buffered(FILE *out)
{
	if (out != stderr)
		return out;
	fflush(stderr);
	int fd = dup(fileno(stderr));
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f && fd >= 0)
		close(fd);
	return f ? f : out;
}

int cli_outputs_render(struct reports_capture *cap, const struct cli_outputs *outs)
{
	int ret = -1;
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = sym ? reports_analysis_run(cap, sym) : NULL;
	if (!an) {
		cli_progress_end();
		fprintf(stderr, "memprof: out of memory while analysing the capture\n");
		goto out;
	}
	/* the HTML page's curve and breakdowns: one more pass over the events */
	struct reports_html_data *hd = NULL;
	if (outs->n_html > 0 && !(hd = reports_html_data_build(cap, an))) {
		fprintf(stderr, "memprof: out of memory while preparing the HTML report\n");
		ret = -1;
		goto out;
	}
	cli_progress_end(); /* progress.c: the reports come next */
	struct reports_render_options opts = {
		.top = outs->top,
		.color = outs->color,
		.outcome = outs->outcome,
	};
	ret = cli_leaks_prepare(cap, an, sym, outs, &opts);
	/* a reader that left (`| head`) is not a failure: it read enough */
	FILE *text = buffered(outs->text);
	if (text && reports_render_text(text, cap, an, sym, &opts) < 0 && errno != EPIPE) {
		fprintf(stderr, "memprof: cannot write the text report: %s\n", strerror(errno));
		ret = -1;
	}
	if (text && text != outs->text)
		fclose(text); /* flushed by reports_render_text() */
	opts.color = false;
	for (size_t i = 0; i < outs->n_json; i++) {
		if (reports_render_json(outs->json[i], cap, an, sym, &opts) < 0) {
			fprintf(stderr, "memprof: %s: cannot write the JSON report: %s\n",
				outs->json_paths[i], strerror(errno));
			ret = -1;
		}
	}
	for (size_t i = 0; i < outs->n_html; i++) {
		if (reports_render_html(outs->html[i], cap, an, sym, hd, &opts) < 0) {
			fprintf(stderr, "memprof: %s: cannot write the HTML report: %s\n",
				outs->html_paths[i], strerror(errno));
			ret = -1;
		}
	}
	if (cli_leaks_write(cap, an, sym, outs, &opts) < 0)
		ret = -1;
	reports_html_data_destroy(hd);
out:
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	return ret;
}
