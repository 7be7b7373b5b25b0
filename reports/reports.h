/*
 * reports.h: the public interface of reports/, everything memprof does with
 * a capture after the run.
 *
 *   reports_capture_load_file()   read and check a capture (reader.c)
 *   reports_symbolizer_create()   addresses to functions and lines (symbolize.c)
 *   reports_analysis_run()        totals, peak, sites, leaks (analysis.c)
 *   reports_render_text/json()    the reports themselves (render-*.c)
 *
 * The reader turns the per-thread chunks of a capture into one model: the
 * stacks as a prefix tree of canonical nodes (identical stacks recorded by
 * different threads share one node), the modules, samples, notes and scan
 * results.  The allocation events are not kept: they are most of a capture
 * (hundreds of millions in a long run), so each analysis streams them again
 * from the file, the threads' chunks merged in sequence order
 * (reports_events_open()); memory stays proportional to the blocks live at
 * once, not to the events.  Everything here
 * returns 0 or a negative errno, a bool, or NULL; nothing prints except the
 * renderers, to the stream they are given.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- the capture model (reader.c) ------------------------------------- */

struct reports_prepass;

#define REPORTS_NO_STACK UINT32_MAX
/* Deeper stacks are cut there (a hostile capture may chain nodes forever). */
#define REPORTS_STACK_DEPTH_MAX 256u
/* Longest error message of the reader. */
#define REPORTS_ERROR_MAX 256u

enum reports_event_kind {
	REPORTS_EVENT_ALLOC = 0,
	REPORTS_EVENT_FREE = 1,
};

struct reports_event {
	uint64_t seq;
	uint64_t addr;
	uint64_t size;   /* ALLOC only */
	uint64_t order;  /* position in the file: ties in seq keep file order */
	uint32_t stack;  /* canonical stack node, or REPORTS_NO_STACK */
	uint16_t kind;   /* enum reports_event_kind */
	uint16_t thread; /* the recording thread's id, low 16 bits */
};

/* One frame of the stack tree: ip 0 is a frame the capture did not
 * describe (a missing STACK node), printed as unknown. */
struct reports_node {
	uint64_t ip;
	uint32_t parent; /* the caller's node, or REPORTS_NO_STACK */
	uint32_t depth;  /* 1 for a node without parent */
};

struct reports_module {
	uint64_t id;
	uint64_t load_bias;
	uint64_t start;
	uint64_t end;
	char *path;
	uint8_t *build_id;
	size_t build_id_len;
	bool unloaded;
	uint64_t unload_seq;
};

struct reports_sample {
	uint64_t t_ns;
	uint64_t seq;
	uint64_t rss_bytes;
	uint64_t heap_bytes;
	uint64_t live_bytes;
};

struct reports_thread {
	uint64_t tid;
	uint64_t seq;
	uint64_t event; /* 0 start, 1 exit */
	char *name;
};

struct reports_badfree {
	uint64_t seq;
	uint64_t kind; /* enum capture_badfree_kind */
	uint64_t addr;
	uint32_t free_stack;
	uint32_t alloc_stack;
	uint32_t first_free_stack;
};

struct reports_pool_class {
	uint64_t block_size;
	uint64_t pools;
	uint64_t in_use;
	uint64_t available;
};

struct reports_stats {
	bool present;
	struct reports_pool_class *classes;
	size_t n_classes;
	uint64_t arenas_allocated;
	uint64_t arenas_reclaimed;
	uint64_t arenas_highwater;
	uint64_t bytes_quantization;
	uint64_t bytes_pool_headers;
	uint64_t bytes_empty_pools;
	uint64_t large_blocks;
	uint64_t large_bytes;
};

struct reports_note {
	uint64_t seq;
	uint64_t level; /* 0 info, 1 warning, 2 error */
	char *text;
};

struct reports_scan {
	uint64_t n_blocks;
	uint64_t n_edges;
	uint64_t flags; /* CAPTURE_SCAN_* */
};

struct reports_scan_block {
	size_t scan; /* the SCAN it belongs to */
	uint64_t addr;
	uint64_t size;
	uint64_t seq;
	uint64_t kind; /* enum capture_leak_kind */
	uint64_t indirect_of;
	uint32_t stack;
};

struct reports_scan_edge {
	size_t scan;
	uint64_t from;
	uint64_t offset;
	uint64_t to;
};

struct reports_objtype {
	uint64_t id;
	char *name;
	uint64_t body_size;
};

struct reports_object {
	uint64_t addr;
	uint64_t type_id;
	uint64_t refcount;
	uint64_t flags;
	uint64_t snapshot;
};

