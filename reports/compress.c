/*
 * compress.c: rewrites a capture with its chunks compressed (zgroups,
 * capture.h version 4).  Entry point: reports_capture_compress().
 *
 * The tracer writes plain chunks: compressing inside the traced program
 * would cost its threads time.  memprof run compresses the capture while
 * the program runs, on a thread of its own, and puts the compressed file
 * in its place.  Records are not changed: the plain chunks, as they follow
 * one another, are gathered up to GROUP_RAW bytes and each gathering
 * becomes one zstd frame, a zgroup (level 1: on the captures of churning
 * programs, half the CPU time of level 3 for files 7% bigger, and memprof
 * run compresses on a core the program may want), with matches of at least
 * MIN_MATCH bytes, kept plain when compression would not make it smaller.
 * A frame for each 64 KiB chunk saw nothing of the chunks before it: a
 * deep recursion's capture, whose stacks and events repeat from one chunk
 * to the next, came out twice as big.  A capture of version 1 or 2 (whose
 * records version 4 reads otherwise) gets a zchunk a chunk instead, and
 * keeps its version.  A zchunk or zgroup is copied as it is; so is a torn
 * last chunk (the reader still reports the capture cut short).
 * A bad magic or checksum stops the rewrite: the capture is left as it is.
 * reports_capture_compress_follow() does the same while the capture is
 * still being written (memprof run compresses it as the program runs),
 * taking each chunk once it is whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zstd.h>

#include <memprof/capture.h>

#include "reports-private.h"
#include "reports.h"

#define LEVEL 1
/* The shortest match zstd looks for (level 1 takes 5 on chunks of this
 * size).  The events' varints make many short matches worth little: at 7
 * the churning benchmarks' chunks compress in half the CPU time (a
 * third on two threads) for files 0.2% to 2% bigger. */
#define MIN_MATCH 7
/* Groups whose events barely repeat (a churning program's random sizes
 * and addresses) gain from zstd's entropy coding of their bytes, not from
 * its matches: with a hash table of 2^CHEAP_HASH_LOG entries instead of
 * level 1's 2^13 they come out the same size (two threads churning:
 * 97.42 against 97.37 MB) in less time.  The first group and every
 * PROBE_EVERY-th after it are compressed with level 1's table, and one
 * it leaves above CHEAP_RATIO of its size sends the next ones to the
 * small table (a deep recursion's groups, at 2 to 10%, never go: the
 * small table would make them up to three times as big). */
#define CHEAP_HASH_LOG 8
#define CHEAP_RATIO 0.5
#define PROBE_EVERY 8u
/* The plain bytes (whole chunks, headers and all) a zgroup gathers at
 * most: on a deep recursion's capture, groups of 1 MiB come within 7% of
 * one frame for the whole file, groups of 64 KiB (a chunk) are 1.8 times
 * as big; a reader holds a group decompressed while it reads its runs. */
#define GROUP_RAW (1u << 20)
#define OUT_BUFFER (4u << 20)
/* The buffer goes out in writes of at most this much: the kernel took
 * twice the system time, and now and then ten times, to take 4 MiB into
 * the page cache in one write (compressing churn's 262 MB capture alone:
 * system time 0.16-0.20 s, wall 0.36-0.71 s; in 256 KiB writes 0.08-0.10
 * s and 0.37-0.38 s; in 64 KiB writes 0.10-0.11 s and 0.38-0.41 s). */
#define WRITE_MAX (256u << 10)
_Static_assert(GROUP_RAW <= CAPTURE_ZGROUP_RAW_MAX, "a reader takes the groups written");
_Static_assert(GROUP_RAW + GROUP_RAW / 64 + 4096 <= OUT_BUFFER, "a group's frame fits the buffer");
/* Pages of the plain capture behind the rewrite go back this often, so
 * that it does not hold the whole file in memory. */
#define RELEASE_STEP (16u << 20)
/* A capture compressed while it is written gives up when the file system
 * has less free space than the plain capture plus this. */
#define SPARE_MIN ((uint64_t)64 << 20)

struct out {
	int fd;
	uint8_t *buf;
	size_t len;
	int error; /* the first errno, or 0 */
};

