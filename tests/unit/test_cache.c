/* Unit tests for dr_cache: SHA-256 keys, the hash check before an entry exists, LRU eviction
 * that spares pinned entries, and size parsing (dr_util). */
#include "dr_cache.h"
#include "dr_util.h"
#include "tap.h"
#include "testfs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char err[2048];

/* SHA-256("abc"), FIPS 180-2 */
#define ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
	utimensat(AT_FDCWD, path, ts, 0);
}

static void test_hash(const char *top)
{
	char p[4200], hex[DR_SHA256_HEX];
	uint64_t size = 0;

	snprintf(p, sizeof p, "%s/abc", top);
	put(p, "abc");
	ok(dr_sha256_file(p, hex, &size, err, sizeof err) == 0, "hash a file");
	is_str(hex, ABC, "SHA-256 of \"abc\" is the FIPS 180-2 value");
	is_int(size, 3, "its size");
	snprintf(p, sizeof p, "%s/nope", top);
	ok(dr_sha256_file(p, hex, &size, err, sizeof err) < 0 && strstr(err, "nope"),
	   "a missing file is an error naming it (%s)", err);
	ok(dr_sha256_hex_valid(ABC) && !dr_sha256_hex_valid("abc") &&
	           !dr_sha256_hex_valid(
	                   "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"),
	   "only 64 lowercase hex digits are a key");
	is_str(dr_cache_ext("/a/b/scene.blend"), ".blend", "extension kept");
	is_str(dr_cache_ext("/a.b/scene"), "", "no extension");
	is_str(dr_cache_ext("x.bl/nd"), "", "a dot in a directory is not an extension");
	is_str(dr_cache_ext("x.a b"), "", "odd characters are dropped");
}

static void test_write(const char *top)
{
	dr_cache c;
	dr_cache_wr w;
	char dir[1024], path[4200], buf[4];
	struct stat st;
	uint64_t size;
	char hex[DR_SHA256_HEX];

	snprintf(dir, sizeof dir, "%s/deep/cache", top);
	ok(dr_cache_open(&c, dir, 0, err, sizeof err) == 0, "open creates the directory (%s)", err);
	is_int(dr_cache_lookup(&c, ABC, ".blend", 3, path, sizeof path, err, sizeof err), 0,
	       "an empty cache has nothing");
	ok(dr_cache_lookup(&c, "zz", ".blend", 3, path, sizeof path, err, sizeof err) < 0,
	   "a bad key is an error");

	ok(dr_cache_begin(&c, ABC, ".blend", 3, &w, err, sizeof err) == 0, "begin");
	ok(dr_cache_append(&w, "ab", 2, err, sizeof err) == 0, "append a chunk");
	ok(dr_cache_read_at(&w, 0, buf, 2, err, sizeof err) == 0 && memcmp(buf, "ab", 2) == 0,
	   "a received chunk reads back (to forward it)");
	ok(dr_cache_read_at(&w, 1, buf, 2, err, sizeof err) < 0, "bytes not received yet do not");
	snprintf(path, sizeof path, "%s/" ABC ".blend", dir);
	ok(stat(path, &st) != 0, "no entry while it is being written");
	ok(dr_cache_append(&w, "cd", 2, err, sizeof err) < 0 && strstr(err, "more bytes"),
	   "more bytes than announced are refused");
	ok(dr_cache_append(&w, "c", 1, err, sizeof err) == 0, "the last byte");
	ok(dr_cache_commit(&w, path, sizeof path, err, sizeof err) == 0, "commit (%s)", err);
	ok(stat(path, &st) == 0 && st.st_size == 3, "the entry is there: %s", path);
	ok(dr_sha256_file(path, hex, &size, err, sizeof err) == 0 && strcmp(hex, ABC) == 0,
	   "and its content hashes to its name");
	is_int(dr_cache_lookup(&c, ABC, ".blend", 3, path, sizeof path, err, sizeof err), 1,
	       "lookup finds it");
	is_int(dr_cache_lookup(&c, ABC, ".blend", 4, path, sizeof path, err, sizeof err), 0,
	       "an entry of another size is not it");

	/* corrupted on the way: same length, other bytes */
	char key2[] = "0000000000000000000000000000000000000000000000000000000000000000";
	ok(dr_cache_begin(&c, key2, ".blend", 3, &w, err, sizeof err) == 0, "begin another");
	ok(dr_cache_append(&w, "abd", 3, err, sizeof err) == 0, "wrong bytes");
	ok(dr_cache_commit(&w, path, sizeof path, err, sizeof err) < 0 &&
	           strstr(err, "does not match"),
	   "a hash mismatch is refused (%s)", err);
	snprintf(path, sizeof path, "%s/%s.blend", dir, key2);
	ok(stat(path, &st) != 0, "and no entry appears");
	snprintf(path, sizeof path, "%s/%s.tmp-%ld", dir, key2, (long)getpid());
	ok(stat(path, &st) != 0, "nor is its temporary file left");

	ok(dr_cache_begin(&c, key2, "", 3, &w, err, sizeof err) == 0, "begin, then short");
	dr_cache_append(&w, "ab", 2, err, sizeof err);
	ok(dr_cache_commit(&w, path, sizeof path, err, sizeof err) < 0 && strstr(err, "2 of 3"),
	   "a short transfer is refused (%s)", err);
	ok(dr_cache_begin(&c, key2, "", 3, &w, err, sizeof err) == 0, "begin, then abort");
	dr_cache_abort(&w);
	snprintf(path, sizeof path, "%s/%s.tmp-%ld", dir, key2, (long)getpid());
	ok(stat(path, &st) != 0, "abort removes the temporary file");
	dr_cache_close(&c);

	snprintf(path, sizeof path, "%s/file", top);
	put(path, "x");
	ok(dr_cache_open(&c, path, 0, err, sizeof err) < 0, "a file is no cache directory (%s)",
	   err);
}

