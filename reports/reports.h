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
 * allocation events merged in sequence order, the stacks as a prefix tree of
 * canonical nodes (identical stacks recorded by different threads share one
 * node), the modules, samples, notes and scan results.  Everything here
 * returns 0 or a negative errno, a bool, or NULL; nothing prints except the
 * renderers, to the stream they are given.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- the capture model (reader.c) ------------------------------------- */

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
	uint32_t kind;   /* enum reports_event_kind */
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

	struct reports_event *events; /* sorted by (seq, order) */
	size_t n_events;
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

	size_t n_chunks;
	uint64_t file_size;
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

/* Frees the allocation events once the analyses are done with them (the
 * renderers never read them): the largest part of a big capture. */
void reports_capture_drop_events(struct reports_capture *cap);

/* Fills ips[] with the return addresses of a stack, innermost first, at
 * most max; returns how many there are in all (capped by
 * REPORTS_STACK_DEPTH_MAX). */
size_t reports_stack_ips(const struct reports_capture *cap, uint32_t stack,
			 uint64_t *ips, size_t max);

/* Interpolates the time (ns since start) of a sequence number from the
 * SAMPLE records and END. */
uint64_t reports_capture_time_of_seq(const struct reports_capture *cap,
				     uint64_t seq);

/* ---- symbolization (symbolize.c) -------------------------------------- */

struct reports_frame {
	uint64_t address;     /* the return address as recorded */
	const char *function; /* NULL when unknown */
	const char *file;     /* NULL when unknown */
	unsigned line;        /* 0 when unknown */
	const char *module;   /* path of the module, or NULL */
	uint64_t offset;      /* address relative to the module's load bias */
	bool inlined;         /* a frame of an inlined call */
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
};

struct reports_site {
	uint32_t stack;
	uint64_t allocations;
	uint64_t bytes;
	uint64_t peak_bytes;   /* live at the moment of the global peak */
	uint64_t leaked_bytes; /* live at exit */
	uint64_t leaked_blocks;
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
