/* Scene files: check that a path is a readable .blend before anything is started for it. */
#include "dr_scene.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dr_scene_check(const char *path, char *err, size_t errlen)
{
	static const unsigned char gz[] = {0x1f, 0x8b}, zst[] = {0x28, 0xb5, 0x2f, 0xfd};
	unsigned char head[8];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open scene %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "scene %s is not a regular file", path);
		close(fd);
		return -1;
	}
	n = read(fd, head, sizeof head);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read scene %s: %s", path, strerror(errno));
		return -1;
	}
	if ((n >= 7 && memcmp(head, "BLENDER", 7) == 0) || (n >= 2 && memcmp(head, gz, 2) == 0) ||
	    (n >= 4 && memcmp(head, zst, 4) == 0))
		return 0;
	snprintf(err, errlen, "%s is not a Blender scene (.blend file)%s", path,
	         n == 0 ? ": it is empty" : "");
	return -1;
}
