/*
 * test-reports-render.c: the symbolizer on this very test program (return
 * addresses of calls made in a plain function and in an inlined one, an
 * address of no module),
 * and the JSON and text renderers: string escaping, the fixed keys, the
 * memcheck-like loss records.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "reports-encode.h"
#include "reports.h"

static uint64_t captured_ra, marker_ra;

__attribute__((noinline)) static void record_return_address(uint64_t *where)
{
	*where = (uint64_t)(uintptr_t)__builtin_return_address(0);
	__asm__ volatile("" ::: "memory");
}

enum { INNER_CALL_LINE = __LINE__ + 3 };
static inline __attribute__((always_inline)) int inner_inline(int x)
{
	record_return_address(&captured_ra);
	return x * 3 + 1;
}

enum { OUTER_CALL_LINE = __LINE__ + 3 };
__attribute__((noinline)) int outer_noinline(int x);
__attribute__((noinline)) int outer_noinline(int x)
{	int r = inner_inline(x);
	__asm__ volatile("" : : "r"(r) : "memory");
	return r + 1;
}

enum { MARKER_CALL_LINE = __LINE__ + 4 };
__attribute__((noinline)) void marker_function(void);
__attribute__((noinline)) void marker_function(void)
{
	record_return_address(&marker_ra);
	__asm__ volatile("" ::: "memory");
}

struct exe_map {
	uint64_t bias, start, end;
};

static int find_exe(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct exe_map *m = arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			m->bias = info->dlpi_addr;
			m->start = info->dlpi_addr + ph->p_vaddr;
			m->end = m->start + ph->p_memsz;
			return 1; /* the first object is the executable */
		}
	}
	return 1;
}

/* A capture of this process: one module (the test), stack 1 = marker,
 * stack 2 = marker called from the return address inside the inlined call,
 * stack 3 = an address of no module, with one leaked block on each. */
static struct reports_capture *self_capture(void)
{
	struct exe_map m = { 0 };
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(n, 0);
	exe[n] = '\0';
	dl_iterate_phdr(find_exe, &m);
	cr_assert_gt(m.end, m.start);
	outer_noinline(1);
	marker_function();

	struct enc e;
	const char *argv[] = { "self\n\"test\"" };
	enc_init(&e);
	enc_chunk_begin(&e, 1);
	enc_process(&e, 1, 1, argv);
	enc_module(&e, 1, m.bias, m.start, m.end, exe);
	enc_stack(&e, 1, 0, marker_ra);
	enc_stack(&e, 4, 0, captured_ra);
	enc_stack(&e, 2, 4, marker_ra);
	enc_stack(&e, 3, 0, 0x10);
	enc_alloc(&e, 1, 0x1000, 112, 1);
	enc_alloc(&e, 2, 0x2000, 40, 2);
	enc_alloc(&e, 3, 0x3000, 8, 3);
	enc_end(&e, 1000, 4, CAPTURE_END_EXIT, 0, 0);
	enc_chunk_end(&e);
	struct reports_capture *cap = NULL;
	struct reports_error err;
	cr_assert_eq(reports_capture_load_buffer(e.buf, e.len, &cap, &err), 0, "%s",
		     err.message);
	enc_finish(&e);
	return cap;
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

Test(reports_symbolize, names_a_function_and_its_file)
{
	struct reports_capture *cap = self_capture();
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	const struct reports_frame *f;
	size_t n = reports_symbolizer_lookup(sym, marker_ra, &f);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(f[0].function, "marker_function");
	cr_assert_eq(f[0].line, MARKER_CALL_LINE);
	cr_assert_eq(f[0].address, marker_ra);
	cr_assert_not_null(f[0].file);
	cr_assert_str_eq(base(f[0].file), "test-reports-render.c");
	cr_assert_eq(f[0].file[0], '/', "not absolute: %s", f[0].file);
	cr_assert_null(strstr(f[0].file, "/../"), "not normalised: %s", f[0].file);
	cr_assert_gt(f[0].line, 0);
	cr_assert_not_null(f[0].module);
	/* cached: the same frames come back */
	const struct reports_frame *g;
	reports_symbolizer_lookup(sym, marker_ra, &g);
	cr_assert_eq(f, g);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}

Test(reports_symbolize, expands_inlined_calls_innermost_first)
{
	struct reports_capture *cap = self_capture();
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	const struct reports_frame *f;
	size_t n = reports_symbolizer_lookup(sym, captured_ra, &f);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(f[0].function, "inner_inline");
	cr_assert(f[0].inlined);
	cr_assert_eq(f[0].line, INNER_CALL_LINE);
	cr_assert_str_eq(f[1].function, "outer_noinline");
	cr_assert_not(f[1].inlined);
	cr_assert_eq(f[1].line, OUTER_CALL_LINE);
	cr_assert_eq(f[0].address, captured_ra);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}

Test(reports_symbolize, address_outside_modules_is_unknown)
{
	struct reports_capture *cap = self_capture();
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	const struct reports_frame *f;
	cr_assert_eq(reports_symbolizer_lookup(sym, 0x10, &f), 1);
	cr_assert_null(f[0].function);
	cr_assert_null(f[0].file);
	cr_assert_null(f[0].module);
	cr_assert_eq(f[0].address, 0x10);

	struct reports_frames fr = { 0 };
	struct reports_events *it;
	struct reports_event ev;
	cr_assert_eq(reports_events_open(cap, &it), 0);
	cr_assert_eq(reports_events_next(it, &ev), 1);
	cr_assert_eq(reports_events_next(it, &ev), 1); /* the second event */
	reports_events_close(it);
	cr_assert_eq(reports_stack_symbolize(sym, cap, ev.stack, &fr), 0);
	cr_assert_eq(fr.n, 3); /* marker_function, inner_inline, outer_noinline */
	cr_assert_str_eq(fr.v[0]->function, "marker_function");
	cr_assert_str_eq(fr.v[1]->function, "inner_inline");
	cr_assert_str_eq(fr.v[2]->function, "outer_noinline");
	reports_frames_finish(&fr);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}

Test(reports_symbolize, allocator_frames_are_recognised)
{
	struct reports_frame f = { .function = "malloc" };
	cr_assert(reports_frame_is_allocator(&f));
	f.function = "operator new(unsigned long)";
	cr_assert(reports_frame_is_allocator(&f));
	f.function = "make_list";
	cr_assert_not(reports_frame_is_allocator(&f));
	f.module = "/usr/lib/memprof/libmemprof-preload.so";
	cr_assert(reports_frame_is_allocator(&f));
}

static char *json_of(const char *s, size_t len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);
	reports_json_string(out, s, len);
	fclose(out);
	return buf;
}

