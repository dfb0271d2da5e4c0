/* A node's content-addressed file cache: entries named by SHA-256, checked before use, LRU-bounded.
 */
#include "dr_cache.h"
#include "dr_log.h"
#include "dr_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HASH_BUF (1 << 20)

static void to_hex(const uint8_t *d, char hex[DR_SHA256_HEX])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[64] = '\0';
}

bool dr_sha256_hex_valid(const char *hex)
{
	size_t i;

	for (i = 0; hex && hex[i]; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			return false;
	return hex && i == 64;
}

/* SHA-256 and size of what FD reads from where it is to its end (PATH names it in ERR). */
static int sha256_fd(int fd, const char *path, char hex[DR_SHA256_HEX], uint64_t *size, char *err,
                     size_t errlen)
{
	struct sha256_ctx sha;
	uint8_t d[SHA256_DIGEST_SIZE];
	uint64_t total = 0;
	char *buf = NULL;
	ssize_t got;
	int rc = -1;

	buf = malloc(HASH_BUF);
	if (!buf) {
		dr_seterr(err, errlen, "out of memory hashing %s", path);
		goto out;
	}
	sha256_init(&sha);
	while ((got = read(fd, buf, HASH_BUF)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			dr_seterr(err, errlen, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		sha256_update(&sha, (size_t)got, (const uint8_t *)buf);
		total += (uint64_t)got;
	}
	sha256_digest(&sha, sizeof d, d);
	to_hex(d, hex);
	*size = total;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Files hashed lately, by identity (device, inode, size, modification and change times): the
 * same identity again is the same content, without reading it (a write changes the change time,
 * which no one can set back). */
#define MEMO_N 32
static struct memo {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	char hex[DR_SHA256_HEX];
} memo[MEMO_N];
static size_t memo_next;
static pthread_mutex_t memo_mu = PTHREAD_MUTEX_INITIALIZER;

static bool same_file(const struct memo *m, const struct stat *st)
{
	return m->dev == st->st_dev && m->ino == st->st_ino && m->size == st->st_size &&
	       m->mtim.tv_sec == st->st_mtim.tv_sec && m->mtim.tv_nsec == st->st_mtim.tv_nsec &&
	       m->ctim.tv_sec == st->st_ctim.tv_sec && m->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

static bool memo_get(const struct stat *st, char hex[DR_SHA256_HEX])
{
	bool hit = false;

	pthread_mutex_lock(&memo_mu);
	for (size_t i = 0; i < MEMO_N && !hit; i++)
		if (memo[i].hex[0] && same_file(&memo[i], st)) {
			memcpy(hex, memo[i].hex, DR_SHA256_HEX);
			hit = true;
		}
	pthread_mutex_unlock(&memo_mu);
	return hit;
}

/* Remember HEX for the file FD, hashed since BEFORE was taken, if it did not change meanwhile. */
static void memo_put(int fd, const struct stat *before, const char hex[DR_SHA256_HEX])
{
	struct stat st;
	struct memo m;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	m = (struct memo){.dev = st.st_dev,
	                  .ino = st.st_ino,
	                  .size = st.st_size,
	                  .mtim = st.st_mtim,
	                  .ctim = st.st_ctim};
	if (!same_file(&m, before))
		return;
	memcpy(m.hex, hex, DR_SHA256_HEX);
	pthread_mutex_lock(&memo_mu);
	memo[memo_next++ % MEMO_N] = m;
	pthread_mutex_unlock(&memo_mu);
}

int dr_sha256_file(const char *path, char hex[DR_SHA256_HEX], uint64_t *size, char *err,
                   size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	struct stat st;

	if (fd < 0)
		return dr_seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		close(fd);
		return dr_seterr(err, errlen, "cannot stat %s: %s", path, strerror(errno));
	}
	rc = sha256_fd(fd, path, hex, size, err, errlen);
	if (rc == 0)
		memo_put(fd, &st, hex);
	close(fd);
	return rc;
}

int dr_cache_version(const char *path, char *out, size_t len, char *err, size_t errlen)
{
	char hex[DR_SHA256_HEX];
	struct stat st;
	uint64_t size;

	if (len < DR_SHA256_HEX)
		return dr_seterr(err, errlen, "no room for a version");
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && memo_get(&st, hex)) {
		memcpy(out, hex, DR_SHA256_HEX);
		return 0;
	}
	if (dr_sha256_file(path, hex, &size, err, errlen) != 0)
		return -1;
	memcpy(out, hex, DR_SHA256_HEX);
	return 0;
}

const char *dr_cache_ext(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;
	size_t n;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (!dot || dot == base)
		return "";
	n = strlen(dot);
	if (n < 2 || n >= DR_CACHE_EXT_MAX)
		return "";
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)dot[i]))
			return "";
	return dot;
}

