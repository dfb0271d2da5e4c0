/* Output directories: create them, prove they are writable, and remove stale temporary files. */
#include "dr_outdir.h"

#include "dr_log.h"
#include "dr_util.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Call FN for each distinct output directory (consecutive frames usually share one). */
static int each_dir(const dr_outpath *o, const dr_frames *f, int (*fn)(const char *dir, void *arg),
                    void *arg)
{
	char prev[DR_PATH_MAX] = "", dir[DR_PATH_MAX];
	for (size_t i = 0; i < f->n; i++) {
		if (dr_outpath_dir(o, f->v[i], dir, sizeof dir) != 0)
			return -1;
		if (i > 0 && strcmp(dir, prev) == 0)
			continue;
		int rc = fn(dir, arg);
		if (rc)
			return rc;
		snprintf(prev, sizeof prev, "%s", dir);
	}
	return 0;
}

struct prep {
	char *err;
	size_t errlen;
};

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
	char p[DR_PATH_MAX];
	struct stat st;
	int n = snprintf(p, sizeof p, "%s", dir);

	if (n < 0 || (size_t)n >= sizeof p)
		return dr_seterr(err, errlen, "output directory path is too long: %s", dir);
	for (char *s = p + 1;; s++) {
		char c = *s;
		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST)
			return dr_seterr(err, errlen, "cannot create output directory %s: %s", p,
			                 strerror(errno));
		*s = c;
		if (c == '\0')
			break;
	}
	if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
		return dr_seterr(err, errlen, "output path %s exists but is not a directory", p);
	return 0;
}

static int prepare_one(const char *dir, void *arg)
{
	struct prep *pr = arg;
	char probe[DR_PATH_MAX];
	int fd, n;

	if (mkdir_p(dir, pr->err, pr->errlen))
		return -1;
	n = snprintf(probe, sizeof probe, "%s/%sprobe-%ld", dir, DR_TMP_MARKER, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof probe)
		return dr_seterr(pr->err, pr->errlen, "output directory path is too long: %s", dir);
	fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return dr_seterr(pr->err, pr->errlen, "cannot write in output directory %s: %s",
		                 dir, strerror(errno));
	close(fd);
	unlink(probe);
	return 0;
}

int dr_outdir_prepare(const dr_outpath *o, const dr_frames *f, char *err, size_t errlen)
{
	struct prep pr = {err, errlen};
	int rc = each_dir(o, f, prepare_one, &pr);
	if (rc < 0 && !*err)
		dr_seterr(err, errlen, "output path pattern too long");
	return rc;
}

void dr_outdir_tag(const char *host, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%ld", host, (long)getpid());
	for (char *s = buf; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '_'))
			*s = '_';
}

struct clean {
	char host[300]; /* sanitized like a tag */
	size_t removed;
};

/* NAME is ".drender-tmp-<host>-<pid>-<7 digits>" (or a probe file): is its writer dead? */
static int stale(const char *name, const char *host)
{
	const char *tag = name + strlen(DR_TMP_MARKER);
	size_t hl = strlen(host), len = strlen(tag);
	char *end;
	long pid;

	if (strncmp(tag, "probe-", 6) == 0) {
		pid = strtol(tag + 6, &end, 10);
		return *end == '\0' && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
	}
	if (len < hl + 2 + DR_TMP_DIGITS + 1 || strncmp(tag, host, hl) != 0 || tag[hl] != '-')
		return 0;
	errno = 0;
	pid = strtol(tag + hl + 1, &end, 10);
	if (end == tag + hl + 1 || *end != '-' || (size_t)(end - tag) != len - DR_TMP_DIGITS - 1 ||
	    pid <= 0)
		return 0;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int clean_one(const char *dir, void *arg)
{
	struct clean *c = arg;
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[DR_PATH_MAX];

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (!dr_outpath_is_temp(e->d_name) || !stale(e->d_name, c->host))
			continue;
		int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (n > 0 && (size_t)n < sizeof path && unlink(path) == 0) {
			dr_info("removed %s, left over from an earlier run", path);
			c->removed++;
		}
	}
	closedir(d);
	return 0;
}

