/* Rank 0's exit status through a file: see dr_status.h. */
#include "dr_status.h"
#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dr_status_write(const char *path, int code, char *err, size_t errlen)
{
	char tmp[PATH_MAX], line[16];
	int fd, n, len;

	if (!path || !*path)
		return dr_seterr(err, errlen, "no status file named");
	n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof tmp)
		return dr_seterr(err, errlen, "status file path too long: %s", path);
	len = snprintf(line, sizeof line, "%d\n", code);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return dr_seterr(err, errlen, "cannot write the status file %s: %s", tmp,
		                 strerror(errno));
	n = (int)write(fd, line, (size_t)len);
	if (n != len || close(fd) != 0) {
		int e = n < 0 ? errno : EIO;
		unlink(tmp);
		return dr_seterr(err, errlen, "cannot write the status file %s: %s", tmp,
		                 strerror(e));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return dr_seterr(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(e));
	}
	return 0;
}

int dr_status_tell(int code, char *err, size_t errlen)
{
	const char *path = getenv(DR_STATUS_ENV);

	if (!path || !*path)
		return 0;
	return dr_status_write(path, code, err, errlen);
}