struct reports_objedge {
	uint64_t from;
	uint64_t to;
	uint64_t snapshot;
};

struct reports_snapshot {
	uint64_t id;
	uint64_t t_ns;
	uint64_t seq;
	char *label;
};

/* ---- objects: OBJCOUNT, SCANREF (capture.h) ---- */
struct reports_objcount {
	uint64_t snapshot;
	uint64_t type_id;
	uint64_t count;
	uint64_t bytes;
};

struct reports_scan_ref {
	size_t scan;   /* the SCAN it belongs to */
	uint64_t addr; /* the block */
	uint64_t from; /* where the pointer to it was found */
	uint64_t kind; /* enum capture_ref_kind */
	uint64_t tid;
};

struct reports_capture {
	/* PROCESS */
	bool has_process;
	uint64_t pid;
	uint64_t ppid;
	uint64_t start_realtime_ns;
	uint64_t process_flags;
	char *exe;
	char **argv;
	size_t argc;

	/* END */
	bool has_end;
	uint64_t end_t_ns;
	uint64_t end_seq;
	uint64_t end_how;
	uint64_t end_status;
	uint64_t end_signal;

	/* The capture stops early: a torn last chunk, or no END record. */
	bool incomplete;
	bool truncated;          /* the file ends inside a chunk */
	uint64_t truncated_at;   /* byte offset of that chunk */
	uint64_t lost_events;    /* sum of the LOST records */

	/* The allocation events, streamed by reports_events_open(): how many,
	 * and their smallest and largest seq (when n_events > 0). */
	size_t n_events;
	uint64_t events_first_seq;
	uint64_t events_last_seq;
	struct reports_node *nodes;
	size_t n_nodes;
	struct reports_module *modules;
	size_t n_modules;
	struct reports_sample *samples; /* sorted by seq */
	size_t n_samples;
	struct reports_thread *threads;
	size_t n_threads;
	struct reports_badfree *badfrees;
	size_t n_badfrees;
	struct reports_note *notes;
	size_t n_notes;
	struct reports_stats stats;

	/* The scans, in file order; each SCANBLOCK and SCANEDGE belongs to the
	 * SCAN read last before it. */
	struct reports_scan *scans;
	size_t n_scans;
	struct reports_scan_block *scan_blocks;
	size_t n_scan_blocks;
	struct reports_scan_edge *scan_edges;
	size_t n_scan_edges;

	struct reports_objtype *objtypes;
	size_t n_objtypes;
	struct reports_object *objects;
	size_t n_objects;
	struct reports_objedge *objedges;
	size_t n_objedges;
	struct reports_snapshot *snapshots;
	size_t n_snapshots;
	/* objects: OBJCOUNT, SCANREF */
	struct reports_objcount *objcounts;
	size_t n_objcounts;
	struct reports_scan_ref *scan_refs;
	size_t n_scan_refs;

	size_t n_chunks;
	uint64_t file_size;

	/* Where the events are read again from (reader.c). */
	struct reports_source *source;
	/* The analysis's pass over the events, made while the capture was
	 * followed (reports_analysis_prepass), or NULL. */
	struct reports_prepass *prepass;
	void (*prepass_free)(struct reports_prepass *); /* (the reader does not
							  * link the analysis) */
};

/* Where and why a capture could not be read. */
struct reports_error {
	uint64_t offset; /* byte offset in the file */
	char message[REPORTS_ERROR_MAX];
};

/* Reads a capture from memory.  On success, *out owns a new capture (free it
 * with reports_capture_destroy) and returns 0; a capture cut short loads
 * fine with incomplete set.  On a bad capture returns -EINVAL (or -ENOMEM)
 * and fills err with what is wrong and where. */
int reports_capture_load_buffer(const uint8_t *data, size_t len,
				struct reports_capture **out,
				struct reports_error *err);
/* The same for a file; -errno when it cannot be opened or read (err says
 * so too). */
int reports_capture_load_file(const char *path, struct reports_capture **out,
			      struct reports_error *err);
void reports_capture_destroy(struct reports_capture *cap);

/* ---- a capture read while the program writes it (memprof run) ---------
 * reports_capture_follow() opens a capture file that the tracer is still
 * appending to; reports_analysis_prepass() (on a thread of its own) then
 * replays its events as the tracer's FLUSHED records make them final,
 * waiting for more, until reports_capture_follow_end() (from any thread,
 * once the program is over) lets it read the rest and return.  The
 * capture is then what reports_capture_load_file() would have made of the
 * file, and reports_analysis_run() takes the pass already made.  Both
 * return 0 or a negative errno; on failure, destroy the capture and load
 * the file as usual. */