Test(reports_json, escapes_strings_and_replaces_bad_utf8)
{
	char *j = json_of("a\"b\\c\n\t\x01", 8);
	cr_assert_str_eq(j, "\"a\\\"b\\\\c\\n\\t\\u0001\"");
	free(j);
	j = json_of("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14);
	cr_assert_str_eq(j, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	free(j);
	/* a lone continuation byte, an overlong '/', a surrogate, a cut sequence */
	j = json_of("\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82", 11);
	cr_assert_str_eq(j, "\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
	free(j);
	j = json_of("a\0b", 3);
	cr_assert_str_eq(j, "\"a\\u0000b\"");
	free(j);
	/* DEL, and runs of plain bytes either side of every kind of stop,
	 * a sequence whole at the very end */
	j = json_of("ab\x7f\xc3\xa9" "cd\"\xff" "e\xe2\x82\xac", 13);
	cr_assert_str_eq(j, "\"ab\\u007f\xc3\xa9" "cd\\\"\\ufffd" "e\xe2\x82\xac\"");
	free(j);
}

static char *render(bool json, const struct reports_capture *cap,
		    const struct reports_analysis *an, struct reports_symbolizer *sym)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);
	struct reports_render_options opts = { .top = 3 };
	int r = json ? reports_render_json(out, cap, an, sym, &opts)
		     : reports_render_text(out, cap, an, sym, &opts);
	cr_assert_eq(r, 0);
	fclose(out);
	return buf;
}

Test(reports_json, has_the_fixed_keys_and_symbolized_frames)
{
	struct reports_capture *cap = self_capture();
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	char *j = render(true, cap, an, sym);
	static const char *const keys[] = {
		"\"format\": \"memprof-report\"", "\"version\": 1", "\"program\": {",
		"\"argv\": [\"self\\n\\\"test\\\"\"]", "\"exit_status\": 0", "\"signal\": null",
		"\"duration_s\": 0.000001", "\"totals\": {", "\"allocations\": 3",
		"\"frees\": 0", "\"bytes_allocated\": 160", "\"peak_bytes\": 160",
		"\"live_blocks_at_exit\": 3", "\"live_bytes_at_exit\": 160", "\"leaks\": {",
		"\"definite\": {\"bytes\": 0, \"blocks\": 0}",
		"\"reachable\": {\"bytes\": 160, \"blocks\": 3}", "\"suppressed\": {",
		"\"leak_records\": [", "\"kind\": \"reachable\"", "\"indirect_bytes\": 0",
		"\"cycles\": []", "\"sites\": [", "\"leaked_bytes\": 112",
		"\"function\": \"marker_function\"", "\"function\": \"inner_inline\"",
		("\"function\": null, \"file\": null, \"line\": null, \"module\": \"\", "
		 "\"address\": \"0x10\""),
		"\"objects\": {\"types\": [], \"uncollectable_cycles\": []", /* more may follow */
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		cr_assert(strstr(j, keys[i]), "missing %s in\n%s", keys[i], j);
	char want[128];
	snprintf(want, sizeof(want), "\"line\": %d", OUTER_CALL_LINE);
	cr_assert(strstr(j, want), "missing %s", want);
	free(j);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}

Test(reports_text, prints_memcheck_like_loss_records)
{
	struct reports_capture *cap = self_capture();
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	char *t = render(false, cap, an, sym);
	static const char *const parts[] = {
		"exited with status 0",
		"allocations: 3, frees: 0",
		"Top allocation sites by peak",
		"112 bytes in 1 blocks are still reachable in loss record 3 of 3",
		": marker_function (test-reports-render.c:",
		"inner_inline (test-reports-render.c:",
		"still reachable: 160 bytes in 3 blocks",
		"no reachability scan was recorded",
		"self?\"test\"", /* control characters never reach the terminal */
	};
	for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++)
		cr_assert(strstr(t, parts[i]), "missing '%s' in\n%s", parts[i], t);
	cr_assert_null(strchr(t, '\033'), "colour without asking");
	free(t);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}

Test(reports_text, colours_only_when_asked)
{
	struct reports_capture *cap = self_capture();
	struct reports_symbolizer *sym = reports_symbolizer_create(cap);
	struct reports_analysis *an = reports_analysis_run(cap, sym);
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);
	struct reports_render_options opts = { .color = true };
	cr_assert_eq(reports_render_text(out, cap, an, sym, &opts), 0);
	fclose(out);
	cr_assert(strstr(buf, "\033[1mTotals\033[0m"), "%s", buf);
	free(buf);
	reports_analysis_destroy(an);
	reports_symbolizer_destroy(sym);
	reports_capture_destroy(cap);
}
