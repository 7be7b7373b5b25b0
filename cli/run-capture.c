/*
 * run-capture.c: where `memprof run` puts the capture, checked before the
 * program runs and explained after it.  Entry points: cli_capture_prepare()
 * (before), cli_capture_source() and cli_capture_explain() (after).
 *
 * Before the run, the -o path must be a regular file or nothing: a symbolic
 * link planted there is refused (never followed: the file it points to
 * stays unchanged), so is a device, a FIFO or a directory (memprof reads
 * the capture back after the run, which a device cannot give).  memprof
 * then creates the file itself, mode 0600, with O_EXCL|O_NOFOLLOW, so that
 * a path that cannot be written is a usage error found before the program
 * starts, and keeps a descriptor of it.  The tracer opens the same file
 * with O_NOFOLLOW (the last line of defence should the path be replaced
 * during the run).  Without -o, the current directory must be writable.
 *
 * After the run: a capture whose file was removed during the run (its
 * directory deleted, say) is read through that descriptor; a capture that
 * ends before the program did, although the program was not killed, means
 * the tracer stopped recording because it could not write (disk full,
 * I/O error): memprof says so, where, and why when it can tell.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli.h"

int cli_capture_prepare(const char *output, int *fd)
{
	*fd = -1;
	if (!output) {
		if (access(".", W_OK | X_OK) < 0) {
			fprintf(stderr,
				"memprof: cannot write the capture in the current directory: %s; "
				"choose its file with -o\n",
				strerror(errno));
			return CLI_EXIT_USAGE;
		}
		return 0;
	}
	struct stat st;
	if (lstat(output, &st) == 0) {
		if (S_ISLNK(st.st_mode)) {
			fprintf(stderr,
				"memprof: %s is a symbolic link: memprof does not write its capture "
				"through links; remove it or choose another file with -o\n",
				output);
			return CLI_EXIT_USAGE;
		}
		if (!S_ISREG(st.st_mode)) {
			fprintf(stderr,
				"memprof: %s is not a regular file: memprof reads its capture back "
				"after the run; choose a file with -o\n",
				output);
			return CLI_EXIT_USAGE;
		}
		if (unlink(output) < 0) { /* never read a stale capture */
			fprintf(stderr, "memprof: cannot replace the capture %s: %s\n", output,
				strerror(errno));
			return CLI_EXIT_USAGE;
		}
	}
	*fd = open(output, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0) {
		fprintf(stderr, "memprof: cannot create the capture %s: %s\n", output,
			strerror(errno));
		return CLI_EXIT_USAGE;
	}
	return 0;
}

const char *cli_capture_source(const char *path, int fd, char *buf, size_t size)
{
	struct stat st;
	if (fd < 0 || stat(path, &st) == 0 || errno != ENOENT)
		return path;
	if (fstat(fd, &st) < 0 || st.st_size == 0)
		return path;
	fprintf(stderr,
		"memprof: warning: the capture %s was removed during the run (or its "
		"directory was); this report is read from memprof's own descriptor and the "
		"capture is not kept\n",
		path);
	snprintf(buf, size, "/proc/self/fd/%d", fd);
	return buf;
}

const char *cli_capture_fs_problem(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (slash)
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path + 1), path);
	else
		snprintf(dir, sizeof(dir), ".");
	struct statvfs vfs;
	if (statvfs(dir, &vfs) < 0)
		return NULL;
	if (vfs.f_bavail == 0 || (vfs.f_files && vfs.f_favail == 0))
		return "its file system is full";
	if (vfs.f_flag & ST_RDONLY)
		return "its file system is read-only";
	return NULL;
}

void cli_capture_explain(const char *path, const struct reports_capture *cap,
			 const struct reports_outcome *oc)
{
	/* killed: the capture is expected to stop early */
	if (!oc->known || oc->signal == SIGKILL || !cap->incomplete)
		return;
	const char *why = cli_capture_fs_problem(path);
	fprintf(stderr,
		"memprof: warning: recording stopped early: the capture %s ends at byte "
		"%" PRIu64 ", before the end of the program: %s; the report covers the run "
		"up to there\n",
		path, cap->file_size,
		why ? why : "memprof could not write the rest (disk full or I/O error)");
}