int reports_capture_follow(const char *path, struct reports_capture **out,
			   struct reports_error *err);
/* Returns how many events the pass has taken so far. */
uint64_t reports_capture_follow_end(struct reports_capture *cap);
int reports_analysis_prepass(struct reports_capture *cap);
/* The pause of a follower that found nothing new (the file not grown, or
 * not there yet): a few milliseconds. */
void reports_growing_wait(void);

/* Writes the capture at src to a new file dst (which must not exist) with
 * its chunks compressed (compress.c).  0, -EINVAL when src is not a
 * capture that can be rewritten (err says why; dst is not left), or
 * -errno. */
int reports_capture_compress(const char *src, const char *dst, struct reports_error *err);
/* The same for a capture still being written: compresses its chunks as
 * they come, until ended(arg) says the file will not grow (asked between
 * rounds; a torn last chunk is then copied as it is). */
int reports_capture_compress_follow(const char *src, const char *dst,
				    bool (*ended)(void *arg), void *arg,
				    struct reports_error *err);

/* ---- the allocation events, streamed ----------------------------------
 * Each pass over the events re-reads them from the capture (a mapped file,
 * or the reader's copy of a buffer), merging the threads' chunks in
 * (seq, order) order: order is the event's place in the file, so equal
 * seqs keep file order.  Pages of the file already passed are given back
 * as the pass goes, so a pass holds only the chunks it is merging.  Any
 * number of passes may be open at once. */
struct reports_events;

/* Opens a pass over cap's events.  0 or -ENOMEM. */
int reports_events_open(const struct reports_capture *cap, struct reports_events **out);
/* The next event: 1 with *ev filled, 0 after the last one, -EIO when the
 * file no longer holds what the reader found there (it changed since). */
int reports_events_next(struct reports_events *it, struct reports_event *ev);
void reports_events_close(struct reports_events *it);

/* Fills ips[] with the return addresses of a stack, innermost first, at
 * most max; returns how many there are in all (capped by
 * REPORTS_STACK_DEPTH_MAX). */
size_t reports_stack_ips(const struct reports_capture *cap, uint32_t stack,
			 uint64_t *ips, size_t max);

/* Interpolates the time (ns since start) of a sequence number from the
 * SAMPLE records and END. */
uint64_t reports_capture_time_of_seq(const struct reports_capture *cap,
				     uint64_t seq);
/* The inverse: the sequence number reached at time t_ns (UINT64_MAX past
 * the last sample: every event). */
uint64_t reports_capture_seq_at_time(const struct reports_capture *cap, uint64_t t_ns);

/* ---- symbolization (symbolize.c) -------------------------------------- */

struct reports_frame {
	uint64_t address;     /* the return address as recorded */
	const char *function; /* NULL when unknown */
	const char *file;     /* NULL when unknown */
	unsigned line;        /* 0 when unknown */
	const char *module;   /* path of the module, or NULL */
	uint64_t offset;      /* address relative to the module's load bias */
	bool inlined;         /* a frame of an inlined call */
	/* leaks: the linkage name (mangled for C++) when it differs from
	 * function, else NULL; valgrind's suppressions match it */
	const char *mangled;
};

struct reports_symbolizer;

/* A symbolizer for the modules of cap (which must outlive it).  Without
 * libdw data for a module, frames fall back to the symbol table, then to
 * module+offset.  Returns NULL only when out of memory. */
struct reports_symbolizer *reports_symbolizer_create(const struct reports_capture *cap);
void reports_symbolizer_destroy(struct reports_symbolizer *sym);

/* The frames of one recorded address: more than one when calls were
 * inlined there, innermost first.  Every recorded address is a return
 * address (capture.h), looked up minus 1 so that the frame names the call.
 * The frames stay valid until the symbolizer is destroyed.  Returns the
 * count (at least 1). */
size_t reports_symbolizer_lookup(struct reports_symbolizer *sym, uint64_t ip,
				 const struct reports_frame **frames);

/* A symbolized stack: a growing array of frames. */
struct reports_frames {
	const struct reports_frame **v;
	size_t n;
	size_t cap;
};

/* Replaces the contents of out with the frames of a stack (inlined calls
 * expanded), innermost first.  0 or -ENOMEM. */
int reports_stack_symbolize(struct reports_symbolizer *sym,
			    const struct reports_capture *cap, uint32_t stack,
			    struct reports_frames *out);