size_t dr_outdir_clean_stale(const dr_outpath *o, const dr_frames *f, const char *host)
{
	struct clean c = {.removed = 0};
	char tag[300];
	dr_outdir_tag(host, tag, sizeof tag);
	/* the tag is "<host>-<pid>": keep the host part */
	char *dash = strrchr(tag, '-');
	if (dash)
		*dash = '\0';
	snprintf(c.host, sizeof c.host, "%s", tag);
	each_dir(o, f, clean_one, &c);
	return c.removed;
}

int dr_outdir_open_confined(const char *path, const char *root, dr_err *kind, char *err,
                            size_t errlen)
{
	char link[64], real[DR_PATH_MAX];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), e;

	if (fd < 0) {
		e = errno;
		dr_seterr(err, errlen, "%s: %s", path,
		          e == ELOOP ? "is a symbolic link (refused)" : strerror(e));
		*kind = e == ELOOP || e == EACCES     ? DR_E_FORBIDDEN
		        : e == ENOENT || e == ENOTDIR ? DR_E_NOT_FOUND
		                                      : DR_E_INTERNAL;
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		dr_seterr(err, errlen, "%s: is not a regular file (refused)", path);
		goto fail;
	}
	if (root) {
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		n = readlink(link, real, sizeof real - 1);
		if (n < 0 || (size_t)n >= sizeof real - 1) {
			dr_seterr(err, errlen, "%s: cannot tell where it is (refused)", path);
			goto fail;
		}
		real[n] = '\0';
		if (!dr_path_under(real, root)) {
			dr_seterr(err, errlen, "%s: is %s, outside %s (refused)", path, real, root);
			goto fail;
		}
	}
	return fd;
fail:
	close(fd);
	*kind = DR_E_FORBIDDEN;
	return -1;
}

/* Write HOLDER into the lock file PATH, through a descriptor of its own (the lock stays on the
 * read-only one). A failure costs only the name in a refusal: warned, not fatal. */
static void write_holder(const char *path, const char *holder)
{
	ssize_t n = (ssize_t)strlen(holder);
	int fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 || write(fd, holder, (size_t)n) != n || write(fd, "\n", 1) != 1)
		dr_warn("cannot write the holder into %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

int dr_outdir_lock(const char *dir, const char *holder, char *err, size_t errlen)
{
	char path[DR_PATH_MAX], who[512];
	ssize_t n;
	int fd = -1, e;

	n = snprintf(path, sizeof path, "%s/%s", dir, DR_OUTDIR_LOCK);
	if (n < 0 || (size_t)n >= sizeof path) {
		e = ENAMETOOLONG;
		dr_seterr(err, errlen, "output directory path is too long: %s", dir);
		goto fail;
	}
	/* The lock is held through a read-only descriptor: a writable one kept open for the whole
	 * run would stop the file system from being remounted read-only ("busy"). */
	fd = open(path, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		e = errno;
		dr_seterr(err, errlen, "cannot lock output directory %s: %s", dir, strerror(e));
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		e = errno;
		if (e != EWOULDBLOCK) {
			dr_seterr(err, errlen, "cannot lock output directory %s: %s", dir,
			          strerror(e));
			goto fail;
		}
		n = pread(fd, who, sizeof who - 1, 0);
		who[n > 0 ? n : 0] = '\0';
		who[strcspn(who, "\n")] = '\0';
		e = EBUSY;
		dr_seterr(
		        err, errlen,
		        "output directory %s is in use by another run or job (%s): wait for it or "
		        "choose another directory",
		        dir, who[0] ? who : "holder unknown");
		goto fail;
	}
	write_holder(path, holder);
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	errno = e;
	return -1;
}

int dr_outdir_lock_frames(const dr_outpath *o, const dr_frames *f, const char *holder, char *err,
                          size_t errlen)
{
	char dir[DR_PATH_MAX];

	if (!f->n || dr_outpath_dir(o, f->v[0], dir, sizeof dir) != 0) {
		dr_seterr(err, errlen, "output path pattern too long");
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir_p(dir, err, errlen) != 0)
		return -1;
	return dr_outdir_lock(dir, holder, err, errlen);
}

/* ---- the manifest ---- */

int dr_outdir_manifest_of(const dr_render_cfg *c, dr_outdir_manifest *m, char *err, size_t errlen)
{
	dr_outdir_manifest n = {0};
	char real[PATH_MAX];
	struct stat st;

	if (!realpath(c->scene, real) || stat(real, &st) != 0)
		return dr_seterr(err, errlen, "scene %s: %s", c->scene, strerror(errno));
	if (strlen(real) >= sizeof n.scene)
		return dr_seterr(err, errlen, "scene %s: path too long", c->scene);
	memcpy(n.scene, real, strlen(real) + 1);
	n.size = (long long)st.st_size;
	n.mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	snprintf(n.format, sizeof n.format, "%s", c->format[0] ? c->format : "PNG");
	snprintf(n.engine, sizeof n.engine, "%s", c->engine);
	n.samples = c->samples;
	*m = n;
	return 0;
}

int dr_outdir_manifest_encode(const dr_outdir_manifest *m, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	char size[32], mtime[32];
	int rc = -1;

	/* 64-bit integers as JSON numbers lose nothing below 2^53; nanoseconds need more: as text
	 */
	snprintf(size, sizeof size, "%lld", m->size);
	snprintf(mtime, sizeof mtime, "%lld", m->mtime_ns);
	if (o && cJSON_AddStringToObject(o, "scene", m->scene) &&
	    cJSON_AddStringToObject(o, "size", size) &&
	    cJSON_AddStringToObject(o, "mtime_ns", mtime) &&
	    cJSON_AddStringToObject(o, "format", m->format) &&
	    cJSON_AddStringToObject(o, "engine", m->engine) &&
	    cJSON_AddNumberToObject(o, "samples", m->samples) &&
	    cJSON_PrintPreallocated(o, buf, (int)(len > 2 ? len - 2 : 0), false)) {
		size_t n = strlen(buf);
		buf[n] = '\n';
		buf[n + 1] = '\0';
		rc = 0;
	}
	cJSON_Delete(o);
	return rc;
}

/* The string member NAME of O into BUF (LEN bytes); false if missing, not a string or too long. */
static bool get_str(const cJSON *o, const char *name, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsString(v) || strlen(v->valuestring) >= len)
		return false;
	memcpy(buf, v->valuestring, strlen(v->valuestring) + 1);
	return true;
}

