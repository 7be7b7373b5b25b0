/*
 * report.c: `memprof report [--format text|json|folded] [-o FILE] [--top N]
 * [--cost COST] [--lines WHAT] [--timeline [--ascii]] CAPTURE`, which
 * renders a saved capture again (the views are views.c's).  Entry point:
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
	      "  -f, --format FORMAT  text (default), json, or html (one page that works offline)\n"
	      "  -f sarif|junit|dot   the leaks as SARIF 2.1.0, as a JUnit XML test report\n"
	      "                       (failing when definite or indirect leaks remain), or\n"
	      "                       the unreachable cycles as a Graphviz graph\n"
	      "  -o, --output FILE    write the report to FILE instead of standard output\n"
	      "      --top N          entries of each list of allocation sites (default 5)\n"
	      /* views (views.c) */
	      "  -f folded            collapsed stacks for flamegraph.pl, inferno, speedscope\n"
	      "      --cost COST      what folded stacks count: peak (bytes live at the\n"
	      "                       peak, the default), leaked (bytes live at exit),\n"
	      "                       allocations, bytes (allocated in all), temporary\n"
	      "                       (allocations freed before their thread allocated again)\n"
	      "      --lines WHAT     the memory of each source line of a function (or of\n"
	      "                       each function of a source file), as memory_profiler\n"
	      "      --timeline       a chart of the live heap and RSS over time\n"
	      "      --ascii          draw the timeline in plain ASCII (default on a terminal\n"
	      "                       whose locale is not UTF-8)\n"
	      "  -h, --help           show this help and exit\n"
	      "\n"
	      "Exit status: 0; 1 when the report cannot be written, or when --lines names\n"
	      "no function or file that allocates; 2 for a usage error or a capture that\n"
	      "cannot be read.\n",
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
	enum { OPT_VIEW_COST = 300, OPT_VIEW_LINES, OPT_VIEW_TIMELINE, OPT_VIEW_ASCII };
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "top", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		/* views (views.c) */
		{ "cost", required_argument, NULL, OPT_VIEW_COST },
		{ "lines", required_argument, NULL, OPT_VIEW_LINES },
		{ "timeline", no_argument, NULL, OPT_VIEW_TIMELINE },
		{ "ascii", no_argument, NULL, OPT_VIEW_ASCII },
		{ 0 },
	};
	/* views (views.c): folded, lines, timeline */
	struct cli_view view = { .cost = REPORTS_COST_PEAK };
	bool folded = false, lines = false, timeline = false, cost = false, ascii = false;
	bool json = false;
	bool html = false; /* --format html: the HTML page */
	int leakfmt = 0;   /* leaks.c: 's'arif, 'j'unit, 'd'ot */
	const char *output = NULL;
	unsigned long top = 0;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			/* leaks (leaks.c): sarif, junit, dot */
			leakfmt = strcmp(optarg, "sarif") == 0   ? 's'
				  : strcmp(optarg, "junit") == 0 ? 'j'
				  : strcmp(optarg, "dot") == 0   ? 'd'
								 : 0;
			if (leakfmt) {
				json = html = folded = false;
				break;
			}
			html = strcmp(optarg, "html") == 0;
			if ((folded = strcmp(optarg, "folded") == 0) || html) {
				json = false;
				break;
			}
			if (strcmp(optarg, "json") == 0)
				json = true;
			else if (strcmp(optarg, "text") == 0)
				json = false;
			else
				return usage_error("unknown format '%s' (text, json, html, folded, sarif, "
						   "junit or dot)",
						   optarg);
			break;
		case 'o':
			output = optarg;
			break;
		case 't':
			if (!cli_parse_count(optarg, 1, 1000000, &top))
				return usage_error("--top wants a number from 1 to 1000000, not '%s'",
						   optarg);
			break;
		case OPT_VIEW_COST:
			if (!reports_cost_parse(optarg, &view.cost))
				return usage_error("--cost wants peak, leaked, allocations, bytes or "
						   "temporary, not '%s'",
						   optarg);
			cost = true;
			break;
		case OPT_VIEW_LINES:
			lines = true;
			view.lines_target = optarg;
			break;
		case OPT_VIEW_TIMELINE:
			timeline = true;
			break;
		case OPT_VIEW_ASCII:
			ascii = true;
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
	/* views (views.c): one at a time, each its own format */
	if (folded + lines + timeline > 1)
		return usage_error("--format folded, --lines and --timeline draw one view at a time");
	if ((lines || timeline) && (json || leakfmt))
		return usage_error("--lines and --timeline draw text, not another format");
	if ((lines || timeline) && html)
		return usage_error("--lines and --timeline draw text, not HTML");
	if (cost && !folded)
		return usage_error("--cost is for --format folded");
	if (ascii && !timeline)
		return usage_error("--ascii is for --timeline");
	view.kind = folded ? CLI_VIEW_FOLDED : lines ? CLI_VIEW_LINES : CLI_VIEW_TIMELINE;
	view.ascii = ascii || !cli_utf8_wanted();

	struct reports_capture *cap = NULL;
	struct reports_error err;
	cli_progress_begin();
	if (reports_capture_load_file(path, &cap, &err) < 0) {
		cli_progress_end();
		fprintf(stderr, "memprof: %s: %s\n", path, err.message);
		return CLI_EXIT_USAGE;
	}
	FILE *out = stdout;
	if (output && !(out = fopen(output, "we"))) {
		fprintf(stderr, "memprof: cannot write %s: %s\n", output, strerror(errno));
		reports_capture_destroy(cap);
		return CLI_EXIT_USAGE;
	}
	if (folded || lines || timeline) {
		int vres = cli_view_render(cap, &view, out, output ? output : "the report");
		reports_capture_destroy(cap);
		if (out != stdout && fclose(out) != 0 && vres == 0) {
			fprintf(stderr, "memprof: cannot write %s: %s\n", output, strerror(errno));
			vres = -1;
		}
		return vres < 0 ? 1 : 0;
	}
	struct cli_outputs outs = {
		.text = json ? NULL : out,
		.color = !json && !output && cli_color_wanted(out),
		.json = json ? &out : NULL,
		.n_json = json ? 1 : 0,
		.json_paths = (const char *const[]){ output ? output : "(standard output)" },
		.top = top,
	};
	if (html) { /* the HTML page instead of the text report */
		outs.text = NULL;
		outs.color = false;
		outs.html = &out;
		outs.n_html = 1;
		outs.html_paths = outs.json_paths;
	}
	if (leakfmt) { /* leaks.c: SARIF, JUnit or Graphviz instead of the text */
		outs.text = NULL;
		outs.color = false;
		FILE **f = leakfmt == 's' ? &outs.sarif : leakfmt == 'j' ? &outs.junit : &outs.dot;
		const char **p = leakfmt == 's'	  ? &outs.sarif_path
				 : leakfmt == 'j' ? &outs.junit_path
						  : &outs.dot_path;
		*f = out;
		*p = outs.json_paths[0];
	}
	int res = cli_outputs_render(cap, &outs);
	reports_capture_destroy(cap);
	if (out != stdout && fclose(out) != 0 && res == 0) {
		fprintf(stderr, "memprof: cannot write %s: %s\n", output, strerror(errno));
		res = -1;
	}
	return res < 0 ? 1 : 0;
}