void reports_frames_finish(struct reports_frames *frames);

/* Where a stack starts to be worth showing: memprof's own frames are
 * skipped, except the last of them (the interposed malloc, new...). */
size_t reports_frames_display_start(const struct reports_frames *frames);

/* Whether a frame belongs to an allocator wrapper (malloc and friends,
 * operator new, memprof's own library) rather than to the program. */
bool reports_frame_is_allocator(const struct reports_frame *frame);

/* The frame that names where a block was allocated: the first frame of the
 * program once allocator wrappers are skipped (symbolizing stack into fr),
 * or NULL. */
const struct reports_frame *reports_stack_alloc_site(struct reports_symbolizer *sym,
						   const struct reports_capture *cap,
						   uint32_t stack, struct reports_frames *fr);

/* ---- analyses (analysis.c) -------------------------------------------- */

enum reports_leak_kind {
	REPORTS_LEAK_DEFINITE = 0,
	REPORTS_LEAK_INDIRECT = 1,
	REPORTS_LEAK_POSSIBLE = 2,
	REPORTS_LEAK_REACHABLE = 3,
	REPORTS_LEAK_SUPPRESSED = 4,
	REPORTS_LEAK_KINDS = 5,
};

struct reports_totals {
	uint64_t allocations;
	uint64_t frees;
	uint64_t bytes_allocated;
	uint64_t peak_bytes;
	uint64_t peak_seq;
	uint64_t peak_time_ns;
	uint64_t live_blocks_at_exit;
	uint64_t live_bytes_at_exit;
	uint64_t duration_ns;
	uint64_t temporary; /* allocations freed before their thread allocated again */
};

struct reports_site {
	uint32_t stack;
	uint64_t allocations;
	uint64_t bytes;
	uint64_t peak_bytes;   /* live at the moment of the global peak */
	uint64_t leaked_bytes; /* live at exit */
	uint64_t leaked_blocks;
	uint64_t temporary;    /* see reports_temporary_count */
};

/* tracemalloc's 'lineno' view: sites grouped by their first frame in the
 * program (allocator wrappers skipped). */
struct reports_lineno {
	const char *file;     /* NULL when the frame has no line information */
	unsigned line;
	const char *function;
	const char *module;
	uint64_t address;
	uint64_t allocations;
	uint64_t bytes;
	uint64_t peak_bytes;
	uint64_t leaked_bytes;
};

struct reports_leak_count {
	uint64_t bytes;
	uint64_t blocks;
};

struct reports_leak_record {
	enum reports_leak_kind kind;
	uint32_t stack;
	uint64_t bytes;
	uint64_t blocks;
	uint64_t indirect_bytes;
	uint64_t indirect_blocks;
};

struct reports_analysis {
	struct reports_totals totals;
	struct reports_site *sites;       /* sorted by peak_bytes, then bytes */
	size_t n_sites;
	struct reports_lineno *lineno;    /* sorted by bytes */
	size_t n_lineno;
	struct reports_leak_count leaks[REPORTS_LEAK_KINDS];
	struct reports_leak_record *leak_records; /* by increasing size */
	size_t n_leak_records;
	bool scanned;                     /* leak kinds come from a scan */
	bool scan_partial;                /* ...that could not stop every thread */
	uint64_t unmatched_frees;         /* FREE of an address never allocated */
	/* ---- leaks (see the leaks block at the end of this file) ---- */
	struct reports_leak_block *leak_blocks; /* live at exit, by kind, stack */
	size_t n_leak_blocks;
	struct reports_cycles *cycles;    /* unreachable cycles, or NULL */
	bool scan_on_demand;              /* classified by an on-demand scan */
	/* ---- objects (see the objects block at the end of this file) ---- */
	struct reports_objects *objects;  /* libmemprof-heap, or NULL */
};

/* Analyses cap.  sym may be NULL (then the lineno view groups by the first
 * recorded address).  Returns NULL when out of memory. */
struct reports_analysis *reports_analysis_run(const struct reports_capture *cap,
					      struct reports_symbolizer *sym);
void reports_analysis_destroy(struct reports_analysis *an);

const char *reports_leak_kind_name(enum reports_leak_kind kind);

/* Sort orders of the site views. */
enum reports_site_order {
	REPORTS_SITES_BY_PEAK,
	REPORTS_SITES_BY_BYTES,
	REPORTS_SITES_BY_COUNT,
};

/* Fills order[] (n_sites entries) with site indices in the given order. */
void reports_sites_sort(const struct reports_analysis *an,
			enum reports_site_order how, size_t *order);
