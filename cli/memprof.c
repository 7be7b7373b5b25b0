/*
 * memprof.c: the memprof executable: global options and the dispatch to
 * one source file per sub-command (run.c, report.c, diff.c).  Entry point:
 * main().
 *
 * `memprof --help`, `memprof --version`, `memprof help COMMAND`; anything
 * else unknown prints the usage on stderr and exits with 2.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"

#include "cli.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	void (*help)(FILE *out);
	const char *summary;
};

static const struct command commands[] = {
	{ "run", cli_run_main, cli_run_help, "run a program and report its memory use" },
	{ "report", cli_report_main, cli_report_help, "render a saved capture again" },
	{ "diff", cli_diff_main, cli_diff_help, "compare two captures: which sites grew" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(*commands))

static void usage(FILE *out)
{
	fputs("Usage: memprof [--help] [--version] COMMAND [ARGS...]\n"
	      "\n"
	      "Memory profiler and leak detector for dynamically linked Linux programs.\n"
	      "\n"
	      "Commands:\n",
	      out);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("  help     show the help of a command\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help     show this help and exit\n"
	      "  -V, --version  show the version and exit\n"
	      "\n"
	      "Run 'memprof help COMMAND' for the options of a command; see memprof(1).\n",
	      out);
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int help(int argc, char **argv)
{
	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	const struct command *c = find(argv[1]);
	if (argc > 2 || !c) {
		fprintf(stderr, "memprof: help: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	c->help(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *arg = argv[1];
	if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
		printf("memprof %s\n", MEMPROF_VERSION);
		return 0;
	}
	if (strcmp(arg, "help") == 0)
		return help(argc - 1, argv + 1);
	const struct command *c = find(arg);
	if (!c) {
		if (arg[0] == '-')
			fprintf(stderr, "memprof: unknown option '%s'\n", arg);
		else
			fprintf(stderr, "memprof: unknown command '%s'\n", arg);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	return c->main(argc - 1, argv + 1);
}
