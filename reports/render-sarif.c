/*
 * render-sarif.c: the leaks as SARIF 2.1.0, the format code-scanning
 * services (GitHub's upload-sarif, GitLab, IDEs) read.  Entry point:
 * reports_render_sarif().
 *
 * One run, tool.driver "memprof" with its version and one rule per leak
 * kind ("memprof/definite-leak"...); one result per loss record that is
 * not suppressed (still reachable ones only when asked): level error for
 * definitely and indirectly lost, warning for possibly lost, note for
 * still reachable; the message is valgrind's sentence ("N bytes in M
 * blocks are definitely lost"); the location is the first frame of the
 * user's code (the program or a library outside the system's directories,
 * with a file and line), relative to the working directory (uriBaseId
 * SRCROOT) when under it; the whole stack is the result's codeFlow.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#include "reports.h"

struct rule {
	const char *id, *name, *text, *level;
};

static const struct rule rules[REPORTS_LEAK_KINDS - 1] = {
	[REPORTS_LEAK_DEFINITE] = { "memprof/definite-leak", "DefiniteLeak",
				    "Memory definitely lost: no pointer to the block remains",
				    "error" },
	[REPORTS_LEAK_INDIRECT] = { "memprof/indirect-leak", "IndirectLeak",
				    "Memory indirectly lost: reachable only from lost blocks",
				    "error" },
	[REPORTS_LEAK_POSSIBLE] = { "memprof/possible-leak", "PossibleLeak",
				    "Memory possibly lost: only pointers into its middle remain",
				    "warning" },
	[REPORTS_LEAK_REACHABLE] = { "memprof/reachable", "StillReachable",
				     "Memory still reachable at exit: never freed", "note" },
};

static const char *phrase(enum reports_leak_kind k)
{
	switch (k) {
	case REPORTS_LEAK_DEFINITE: return "definitely lost";
	case REPORTS_LEAK_INDIRECT: return "indirectly lost";
	case REPORTS_LEAK_POSSIBLE: return "possibly lost";
	default: return "still reachable";
	}
}

static void jstr(FILE *out, const char *s)
{
	reports_json_string(out, s, strlen(s));
}

static bool under(const char *path, const char *dir)
{
	return strncmp(path, dir, strlen(dir)) == 0;
}

/* A frame of the user's code: the program, or a library outside the
 * system's directories, with a file and a line. */
static bool is_user(const struct reports_capture *cap, const struct reports_frame *f)
{
	if (!f->file || !f->line || !f->module || reports_frame_is_allocator(f))
		return false;
	if (cap->exe && strcmp(f->module, cap->exe) == 0)
		return true;
	static const char *const system_dirs[] = { "/lib/", "/lib64/", "/usr/lib/",
						   "/usr/lib64/", "/usr/libexec/" };
	for (size_t i = 0; i < sizeof(system_dirs) / sizeof(*system_dirs); i++)
		if (under(f->module, system_dirs[i]))
			return false;
	return true;
}

/* A file path as a URI reference: relative to cwd (base SRCROOT) when
 * under it, else file://; bytes outside RFC 3986's unreserved set and '/'
 * percent-encoded. */
static void uri(FILE *out, const char *path, const char *cwd)
{
	size_t cl = strlen(cwd);
	bool rel = cl > 1 && strncmp(path, cwd, cl) == 0 && path[cl] == '/';
	const char *p = rel ? path + cl + 1 : path;
	fputs("{\"uri\": \"", out);
	if (!rel && p[0] == '/')
		fputs("file://", out);
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~/", c))
			fputc(c, out);
		else
			fprintf(out, "%%%02X", c);
	}
	fputc('"', out);
	if (rel)
		fputs(", \"uriBaseId\": \"SRCROOT\"", out);
	fputc('}', out);
}

static void physical(FILE *out, const struct reports_frame *f, const char *cwd)
{
	fputs("\"physicalLocation\": {\"artifactLocation\": ", out);
	uri(out, f->file ? f->file : f->module, cwd);
	if (f->file && f->line)
		fprintf(out, ", \"region\": {\"startLine\": %u}", f->line);
	fputc('}', out);
}