/* Fills order[] with the first min(k, n_sites) of them in that order (room
 * for n_sites entries), or all of them; returns how many. */
size_t reports_sites_top(const struct reports_analysis *an, enum reports_site_order how,
			 size_t *order, size_t k);

/* ---- renderers (render-text.c, render-json.c) -------------------------- */

/* What the caller knows of the program's end better than the capture
 * (memprof run saw the real wait status). */
struct reports_outcome {
	bool known;
	int exit_status; /* 128+N for a death by signal N */
	int signal;      /* 0 or N */
};

struct reports_render_options {
	size_t top;       /* entries of each site view, 0 for the default 5 */
	bool color;       /* ANSI colours in the text report */
	struct reports_outcome outcome;
	/* ---- leaks ---- */
	bool gen_suppressions;           /* a valgrind entry after each record */
	const struct supp_set *supp;     /* suppressions used, or NULL */
	bool leaks_reachable;            /* SARIF: still reachable records too */
	bool gates;                      /* memprof run had leak gates */
	const char *gate_failure;        /* the failed gate's message, or NULL */
};

/* The program's end as the capture's END record tells it (known false
 * when the capture has none, or the program exec'd another one). */
void reports_capture_outcome(const struct reports_capture *cap,
			     struct reports_outcome *out);

int reports_render_text(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an,
			struct reports_symbolizer *sym,
			const struct reports_render_options *opts);
int reports_render_json(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an,
			struct reports_symbolizer *sym,
			const struct reports_render_options *opts);

/* Writes s as a JSON string literal: quotes, backslashes and control
 * characters escaped, invalid UTF-8 replaced by U+FFFD. */
void reports_json_string(FILE *out, const char *s, size_t len);

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), 0 if the
 * bytes there are not UTF-8. */
size_t reports_utf8_len(const unsigned char *s, size_t n);

/* Writes s (from the capture, debug info or a suppression file) for a
 * terminal or a text file: valid UTF-8 as it is; control characters, which
 * could steer the terminal, and bytes that are not UTF-8 as '?'; sep (when
 * not 0; a separator of the output format) as ':'. */
void reports_put_clean(FILE *out, const char *s, char sep);
/* The same for len bytes of s; returns the characters written. */
size_t reports_put_clean_n(FILE *out, const char *s, size_t len, char sep);

/* ---- views: folded stacks, line view, timeline, diff, progress ---------
 * (views-folded.c, views-lines.c, views-timeline.c, diff.c, progress.c):
 * the reports people would rather look at than read. */

/* What the counts of a folded stack mean (memprof report --cost). */
enum reports_cost {
	REPORTS_COST_PEAK = 0,    /* bytes live at the peak of the heap */
	REPORTS_COST_LEAKED,      /* bytes still live at exit */
	REPORTS_COST_ALLOCATIONS, /* number of allocations */
	REPORTS_COST_BYTES,       /* bytes allocated in all */
	REPORTS_COST_TEMPORARY,   /* number of temporary allocations */
};

/* Parses "peak", "leaked", "allocations", "bytes", "temporary"; false
 * for anything else. */
bool reports_cost_parse(const char *name, enum reports_cost *out);

/* Copies the temporary allocations of each site into per_site[i] (for
 * an->sites[i]; n_sites entries) and their sum into *total.  An
 * allocation is temporary when it is freed before the thread that made it
 * allocates again: in sequence order, no ALLOC of the same thread comes
 * between its ALLOC and its FREE (whichever thread frees it).  The
 * analysis counts them in its pass over the events.  Returns 0. */
int reports_temporary_count(const struct reports_capture *cap,
			    const struct reports_analysis *an, uint64_t *per_site,
			    uint64_t *total);

/* Brendan Gregg's collapsed stacks, one line per distinct stack:
 * "main;parse;xstrdup 4096", outermost frame first, sorted, stacks with a
 * zero count left out.  temporary (from reports_temporary_count) is read
 * for REPORTS_COST_TEMPORARY only. */
int reports_render_folded(FILE *out, const struct reports_capture *cap,
			  const struct reports_analysis *an,
			  struct reports_symbolizer *sym, enum reports_cost cost,
			  const uint64_t *temporary);

/* Writes one frame's name as the folded format has it: the function
 * ("_[i]" appended for an inlined call, flamegraph.pl's annotation), else
 * module+0xOFFSET, else 0xADDRESS; ';' and control characters replaced. */
void reports_folded_frame_name(FILE *out, const struct reports_frame *f);