static void out_flush(struct out *o)
{
	size_t done = 0;
	while (done < o->len && !o->error) {
		size_t n = o->len - done < WRITE_MAX ? o->len - done : WRITE_MAX;
		ssize_t w = write(o->fd, o->buf + done, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			o->error = w < 0 ? errno : EIO;
		else
			done += (size_t)w;
	}
	o->len = 0;
}

/* Room for n more bytes at the end of the buffer (n <= OUT_BUFFER). */
static uint8_t *out_room(struct out *o, size_t n)
{
	if (o->len + n > OUT_BUFFER)
		out_flush(o);
	return o->buf + o->len;
}

static void out_bytes(struct out *o, const void *p, size_t n)
{
	while (n > 0) {
		size_t k = n < OUT_BUFFER ? n : OUT_BUFFER;
		memcpy(out_room(o, k), p, k);
		o->len += k;
		p = (const uint8_t *)p + k;
		n -= k;
	}
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static int fail(struct reports_error *err, uint64_t off, const char *what)
{
	if (err) {
		err->offset = off;
		snprintf(err->message, sizeof(err->message), "%s at byte offset %llu", what,
			 (unsigned long long)off);
	}
	return -EINVAL;
}

/* A rewrite under way: the chunks before off are written, or gathered in
 * group (group_len bytes, when the output's version has zgroups). */
struct rewriter {
	struct out o;
	ZSTD_CCtx *z;
	size_t bound;
	size_t off, released;
	bool header;
	bool grouped;
	uint8_t *group;
	size_t group_len;
	unsigned groups; /* zgroups compressed so far */
	bool cheap;      /* the last probe found matches worth little */
	bool z_cheap;    /* the context has the small hash table */
};

/* Writes raw[0, len) compressed as a zchunk or zgroup (magic, tid) when
 * that is smaller than the replaced bytes it stands for; false when it
 * is not (nothing written). */
static bool put_frame(struct rewriter *w, uint32_t magic, uint32_t tid, const uint8_t *raw,
		      size_t len, size_t replaced)
{
	struct out *o = &w->o;
	uint8_t *dst = out_room(o, CAPTURE_CHUNK_HEADER_SIZE + 4 + w->bound);
	uint8_t *zp = dst + CAPTURE_CHUNK_HEADER_SIZE;
	/* a zchunk (old versions) always takes level 1's table */
	bool grouped = magic == CAPTURE_ZGROUP_MAGIC;
	bool probe = grouped && w->groups++ % PROBE_EVERY == 0;
	bool cheap = grouped && !probe && w->cheap;
	if (cheap != w->z_cheap) {
		/* 0: level 1's own */
		if (ZSTD_isError(ZSTD_CCtx_setParameter(w->z, ZSTD_c_hashLog,
							cheap ? CHEAP_HASH_LOG : 0)))
			return false;
		w->z_cheap = cheap;
	}
	size_t n = ZSTD_compress2(w->z, zp + 4, w->bound, raw, len);
	if (probe)
		w->cheap = ZSTD_isError(n) || (double)n > CHEAP_RATIO * (double)len;
	if (ZSTD_isError(n) || CAPTURE_CHUNK_HEADER_SIZE + 4 + n >= replaced)
		return false;
	put_le32(zp, (uint32_t)len);
	put_le32(dst, magic);
	put_le32(dst + 4, (uint32_t)n + 4);
	put_le32(dst + 8, tid);
	put_le32(dst + 12, capture_checksum(zp, n + 4));
	o->len += CAPTURE_CHUNK_HEADER_SIZE + 4 + n;
	return true;
}

/* Writes the chunks gathered as one zgroup, or as they are when that is
 * not smaller. */
static void group_flush(struct rewriter *w)
{
	if (w->group_len == 0)
		return;
	if (!put_frame(w, CAPTURE_ZGROUP_MAGIC, 0, w->group, w->group_len, w->group_len))
		out_bytes(&w->o, w->group, w->group_len);
	w->group_len = 0;
}

/* Writes the chunks of data[w->off, len) to w->o, compressed.  Unless
 * final (the file will not grow), a chunk that runs past len waits. */
static int rewrite(struct rewriter *w, const uint8_t *data, size_t len, bool final,
		   struct reports_error *err)
{
	struct out *o = &w->o;
	if (!w->header) {
		if (len < CAPTURE_HEADER_SIZE && !final)
			return 0;
		if (len < CAPTURE_HEADER_SIZE ||
		    memcmp(data, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN) != 0)
			return fail(err, 0, "not a memprof capture");
		uint32_t version = reports_le32(data + 8);
		if (version < CAPTURE_VERSION_MIN || version > CAPTURE_VERSION)
			return fail(err, 8, "unsupported capture version");
		/* version 3's records are version 4's: it gains zgroups */
		w->grouped = version >= 3;
		uint8_t *hd = out_room(o, CAPTURE_HEADER_SIZE);
		memcpy(hd, data, CAPTURE_HEADER_SIZE);
		if (w->grouped)
			put_le32(hd + 8, CAPTURE_ZGROUP_VERSION > version ? CAPTURE_ZGROUP_VERSION
									  : version);
		o->len += CAPTURE_HEADER_SIZE;
		w->bound = ZSTD_compressBound(GROUP_RAW > CAPTURE_ZCHUNK_RAW_MAX
						      ? GROUP_RAW
						      : CAPTURE_ZCHUNK_RAW_MAX);
		w->off = CAPTURE_HEADER_SIZE;
		w->header = true;
	}
	size_t off = w->off;
	while (off < len && !o->error) {
		if (off - w->released >= RELEASE_STEP) {
			reports_pages_release(data, len, w->released, off);
			w->released = off;
		}
		const uint8_t *h = data + off;
		if (len - off < CAPTURE_CHUNK_HEADER_SIZE ||
		    reports_le32(h + 4) > len - off - CAPTURE_CHUNK_HEADER_SIZE) {
			if (!final)
				break;
			group_flush(w);
			out_bytes(o, h, len - off); /* torn: kept as it is */
			off = len;
			break;
		}
		uint32_t magic = reports_le32(h), plen = reports_le32(h + 4);
		const uint8_t *payload = h + CAPTURE_CHUNK_HEADER_SIZE;
		if ((magic != CAPTURE_CHUNK_MAGIC && magic != CAPTURE_ZCHUNK_MAGIC &&
		     (magic != CAPTURE_ZGROUP_MAGIC || !w->grouped)) ||
		    plen > CAPTURE_CHUNK_MAX)
			return fail(err, off, "bad chunk");
		if (capture_checksum(payload, plen) != reports_le32(h + 12))
			return fail(err, off, "chunk checksum mismatch");
		size_t whole = CAPTURE_CHUNK_HEADER_SIZE + (size_t)plen;
		if (w->grouped && magic == CAPTURE_CHUNK_MAGIC && whole <= GROUP_RAW) {
			if (w->group_len + whole > GROUP_RAW)
				group_flush(w);
			memcpy(w->group + w->group_len, h, whole);
			w->group_len += whole;
			off += whole;
			continue;
		}
		group_flush(w); /* the chunks stay in their order */
		bool packed = magic == CAPTURE_CHUNK_MAGIC && plen > 0 &&
			      plen <= CAPTURE_ZCHUNK_RAW_MAX &&
			      put_frame(w, CAPTURE_ZCHUNK_MAGIC, reports_le32(h + 8), payload, plen,
					whole);
		if (!packed)
			out_bytes(o, h, whole);
		off += whole;
	}
	w->off = off;
	if (final) {
		group_flush(w);
		out_flush(o);
	}
	return 0;
}

static int rewriter_open(struct rewriter *w, const char *dst)
{
	memset(w, 0, sizeof(*w));
	w->o.fd = -1;
	w->z = ZSTD_createCCtx();
	/* the parameters stay with the context for every ZSTD_compress2() */
	if (w->z && (ZSTD_isError(ZSTD_CCtx_setParameter(w->z, ZSTD_c_compressionLevel, LEVEL)) ||
		     ZSTD_isError(ZSTD_CCtx_setParameter(w->z, ZSTD_c_minMatch, MIN_MATCH)))) {
		ZSTD_freeCCtx(w->z);
		w->z = NULL;
	}
	w->o.buf = malloc(OUT_BUFFER);
	w->group = malloc(GROUP_RAW);
	if (!w->z || !w->o.buf || !w->group)
		return -ENOMEM;
	w->o.fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	return w->o.fd < 0 ? -errno : 0;
}

/* Closes the output; res is the rewrite's status, the file is removed
 * unless everything went well.  Returns the final status. */
static int rewriter_close(struct rewriter *w, const char *dst, int res)
{
	if (res == 0 && w->o.error)
		res = -w->o.error;
	if (w->o.fd >= 0) {
		if (close(w->o.fd) < 0 && res == 0)
			res = -errno;
		if (res < 0)
			unlink(dst);
	}
	ZSTD_freeCCtx(w->z);
	free(w->o.buf);
	free(w->group);
	return res;
}

int reports_capture_compress_follow(const char *src, const char *dst,
				    bool (*ended)(void *arg), void *arg,
				    struct reports_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
	struct reports_growing g;
	int res = reports_growing_open(&g, src);
	if (res < 0)
		return res;
	struct rewriter w;
	res = rewriter_open(&w, dst);
	while (res == 0) {
		/* asked before the size: once ended, what the size shows is all */
		bool final = ended(arg);
		size_t before = w.off;
		/* the program's own capture comes first: give up while there is
		 * still room for it to grow, rather than fill the disk under it */
		struct statvfs vfs;
		if (fstatvfs(w.o.fd, &vfs) == 0 &&
		    (uint64_t)vfs.f_bavail * vfs.f_frsize < SPARE_MIN + (uint64_t)g.len) {
			res = -ENOSPC;
			break;
		}
		if ((res = reports_growing_update(&g)) < 0 ||
		    (res = rewrite(&w, g.base, g.len, final, err)) < 0 || final)
			break;
		if (w.off == before)
			reports_growing_wait();
	}
	res = rewriter_close(&w, dst, res);
	reports_growing_close(&g, false);
	return res;
}

int reports_capture_compress(const char *src, const char *dst, struct reports_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	struct stat st;
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		close(in);
		return -EINVAL;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *data = mmap(NULL, len, PROT_READ, MAP_PRIVATE, in, 0);
	close(in);
	if (data == MAP_FAILED)
		return -errno;
	madvise(data, len, MADV_SEQUENTIAL);
	struct rewriter w;
	int res = rewriter_open(&w, dst);
	if (res == 0)
		res = rewrite(&w, data, len, true, err);
	res = rewriter_close(&w, dst, res);
	munmap(data, len);
	return res;
}