void dr_cache_default_dir(char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, len, "%s/drender-cache-%ld", tmp && *tmp ? tmp : "/tmp", (long)geteuid());
}

int dr_cache_check_dir(const char *path, char *err, size_t errlen)
{
	struct stat st, lst;
	uid_t me = geteuid();

	if (lstat(path, &lst) != 0 || stat(path, &st) != 0)
		return dr_seterr(err, errlen, "cache directory %s: %s", path, strerror(errno));
	if (S_ISLNK(lst.st_mode) && lst.st_uid != me && lst.st_uid != 0)
		return dr_seterr(err, errlen,
		                 "cache directory %s is a symbolic link of another user (uid %ld): "
		                 "refused; choose one of yours with --cache-dir",
		                 path, (long)lst.st_uid);
	if (st.st_uid != me)
		return dr_seterr(
		        err, errlen,
		        "cache directory %s belongs to another user (uid %ld, not %ld), who "
		        "could plant entries in it: refused; choose one of yours with "
		        "--cache-dir",
		        path, (long)st.st_uid, (long)me);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return dr_seterr(
		        err, errlen,
		        "cache directory %s is writable by group or others (mode %03o), who "
		        "could plant entries in it: refused; chmod go-w it or choose another "
		        "--cache-dir",
		        path, (unsigned)(st.st_mode & 0777));
	return 0;
}

int dr_cache_open(dr_cache *c, const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
	char path[sizeof c->dir];
	struct stat st;
	size_t n;

	if (!dir || !*dir)
		return dr_seterr(err, errlen, "the cache directory is empty");
	n = (size_t)snprintf(path, sizeof path, "%s", dir);
	if (n >= sizeof path)
		return dr_seterr(err, errlen, "cache directory name too long: %s", dir);
	/* create it and its parents */
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return dr_seterr(err, errlen, "cannot create %s: %s", path,
			                 strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return dr_seterr(err, errlen, "cannot create cache directory %s: %s", path,
		                 strerror(errno));
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode) || access(path, W_OK | X_OK) != 0)
		return dr_seterr(err, errlen, "cache directory %s is not a writable directory",
		                 path);
	if (dr_cache_check_dir(path, err, errlen) != 0)
		return -1;
	memset(c, 0, sizeof *c);
	memcpy(c->dir, path, n + 1);
	c->max_bytes = max_bytes;
	dr_cache_clean_stale(c, DR_CACHE_STALE_S);
	return 0;
}

int dr_cache_clean_stale(dr_cache *c, double min_age)
{
	struct dirent *de;
	struct stat st;
	struct timespec now;
	int removed = 0;
	DIR *d = opendir(c->dir);

	if (!d)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	while ((de = readdir(d))) {
		const char *tail = strstr(de->d_name, ".tmp-");
		char *end;
		long pid;

		if (!tail || tail - de->d_name != 64)
			continue;
		errno = 0;
		pid = strtol(tail + 5, &end, 10);
		if (errno || *end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode) || (double)(now.tv_sec - st.st_mtim.tv_sec) < min_age)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

void dr_cache_close(dr_cache *c)
{
	for (size_t i = 0; i < c->npinned; i++)
		free(c->pinned[i]);
	free(c->pinned);
	c->pinned = NULL;
	c->npinned = c->cappinned = 0;
}

static bool is_pinned(const dr_cache *c, const char *name)
{
	for (size_t i = 0; i < c->npinned; i++)
		if (strcmp(c->pinned[i], name) == 0)
			return true;
	return false;
}

static int pin(dr_cache *c, const char *name, char *err, size_t errlen)
{
	char *copy;

	if (is_pinned(c, name))
		return 0;
	if (dr_grow(&c->pinned, &c->cappinned, c->npinned + 1, sizeof *c->pinned) != 0 ||
	    !(copy = strdup(name)))
		return dr_seterr(err, errlen, "out of memory");
	c->pinned[c->npinned++] = copy;
	return 0;
}

/* Entry name for HEX/EXT into NAME. 0, or -1 with ERR. */
static int entry_name(const char *hex, const char *ext, char *name, size_t len, char *err,
                      size_t errlen)
{
	if (!dr_sha256_hex_valid(hex))
		return dr_seterr(err, errlen, "not a SHA-256: %.80s", hex ? hex : "(null)");
	if (!ext || strlen(ext) >= DR_CACHE_EXT_MAX || strchr(ext, '/'))
		return dr_seterr(err, errlen, "bad cache extension");
	snprintf(name, len, "%s%s", hex, ext);
	return 0;
}

int dr_cache_lookup(dr_cache *c, const char *hex, const char *ext, uint64_t size, char *path,
                    size_t len, char *err, size_t errlen)
{
	char name[96], got[DR_SHA256_HEX], why[256];
	struct stat st;
	uint64_t have;
	int n, fd, k;

	if (entry_name(hex, ext, name, sizeof name, err, errlen) != 0)
		return -1;
	n = snprintf(path, len, "%s/%s", c->dir, name);
	if (n < 0 || (size_t)n >= len)
		return dr_seterr(err, errlen, "cache path too long");
	/* its name is a claim, not a proof: hash it (a file changed in place since it was made,
	 * or planted, is removed and received again) */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		close(fd);
		return 0;
	}
	k = sha256_fd(fd, path, got, &have, why, sizeof why);
	if (k == 0 && have == size && strcmp(got, hex) == 0)
		memo_put(fd, &st, got);
	close(fd);
	if (k != 0 || have != size || strcmp(got, hex) != 0) {
		dr_warn("cache entry %s does not hold what its name says (%s): removed; the scene "
		        "is "
		        "sent again",
		        path, k != 0 ? why : "changed since it was stored");
		unlink(path);
		return 0;
	}
	utimensat(AT_FDCWD, path, NULL, 0); /* now: most recently used */
	if (pin(c, name, err, errlen) != 0)
		return -1;
	return 1;
}

