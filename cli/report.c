/*
 * report.c: `memprof report [--format text|json] [-o FILE] [--top N]
 * CAPTURE`, which renders a saved capture again.  Entry point:
 * cli_report_main().
 *
 * A capture that cannot be read, or is corrupt, is one line on stderr
 * ("memprof: CAPTURE: what is wrong at byte offset N") and exit status 2;
 * a truncated one gives its report, marked incomplete, and status 0.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"

void cli_report_help(FILE *out)
{
	fputs("Usage: memprof report [OPTIONS] CAPTURE\n"
	      "\n"
	      "Render a capture written by 'memprof run' again.\n"
	      "\n"
	      "Options:\n"
	      "  -f, --format FORMAT  text (default) or json\n"
	      "  -o, --output FILE    write the report to FILE instead of standard output\n"
	      "      --top N          entries of each list of allocation sites (default 5)\n"
	      "  -h, --help           show this help and exit\n"
	      "\n"
	      "Exit status: 0; 1 when the report cannot be written; 2 for a usage error\n"
	      "or a capture that cannot be read.\n",
	      out);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("memprof report: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'memprof help report'.\n", stderr);
	return CLI_EXIT_USAGE;
}

int cli_report_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "top", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false;
	const char *output = NULL;
	unsigned long top = 0;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (strcmp(optarg, "json") == 0)
				json = true;
			else if (strcmp(optarg, "text") == 0)
				json = false;
			else
				return usage_error("unknown format '%s' (text or json)", optarg);
			break;
		case 'o':
			output = optarg;
			break;
		case 't':
			if (!cli_parse_count(optarg, 1, 1000000, &top))
				return usage_error("--top wants a number from 1 to 1000000, not '%s'",
						   optarg);
			break;
		case 'h':
			cli_report_help(stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_error("%s", optind >= argc ? "a capture file is needed"
							: "only one capture file is read");
	const char *path = argv[optind];

	struct reports_capture *cap = NULL;
	struct reports_error err;
	if (reports_capture_load_file(path, &cap, &err) < 0) {
		fprintf(stderr, "memprof: %s: %s\n", path, err.message);
		return CLI_EXIT_USAGE;
	}
	FILE *out = stdout;
	if (output && !(out = fopen(output, "we"))) {
		fprintf(stderr, "memprof: cannot write %s: %s\n", output, strerror(errno));
		reports_capture_destroy(cap);
		return CLI_EXIT_USAGE;
	}
	struct cli_outputs outs = {
		.text = json ? NULL : out,
		.color = !json && !output && cli_color_wanted(out),
		.json = json ? &out : NULL,
		.n_json = json ? 1 : 0,
		.json_paths = (const char *const[]){ output ? output : "(standard output)" },
		.top = top,
	};
	int res = cli_outputs_render(cap, &outs);
	reports_capture_destroy(cap);
	if (out != stdout && fclose(out) != 0 && res == 0) {
		fprintf(stderr, "memprof: cannot write %s: %s\n", output, strerror(errno));
		res = -1;
	}
	return res < 0 ? 1 : 0;
}