/* Whether a frame's function is the one a user names: the same name, or
 * the same without a C++ parameter list ("ns::f" names "ns::f(int)"). */
bool reports_function_matches(const char *function, const char *name);

/* memory_profiler's line-by-line view of a function (or of every function
 * of a source file that allocates) into out.  -ENOENT when no allocation
 * passes through target; -ENOMEM or -EIO. */
int reports_render_lines(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an,
			 struct reports_symbolizer *sym, const char *target);

struct reports_timeline_options {
	unsigned width;  /* columns of the plot, 0 for 72 */
	unsigned height; /* rows of the plot, 0 for 16 */
	bool ascii;      /* plain ASCII instead of UTF-8 block characters */
};

/* mprof's plot on the terminal: live heap bytes (from the events) and RSS
 * (from the samples) over time, with axes, units and the peak marked.
 * Needs the events.  0, -ENOMEM or -EIO. */
int reports_render_timeline(FILE *out, const struct reports_capture *cap,
			    const struct reports_analysis *an,
			    const struct reports_timeline_options *opts);

/* tracemalloc's compare_to: the sites of two runs matched by key. */
enum reports_diff_by {
	REPORTS_DIFF_BY_LINE = 0, /* the first frame of the program, file:line */
	REPORTS_DIFF_BY_STACK,    /* the whole symbolized stack */
};

struct reports_diff_side {
	uint64_t allocations;
	uint64_t bytes;
	uint64_t peak_bytes;
	uint64_t leaked_bytes;
};

struct reports_diff_entry {
	char *key;      /* what the entry is, as printed */
	struct reports_diff_side old, new;
	/* for the JSON: the first frame of the program (by line) or the
	 * stack of the side that has it (by stack; the new one when both) */
	bool in_new;
	uint32_t stack;
	const char *file;
	unsigned line;
	const char *function;
	const char *module;
};

/* One run of a diff: its capture, analysis and symbolizer (not owned). */
struct reports_diff_run {
	const char *path;
	const struct reports_capture *cap;
	const struct reports_analysis *an;
	struct reports_symbolizer *sym;
};

struct reports_diff {
	enum reports_diff_by by;
	struct reports_diff_run old, new;
	struct reports_diff_entry *entries; /* changed ones, biggest change first */
	size_t n_entries;
	size_t n_unchanged;
};

/* Matches the sites of two analysed runs; NULL when out of memory.  The
 * runs must outlive the diff. */
struct reports_diff *reports_diff_create(const struct reports_diff_run *old_run,
					 const struct reports_diff_run *new_run,
					 enum reports_diff_by by);
void reports_diff_destroy(struct reports_diff *diff);

/* top: entries shown, 0 for all. */
int reports_render_diff_text(FILE *out, const struct reports_diff *diff, size_t top);
int reports_render_diff_json(FILE *out, const struct reports_diff *diff, size_t top);

/* Progress of the long steps ("reading", "analysing", "symbolizing"):
 * the hook is called now and then with how far the step is (done of
 * total) from the thread doing the work.  One hook per process; NULL
 * removes it.  reports_progress() is what reports/ calls. */
typedef void reports_progress_fn(void *ctx, const char *step, uint64_t done,
				 uint64_t total);
void reports_progress_set(reports_progress_fn *fn, void *ctx);
void reports_progress(const char *step, uint64_t done, uint64_t total);

/* ---- the HTML report (html-data.c, html-flame.c, render-html.c) -------- */

/* What the HTML page takes from the allocation events, which the other
 * renderers do not need: live bytes over time, what each site had live at
 * some of those times, temporary allocations, allocation sizes.  Build it
 * before reports_capture_drop_events(). */
struct reports_html_data;

/* From cap's events and an's sites (an must be the analysis of cap).
 * Returns NULL when out of memory. */
struct reports_html_data *reports_html_data_build(const struct reports_capture *cap,
						  const struct reports_analysis *an);
void reports_html_data_destroy(struct reports_html_data *hd);

/* Writes the self-contained HTML page (no network access needed to view
 * it).  hd may be NULL: the page then has no curve of live bytes, no
 * temporaries and no size histogram.  0, -ENOMEM or -EIO. */
int reports_render_html(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an,
			struct reports_symbolizer *sym,
			const struct reports_html_data *hd,
			const struct reports_render_options *opts);

/* ---- leaks: cycles, suppressions, CI formats (cycles.c, leaks.c,
 * render-sarif.c, render-junit.c, render-dot.c) ---------------------------- */

/* A block live at exit, as classify() left it (analysis.c keeps them in
 * an->leak_blocks, sorted by kind then stack). */
