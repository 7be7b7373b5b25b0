/*
 * test-tracer-env.c: the tracer's environment rules: LD_PRELOAD stripping,
 * capture path templating for descendants and the default path,
 * MEMPROF_DEPTH parsing, environment look-ups, and the hiding of what
 * `memprof run` added.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "env.h"

static void strip(const char *in, const char *want, bool changed)
{
	char buf[256];
	strcpy(buf, in);
	cr_assert_eq(tracer_env_strip_preload(buf, TRACER_LIB_NAME), changed, "input '%s'", in);
	cr_assert_str_eq(buf, want, "input '%s'", in);
}

Test(tracer_env, ld_preload_loses_only_the_tracer)
{
	strip("/usr/lib/memprof/libmemprof-preload.so", "", true);
	strip("libmemprof-preload.so", "", true);
	strip("/a/liba.so:/b/libmemprof-preload.so:/c/libc2.so", "/a/liba.so /c/libc2.so", true);
	strip("/b/libmemprof-preload.so /a/liba.so", "/a/liba.so", true);
	strip("/a/liba.so  /b/libmemprof-preload.so", "/a/liba.so", true);
	strip("/a/libmemprof-preload.so.1 /b/libmemprof-preload.so2",
	      "/a/libmemprof-preload.so.1 /b/libmemprof-preload.so2", false);
	strip("/a/liba.so:/c/libc2.so", "/a/liba.so:/c/libc2.so", false);
	strip("", "", false);
	strip("x/libmemprof-preload.so:x/libmemprof-preload.so", "", true);
}

Test(tracer_env, descendants_get_their_pid_in_the_capture_name)
{
	char out[64];
	cr_assert_eq(tracer_env_child_path(out, sizeof(out), "/tmp/run.mpc", 4321), 17);
	cr_assert_str_eq(out, "/tmp/run.4321.mpc");
	tracer_env_child_path(out, sizeof(out), "/tmp/capture", 7);
	cr_assert_str_eq(out, "/tmp/capture.7.mpc", "no suffix: appended");
	tracer_env_child_path(out, sizeof(out), "a.mpc.mpc", 12);
	cr_assert_str_eq(out, "a.mpc.12.mpc", "only the last suffix is replaced");
	tracer_env_child_path(out, sizeof(out), ".mpc", 1);
	cr_assert_str_eq(out, ".1.mpc");
	cr_assert_eq(tracer_env_child_path(out, 10, "/tmp/run.mpc", 4321), -ENAMETOOLONG);
}

Test(tracer_env, default_path_names_the_program_safely)
{
	char out[300];
	int n = tracer_env_default_path(out, sizeof(out), "/usr/bin/python3", 99);
	cr_assert_str_eq(out, "memprof.python3.99.mpc");
	cr_assert_eq(n, (int)strlen(out));
	tracer_env_default_path(out, sizeof(out), "./my prog;rm -rf", 5);
	cr_assert_str_eq(out, "memprof.my_prog_rm_-rf.5.mpc");
	tracer_env_default_path(out, sizeof(out), "", 5);
	cr_assert_str_eq(out, "memprof.prog.5.mpc");
	tracer_env_default_path(out, sizeof(out), "/", 6);
	cr_assert_str_eq(out, "memprof.prog.6.mpc");
	tracer_env_default_path(out, sizeof(out), "..", 6);
	cr_assert_str_eq(out, "memprof.prog.6.mpc", "never a path component");
	cr_assert_eq(tracer_env_default_path(out, 12, "ls", 1), -ENAMETOOLONG);
}

Test(tracer_env, depth_defaults_and_clamps)
{
	cr_assert_eq(tracer_env_depth(NULL), 64);
	cr_assert_eq(tracer_env_depth(""), 64);
	cr_assert_eq(tracer_env_depth("abc"), 64);
	cr_assert_eq(tracer_env_depth("12x"), 64);
	cr_assert_eq(tracer_env_depth("0"), 64);
	cr_assert_eq(tracer_env_depth("1"), 1);
	cr_assert_eq(tracer_env_depth("128"), 128);
	cr_assert_eq(tracer_env_depth("256"), 256);
	cr_assert_eq(tracer_env_depth("257"), 256);
	cr_assert_eq(tracer_env_depth("99999999999999999999999"), 256);
}

Test(tracer_env, lookups_match_whole_names)
{
	char *envp[] = { "MEMPROF_OUTPUTX=no", "MEMPROF_OUTPUT=/tmp/a.mpc", "MEMPROF_DEPTH=", NULL };
	cr_assert_str_eq(tracer_env_lookup(envp, "MEMPROF_OUTPUT"), "/tmp/a.mpc");
	cr_assert_str_eq(tracer_env_lookup(envp, "MEMPROF_DEPTH"), "");
	cr_assert_null(tracer_env_lookup(envp, "MEMPROF_FOLLOW_FORK"));
	cr_assert_null(tracer_env_lookup(NULL, "MEMPROF_OUTPUT"));

	const char block[] = "A=1\0MEMPROF_DEPTH=32\0MEMPROF_OUTPUT=/x\0CUT=ab";
	size_t len = sizeof(block) - 1;
	cr_assert_str_eq(tracer_env_lookup_block(block, len, "MEMPROF_DEPTH"), "32");
	cr_assert_str_eq(tracer_env_lookup_block(block, len, "MEMPROF_OUTPUT"), "/x");
	cr_assert_str_eq(tracer_env_lookup_block(block, len, "A"), "1");
	cr_assert_null(tracer_env_lookup_block(block, len, "CUT"), "cut value refused");
	cr_assert_null(tracer_env_lookup_block(block, len, "MEMPROF"));
}

Test(tracer_env, the_program_does_not_see_what_memprof_run_added)
{
	char *envp[] = { "A=1", "LD_PRELOAD=", "MEMPROF_OUTPUT=/tmp/a.mpc", "B=2",
			 "MEMPROF_DEPTH=8", "MEMPROF_OUTPUTX=kept", "MEMPROF_SNAPSHOT_SIGNAL=USR2",
			 "MEMPROF_LEAK_CHECK_SIGNAL=10", "MEMPROF_FREE_STACKS=1", "C=3", NULL };
	cr_assert_eq(tracer_env_hide(envp), 6);
	const char *want[] = { "A=1", "B=2", "MEMPROF_OUTPUTX=kept", "C=3" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert_str_eq(envp[i], want[i], "entry %zu", i);
	cr_assert_null(envp[4]);

	char *user[] = { "LD_PRELOAD=/a/liba.so", "X=", NULL };
	cr_assert_eq(tracer_env_hide(user), 0, "the user's own preload stays");
	cr_assert_str_eq(user[0], "LD_PRELOAD=/a/liba.so");
	cr_assert_str_eq(user[1], "X=");
	cr_assert_eq(tracer_env_hide(NULL), 0);
}
