/*
 * test-reports-suppress.c: leak suppressions (reports/suppress.c), both
 * formats: LeakSanitizer's `leak:PATTERN` lines and valgrind's blocks.
 * Loads suppression text, matches made-up stacks against it, checks the
 * errors on bad input and the --gen-suppressions round trip.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suppress.h"

#define F(fn, mangled, file, line, module)                                                         \
	(struct supp_frame)                                                                        \
	{                                                                                          \
		(fn), (mangled), (file), (line), (module)                                          \
	}

/* A typical stack: malloc in libc called by the program. */
static const struct supp_frame stack[] = {
	{"malloc", NULL, "malloc.c", 3287, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
	{"Parser::push(int)", "_ZN6Parser4pushEi", "/src/app/parser.cc", 42, "/usr/bin/app"},
	{"load_config", NULL, "/src/app/config.c", 17, "/usr/bin/app"},
	{"main", NULL, "/src/app/main.c", 9, "/usr/bin/app"},
	{"__libc_start_main", NULL, NULL, 0, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
};
#define NSTACK (sizeof(stack) / sizeof(stack[0]))

static struct supp_set *set_of(const char *text)
{
	struct supp_set *set = supp_set_create();
	char err[256];
	int r;

	cr_assert_not_null(set);
	r = supp_set_load_buffer(set, "t.supp", text, strlen(text), err, sizeof(err));
	cr_assert_eq(r, 0, "load failed: %s", err);
	return set;
}

/* Whether text's suppressions suppress the stack for kind. */
static bool suppressed(const char *text, const struct supp_frame *frames, size_t n,
		       enum supp_leak_kind kind)
{
	struct supp_set *set = set_of(text);
	int m = supp_set_match(set, frames, n, kind);

	supp_set_destroy(set);
	return m >= 0;
}

static bool lsan(const char *pattern)
{
	char text[512];

	snprintf(text, sizeof(text), "leak:%s\n", pattern);
	return suppressed(text, stack, NSTACK, SUPP_DEFINITE);
}

/* Loads text that must fail: the return value, and the message in err. */
static int load_error(const char *text, char *err, size_t errlen)
{
	struct supp_set *set = supp_set_create();
	int r;

	r = supp_set_load_buffer(set, "bad.supp", text, strlen(text), err, errlen);
	cr_assert_eq(supp_set_count(set), 0);
	supp_set_destroy(set);
	return r;
}

static void assert_error(const char *text, const char *where, const char *what)
{
	char err[256];
	int r = load_error(text, err, sizeof(err));

	cr_assert_eq(r, -EINVAL, "loading should fail: %s", text);
	cr_assert(strstr(err, where) != NULL, "'%s' does not name '%s'", err, where);
	cr_assert(strstr(err, what) != NULL, "'%s' does not say '%s'", err, what);
}

/* ---- LeakSanitizer's format ---------------------------------------------- */

Test(suppress_lsan, pattern_is_a_substring_of_function_file_or_module)
{
	cr_assert(lsan("load_conf"));	   /* function, not the innermost frame */
	cr_assert(lsan("app/config"));	   /* file path */
	cr_assert(lsan("bin/ap"));	   /* module path */
	cr_assert(lsan("Parser::push"));   /* demangled name */
	cr_assert_not(lsan("_ZN6Parser")); /* not the linkage name: it has a demangled one */
	cr_assert_not(lsan("unrelated"));
}

Test(suppress_lsan, uses_the_linkage_name_when_there_is_no_other)
{
	struct supp_frame f = F(NULL, "_ZN3FooC1Ev", NULL, 0, "/x/libfoo.so");

	cr_assert(suppressed("leak:_ZN3Foo\n", &f, 1, SUPP_DEFINITE));
}

Test(suppress_lsan, caret_anchors_at_the_start)
{
	cr_assert(lsan("^load_"));
	cr_assert_not(lsan("^oad_config"));
	cr_assert(lsan("^/usr/bin/app"));
	cr_assert_not(lsan("^usr/bin"));
}

Test(suppress_lsan, dollar_anchors_at_the_end)
{
	cr_assert(lsan("config$"));
	cr_assert(lsan("config.c$"));
	cr_assert_not(lsan("load$"));
	cr_assert(lsan("^main$"));
	cr_assert_not(lsan("^mai$"));
}

Test(suppress_lsan, dollar_anchors_the_last_occurrence_too)
{
	struct supp_frame f = F("foofoo", NULL, NULL, 0, NULL);

	cr_assert(suppressed("leak:foo$\n", &f, 1, SUPP_DEFINITE));
	cr_assert(suppressed("leak:^foo*foo$\n", &f, 1, SUPP_DEFINITE));
	cr_assert_not(suppressed("leak:^foo*foofoo$\n", &f, 1, SUPP_DEFINITE));
}

Test(suppress_lsan, star_matches_any_run_and_question_mark_is_literal)
{
	cr_assert(lsan("load*config"));
	cr_assert(lsan("^load*g$"));
	cr_assert(lsan("P*::*push"));
	cr_assert_not(lsan("config*load"));
	cr_assert_not(lsan("load?config"));
	cr_assert(lsan("*"));

	struct supp_frame f = F("what?", NULL, NULL, 0, NULL);

	cr_assert(suppressed("leak:what?$\n", &f, 1, SUPP_DEFINITE));
}

Test(suppress_lsan, lone_dollar_matches_nothing_and_empty_pattern_everything)
{
	struct supp_set *set;

	cr_assert_not(lsan("$"));
	cr_assert_not(lsan("^$"));
	cr_assert(lsan("*$"));
	set = set_of("leak:\n");
	cr_assert_eq(supp_set_match(set, stack, NSTACK, SUPP_REACHABLE), 0);
	cr_assert_eq(supp_set_warning_count(set), 1);
	cr_assert(strstr(supp_set_warning(set, 0), "t.supp:1:") != NULL);
	supp_set_destroy(set);
}

Test(suppress_lsan, text_after_dollar_is_ignored_with_a_warning)
{
	struct supp_set *set = set_of("leak:config$junk\n");

	cr_assert_eq(supp_set_match(set, stack, NSTACK, SUPP_DEFINITE), 0);
	cr_assert_eq(supp_set_warning_count(set), 1);
	cr_assert(strstr(supp_set_warning(set, 0), "'$'") != NULL);
	supp_set_destroy(set);
}

Test(suppress_lsan, comments_blank_lines_blanks_and_crlf)
{
	const char *text = "# leaks we know of\r\n"
			   "\r\n"
			   "   \t# indented comment\r\n"
			   "\tleak:nothing_here  \r\n"
			   "  leak:^main$\t \r\n"
			   "leak:last_line_without_newline";
	struct supp_set *set = set_of(text);
	struct supp_info info;

	cr_assert_eq(supp_set_count(set), 3);
	cr_assert_eq(supp_set_match(set, stack, NSTACK, SUPP_DEFINITE), 1);
	cr_assert(supp_set_get(set, 1, &info));
	cr_assert_str_eq(info.name, "leak:^main$");
	cr_assert_eq(info.line, 5);
	cr_assert_eq(info.format, SUPP_FORMAT_LSAN);
	cr_assert_eq(info.kinds, SUPP_ALL_KINDS);
	cr_assert(supp_set_get(set, 2, &info));
	cr_assert_str_eq(info.name, "leak:last_line_without_newline");
	supp_set_destroy(set);
}

Test(suppress_lsan, blank_after_colon_is_part_of_the_pattern)
{
	struct supp_set *set = set_of("leak: main\n");

	cr_assert_eq(supp_set_match(set, stack, NSTACK, SUPP_DEFINITE), -1);
	cr_assert_eq(supp_set_warning_count(set), 1);
	supp_set_destroy(set);
}

Test(suppress_lsan, applies_to_every_leak_kind)
{
	cr_assert(suppressed("leak:main\n", stack, NSTACK, SUPP_DEFINITE));
	cr_assert(suppressed("leak:main\n", stack, NSTACK, SUPP_INDIRECT));
	cr_assert(suppressed("leak:main\n", stack, NSTACK, SUPP_POSSIBLE));
	cr_assert(suppressed("leak:main\n", stack, NSTACK, SUPP_REACHABLE));
}

Test(suppress_lsan, other_sanitizers_types_are_ignored_with_a_warning)
{
	struct supp_set *set = set_of("called_from_lib:libfoo.so\n"
				      "race:main\n"
				      "interceptor_via_fun:main\n"
				      "vptr_check:main\n");

	cr_assert_eq(supp_set_count(set), 0);
	cr_assert_eq(supp_set_warning_count(set), 4);
	cr_assert(strstr(supp_set_warning(set, 1), "t.supp:2:") != NULL);
	cr_assert(strstr(supp_set_warning(set, 1), "race") != NULL);
	cr_assert_eq(supp_set_match(set, stack, NSTACK, SUPP_DEFINITE), -1);
	supp_set_destroy(set);
}

Test(suppress_lsan, unknown_types_and_stray_lines_are_errors)
{
	assert_error("leak:a\nlek:main\n", "bad.supp:2:", "unknown suppression type 'lek'");
	assert_error("# c\n\nmain\n", "bad.supp:3:", "expected 'leak:PATTERN'");
	assert_error("fun:main\n", "bad.supp:1:", "outside a valgrind");
	assert_error("leak:a\n}\n", "bad.supp:2:", "'}' without a '{'");
}

/* ---- valgrind's format ------------------------------------------------------ */

static bool vg(const char *frames_text)
{
	char text[4096];

	snprintf(text, sizeof(text), "{\n   name\n   Memcheck:Leak\n%s}\n", frames_text);
	return suppressed(text, stack, NSTACK, SUPP_DEFINITE);
}

Test(suppress_valgrind, frame_lines_match_a_prefix_of_the_stack)
{
	cr_assert(vg("fun:malloc\n"));
	cr_assert(vg("fun:malloc\nfun:_ZN6Parser4pushEi\nfun:load_config\n"));
	cr_assert(vg("fun:malloc\nfun:_ZN6Parser4pushEi\nfun:load_config\nfun:main\n"
		     "fun:__libc_start_main\n"));
	cr_assert_not(vg("fun:_ZN6Parser4pushEi\n")); /* not the innermost frame */
	cr_assert_not(vg("fun:malloc\nfun:load_config\n"));
	/* longer than the stack */
	cr_assert_not(vg("fun:malloc\nfun:_ZN6Parser4pushEi\nfun:load_config\nfun:main\n"
			 "fun:__libc_start_main\nfun:_start\n"));
}

Test(suppress_valgrind, dots_match_zero_or_more_frames)
{
	cr_assert(vg("...\nfun:main\n"));			   /* at the start */
	cr_assert(vg("...\nfun:malloc\n"));			   /* zero frames */
	cr_assert(vg("fun:malloc\n...\nfun:main\n"));		   /* in the middle */
	cr_assert(vg("fun:malloc\n...\nfun:_ZN6Parser4pushEi\n")); /* zero in the middle */
	cr_assert(vg("fun:malloc\n...\n"));			   /* at the end */
	cr_assert(vg("...\nfun:__libc_start_main\n...\n"));	   /* zero at the end */
	cr_assert(vg("...\nfun:load_config\n...\nfun:__libc_start_main\n"));
	cr_assert(vg("...\n...\nfun:main\n...\n"));
	cr_assert_not(vg("...\nfun:main\nfun:load_config\n"));
	cr_assert_not(vg("...\nfun:nowhere\n...\n"));
	cr_assert_not(vg("fun:malloc\n...\nfun:malloc\n"));
}

Test(suppress_valgrind, wildcards_match_the_whole_name)
{
	cr_assert(vg("fun:mal*\n"));
	cr_assert(vg("fun:m?lloc\n"));
	cr_assert(vg("fun:*\nfun:_ZN6Parser*\n"));
	cr_assert(vg("fun:*alloc\nfun:*\nfun:load_?onfig\n"));
	cr_assert_not(vg("fun:mall\n")); /* not a substring match */
	cr_assert_not(vg("fun:alloc\n"));
	cr_assert_not(vg("fun:m?alloc\n")); /* '?' is exactly one character */
	cr_assert(vg("fun:malloc*\n"));	    /* '*' matches zero characters */
}

Test(suppress_valgrind, fun_matches_the_linkage_name_not_the_demangled_one)
{
	cr_assert(vg("fun:malloc\nfun:_ZN6Parser4pushEi\n"));
	cr_assert_not(vg("fun:malloc\nfun:Parser::push(int)\n"));
	cr_assert_not(vg("fun:malloc\nfun:Parser::push*\n"));
	cr_assert(vg("fun:malloc\nfun:_ZN6Parser*\n"));
}

Test(suppress_valgrind, frames_without_a_name_are_question_marks)
{
	struct supp_frame f[] = {
		F("malloc", NULL, NULL, 0, "/lib/libc.so.6"),
		F(NULL, NULL, NULL, 0, NULL),
		F("", NULL, "", 0, ""),
	};
	const char *t1 = "{\n n\n Memcheck:Leak\n fun:malloc\n fun:???\n obj:???\n}\n";
	const char *t2 = "{\n n\n Memcheck:Leak\n fun:malloc\n fun:*\n fun:*\n}\n";
	const char *t3 = "{\n n\n Memcheck:Leak\n fun:malloc\n src:*\n}\n";

	cr_assert(suppressed(t1, f, 3, SUPP_DEFINITE));
	cr_assert(suppressed(t2, f, 3, SUPP_DEFINITE));
	cr_assert_not(suppressed(t3, f, 3, SUPP_DEFINITE));
}

Test(suppress_valgrind, obj_matches_the_module_path)
{
	cr_assert(vg("obj:/usr/lib/x86_64-linux-gnu/libc.so.6\n"));
	cr_assert(vg("obj:*/libc.so*\nobj:/usr/bin/app\n"));
	cr_assert(vg("obj:*libc*\n...\nobj:*/app\n"));
	cr_assert_not(vg("obj:libc.so.6\n")); /* the whole path */
	cr_assert_not(vg("obj:/usr/bin/app\n"));
}

Test(suppress_valgrind, src_matches_the_file_name_and_line)
{
	cr_assert(vg("src:malloc.c\n"));
	cr_assert(vg("src:malloc.c\nsrc:parser.cc:42\n"));
	cr_assert(vg("...\nsrc:config.c:17\n"));
	cr_assert(vg("...\nsrc:*.c:9\n"));
	cr_assert_not(vg("...\nsrc:config.c:18\n"));
	cr_assert_not(vg("...\nsrc:/src/app/config.c\n")); /* no directory */
	cr_assert_not(vg("...\nsrc:config\n"));
	/* __libc_start_main has no file */
	cr_assert_not(vg("...\nfun:main\nsrc:*\n"));
	cr_assert(vg("...\nfun:main\nfun:*\n"));
	cr_assert(vg("src:malloc.c:0\n")); /* 0: any line */
}

Test(suppress_valgrind, match_leak_kinds_limits_the_kinds)
{
	const char *def = "{\n n\n Memcheck:Leak\n match-leak-kinds: definite,possible\n"
			  " fun:malloc\n}\n";
	const char *all = "{\n n\n Memcheck:Leak\n match-leak-kinds: all\n fun:malloc\n}\n";
	const char *none = "{\n n\n Memcheck:Leak\n match-leak-kinds: none\n fun:malloc\n}\n";
	const char *dflt = "{\n n\n Memcheck:Leak\n fun:malloc\n}\n";
	const char *spaced = "{\n n\n Memcheck:Leak\n match-leak-kinds:reachable , indirect\n"
			     " fun:malloc\n}\n";

	cr_assert(suppressed(def, stack, NSTACK, SUPP_DEFINITE));
	cr_assert(suppressed(def, stack, NSTACK, SUPP_POSSIBLE));
	cr_assert_not(suppressed(def, stack, NSTACK, SUPP_INDIRECT));
	cr_assert_not(suppressed(def, stack, NSTACK, SUPP_REACHABLE));
	cr_assert(suppressed(all, stack, NSTACK, SUPP_REACHABLE));
	cr_assert(suppressed(dflt, stack, NSTACK, SUPP_REACHABLE));
	cr_assert(suppressed(dflt, stack, NSTACK, SUPP_INDIRECT));
	cr_assert_not(suppressed(none, stack, NSTACK, SUPP_DEFINITE));
	cr_assert(suppressed(spaced, stack, NSTACK, SUPP_REACHABLE));
	cr_assert_not(suppressed(spaced, stack, NSTACK, SUPP_DEFINITE));

	struct supp_set *set = set_of(def);
	struct supp_info info;

	cr_assert(supp_set_get(set, 0, &info));
	cr_assert_eq(info.kinds, SUPP_DEFINITE | SUPP_POSSIBLE);
	supp_set_destroy(set);
}

Test(suppress_valgrind, blocks_of_other_kinds_and_tools_are_skipped)
{
	const char *text = "{\n"
			   "   cond\n"
			   "   Memcheck:Cond\n"
			   "   fun:malloc\n"
			   "}\n"
			   "{\n"
			   "   param\n"
			   "   Memcheck:Param\n"
			   "   write(buf)\n"
			   "   fun:write\n"
			   "}\n"
			   "{\n"
			   "   race\n"
			   "   Helgrind:Race\n"
			   "   whatever: the tool wants\n"
			   "}\n"
			   "{\n"
			   "   fd\n"
			   "   CoreError:FdNotClosed\n"
			   "   fun:open\n"
			   "}\n"
			   "{\n"
			   "   the leak\n"
			   "   Helgrind,Memcheck:Leak\n"
			   "   fun:malloc\n"
			   "}\n";
	struct supp_set *set = set_of(text);
	struct supp_info info;

	cr_assert_eq(supp_set_count(set), 1);
	cr_assert_eq(supp_set_match(set, stack, NSTACK, SUPP_DEFINITE), 0);
	cr_assert(supp_set_get(set, 0, &info));
	cr_assert_str_eq(info.name, "the leak");
	cr_assert_eq(info.line, 22);
	cr_assert_eq(info.format, SUPP_FORMAT_VALGRIND);
	supp_set_destroy(set);
}

Test(suppress_valgrind, comments_and_crlf_inside_blocks)
{
	const char *text = "# generated\r\n{\r\n  # the name follows\r\n  crlf name \r\n"
			   "\r\n  Memcheck:Leak\r\n  match-leak-kinds: definite\r\n"
			   "  # innermost first\r\n  fun:malloc\r\n  ...\r\n  fun:main\r\n}\r\n";
	struct supp_set *set = set_of(text);
	struct supp_info info;

	cr_assert_eq(supp_set_match(set, stack, NSTACK, SUPP_DEFINITE), 0);
	cr_assert(supp_set_get(set, 0, &info));
	cr_assert_str_eq(info.name, "crlf name");
	cr_assert_eq(info.line, 2);
	supp_set_destroy(set);
}

Test(suppress_valgrind, syntax_errors_name_the_line)
{
	assert_error("{\n n\n Memcheck:Leak\n fun:malloc\n",
		     "bad.supp:4:", "block opened at line 1");
	assert_error("{\n n\n}\n", "bad.supp:3:", "kind line");
	assert_error("{\n n\n fun:malloc\n}\n", "bad.supp:3:", "kind line");
	assert_error("{\n}\n", "bad.supp:2:", "empty block");
	assert_error("{\n n\n Memcheck:Lek\n fun:malloc\n}\n",
		     "bad.supp:3:", "unknown Memcheck suppression kind 'Lek'");
	assert_error("{\n n\n Memcheck:Leak\n fun:malloc\n bogus:x\n}\n",
		     "bad.supp:5:", "expected a frame line");
	assert_error("{\n n\n Memcheck:Leak\n}\n", "bad.supp:4:", "no frame lines");
	assert_error("{\n n\n Memcheck:Leak\n ...\n ...\n}\n", "bad.supp:6:", "other than '...'");
	assert_error("{\n n\n Memcheck:Leak\n match-leak-kinds: lost\n fun:a\n}\n",
		     "bad.supp:4:", "unknown leak kind 'lost'");
	assert_error("{\n n\n Memcheck:Leak\n match-leak-kinds: all,definite\n fun:a\n}\n",
		     "bad.supp:4:", "go alone");
	assert_error("{\n n\n Memcheck:Leak\n match-leak-kinds: definite,\n fun:a\n}\n",
		     "bad.supp:4:", "empty leak kind");
	assert_error("{\n n\n Memcheck:Leak\n fun:a\n match-leak-kinds: all\n}\n",
		     "bad.supp:5:", "right after");
	assert_error("{\n n\n Memcheck:Leak\n src:a.c:x\n}\n", "bad.supp:4:", "bad line number");
	assert_error("{\n n\n Memcheck:Leak\n src:a.c:\n}\n",
		     "bad.supp:4:", "without a line number");
	assert_error("{\n a\n Memcheck:Leak\n fun:a\n{\n b\n Memcheck:Leak\n fun:b\n}\n",
		     "bad.supp:5:", "'{' inside a block");
	assert_error("{\n n\n Memcheck:Cond\n fun:a\n", "bad.supp:4:", "no '}'");
	assert_error("{\n", "bad.supp:1:", "end of file");
}

Test(suppress_valgrind, frame_lines_are_limited)
{
	size_t cap = 64 + (SUPP_FRAME_LINES_MAX + 1) * 12, i;
	char *text = malloc(cap), *t = text;

	t += sprintf(t, "{\n n\n Memcheck:Leak\n");
	for (i = 0; i < SUPP_FRAME_LINES_MAX; i++)
		t += sprintf(t, " fun:f\n");
	sprintf(t, "}\n");
	struct supp_set *set = set_of(text);

	cr_assert_eq(supp_set_count(set), 1);
	supp_set_destroy(set);
	sprintf(t, " fun:f\n}\n");
	assert_error(text, "bad.supp:504:", "more than 500 frame lines");
	free(text);
}

/* ---- both formats, several files, errors --------------------------------- */

Test(suppress_set, first_match_in_load_order_and_use_counts)
{
	struct supp_set *set = supp_set_create();
	const char *a = "leak:nothing\n{\n  vg\n  Memcheck:Leak\n  fun:malloc\n}\n";
	const char *b = "leak:main\n";
	struct supp_info info;
	char err[128];

	cr_assert_eq(supp_set_load_buffer(set, "a.supp", a, strlen(a), err, sizeof(err)), 0);
	cr_assert_eq(supp_set_load_buffer(set, "b.supp", b, strlen(b), err, sizeof(err)), 0);
	cr_assert_eq(supp_set_count(set), 3);
	int m = supp_set_match(set, stack, NSTACK, SUPP_INDIRECT);

	cr_assert_eq(m, 1);
	supp_set_record_use(set, m, 100, 2);
	supp_set_record_use(set, m, 28, 1);
	supp_set_record_use(set, 17, 1, 1); /* out of range: ignored */
	supp_set_record_use(set, -1, 1, 1);
	cr_assert(supp_set_get(set, 1, &info));
	cr_assert_eq(info.uses, 2);
	cr_assert_eq(info.bytes, 128);
	cr_assert_eq(info.blocks, 3);
	cr_assert_str_eq(info.file, "a.supp");
	cr_assert_eq(info.line, 2);
	cr_assert(supp_set_get(set, 2, &info));
	cr_assert_str_eq(info.file, "b.supp");
	cr_assert_eq(info.uses, 0);
	cr_assert_not(supp_set_get(set, 3, &info));
	/* only b.supp's entry applies to a stack without malloc first */
	cr_assert_eq(supp_set_match(set, stack + 1, NSTACK - 1, SUPP_DEFINITE), 2);
	cr_assert_eq(supp_set_match(set, stack, 0, SUPP_DEFINITE), -1);
	supp_set_destroy(set);
}

Test(suppress_set, a_failed_load_adds_nothing)
{
	struct supp_set *set = set_of("leak:main\n");
	const char *bad = "leak:load_config\nrace:x\n{\n n\n Memcheck:Leak\n fun:a\n";
	char err[256];

	cr_assert_eq(supp_set_load_buffer(set, "bad.supp", bad, strlen(bad), err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(supp_set_count(set), 1);
	cr_assert_eq(supp_set_warning_count(set), 0);
	cr_assert_eq(supp_set_match(set, stack + 2, 1, SUPP_DEFINITE), -1);
	supp_set_destroy(set);
}

Test(suppress_set, hostile_bytes_are_errors)
{
	char err[256];
	const char nul[] = "leak:a\nleak:b\0c\n";
	struct supp_set *set = supp_set_create();

	cr_assert_eq(supp_set_load_buffer(set, "nul.supp", nul, sizeof(nul) - 1, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "nul.supp:2:") != NULL, "%s", err);
	cr_assert(strstr(err, "NUL byte") != NULL, "%s", err);

	size_t n = SUPP_LINE_MAX + 16;
	char *longline = malloc(n + 1);

	memcpy(longline, "leak:", 5);
	memset(longline + 5, 'x', n - 5);
	longline[n] = '\0';
	cr_assert_eq(supp_set_load_buffer(set, "long.supp", longline, n, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "long.supp:1: line longer than") != NULL, "%s", err);
	free(longline);

	/* control characters are not echoed into the message */
	const char *ctl = "\x1b[31mevil\x07\n";

	cr_assert_eq(supp_set_load_buffer(set, "ctl.supp", ctl, strlen(ctl), err, sizeof(err)),
		     -EINVAL);
	cr_assert(strchr(err, '\x1b') == NULL && strchr(err, '\x07') == NULL, "%s", err);
	cr_assert_eq(supp_set_count(set), 0);
	supp_set_destroy(set);
}

Test(suppress_set, a_tiny_error_buffer_is_enough)
{
	char err[8];

	cr_assert_eq(load_error("lek:x\n", err, sizeof(err)), -EINVAL);
	cr_assert_eq(strlen(err), 7);
	cr_assert_eq(load_error("lek:x\n", NULL, 0), -EINVAL);
}

Test(suppress_set, loads_files_and_names_them_in_errors)
{
	char dir[] = "/tmp/memprof-supp-XXXXXX", path[64], err[256];
	struct supp_set *set = supp_set_create();
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ok.supp", dir);
	f = fopen(path, "w");
	fputs("{\n   x\n   Memcheck:Leak\n   fun:malloc\n}\nleak:main\n", f);
	fclose(f);
	cr_assert_eq(supp_set_load_file(set, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(supp_set_count(set), 2);

	struct supp_info info;

	cr_assert(supp_set_get(set, 1, &info));
	cr_assert_str_eq(info.file, path);
	cr_assert_eq(info.line, 6);

	char missing[80];

	snprintf(missing, sizeof(missing), "%s/missing.supp", dir);
	cr_assert_eq(supp_set_load_file(set, missing, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, missing) != NULL, "%s", err);
	cr_assert_eq(supp_set_load_file(set, dir, err, sizeof(err)), -EISDIR);
	cr_assert(strstr(err, dir) != NULL, "%s", err);
	cr_assert_eq(supp_set_count(set), 2);

	unlink(path);
	rmdir(dir);
	supp_set_destroy(set);
}

/* ---- no blow-up ---------------------------------------------------------------- */

Test(suppress_set, many_wildcards_against_long_names_stay_polynomial)
{
	/* "*a*a*...*a*b" against "aaa...a": exponential for a naive
	 * backtracking matcher, n*m for ours */
	size_t np = 4000, ns = 20000, i;
	char *pat = malloc(np * 2 + 64), *name = malloc(ns + 1), *t;

	t = pat + sprintf(pat, "leak:");
	for (i = 0; i < np; i++) {
		*t++ = '*';
		*t++ = 'a';
	}
	strcpy(t, "*b\n");
	memset(name, 'a', ns);
	name[ns] = '\0';

	struct supp_frame f = F(name, NULL, name, 0, name);

	cr_assert_not(suppressed(pat, &f, 1, SUPP_DEFINITE));
	name[ns - 1] = 'b';
	cr_assert(suppressed(pat, &f, 1, SUPP_DEFINITE));

	/* the same in valgrind's fun: */
	char *vgt = malloc(np * 2 + 128);

	t = vgt + sprintf(vgt, "{\n n\n Memcheck:Leak\n fun:");
	for (i = 0; i < np; i++) {
		*t++ = '*';
		*t++ = '?';
	}
	strcpy(t, "*c\n}\n");
	cr_assert_not(suppressed(vgt, &f, 1, SUPP_DEFINITE));

	/* one star before a long literal: the matcher's worst case, n*m */
	t = vgt + sprintf(vgt, "leak:");
	memset(t, 'a', 1000);
	strcpy(t + 1000, "c\n");
	cr_assert_not(suppressed(vgt, &f, 1, SUPP_DEFINITE));
	free(vgt);
	free(pat);
	free(name);
}

Test(suppress_set, many_dots_against_a_deep_stack_stay_polynomial)
{
	size_t nf = 256, nl = SUPP_FRAME_LINES_MAX / 2, i;
	struct supp_frame *frames = calloc(nf, sizeof(*frames));
	char *text = malloc(64 + nl * 2 * 8), *t;

	for (i = 0; i < nf; i++)
		frames[i].function = "f";
	t = text + sprintf(text, "{\n n\n Memcheck:Leak\n");
	for (i = 0; i + 1 < nl; i++)
		t += sprintf(t, "...\nfun:f\n");
	sprintf(t, "...\nfun:g\n}\n");
	cr_assert_not(suppressed(text, frames, nf, SUPP_DEFINITE));
	frames[nf - 1].function = "g";
	cr_assert(suppressed(text, frames, nf, SUPP_DEFINITE));
	free(text);
	free(frames);
}

/* ---- --gen-suppressions -------------------------------------------------------- */

static void round_trip(const struct supp_frame *frames, size_t n, unsigned kinds, const char *name)
{
	ssize_t len = supp_format_valgrind(frames, n, kinds, name, NULL, 0);
	char *buf, err[256];

	cr_assert_gt(len, 0);
	buf = malloc((size_t)len + 1);
	cr_assert_eq(supp_format_valgrind(frames, n, kinds, name, buf, (size_t)len + 1), len);
	cr_assert_eq(strlen(buf), (size_t)len);

	struct supp_set *set = supp_set_create();

	cr_assert_eq(supp_set_load_buffer(set, "gen.supp", buf, (size_t)len, err, sizeof(err)), 0,
		     "%s\n%s", err, buf);
	cr_assert_eq(supp_set_count(set), 1, "%s", buf);
	for (unsigned k = 1; k <= SUPP_REACHABLE; k <<= 1)
		cr_assert_eq(supp_set_match(set, frames, n, (enum supp_leak_kind)k),
			     (kinds & k) ? 0 : -1, "kind %u\n%s", k, buf);
	supp_set_destroy(set);
	free(buf);
}

Test(suppress_gen, writes_valgrind_format)
{
	char buf[1024];
	ssize_t len = supp_format_valgrind(stack, 3, SUPP_DEFINITE | SUPP_INDIRECT, NULL, buf,
					   sizeof(buf));

	cr_assert_str_eq(buf, "{\n"
			      "   <insert_a_suppression_name_here>\n"
			      "   Memcheck:Leak\n"
			      "   match-leak-kinds: definite,indirect\n"
			      "   fun:malloc\n"
			      "   fun:_ZN6Parser4pushEi\n"
			      "   fun:load_config\n"
			      "}\n");
	cr_assert_eq(len, (ssize_t)strlen(buf));

	struct supp_frame anon[] = {F(NULL, NULL, "x.c", 1, "/lib/libz.so.1"),
				    F(NULL, NULL, NULL, 0, NULL)};

	supp_format_valgrind(anon, 2, SUPP_REACHABLE, "zlib", buf, sizeof(buf));
	cr_assert_str_eq(buf, "{\n   zlib\n   Memcheck:Leak\n   match-leak-kinds: reachable\n"
			      "   obj:/lib/libz.so.1\n   obj:*\n}\n");
}

Test(suppress_gen, truncates_like_snprintf)
{
	char buf[16];
	ssize_t full = supp_format_valgrind(stack, NSTACK, SUPP_DEFINITE, "n", NULL, 0);
	ssize_t len = supp_format_valgrind(stack, NSTACK, SUPP_DEFINITE, "n", buf, sizeof(buf));

	cr_assert_eq(len, full);
	cr_assert_eq(strlen(buf), sizeof(buf) - 1);
	cr_assert_eq(strncmp(buf, "{\n   n\n   Memch", sizeof(buf) - 1), 0);
	cr_assert_eq(supp_format_valgrind(stack, NSTACK, SUPP_DEFINITE, "n", buf, 0), full);
	cr_assert_eq(supp_format_valgrind(stack, 0, SUPP_DEFINITE, "n", buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(supp_format_valgrind(stack, 1, 0, "n", buf, sizeof(buf)), -EINVAL);
}

Test(suppress_gen, round_trip_matches_the_same_stack)
{
	round_trip(stack, NSTACK, SUPP_DEFINITE, NULL);
	round_trip(stack, NSTACK, SUPP_ALL_KINDS, "all of them");
	round_trip(stack + 2, 1, SUPP_POSSIBLE | SUPP_REACHABLE, "one frame");
}

Test(suppress_gen, round_trip_survives_hostile_names)
{
	char longname[10000];

	memset(longname, 'L', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';

	struct supp_frame f[] = {
		F("new\nline", NULL, NULL, 0, NULL),
		F(" padded\t", NULL, NULL, 0, NULL),
		F(NULL, NULL, NULL, 0, "/lib/with\r\nbreak.so "),
		F("star*and?query", NULL, NULL, 0, NULL),
		F(longname, NULL, NULL, 0, NULL),
		F("}", NULL, NULL, 0, NULL),
		F("...", NULL, NULL, 0, NULL),
		F(NULL, NULL, NULL, 0, NULL),
	};

	round_trip(f, sizeof(f) / sizeof(f[0]), SUPP_DEFINITE, "}");
	round_trip(f, sizeof(f) / sizeof(f[0]), SUPP_INDIRECT, "# not a comment");
	round_trip(f, sizeof(f) / sizeof(f[0]), SUPP_INDIRECT, "\x1b[2Jname\n");
	round_trip(f + 3, 2, SUPP_INDIRECT, "  ");
}

Test(suppress_gen, round_trip_of_a_stack_deeper_than_the_limit)
{
	size_t n = SUPP_FRAME_LINES_MAX + 20, i;
	struct supp_frame *f = calloc(n, sizeof(*f));

	for (i = 0; i < n; i++)
		f[i].function = (i % 2) ? "odd" : "even";
	round_trip(f, n, SUPP_DEFINITE, "deep");
	free(f);
}