static void test_plan(void)
{
	dr_cache_entry e[4] = {
	        {"a", 100, 10, false},
	        {"b", 100, 5, false},
	        {"c", 100, 1, true},
	        {"d", 100, 20, false},
	};
	size_t v[4];

	is_int(dr_cache_plan_evict(e, 4, 0, 1000, v), 0, "unbounded: nothing goes");
	is_int(dr_cache_plan_evict(e, 4, 500, 100, v), 0, "it fits: nothing goes");
	is_int(dr_cache_plan_evict(e, 4, 400, 100, v), 1, "one over: one goes");
	is_int(v[0], 1, "the least recently used unpinned one (b, not the pinned older c)");
	is_int(dr_cache_plan_evict(e, 4, 250, 50, v), 2, "two go");
	ok(v[0] == 1 && v[1] == 0, "oldest first: b then a");
	is_int(dr_cache_plan_evict(e, 4, 10, 50, v), 3,
	       "never the pinned one, even over the bound");
}

static void test_evict(const char *top)
{
	dr_cache c;
	dr_cache_wr w;
	char dir[1024], p[4200], q[4200], path[4200];
	struct stat st;
	const char *k1 =
	        "03ac674216f3e15c761ee1a5e255f067953623c8b388b4459e13f978d7c846f4"; /* "1234" */
	const char *k2 =
	        "f8638b979b2f4f793ddb6dbd197e0ee25a7a6ea32b0ae22f5e3c5d119d839e75"; /* "5678" */
	char hex[DR_SHA256_HEX];
	uint64_t size;

	snprintf(dir, sizeof dir, "%s/lru", top);
	ok(dr_cache_open(&c, dir, 8, err, sizeof err) == 0, "an 8-byte cache");
	snprintf(p, sizeof p, "%s/%s.blend", dir, k1);
	snprintf(q, sizeof q, "%s/%s.blend", dir, k2);
	put(p, "1234");
	put(q, "5678");
	set_mtime(p, 1000);
	set_mtime(q, 2000);
	/* an entry whose bytes are not what its name says is not used, and goes */
	put(q, "5679");
	is_int(dr_cache_lookup(&c, k2, ".blend", 4, path, sizeof path, err, sizeof err), 0,
	       "an entry changed in place (same size) is not used");
	ok(stat(q, &st) != 0, "and is removed");
	put(q, "5678");
	set_mtime(q, 2000);
	/* using k1 makes k2 the least recently used */
	is_int(dr_cache_lookup(&c, k1, ".blend", 4, path, sizeof path, err, sizeof err), 1,
	       "use k1");
	dr_cache_close(&c);
	ok(dr_cache_open(&c, dir, 8, err, sizeof err) == 0, "reopen (no pins: a new run)");
	ok(stat(p, &st) == 0 && st.st_mtime > 2000, "a lookup touched k1");
	ok(dr_cache_begin(&c, ABC, ".blend", 3, &w, err, sizeof err) == 0, "write 3 more bytes");
	ok(stat(q, &st) != 0, "the least recently used entry (k2) was evicted");
	ok(stat(p, &st) == 0, "the recently used one (k1) stayed");
	ok(dr_cache_append(&w, "abc", 3, err, sizeof err) == 0 &&
	           dr_cache_commit(&w, path, sizeof path, err, sizeof err) == 0,
	   "commit");
	/* now k1 (4, unpinned in this run) + abc (3, pinned): another 4 bytes evict k1 only */
	dr_sha256_file(p, hex, &size, err, sizeof err);
	ok(dr_cache_begin(&c, k2, ".blend", 4, &w, err, sizeof err) == 0, "write 4 more");
	ok(stat(p, &st) != 0, "k1 goes");
	ok(stat(path, &st) == 0, "the entry in use by this run stays");
	dr_cache_abort(&w);
	dr_cache_close(&c);
}