static void result(FILE *out, const struct reports_capture *cap,
		   const struct reports_leak_record *r, const struct reports_frames *fr,
		   const char *cwd, bool first)
{
	const struct rule *ru = &rules[r->kind];
	char msg[256];
	if (r->indirect_blocks)
		snprintf(msg, sizeof(msg),
			 "%" PRIu64 " (%" PRIu64 " direct, %" PRIu64 " indirect) bytes in %" PRIu64
			 " blocks are %s",
			 r->bytes + r->indirect_bytes, r->bytes, r->indirect_bytes, r->blocks,
			 phrase(r->kind));
	else
		snprintf(msg, sizeof(msg), "%" PRIu64 " bytes in %" PRIu64 " blocks are %s",
			 r->bytes, r->blocks, phrase(r->kind));
	fprintf(out, "%s\n        {\"ruleId\": ", first ? "" : ",");
	jstr(out, ru->id);
	fprintf(out, ", \"ruleIndex\": %d, \"level\": \"%s\", \"message\": {\"text\": ", (int)r->kind,
		ru->level);
	jstr(out, msg);
	fputs("}, \"locations\": [", out);
	size_t start = reports_frames_display_start(fr);
	const struct reports_frame *loc = NULL;
	for (size_t i = start; i < fr->n && !loc; i++)
		if (is_user(cap, fr->v[i]))
			loc = fr->v[i];
	for (size_t i = start; i < fr->n && !loc; i++)
		if (fr->v[i]->file)
			loc = fr->v[i];
	if (!loc && start < fr->n && fr->v[start]->module)
		loc = fr->v[start];
	if (loc) {
		fputc('{', out);
		physical(out, loc, cwd);
		fputc('}', out);
	}
	fputs("], \"codeFlows\": [{\"threadFlows\": [{\"locations\": [", out);
	bool any = false;
	for (size_t i = start; i < fr->n; i++) {
		const struct reports_frame *f = fr->v[i];
		fputs(any ? ", " : "", out);
		any = true;
		fputs("{\"location\": {", out);
		if (f->file || f->module) {
			physical(out, f, cwd);
			fputs(", ", out);
		}
		fputs("\"message\": {\"text\": ", out);
		jstr(out, f->function ? f->function : "???");
		fputs("}}}", out);
	}
	fputs("]}]}]}", out);
}

int reports_render_sarif(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an, struct reports_symbolizer *sym,
			 const struct reports_render_options *opts)
{
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = '\0';
	fputs("{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n"
	      "  \"version\": \"2.1.0\",\n  \"runs\": [{\n"
	      "    \"tool\": {\"driver\": {\"name\": \"memprof\", \"version\": \"" MEMPROF_VERSION
	      "\", \"rules\": [",
	      out);
	for (int k = 0; k < REPORTS_LEAK_KINDS - 1; k++) {
		fprintf(out, "%s\n      {\"id\": \"%s\", \"name\": \"%s\", \"shortDescription\": "
			"{\"text\": \"%s\"}, \"defaultConfiguration\": {\"level\": \"%s\"}}",
			k ? "," : "", rules[k].id, rules[k].name, rules[k].text, rules[k].level);
	}
	fputs("]}},\n", out);
	if (cwd[0]) {
		fputs("    \"originalUriBaseIds\": {\"SRCROOT\": {\"uri\": \"file://", out);
		for (const char *p = cwd; *p; p++) {
			unsigned char c = (unsigned char)*p;
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || strchr("-._~/", c))
				fputc(c, out);
			else
				fprintf(out, "%%%02X", c);
		}
		fputs("/\"}},\n", out);
	}
	fputs("    \"results\": [", out);
	struct reports_frames fr = { 0 };
	bool first = true;
	int res = 0;
	/* the most serious first: the records go by increasing size */
	for (size_t i = an->n_leak_records; i-- > 0 && res == 0;) {
		const struct reports_leak_record *r = &an->leak_records[i];
		if (r->kind == REPORTS_LEAK_SUPPRESSED ||
		    (r->kind == REPORTS_LEAK_REACHABLE && !opts->leaks_reachable))
			continue;
		if ((res = reports_stack_symbolize(sym, cap, r->stack, &fr)) < 0)
			break;
		result(out, cap, r, &fr, cwd, first);
		first = false;
	}
	reports_frames_finish(&fr);
	if (res < 0)
		return res;
	fputs("]\n  }]\n}\n", out);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
