/* Unit tests for dr_outdir: one owner per output directory (the lock names its holder), and
 * files opened confined to a root (no symlinks, no way out). */
#include "dr_outdir.h"
#include "dr_util.h"
#include "tap.h"
#include "testfs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char err[2048];

static void test_lock(const char *dir)
{
	int a = dr_outdir_lock(dir, "host h pid 1 job first", err, sizeof err), b;
	pid_t pid;
	int st = 0;

	ok(a >= 0, "the first owner takes the directory (%s)", a < 0 ? err : "");
	/* another process (flock is per open file: a second open in this process conflicts too) */
	pid = fork();
	if (pid == 0) {
		b = dr_outdir_lock(dir, "host h pid 2 job second", err, sizeof err);
		_exit(b < 0 && errno == EBUSY && strstr(err, "job first") ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "a second owner is refused with EBUSY, naming the holder");
	b = dr_outdir_lock(dir, "host h pid 1 job third", err, sizeof err);
	ok(b < 0 && strstr(err, "in use") && strstr(err, "job first"),
	   "a second open in the same process is refused too (%s)", err);
	close(a);
	b = dr_outdir_lock(dir, "host h pid 1 job third", err, sizeof err);
	ok(b >= 0, "once released, the next owner takes it");
	if (b >= 0)
		close(b);
}

/* The failures that are not a holder: the errno and the message tell which. */
static void test_lock_errors(const char *dir)
{
	char missing[PATH_MAX + 16], *longdir = malloc(DR_PATH_MAX + 2);
	int fd;

	snprintf(missing, sizeof missing, "%s/no/such", dir);
	errno = 0;
	fd = dr_outdir_lock(missing, "h", err, sizeof err);
	ok(fd < 0 && errno == ENOENT && strstr(err, "cannot lock output directory") &&
	           strstr(err, missing),
	   "a missing directory: ENOENT, naming it (%s)", err);
	if (!longdir)
		return;
	memset(longdir, 'a', DR_PATH_MAX + 1);
	longdir[0] = '/';
	longdir[DR_PATH_MAX + 1] = '\0';
	errno = 0;
	fd = dr_outdir_lock(longdir, "h", err, sizeof err);
	ok(fd < 0 && errno == ENAMETOOLONG && strstr(err, "too long"),
	   "a path too long: ENAMETOOLONG (%.40s...)", err);
	free(longdir);
	snprintf(missing, sizeof missing, "%s/%s", dir, DR_OUTDIR_LOCK);
	errno = 0;
	fd = symlink("/nonexistent", missing) == 0 ? dr_outdir_lock(dir, "h", err, sizeof err) : 0;
	ok(fd < 0 && errno == ELOOP && strstr(err, dir),
	   "a lock file that is a symbolic link is refused (%s)", err);
	unlink(missing);
}

static void test_open(const char *dir)
{
	char root[PATH_MAX], p[PATH_MAX + 64], q[PATH_MAX + 64];
	FILE *f;
	int fd;
	dr_err kind = DR_OK;

	ok(realpath(dir, root) != NULL, "root");
	snprintf(p, sizeof p, "%s/frame.png", root);
	f = fopen(p, "w");
	if (f) {
		fputs("x", f);
		fclose(f);
	}
	fd = dr_outdir_open_confined(p, root, &kind, err, sizeof err);
	ok(fd >= 0, "a plain file under the root opens");
	if (fd >= 0)
		close(fd);
	snprintf(q, sizeof q, "%s/link.png", root);
	ok(symlink("/etc/passwd", q) == 0, "a symlink to /etc/passwd");
	fd = dr_outdir_open_confined(q, root, &kind, err, sizeof err);
	ok(fd < 0 && kind == DR_E_FORBIDDEN && strstr(err, "symbolic link"), "is refused (%s)",
	   err);
	snprintf(q, sizeof q, "%s/up", root);
	ok(symlink("/etc", q) == 0, "a directory symlink leading out");
	snprintf(q, sizeof q, "%s/up/passwd", root);
	fd = dr_outdir_open_confined(q, root, &kind, err, sizeof err);
	ok(fd < 0 && kind == DR_E_FORBIDDEN && strstr(err, "outside"),
	   "a file through it is refused (%s)", err);
	snprintf(q, sizeof q, "%s/none.png", root);
	fd = dr_outdir_open_confined(q, root, &kind, err, sizeof err);
	ok(fd < 0 && kind == DR_E_NOT_FOUND, "a missing file is DR_E_NOT_FOUND");
	ok(dr_path_under("/a/b/c", "/a/b") && !dr_path_under("/a/bc", "/a/b") &&
	           dr_path_under("/a/b", "/a/b/"),
	   "under: on component boundaries");
}

/* The manifest: what a directory's frames were made from (issue 10, item 6). */
static void test_manifest(const char *dir)
{
	char scene[256], other[256], text[8192], why[4096];
	dr_render_cfg c = {.format = "PNG"}, d;
	dr_outdir_manifest a, b, back;
	FILE *f;

	snprintf(scene, sizeof scene, "%s/shot.blend", dir);
	snprintf(other, sizeof other, "%s/other.blend", dir);
	f = fopen(scene, "w");
	fputs("BLENDER-v304\n", f);
	fclose(f);
	f = fopen(other, "w");
	fputs("BLENDER-v304 other\n", f);
	fclose(f);
	snprintf(c.scene, sizeof c.scene, "%s", scene);
	ok(dr_outdir_manifest_of(&c, &a, err, sizeof err) == 0, "a manifest of settings (%s)", err);
	ok(dr_outdir_manifest_encode(&a, text, sizeof text) == 0 &&
	           dr_outdir_manifest_decode(text, &back, err, sizeof err) == 0 &&
	           !dr_outdir_manifest_differs(&a, &back, why, sizeof why),
	   "encode and decode give the same manifest");
	ok(dr_outdir_manifest_decode("{\"scene\":1}", &back, err, sizeof err) == -1,
	   "a file that is not a manifest is refused");
	d = c;
	d.samples = 64;
	snprintf(d.engine, sizeof d.engine, "CYCLES");
	dr_outdir_manifest_of(&d, &b, err, sizeof err);
	ok(dr_outdir_manifest_differs(&a, &b, why, sizeof why) &&
	           strstr(why, "samples 0, not 64") &&
	           strstr(why, "engine the scene's, not CYCLES"),
	   "differences are named: %s", why);
	snprintf(d.scene, sizeof d.scene, "%s", other);
	d.samples = 0;
	d.engine[0] = '\0';
	dr_outdir_manifest_of(&d, &b, err, sizeof err);
	ok(dr_outdir_manifest_differs(&a, &b, why, sizeof why) && strstr(why, "other.blend"),
	   "another scene is named: %s", why);

	ok(dr_outdir_manifest_check(dir, &a, true, false, err, sizeof err) == 0,
	   "a directory without a manifest is fine, and gets one");
	ok(dr_outdir_manifest_check(dir, &a, true, false, err, sizeof err) == 0,
	   "the same settings again are fine");
	ok(dr_outdir_manifest_check(dir, &b, true, false, err, sizeof err) == DR_E_CONFLICT &&
	           strstr(err, "other.blend") && strstr(err, "--overwrite"),
	   "other settings are refused, naming the difference: %s", err);
	ok(dr_outdir_manifest_check(dir, &b, true, true, err, sizeof err) == 0,
	   "with overwrite they are accepted");
	ok(dr_outdir_manifest_check(dir, &b, false, false, err, sizeof err) == 0 &&
	           dr_outdir_manifest_check(dir, &a, false, false, err, sizeof err) ==
	                   DR_E_CONFLICT,
	   "and overwrite rewrote the manifest");
	f = fopen(scene, "a");
	fputs("edited\n", f);
	fclose(f);
	dr_outdir_manifest_of(&c, &a, err, sizeof err);
	dr_outdir_manifest_check(dir, &a, true, true, err, sizeof err);
	f = fopen(scene, "a");
	fputs("edited again\n", f);
	fclose(f);
	dr_outdir_manifest_of(&c, &b, err, sizeof err);
	ok(dr_outdir_manifest_check(dir, &b, false, false, err, sizeof err) == DR_E_CONFLICT &&
	           strstr(err, "changed"),
	   "an edited scene is a difference: %s", err);
	unlink(scene);
	unlink(other);
}

int main(void)
{
	char dir[] = "/tmp/dr-outdir-XXXXXX";

	if (!mkdtemp(dir))
		return 1;
	test_lock_errors(dir);
	test_lock(dir);
	test_open(dir);
	test_manifest(dir);
	testfs_rm_tree(dir);
	return done_testing();
}