struct reports_leak_block {
	uint64_t addr;
	uint64_t size;
	uint64_t indirect_of; /* indirect: the lost block it hangs off, else 0 */
	uint32_t stack;
	enum reports_leak_kind kind;
	uint32_t record;      /* index in an->leak_records */
	int32_t supp;         /* the suppression that took it, or -1 */
};

struct reports_cycle_member {
	uint64_t address;
	uint64_t size;
	uint32_t stack;
};

/* from + offset holds a pointer into the block that starts at to. */
struct reports_cycle_edge {
	uint64_t from;
	uint64_t offset;
	uint64_t to;
};

/* One unreachable cycle: a strongly connected component of two or more
 * lost blocks, or one lost block that points to itself.  Its members and
 * edges are slices of reports_cycles' arrays. */
struct reports_cycle {
	uint64_t blocks;
	uint64_t bytes;
	size_t first_member, n_members; /* members by address */
	size_t first_edge, n_edges;     /* edges inside the cycle */
};

struct reports_cycles {
	struct reports_cycle *v; /* by bytes, largest first */
	size_t n;
	struct reports_cycle_member *members;
	size_t n_members;
	struct reports_cycle_edge *edges;
	size_t n_edges;
};

/* Strongly connected components of the graph of n nodes and m edges
 * from[i] -> to[i] (Tarjan's algorithm, iterative: memory O(n + m), no
 * recursion).  comp[v] gets v's component, numbered from 0 in the order
 * they complete; returns their count, or -ENOMEM / -EINVAL (a node number
 * out of range). */
long reports_scc(size_t n, const uint32_t *from, const uint32_t *to, size_t m,
		 uint32_t *comp);

/* Finds the cycles among the lost blocks (definite, indirect, possible;
 * suppressed ones excluded) of the scan that classified an, through its
 * SCANEDGE records, into an->cycles (replacing what was there).  0 or
 * -ENOMEM. */
int reports_cycles_find(const struct reports_capture *cap, struct reports_analysis *an);
void reports_cycles_finish(struct reports_cycles *c);

struct supp_set;
struct supp_frame;

/* The frames of a stack as suppressions see them (suppress.h): from the
 * public allocation function the program called (operator new rather than
 * the malloc it calls), innermost first, cut after main.  *out is
 * malloc'd (free it); returns the count, or -ENOMEM. */
long reports_supp_frames(struct reports_symbolizer *sym, const struct reports_capture *cap,
			 uint32_t stack, struct supp_frame **out);

/* Applies a suppression set to an: a loss record whose stack and kind
 * match a suppression is suppressed, and so is every lost block reachable
 * from a suppressed one through the scan's edges (suppressed blocks are
 * roots, as with valgrind and LeakSanitizer).  Records, totals and cycles
 * are rebuilt; the uses are counted in set.  0 or -ENOMEM. */
int reports_leaks_suppress(struct reports_analysis *an, const struct reports_capture *cap,
			   struct reports_symbolizer *sym, struct supp_set *set);

/* Whether the scan that classified the leaks was an on-demand one (no scan
 * at exit: the program was killed, or never exited). */
bool reports_leaks_on_demand(const struct reports_capture *cap);

/* Text report pieces: the "Cycles" section; a valgrind suppression entry
 * for a record (--gen-suppressions); the suppressions used and unused and
 * the loader's warnings.  0 or -errno. */
int reports_render_text_cycles(FILE *out, const struct reports_capture *cap,
			       const struct reports_analysis *an,
			       struct reports_symbolizer *sym);
int reports_render_text_suppression(FILE *out, const struct reports_capture *cap,
				    struct reports_symbolizer *sym,
				    const struct reports_leak_record *r);
void reports_render_text_supp_summary(FILE *out, const struct supp_set *set, bool color);

/* The JSON "cycles" array (render-json.c calls it); json_stack is
 * render-json.c's frame list, exposed for it. */
int reports_json_cycles(FILE *out, const struct reports_capture *cap,
			const struct reports_analysis *an, struct reports_symbolizer *sym,
			struct reports_frames *fr);
int reports_json_stack(FILE *out, const struct reports_capture *cap,
		       struct reports_symbolizer *sym, uint32_t stack,
		       struct reports_frames *fr);

/* SARIF 2.1.0 (one result per loss record; reachable ones only with
 * opts->leaks_reachable), JUnit XML (one testsuite, one testcase; it fails
 * when opts->gate_failure is set, or without gates when definite or
 * indirect leaks remain) and Graphviz (the cycles).  0 or -errno. */
