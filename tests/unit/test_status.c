/* Unit tests for dr_status: rank 0's exit status written whole, atomically, where asked. */
#include "dr_status.h"
#include "tap.h"
#include "testfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[2048];

/* The file's whole content, or "" when it cannot be read. */
static const char *slurp(const char *path)
{
	static char buf[64];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

/* Number of entries in DIR besides . and .. */
static int entries(const char *dir)
{
	char cmd[512];
	int n = -1;
	FILE *p;

	snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

int main(void)
{
	char dir[] = "/tmp/dr-test-status-XXXXXX", path[256], bad[300];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/status", dir);

	is_int(dr_status_write(path, 75, err, sizeof err), 0, "a status is written");
	is_str(slurp(path), "75\n", "as one line");
	is_int(dr_status_write(path, 0, err, sizeof err), 0, "a second status replaces it");
	is_str(slurp(path), "0\n", "whole, not appended");
	is_int(entries(dir), 1, "no temporary file is left behind");

	snprintf(bad, sizeof bad, "%s/missing/status", dir);
	is_int(dr_status_write(bad, 3, err, sizeof err), -1, "a directory that is not there fails");
	ok(strstr(err, bad) != NULL, "naming the file (%s)", err);
	is_int(dr_status_write("", 3, err, sizeof err), -1, "an empty path fails");

	unsetenv(DR_STATUS_ENV);
	is_int(dr_status_tell(130, err, sizeof err), 0, "without DRENDER_STATUS_FILE: nothing");
	is_int(entries(dir), 1, "and nothing written");
	setenv(DR_STATUS_ENV, path, 1);
	is_int(dr_status_tell(130, err, sizeof err), 0, "with DRENDER_STATUS_FILE: written");
	is_str(slurp(path), "130\n", "the status told");
	setenv(DR_STATUS_ENV, "", 1);
	is_int(dr_status_tell(2, err, sizeof err), 0, "an empty DRENDER_STATUS_FILE is unset");
	is_str(slurp(path), "130\n", "and leaves the file alone");

	testfs_rm_tree(dir);
	return done_testing();
}
