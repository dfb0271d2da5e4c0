/* Unit tests for dr_outdir: one owner per output directory (the lock names its holder), and
 * files opened confined to a root (no symlinks, no way out). */
#include "dr_outdir.h"
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

static void test_open(const char *dir)
{
	char root[PATH_MAX], p[PATH_MAX + 64], q[PATH_MAX + 64];
	FILE *f;
	int fd;

	ok(realpath(dir, root) != NULL, "root");
	snprintf(p, sizeof p, "%s/frame.png", root);
	f = fopen(p, "w");
	if (f) {
		fputs("x", f);
		fclose(f);
	}
	fd = dr_outdir_open_confined(p, root, err, sizeof err);
	ok(fd >= 0, "a plain file under the root opens");
	if (fd >= 0)
		close(fd);
	snprintf(q, sizeof q, "%s/link.png", root);
	ok(symlink("/etc/passwd", q) == 0, "a symlink to /etc/passwd");
	fd = dr_outdir_open_confined(q, root, err, sizeof err);
	ok(fd < 0 && errno == EACCES && strstr(err, "symbolic link"), "is refused (%s)", err);
	snprintf(q, sizeof q, "%s/up", root);
	ok(symlink("/etc", q) == 0, "a directory symlink leading out");
	snprintf(q, sizeof q, "%s/up/passwd", root);
	fd = dr_outdir_open_confined(q, root, err, sizeof err);
	ok(fd < 0 && errno == EACCES && strstr(err, "outside"), "a file through it is refused (%s)",
	   err);
	snprintf(q, sizeof q, "%s/none.png", root);
	fd = dr_outdir_open_confined(q, root, err, sizeof err);
	ok(fd < 0 && errno == ENOENT, "a missing file is ENOENT");
	ok(dr_outdir_under("/a/b/c", "/a/b") && !dr_outdir_under("/a/bc", "/a/b") &&
	           dr_outdir_under("/a/b", "/a/b/"),
	   "under: on component boundaries");
}

int main(void)
{
	char dir[] = "/tmp/dr-outdir-XXXXXX";

	if (!mkdtemp(dir))
		return 1;
	test_lock(dir);
	test_open(dir);
	testfs_rm_tree(dir);
	return done_testing();
}
