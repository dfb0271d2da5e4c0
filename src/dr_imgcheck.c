/* Output validation: check that a rendered image exists, is non-empty and looks complete. */
#include "dr_imgcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD_BYTES 64

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const unsigned char png_ihdr[8] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
static const unsigned char png_iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};

/* Read up to LEN bytes at OFF; returns the count read (short only at end of file) or -1. */
static ssize_t read_at(int fd, off_t off, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int has_magic(const unsigned char *head, size_t n, const void *magic, size_t mlen)
{
	return n >= mlen && memcmp(head, magic, mlen) == 0;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int is(const char *format, const char *name)
{
	return format && strcasecmp(format, name) == 0;
}

/* Check a SIZE-byte PNG from HEAD (its first N bytes) and TAIL (its last 12 bytes).
 * Returns NULL when fine, else what is wrong. */
static const char *check_png(const unsigned char *head, size_t n, const unsigned char *tail,
                             off_t size)
{
	if (!has_magic(head, n, png_sig, sizeof(png_sig)))
		return "not a PNG file: bad signature";
	if (size < (off_t)(sizeof(png_sig) + 8 + 13 + 4 + sizeof(png_iend)))
		return "truncated: too short for a PNG image";
	if (memcmp(head + sizeof(png_sig), png_ihdr, sizeof(png_ihdr)) != 0)
		return "not a valid PNG file: first chunk is not IHDR";
	if (memcmp(tail, png_iend, sizeof(png_iend)) != 0)
		return "truncated: no IEND chunk";
	return NULL;
}

/* Check HEAD (the first N bytes of a SIZE-byte file) for FORMAT other than PNG and JPEG.
 * Returns NULL when fine, else what is wrong; an unknown FORMAT is fine (non-empty is enough). */
static const char *check_head(const char *format, const unsigned char *head, size_t n, off_t size)
{
	if (is(format, "OPEN_EXR") || is(format, "OPEN_EXR_MULTILAYER")) {
		if (!has_magic(head, n, "\x76\x2f\x31\x01", 4))
			return "not an OpenEXR file: bad magic number";
	} else if (is(format, "TIFF")) {
		if (!has_magic(head, n, "II*\0", 4) && !has_magic(head, n, "MM\0*", 4))
			return "not a TIFF file: bad byte-order header";
	} else if (is(format, "BMP")) {
		if (!has_magic(head, n, "BM", 2))
			return "not a BMP file: bad signature";
		if (n < 6)
			return "truncated: too short for a BMP header";
		if ((uint64_t)le32(head + 2) > (uint64_t)size)
			return "truncated: smaller than its BMP header says";
	} else if (is(format, "HDR")) {
		if (!has_magic(head, n, "#?RADIANCE", 10) && !has_magic(head, n, "#?RGBE", 6))
			return "not a Radiance HDR file: bad signature";
	} else if (is(format, "WEBP")) {
		if (!has_magic(head, n, "RIFF", 4) || n < 12 || memcmp(head + 8, "WEBP", 4) != 0)
			return "not a WebP file: bad RIFF/WEBP header";
		if ((uint64_t)le32(head + 4) + 8 > (uint64_t)size)
			return "truncated: smaller than its RIFF header says";
	} else if (is(format, "JPEG2000")) {
		if (!has_magic(head, n, "\0\0\0\x0cjP  ", 8) &&
		    !has_magic(head, n, "\xff\x4f\xff\x51", 4))
			return "not a JPEG 2000 file: bad signature";
	} else if (is(format, "IRIS")) {
		if (!has_magic(head, n, "\x01\xda", 2))
			return "not an IRIS (SGI) file: bad magic number";
	} else if (is(format, "DPX")) {
		if (!has_magic(head, n, "SDPX", 4) && !has_magic(head, n, "XPDS", 4))
			return "not a DPX file: bad magic number";
	} else if (is(format, "CINEON")) {
		if (!has_magic(head, n, "\x80\x2a\x5f\xd7", 4) &&
		    !has_magic(head, n, "\xd7\x5f\x2a\x80", 4))
			return "not a Cineon file: bad magic number";
	} else if (is(format, "TARGA") || is(format, "TARGA_RAW")) {
		if (size < 18)
			return "truncated: too short for a TGA header (18 bytes)";
	}
	return NULL;
}

int dr_imgcheck(const char *path, const char *format, char *err, size_t errlen)
{
	unsigned char head[HEAD_BYTES], tail[sizeof(png_iend)];
	const char *why = NULL;
	struct stat st;
	ssize_t n;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s: missing", path);
		else
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "%s: empty (0 bytes)", path);
		goto out;
	}
	n = read_at(fd, 0, head, sizeof(head));
	if (n < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	if (is(format, "PNG") || is(format, "JPEG")) {
		size_t tlen = is(format, "PNG") ? sizeof(png_iend) : 2;
		ssize_t t = 0;

		if (st.st_size >= (off_t)tlen)
			t = read_at(fd, st.st_size - (off_t)tlen, tail, tlen);
		if (t < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto out;
		}
		if ((size_t)t < tlen)
			memset(tail, 0, sizeof(tail));
		if (is(format, "PNG"))
			why = check_png(head, (size_t)n, tail, st.st_size);
		else if (!has_magic(head, (size_t)n, "\xff\xd8", 2))
			why = "not a JPEG file: bad signature";
		else if (st.st_size < 4 || tail[0] != 0xff || tail[1] != 0xd9)
			why = "truncated: no JPEG end-of-image marker";
	} else {
		why = check_head(format, head, (size_t)n, st.st_size);
	}
	if (why) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}
