/*
 * diff.c: `memprof diff [OPTIONS] OLD NEW`, tracemalloc's compare_to for
 * two captures: the totals of both runs and the allocation sites whose
 * bytes and counts changed most.  Entry point: cli_diff_main().
 *
 * --fail-if-grew SIZE turns it into a CI gate: exit status 1 when the
 * peak or the bytes live at exit grew by more than SIZE from OLD to NEW
 * (like diff(1) and cmp(1), 1 means "they differ too much"); 2 stays for
 * usage errors, captures that cannot be read and reports that cannot be
 * written, and 0 for everything else.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"

#define EXIT_GREW 1

void cli_diff_help(FILE *out)
{
	fputs("Usage: memprof diff [OPTIONS] OLD NEW\n"
	      "\n"
	      "Compare two captures: the totals of both runs and the allocation sites\n"
	      "whose bytes (allocated in all, live at the peak, live at exit) and counts\n"
	      "changed most from OLD to NEW.\n"
	      "\n"
	      "Options:\n"
	      "      --by line|stack      match sites by their first line in the program\n"
	      "                           (default) or by their whole stack\n"
	      "      --top N              entries listed (default 10 for text, all for JSON)\n"
	      "  -f, --format FORMAT      text (default) or json\n"
	      "  -o, --output FILE        write the comparison to FILE instead of standard output\n"
	      "      --fail-if-grew SIZE  exit with status 1 when the peak or the bytes live at\n"
	      "                           exit grew by more than SIZE (10k = 10KiB = 10240,\n"
	      "                           10KB = 10000, also M, G, with a fraction: 1.5M)\n"
	      "  -h, --help               show this help and exit\n"
	      "\n"
	      "Exit status: 0; 1 when --fail-if-grew trips; 2 for a usage error, a capture\n"
	      "that cannot be read or an output that cannot be written.\n",
	      out);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("memprof diff: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'memprof help diff'.\n", stderr);
	return CLI_EXIT_USAGE;
}

struct diff_options {
	enum reports_diff_by by;
	unsigned long top;
	bool json;
	const char *output;
	bool gate;
	uint64_t max_growth;
	const char *old_path, *new_path;
};

/* Loads, symbolizes and analyses one capture; false after a message. */
static bool load(const char *path, struct reports_diff_run *run)
{
	struct reports_capture *cap = NULL;
	struct reports_error err;
	memset(run, 0, sizeof(*run));
	run->path = path;
	if (reports_capture_load_file(path, &cap, &err) < 0) {
		cli_progress_end();
		fprintf(stderr, "memprof: %s: %s\n", path, err.message);
		return false;
	}
	run->cap = cap;
	run->sym = reports_symbolizer_create(cap);
	run->an = run->sym ? reports_analysis_run(cap, run->sym) : NULL;
	if (!run->an) {
		cli_progress_end();
		fprintf(stderr, "memprof: out of memory while analysing %s\n", path);
		return false;
	}
	return true;
}

static void unload(struct reports_diff_run *run)
{
	reports_analysis_destroy((struct reports_analysis *)run->an);
	reports_symbolizer_destroy(run->sym);
	reports_capture_destroy((struct reports_capture *)run->cap);
}

static int parse(int argc, char **argv, struct diff_options *o)
{
	enum { OPT_BY = 256, OPT_TOP, OPT_FAIL };
	static const struct option longopts[] = {
		{"by", required_argument, NULL, OPT_BY},
		{"top", required_argument, NULL, OPT_TOP},
		{"format", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"fail-if-grew", required_argument, NULL, OPT_FAIL},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_BY:
			if (strcmp(optarg, "line") == 0)
				o->by = REPORTS_DIFF_BY_LINE;
			else if (strcmp(optarg, "stack") == 0)
				o->by = REPORTS_DIFF_BY_STACK;
			else
				return usage_error("--by wants 'line' or 'stack', not '%s'",
						   optarg);
			break;
		case OPT_TOP:
			if (!cli_parse_count(optarg, 1, 1000000, &o->top))
				return usage_error(
					"--top wants a number from 1 to 1000000, not '%s'", optarg);
			break;
		case 'f':
			if (strcmp(optarg, "json") == 0)
				o->json = true;
			else if (strcmp(optarg, "text") == 0)
				o->json = false;
			else
				return usage_error("unknown format '%s' (text or json)", optarg);
			break;
		case 'o':
			o->output = optarg;
			break;
		case OPT_FAIL:
			if (cli_parse_size(optarg, &o->max_growth) < 0)
				return usage_error("--fail-if-grew wants a size such as 4096, 10k, "
						   "10KiB, 10KB or 1.5M, not '%s'",
						   optarg);
			o->gate = true;
			break;
		case 'h':
			cli_diff_help(stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		return usage_error("%s", argc - optind < 2 ? "two captures are needed: OLD NEW"
							   : "only two captures are compared");
	o->old_path = argv[optind];
	o->new_path = argv[optind + 1];
	return -1; /* go on */
}

/* The gate: whether a total grew by more than allowed (with a message). */
static bool grew(const char *what, uint64_t old_v, uint64_t new_v, uint64_t max)
{
	if (new_v <= old_v || new_v - old_v <= max)
		return false;
	fprintf(stderr,
		"memprof diff: %s grew by %" PRIu64 " bytes (%" PRIu64 " -> %" PRIu64
		"), more than the %" PRIu64 " allowed by --fail-if-grew\n",
		what, new_v - old_v, old_v, new_v, max);
	return true;
}

int cli_diff_main(int argc, char **argv)
{
	struct diff_options o = {.by = REPORTS_DIFF_BY_LINE};
	int status = parse(argc, argv, &o);
	if (status >= 0)
		return status;
	struct reports_diff_run old_run, new_run;
	cli_progress_begin();
	bool ok_old = load(o.old_path, &old_run);
	bool ok_new = ok_old && load(o.new_path, &new_run);
	cli_progress_end();
	if (!ok_new) {
		if (ok_old)
			unload(&new_run);
		unload(&old_run);
		return CLI_EXIT_USAGE;
	}
	status = CLI_EXIT_USAGE;
	FILE *out = stdout;
	struct reports_diff *d = reports_diff_create(&old_run, &new_run, o.by);
	if (!d) {
		fprintf(stderr, "memprof: out of memory while comparing the captures\n");
		goto out;
	}
	if (o.output && !(out = fopen(o.output, "we"))) {
		fprintf(stderr, "memprof: cannot write %s: %s\n", o.output, strerror(errno));
		goto out;
	}
	int res = o.json ? reports_render_diff_json(out, d, o.top)
			 : reports_render_diff_text(out, d, o.top);
	if (out != stdout && fclose(out) != 0 && res == 0)
		res = -errno;
	if (res < 0) {
		fprintf(stderr, "memprof: cannot write %s: %s\n",
			o.output ? o.output : "the comparison", strerror(-res));
		goto out;
	}
	status = 0;
	if (o.gate) {
		const struct reports_totals *a = &old_run.an->totals, *b = &new_run.an->totals;
		bool peak = grew("the peak", a->peak_bytes, b->peak_bytes, o.max_growth);
		bool live = grew("the bytes live at exit", a->live_bytes_at_exit,
				 b->live_bytes_at_exit, o.max_growth);
		if (peak || live)
			status = EXIT_GREW;
	}
out:
	reports_diff_destroy(d);
	unload(&new_run);
	unload(&old_run);
	return status;
}