static bool get_ll(const cJSON *o, const char *name, long long *out)
{
	char buf[32], *end;

	if (!get_str(o, name, buf, sizeof buf) || !buf[0])
		return false;
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return errno == 0 && *end == '\0';
}

int dr_outdir_manifest_decode(const char *text, dr_outdir_manifest *m, char *err, size_t errlen)
{
	cJSON *o = cJSON_Parse(text);
	const cJSON *samples = cJSON_GetObjectItemCaseSensitive(o, "samples");
	dr_outdir_manifest n = {0};
	bool good = o && cJSON_IsObject(o) && get_str(o, "scene", n.scene, sizeof n.scene) &&
	            get_ll(o, "size", &n.size) && get_ll(o, "mtime_ns", &n.mtime_ns) &&
	            get_str(o, "format", n.format, sizeof n.format) &&
	            get_str(o, "engine", n.engine, sizeof n.engine) && cJSON_IsNumber(samples) &&
	            samples->valuedouble >= 0 && samples->valuedouble <= DR_SAMPLES_MAX;

	if (good)
		n.samples = (int)samples->valuedouble;
	cJSON_Delete(o);
	if (!good)
		return dr_seterr(err, errlen, "not a drender manifest");
	*m = n;
	return 0;
}

bool dr_outdir_manifest_differs(const dr_outdir_manifest *have, const dr_outdir_manifest *want,
                                char *why, size_t whylen)
{
	size_t pos = 0;

	why[0] = '\0';
	if (strcmp(have->scene, want->scene) != 0)
		dr_append(why, whylen, &pos, "; scene %s, not %s", have->scene, want->scene);
	else if (have->size != want->size || have->mtime_ns != want->mtime_ns)
		dr_append(why, whylen, &pos, "; scene %s has changed since (size or time)",
		          want->scene);
	if (strcmp(have->format, want->format) != 0)
		dr_append(why, whylen, &pos, "; format %s, not %s", have->format, want->format);
	if (strcmp(have->engine, want->engine) != 0)
		dr_append(why, whylen, &pos, "; engine %s, not %s",
		          have->engine[0] ? have->engine : "the scene's",
		          want->engine[0] ? want->engine : "the scene's");
	if (have->samples != want->samples)
		dr_append(why, whylen, &pos, "; samples %d, not %d", have->samples, want->samples);
	if (pos > 2)
		memmove(why, why + 2, strlen(why + 2) + 1); /* drop the first "; " */
	return pos > 0;
}

