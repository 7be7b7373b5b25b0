/*
 * render-junit.c: the run as a JUnit XML report, which CI services show
 * as a test result (GitLab's artifacts:reports:junit, Jenkins...).  Entry
 * point: reports_render_junit().
 *
 * One testsuite "memprof" with one testcase, the program run (named by its
 * command line).  The testcase fails when a leak gate of `memprof run`
 * failed (opts->gate_failure), or, when no gate was asked for, when
 * definitely or indirectly lost blocks remain; the failure's text lists
 * the loss records that are lost, each with its stack.  Every string is
 * escaped for XML: the five special characters as entities, control
 * characters (not allowed in XML 1.0) and bytes outside ASCII as '?'.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "reports.h"

/* In an attribute, newlines and tabs are character references, which
 * attribute normalisation keeps. */
static void xml_escape(FILE *out, const char *s, bool attr)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (attr && (c == '\n' || c == '\t')) {
			fprintf(out, "&#%d;", c);
			continue;
		}
		switch (c) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&apos;", out); break;
		default:
			fputc((c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f ? '?' : c, out);
		}
	}
}

static void xml_text(FILE *out, const char *s)
{
	xml_escape(out, s, false);
}

static const char *phrase(enum reports_leak_kind k)
{
	switch (k) {
	case REPORTS_LEAK_DEFINITE: return "definitely lost";
	case REPORTS_LEAK_INDIRECT: return "indirectly lost";
	case REPORTS_LEAK_POSSIBLE: return "possibly lost";
	case REPORTS_LEAK_REACHABLE: return "still reachable";
	default: return "suppressed";
	}
}

static void failure_text(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an, struct reports_symbolizer *sym,
			 const char *gate)
{
	struct reports_frames fr = { 0 };
	char line[512];
	if (gate) {
		xml_text(out, gate);
		fputs("\n\n", out);
	}
	for (size_t i = an->n_leak_records; i-- > 0;) {
		const struct reports_leak_record *r = &an->leak_records[i];
		if (r->kind == REPORTS_LEAK_SUPPRESSED || r->kind == REPORTS_LEAK_REACHABLE)
			continue;
		fprintf(out, "%" PRIu64 " bytes in %" PRIu64 " blocks are %s\n",
			r->bytes + r->indirect_bytes, r->blocks, phrase(r->kind));
		if (reports_stack_symbolize(sym, cap, r->stack, &fr) < 0)
			continue;
		for (size_t k = reports_frames_display_start(&fr); k < fr.n; k++) {
			const struct reports_frame *f = fr.v[k];
			const char *base = f->file ? strrchr(f->file, '/') : NULL;
			snprintf(line, sizeof(line), "   %s 0x%" PRIx64 ": %s", k ? "by" : "at",
				 f->address, f->function ? f->function : "???");
			xml_text(out, line);
			if (f->file) {
				fputs(" (", out);
				xml_text(out, base ? base + 1 : f->file);
				fprintf(out, ":%u)", f->line);
			}
			fputc('\n', out);
			if (f->function && !f->inlined && strcmp(f->function, "main") == 0)
				break;
		}
		fputc('\n', out);
	}
	reports_frames_finish(&fr);
}

int reports_render_junit(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an, struct reports_symbolizer *sym,
			 const struct reports_render_options *opts)
{
	const struct reports_leak_count *lk = an->leaks;
	bool failed = opts->gate_failure != NULL ||
		      (!opts->gates && (lk[REPORTS_LEAK_DEFINITE].blocks ||
					lk[REPORTS_LEAK_INDIRECT].blocks));
	double secs = (double)an->totals.duration_ns / 1e9;
	fprintf(out,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<testsuites name=\"memprof\" tests=\"1\" failures=\"%d\" errors=\"0\" "
		"time=\"%.3f\">\n"
		"  <testsuite name=\"memprof\" tests=\"1\" failures=\"%d\" errors=\"0\" "
		"skipped=\"0\" time=\"%.3f\">\n"
		"    <testcase classname=\"memprof\" name=\"",
		failed, secs, failed, secs);
	for (size_t i = 0; i < cap->argc && i < 16; i++) {
		fputs(i ? " " : "", out);
		xml_escape(out, cap->argv[i], true);
	}
	if (cap->argc == 0)
		xml_escape(out, cap->exe ? cap->exe : "program", true);
	fprintf(out, "\" time=\"%.3f\">\n", secs);
	if (failed) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "definitely lost: %" PRIu64 " bytes in %" PRIu64
			 " blocks, indirectly lost: %" PRIu64 " bytes in %" PRIu64
			 " blocks, possibly lost: %" PRIu64 " bytes in %" PRIu64 " blocks",
			 lk[REPORTS_LEAK_DEFINITE].bytes, lk[REPORTS_LEAK_DEFINITE].blocks,
			 lk[REPORTS_LEAK_INDIRECT].bytes, lk[REPORTS_LEAK_INDIRECT].blocks,
			 lk[REPORTS_LEAK_POSSIBLE].bytes, lk[REPORTS_LEAK_POSSIBLE].blocks);
		fputs("      <failure type=\"memprof.leak\" message=\"", out);
		xml_escape(out, opts->gate_failure ? opts->gate_failure : msg, true);
		fputs("\">", out);
		failure_text(out, cap, an, sym, opts->gate_failure);
		xml_text(out, msg);
		fputs("</failure>\n", out);
	}
	fprintf(out, "      <system-out>");
	char summary[256];
	snprintf(summary, sizeof(summary),
		 "allocations: %" PRIu64 ", frees: %" PRIu64 ", peak: %" PRIu64
		 " bytes, live at exit: %" PRIu64 " bytes in %" PRIu64 " blocks",
		 an->totals.allocations, an->totals.frees, an->totals.peak_bytes,
		 an->totals.live_bytes_at_exit, an->totals.live_blocks_at_exit);
	xml_text(out, summary);
	fputs("</system-out>\n    </testcase>\n  </testsuite>\n</testsuites>\n", out);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
