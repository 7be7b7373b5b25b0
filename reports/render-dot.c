/*
 * render-dot.c: the unreachable cycles as a Graphviz graph, the way
 * objgraph's show_refs() draws references: one box per block labelled with
 * its size and the function that allocated it, one arrow per pointer
 * labelled with the offset it sits at, one cluster per cycle.  Entry
 * point: reports_render_dot().  `dot -Tsvg` turns it into a picture.
 *
 * Every string from the capture (function and file names) goes through
 * dot_string(): quotes and backslashes escaped, control characters and
 * bytes outside ASCII replaced by '?', so that a hostile name can neither
 * end the string nor inject Graphviz escapes (\N, \G, \l...).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "reports.h"

/* Writes the text of s inside a DOT double-quoted string. */
static void dot_text(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fputc('\\', out);
		fputc(c < 0x20 || c >= 0x7f ? '?' : c, out);
	}
}

int reports_render_dot(FILE *out, const struct reports_capture *cap,
		       const struct reports_analysis *an, struct reports_symbolizer *sym,
		       const struct reports_render_options *opts)
{
	const struct reports_cycles *cy = an->cycles;
	struct reports_frames fr = { 0 };
	fputs("digraph memprof_cycles {\n"
	      "  graph [rankdir=LR, fontname=\"Helvetica\", label=\"memprof: unreachable "
	      "cycles\"];\n"
	      "  node [shape=box, style=\"filled,rounded\", fillcolor=\"#d5e8ff\", "
	      "fontname=\"Helvetica\"];\n"
	      "  edge [fontname=\"Helvetica\", fontsize=10];\n",
	      out);
	for (size_t k = 0; cy && k < cy->n; k++) {
		const struct reports_cycle *c = &cy->v[k];
		fprintf(out,
			"  subgraph cluster_%zu {\n    label=\"cycle %zu: %" PRIu64
			" bytes in %" PRIu64 " blocks\";\n    color=\"#c03030\";\n",
			k + 1, k + 1, c->bytes, c->blocks);
		for (size_t i = 0; i < c->n_members; i++) {
			const struct reports_cycle_member *mb = &cy->members[c->first_member + i];
			const struct reports_frame *f = reports_stack_alloc_site(sym, cap, mb->stack, &fr);
			fprintf(out, "    b%" PRIx64 " [label=\"%" PRIu64 " bytes\\n", mb->address,
				mb->size);
			dot_text(out, f && f->function ? f->function : "???");
			if (f && f->file) {
				const char *base = strrchr(f->file, '/');
				fputs("\\n", out);
				dot_text(out, base ? base + 1 : f->file);
				fprintf(out, ":%u", f->line);
			}
			fprintf(out, "\\n0x%" PRIx64 "\"];\n", mb->address);
		}
		fputs("  }\n", out);
		for (size_t i = 0; i < c->n_edges; i++) {
			const struct reports_cycle_edge *e = &cy->edges[c->first_edge + i];
			fprintf(out, "  b%" PRIx64 " -> b%" PRIx64 " [label=\"+%" PRIu64 "\"];\n",
				e->from, e->to, e->offset);
		}
	}
	reports_objects_render_dot(out, an->objects, cap, sym); /* objects.c */
	fputs("}\n", out);
	reports_frames_finish(&fr);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