/* Write M as DIR's manifest: a temporary file renamed into place. 0, or -1 with ERR. */
static int manifest_write(const char *dir, const dr_outdir_manifest *m, char *err, size_t errlen)
{
	char text[DR_PATH_MAX + 512], tmp[DR_PATH_MAX], path[DR_PATH_MAX];
	size_t len;
	int fd, n1, n2, e;

	n1 = snprintf(path, sizeof path, "%s/%s", dir, DR_OUTDIR_MANIFEST);
	n2 = snprintf(tmp, sizeof tmp, "%s/%s.%ld", dir, DR_OUTDIR_MANIFEST, (long)getpid());
	if (n1 < 0 || (size_t)n1 >= sizeof path || n2 < 0 || (size_t)n2 >= sizeof tmp ||
	    dr_outdir_manifest_encode(m, text, sizeof text) != 0)
		return dr_seterr(err, errlen, "output directory path is too long: %s", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return dr_seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
	len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
		e = errno ? errno : ENOSPC;
		close(fd);
		unlink(tmp);
		return dr_seterr(err, errlen, "cannot write %s: %s", tmp, strerror(e));
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		return dr_seterr(err, errlen, "cannot write %s: %s", path, strerror(e));
	}
	return 0;
}

dr_err dr_outdir_manifest_check(const char *dir, const dr_outdir_manifest *want, bool write,
                                bool overwrite, char *err, size_t errlen)
{
	char path[DR_PATH_MAX], text[DR_PATH_MAX + 512], why[2 * DR_PATH_MAX + 200] = "";
	dr_outdir_manifest have;
	bool differs = true;
	ssize_t n;
	int fd, w = snprintf(path, sizeof path, "%s/%s", dir, DR_OUTDIR_MANIFEST);

	if (w < 0 || (size_t)w >= sizeof path) {
		dr_seterr(err, errlen, "output directory path is too long: %s", dir);
		return DR_E_INTERNAL;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		snprintf(why, sizeof why, "its %s cannot be read: %s", DR_OUTDIR_MANIFEST,
		         strerror(errno));
	else if (fd < 0)
		differs = false; /* a directory nobody has rendered into yet */
	else {
		n = read(fd, text, sizeof text - 1);
		close(fd);
		text[n > 0 ? n : 0] = '\0';
		if (dr_outdir_manifest_decode(text, &have, why, sizeof why) != 0)
			snprintf(why, sizeof why, "its %s is not a drender manifest",
			         DR_OUTDIR_MANIFEST);
		else if (!dr_outdir_manifest_differs(&have, want, why, sizeof why)) {
			differs = false;
			write = false; /* the same: nothing to write */
		}
	}
	if (differs && !overwrite) {
		dr_seterr(err, errlen,
		          "output directory %s holds frames made from other settings (%s): choose "
		          "another directory, or --overwrite to render them again",
		          dir, why);
		return DR_E_CONFLICT;
	}
	if (write && manifest_write(dir, want, err, errlen) != 0)
		return DR_E_INTERNAL;
	return DR_OK;
}

dr_err dr_outdir_manifest_check_frames(const dr_outpath *o, const dr_frames *f,
                                       const dr_render_cfg *c, bool write, bool overwrite,
                                       char *err, size_t errlen)
{
	char dir[DR_PATH_MAX];
	dr_outdir_manifest m;

	if (!f->n || dr_outpath_dir(o, f->v[0], dir, sizeof dir) != 0) {
		dr_seterr(err, errlen, "output path pattern too long");
		return DR_E_INTERNAL;
	}
	if (dr_outdir_manifest_of(c, &m, err, errlen) != 0)
		return DR_E_INTERNAL;
	return dr_outdir_manifest_check(dir, &m, write, overwrite, err, errlen);
}