static void test_stale(const char *top)
{
	dr_cache c;
	char dir[1024], dead[4200], live[4200], young[4200];
	struct stat st;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0); /* PID is now a process that no longer runs */
	snprintf(dir, sizeof dir, "%s/stale", top);
	mkdir(dir, 0700);
	snprintf(dead, sizeof dead, "%s/%s.tmp-%ld", dir, ABC, (long)pid);
	snprintf(young, sizeof young, "%s/%s.tmp-%ld", dir,
	         "3333333333333333333333333333333333333333333333333333333333333333", (long)pid);
	snprintf(live, sizeof live, "%s/%s.tmp-%ld", dir,
	         "4444444444444444444444444444444444444444444444444444444444444444",
	         (long)getpid());
	put(dead, "x");
	put(young, "x");
	put(live, "x");
	set_mtime(dead, 1000);
	set_mtime(live, 1000);
	ok(dr_cache_open(&c, dir, 0, err, sizeof err) == 0, "open a cache with leftovers");
	ok(stat(dead, &st) != 0, "an old temporary file of a dead process is removed");
	ok(stat(young, &st) == 0, "a recent one is kept (a writer on another host?)");
	ok(stat(live, &st) == 0, "one of a live process is kept");
	dr_cache_close(&c);
}

static void test_size(void)
{
	uint64_t v = 0;

	ok(dr_parse_size("10G", &v) == 0 && v == 10ULL << 30, "10G");
	ok(dr_parse_size("500MiB", &v) == 0 && v == 500ULL << 20, "500MiB");
	ok(dr_parse_size("123", &v) == 0 && v == 123, "bytes");
	ok(dr_parse_size("0", &v) == 0 && v == 0, "0");
	ok(dr_parse_size("-1", &v) < 0, "negative refused");
	ok(dr_parse_size("12X", &v) < 0, "unknown unit refused");
	ok(dr_parse_size("", &v) < 0, "empty refused");
	ok(dr_parse_size("99999999999T", &v) < 0, "overflow refused");
}

/* Directories others could plant entries in are refused; the default is per user. */
static void test_dirs(const char *top)
{
	dr_cache c;
	char dir[1024], want[1200], got[1200];

	snprintf(dir, sizeof dir, "%s/open", top);
	ok(mkdir(dir, 0700) == 0 && chmod(dir, 0777) == 0, "a directory anyone may write");
	ok(dr_cache_open(&c, dir, 0, err, sizeof err) < 0 &&
	           strstr(err, "writable by group or others (mode 777)"),
	   "refused (%s)", err);
	ok(chmod(dir, 0755) == 0 && dr_cache_open(&c, dir, 0, err, sizeof err) == 0,
	   "mode 0755 is fine (%s)", err);
	dr_cache_close(&c);
	if (geteuid() == 0 && chown(dir, 65534, 65534) == 0) {
		ok(dr_cache_open(&c, dir, 0, err, sizeof err) < 0 &&
		           strstr(err, "belongs to another user (uid 65534"),
		   "a directory of another user is refused (%s)", err);
	} else {
		ok(1, "# SKIP chown needs root");
	}
	setenv("TMPDIR", top, 1);
	dr_cache_default_dir(got, sizeof got);
	snprintf(want, sizeof want, "%s/drender-cache-%ld", top, (long)geteuid());
	is_str(got, want, "the default cache directory is per user");
	unsetenv("TMPDIR");
}

int main(void)
{
	char top[] = "/tmp/test_cache.XXXXXX";

	if (!mkdtemp(top))
		return 1;
	test_hash(top);
	test_write(top);
	test_plan();
	test_evict(top);
	test_stale(top);
	test_size();
	test_dirs(top);
	testfs_rm_tree(top);
	return done_testing();
}
