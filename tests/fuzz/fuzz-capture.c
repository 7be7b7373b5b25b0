/*
 * fuzz-capture.c: libFuzzer target for the capture reader (reports/reader.c).
 * Main entry point: LLVMFuzzerTestOneInput().
 *
 * Each input is loaded as a capture file, then again with every chunk's
 * checksum corrected so that mutations reach the records.  The target checks the reader's
 * contract: a refused input leaves no capture and a one-line, terminated
 * message; a loaded one streams its events in (seq, order) order, as many as it counted, every stack
 * and parent index inside the node table, stack walks cut at
 * REPORTS_STACK_DEPTH_MAX, scan blocks and edges that belong to a scan, and
 * its stacks, times and notes can be walked.  Any broken contract aborts,
 * which libFuzzer reports as a crash (as are the sanitizers' findings).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memprof/capture.h>

#include "reports.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-capture: broken contract: %s\n", what);
		abort();
	}
}

static void check_stack(const struct reports_capture *cap, uint32_t stack)
{
	if (stack == REPORTS_NO_STACK)
		return;
	check(stack < cap->n_nodes, "a stack index outside the node table");
	uint64_t ips[REPORTS_STACK_DEPTH_MAX + 1];
	size_t n = reports_stack_ips(cap, stack, ips, REPORTS_STACK_DEPTH_MAX + 1);
	check(n >= 1 && n <= REPORTS_STACK_DEPTH_MAX, "a stack of impossible depth");
	check(ips[0] == cap->nodes[stack].ip, "a stack that does not start at its node");
}

static void check_capture(const struct reports_capture *cap)
{
	for (size_t i = 0; i < cap->n_nodes; i++) {
		const struct reports_node *nd = &cap->nodes[i];
		check(nd->parent == REPORTS_NO_STACK || nd->parent < cap->n_nodes,
		      "a parent outside the node table");
		/* the tree may be deeper than REPORTS_STACK_DEPTH_MAX: walks
		 * (reports_stack_ips) are what is cut there */
		check(nd->parent == REPORTS_NO_STACK ? nd->depth == 1
						     : nd->depth == cap->nodes[nd->parent].depth + 1,
		      "a node whose depth is not its parent's plus one");
	}
	struct reports_events *it;
	struct reports_event ev, prev = { 0 };
	size_t n = 0;
	int r;
	check(reports_events_open(cap, &it) == 0, "a pass that cannot open");
	for (const struct reports_event *e = &ev; (r = reports_events_next(it, &ev)) > 0; n++) {
		check(e->kind == REPORTS_EVENT_ALLOC || e->kind == REPORTS_EVENT_FREE,
		      "an event of unknown kind");
		if (n > 0)
			check(prev.seq < e->seq || (prev.seq == e->seq && prev.order < e->order),
			      "events out of (seq, order) order");
		check(e->seq >= cap->events_first_seq && e->seq <= cap->events_last_seq,
		      "an event outside the capture's seq range");
		check_stack(cap, e->stack);
		(void)reports_capture_time_of_seq(cap, e->seq);
		prev = ev;
	}
	check(r == 0, "a pass over a loaded capture that fails");
	check(n == cap->n_events, "a pass that streams another number of events");
	reports_events_close(it);
	for (size_t i = 0; i < cap->n_badfrees; i++) {
		check_stack(cap, cap->badfrees[i].free_stack);
		check_stack(cap, cap->badfrees[i].alloc_stack);
		check_stack(cap, cap->badfrees[i].first_free_stack);
	}
	for (size_t i = 0; i < cap->n_scan_blocks; i++) {
		check(cap->scan_blocks[i].scan < cap->n_scans, "a scan block without its scan");
		check_stack(cap, cap->scan_blocks[i].stack);
	}
	for (size_t i = 0; i < cap->n_scan_edges; i++)
		check(cap->scan_edges[i].scan < cap->n_scans, "a scan edge without its scan");
	for (size_t i = 0; i < cap->n_notes; i++)
		check(cap->notes[i].text != NULL, "a note without text");
	for (size_t i = 0; i < cap->n_modules; i++)
		check(cap->modules[i].path != NULL, "a module without a path");
	for (size_t i = 0; i < cap->argc; i++)
		check(cap->argv[i] != NULL, "a NULL argument");
	check(cap->file_size == 0 || cap->n_chunks <= cap->file_size / 16,
	      "more chunks than the file can hold");
	struct reports_outcome oc;
	reports_capture_outcome(cap, &oc);
}

/* The input with every chunk's checksum made right, so that mutations
 * reach the record parser rather than stop at the checksum; NULL when the
 * input has no chunk to fix. */
static uint8_t *fix_checksums(const uint8_t *data, size_t size)
{
	if (size < CAPTURE_HEADER_SIZE + CAPTURE_CHUNK_HEADER_SIZE)
		return NULL;
	uint8_t *copy = malloc(size);
	if (!copy)
		return NULL;
	memcpy(copy, data, size);
	size_t off = CAPTURE_HEADER_SIZE;
	while (off + CAPTURE_CHUNK_HEADER_SIZE <= size) {
		uint32_t len;
		memcpy(&len, copy + off + 4, 4);
		if (len > size - off - CAPTURE_CHUNK_HEADER_SIZE)
			break;
		uint32_t sum = capture_checksum(copy + off + CAPTURE_CHUNK_HEADER_SIZE, len);
		memcpy(copy + off + 12, &sum, 4);
		off += CAPTURE_CHUNK_HEADER_SIZE + len;
	}
	return copy;
}

static void load_one(const uint8_t *data, size_t size)
{
	struct reports_capture *cap = (struct reports_capture *)data; /* poison */
	struct reports_error err;
	memset(&err, 0x5a, sizeof(err));
	int r = reports_capture_load_buffer(data, size, &cap, &err);
	if (r < 0) {
		check(cap == NULL, "a refused capture left a capture behind");
		size_t len = strnlen(err.message, sizeof(err.message));
		check(len > 0 && len < sizeof(err.message), "an empty or unterminated message");
		check(strchr(err.message, '\n') == NULL, "a message of more than one line");
		check(err.offset <= size, "an error offset past the end of the input");
		return;
	}
	check(r == 0 && cap != NULL, "a loaded capture is missing");
	check_capture(cap);
	reports_capture_destroy(cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	load_one(data, size);
	uint8_t *fixed = fix_checksums(data, size);
	if (fixed) {
		load_one(fixed, size);
		free(fixed);
	}
	return 0;
}