int dr_cache_begin(dr_cache *c, const char *hex, const char *ext, uint64_t size, dr_cache_wr *w,
                   char *err, size_t errlen)
{
	dr_cache_wr nw = {.c = c, .fd = -1, .size = size};
	char name[96];
	int n;

	if (entry_name(hex, ext, name, sizeof name, err, errlen) != 0)
		return -1;
	n = snprintf(nw.tmp, sizeof nw.tmp, "%s/%s.tmp-%ld", c->dir, hex, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof nw.tmp)
		return dr_seterr(err, errlen, "cache path too long");
	if (dr_cache_evict(c, size, err, errlen) < 0)
		return -1;
	unlink(nw.tmp); /* a leftover of an earlier run of this pid */
	nw.fd = open(nw.tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (nw.fd < 0)
		return dr_seterr(err, errlen, "cannot create %s: %s", nw.tmp, strerror(errno));
	memcpy(nw.hex, hex, DR_SHA256_HEX);
	snprintf(nw.ext, sizeof nw.ext, "%s", ext);
	sha256_init(&nw.sha);
	*w = nw;
	return 0;
}

int dr_cache_append(dr_cache_wr *w, const void *buf, size_t len, char *err, size_t errlen)
{
	const char *p = buf;
	size_t left = len;

	if (w->fd < 0)
		return dr_seterr(err, errlen, "cache entry is not open");
	if (len > w->size - w->written)
		return dr_seterr(err, errlen, "more bytes than announced for %s (%llu)", w->hex,
		                 (unsigned long long)w->size);
	while (left) {
		ssize_t k = write(w->fd, p, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return dr_seterr(err, errlen, "cannot write %s: %s", w->tmp,
			                 strerror(errno));
		p += k;
		left -= (size_t)k;
	}
	sha256_update(&w->sha, len, buf);
	w->written += len;
	return 0;
}

int dr_cache_read_at(const dr_cache_wr *w, uint64_t off, void *buf, size_t len, char *err,
                     size_t errlen)
{
	char *p = buf;

	if (w->fd < 0 || off + len > w->written)
		return dr_seterr(err, errlen, "bytes %llu..%llu of %s not received yet",
		                 (unsigned long long)off, (unsigned long long)(off + len), w->hex);
	while (len) {
		ssize_t k = pread(w->fd, p, len, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return dr_seterr(err, errlen, "cannot read %s: %s", w->tmp,
			                 k < 0 ? strerror(errno) : "short file");
		p += k;
		off += (uint64_t)k;
		len -= (size_t)k;
	}
	return 0;
}

int dr_cache_commit(dr_cache_wr *w, char *path, size_t len, char *err, size_t errlen)
{
	uint8_t d[SHA256_DIGEST_SIZE];
	char hex[DR_SHA256_HEX], name[96];
	int n, rc = -1;

	if (w->fd < 0)
		return dr_seterr(err, errlen, "cache entry is not open");
	if (w->written != w->size) {
		dr_seterr(err, errlen, "%s: got %llu of %llu bytes", w->hex,
		          (unsigned long long)w->written, (unsigned long long)w->size);
		goto out;
	}
	sha256_digest(&w->sha, sizeof d, d);
	to_hex(d, hex);
	if (strcmp(hex, w->hex) != 0) {
		dr_seterr(err, errlen, "content does not match its SHA-256 (want %s, got %s)",
		          w->hex, hex);
		goto out;
	}
	if (fsync(w->fd) != 0) {
		dr_seterr(err, errlen, "cannot sync %s: %s", w->tmp, strerror(errno));
		goto out;
	}
	snprintf(name, sizeof name, "%s%s", w->hex, w->ext);
	n = snprintf(path, len, "%s/%s", w->c->dir, name);
	if (n < 0 || (size_t)n >= len) {
		dr_seterr(err, errlen, "cache path too long");
		goto out;
	}
	if (rename(w->tmp, path) != 0) {
		dr_seterr(err, errlen, "cannot rename %s: %s", w->tmp, strerror(errno));
		goto out;
	}
	w->tmp[0] = '\0';
	rc = pin(w->c, name, err, errlen);
out:
	dr_cache_abort(w);
	return rc;
}

void dr_cache_abort(dr_cache_wr *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->tmp[0])
		unlink(w->tmp);
	w->tmp[0] = '\0';
}

static int older_first(const void *a, const void *b, void *arg)
{
	const dr_cache_entry *e = arg;
	const size_t *x = a, *y = b;

	if (e[*x].mtime != e[*y].mtime)
		return e[*x].mtime < e[*y].mtime ? -1 : 1;
	return strcmp(e[*x].name, e[*y].name);
}

size_t dr_cache_plan_evict(const dr_cache_entry *e, size_t n, uint64_t max, uint64_t incoming,
                           size_t *victims)
{
	uint64_t total = incoming;
	size_t k = 0, nv = 0;

	if (max == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		total += e[i].size;
		if (!e[i].pinned)
			victims[k++] = i;
	}
	qsort_r(victims, k, sizeof *victims, older_first, (void *)e);
	while (nv < k && total > max)
		total -= e[victims[nv++]].size;
	return nv;
}

int dr_cache_evict(dr_cache *c, uint64_t incoming, char *err, size_t errlen)
{
	dr_cache_entry *e = NULL;
	size_t n = 0, cap = 0, nv, *victims = NULL;
	uint64_t total;
	struct dirent *de;
	DIR *d;
	int rc = -1, removed = 0;

	if (c->max_bytes == 0)
		return 0;
	d = opendir(c->dir);
	if (!d)
		return dr_seterr(err, errlen, "cannot read %s: %s", c->dir, strerror(errno));
	while ((de = readdir(d))) {
		char hex[DR_SHA256_HEX];
		struct stat st;

		if (strlen(de->d_name) < 64 || strlen(de->d_name) >= sizeof e->name)
			continue;
		memcpy(hex, de->d_name, 64);
		hex[64] = '\0';
		if (!dr_sha256_hex_valid(hex) || strstr(de->d_name, ".tmp-") ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (dr_grow(&e, &cap, n + 1, sizeof *e) != 0) {
			dr_seterr(err, errlen, "out of memory");
			goto out;
		}
		memcpy(e[n].name, de->d_name, strlen(de->d_name) + 1); /* fits: checked above */
		e[n].size = (uint64_t)st.st_size;
		e[n].mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
		e[n].pinned = is_pinned(c, de->d_name);
		n++;
	}
	victims = malloc((n ? n : 1) * sizeof *victims);
	if (!victims) {
		dr_seterr(err, errlen, "out of memory");
		goto out;
	}
	nv = dr_cache_plan_evict(e, n, c->max_bytes, incoming, victims);
	total = incoming;
	for (size_t i = 0; i < n; i++)
		total += e[i].size;
	for (size_t i = 0; i < nv; i++) {
		total -= e[victims[i]].size;
		if (unlinkat(dirfd(d), e[victims[i]].name, 0) == 0)
			removed++;
	}
	/* what is in use stays: say so rather than exceed the bound in silence */
	if (total > c->max_bytes && !c->warned_over) {
		c->warned_over = true;
		dr_warn("cache %s: %llu bytes in use by this run exceed --cache-max %llu; they are "
		        "kept until no longer used (raise --cache-max)",
		        c->dir, (unsigned long long)total, (unsigned long long)c->max_bytes);
	}
	rc = removed;
out:
	closedir(d);
	free(victims);
	free(e);
	return rc;
}