int reports_render_sarif(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an, struct reports_symbolizer *sym,
			 const struct reports_render_options *opts);
int reports_render_junit(FILE *out, const struct reports_capture *cap,
			 const struct reports_analysis *an, struct reports_symbolizer *sym,
			 const struct reports_render_options *opts);
int reports_render_dot(FILE *out, const struct reports_capture *cap,
		       const struct reports_analysis *an, struct reports_symbolizer *sym,
		       const struct reports_render_options *opts);

/* ---- objects: libmemprof-heap's objgraph-style reports (objects.c) ------
 * From the OBJTYPE, OBJECT, OBJEDGE, SNAPSHOT, OBJCOUNT and SCANREF records
 * (capture.h): the types alive at exit, the growth between snapshots, the
 * cycles the program never freed (found unreachable by the collector at
 * exit), refcount leaks (objects with more references than the objects
 * that point to them explain, which no root reaches) and back-reference
 * chains from a root (a global by its name, a thread's stack, TLS). */

struct reports_obj_type {
	const char *name;
	uint64_t count;
	uint64_t bytes;
	int64_t delta; /* growth entries: count minus the earlier count */
};

struct reports_obj_growth {
	const char *from_label, *to_label;
	uint64_t from_id, to_id;
	size_t first, n; /* types whose count grew, in objects->growth_types */
};

/* One object the report names. */
struct reports_obj {
	uint64_t addr;      /* the body */
	const char *type;
	uint64_t size;      /* its block's bytes (header included) */
	uint64_t refcount;
	uint64_t referrers; /* references from other objects (OBJEDGE) */
	uint32_t stack;     /* allocation stack, or REPORTS_NO_STACK */
};

struct reports_obj_cycle {
	uint64_t bytes;
	size_t first, n;           /* members, in objects->members */
	size_t first_type, n_type; /* distinct types, in objects->cycle_types */
	size_t first_edge, n_edge; /* in objects->edges */
};

struct reports_obj_edge {
	uint64_t from, to; /* bodies */
};

/* One link of a chain: a block and where in it the pointer to the
 * previous (inner) link lies. */
struct reports_obj_link {
	uint64_t block;     /* block start */
	uint64_t offset;    /* of the pointer inside the block */
	uint64_t size;
	const char *type;   /* an object's type, or NULL for a plain block */
	uint32_t stack;
};

struct reports_obj_chain {
	struct reports_obj obj;  /* the object the chain explains */
	size_t first, n;         /* its holders, innermost first (objects->links) */
	uint64_t root_kind;      /* enum capture_ref_kind of the root */
	uint64_t root_addr;      /* the root word (0 for a register) */
	uint64_t root_tid;
	char *root;              /* "g_doc+8 in prog", "stack of thread 12"... */
};

struct reports_objects {
	uint64_t total_count, total_bytes;     /* at exit */
	struct reports_obj_type *types;        /* at exit, most objects first */
	size_t n_types;
	struct reports_obj_growth *growth;     /* consecutive snapshots */
	size_t n_growth;
	struct reports_obj_type *growth_types;
	size_t n_growth_types;
	struct reports_obj_cycle *cycles;      /* largest first */
	size_t n_cycles;
	struct reports_obj *members;
	size_t n_members;
	const char **cycle_types;
	size_t n_cycle_types;
	struct reports_obj_edge *edges;
	size_t n_edges;
	struct reports_obj *leaks;             /* refcount leaks */
	size_t n_leaks;
	struct reports_obj_chain *chains;      /* one per type still reachable */
	size_t n_chains;
	struct reports_obj_link *links;
	size_t n_links;
};

/* NULL when cap holds no objects (or out of memory: *err = -ENOMEM). */
struct reports_objects *reports_objects_analyse(const struct reports_capture *cap,
						struct reports_symbolizer *sym, int *err);
void reports_objects_destroy(struct reports_objects *o);

/* The text section, the value of the JSON "objects" key, and the DOT
 * subgraphs (inside the digraph reports_render_dot() opens).  o may be
 * NULL.  0 or -EIO. */
int reports_objects_render_text(FILE *out, const struct reports_objects *o,
				const struct reports_capture *cap,
				struct reports_symbolizer *sym, size_t top);
int reports_objects_render_json(FILE *out, const struct reports_objects *o,
				const struct reports_capture *cap,
				struct reports_symbolizer *sym);
int reports_objects_render_dot(FILE *out, const struct reports_objects *o,
			       const struct reports_capture *cap,
			       struct reports_symbolizer *sym);
