/* Unit tests for dr_imgcheck: valid, truncated, empty, missing and foreign files per format. */
#include "dr_imgcheck.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A valid 1x1 RGB PNG. */
static const unsigned char png1x1[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
        0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00,
        0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78,
        0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92,
        0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

static char dir[256];
static char err[1024];
static int nfiles;
static char files[64][512];

/* Write LEN bytes of DATA to DIR/NAME and return the path (kept for cleanup). */
static const char *put(const char *name, const void *data, size_t len)
{
	if (nfiles == (int)(sizeof(files) / sizeof(files[0]))) {
		printf("Bail out! too many test files\n");
		exit(1);
	}
	char *path = files[nfiles++];
	snprintf(path, sizeof(files[0]), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
		printf("Bail out! cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return path;
}

static void valid(const char *path, const char *format, const char *what)
{
	err[0] = '\0';
	int rc = dr_imgcheck(path, format, err, sizeof(err));
	ok(rc == 0, "%s is a valid %s", what, format ? format : "(any)");
	if (rc)
		printf("#   error: %s\n", err);
}

static void invalid(const char *path, const char *format, const char *needle, const char *what)
{
	err[0] = '\0';
	int rc = dr_imgcheck(path, format, err, sizeof(err));
	ok(rc == -1, "%s is refused as %s", what, format ? format : "(any)");
	ok(strstr(err, path) && strstr(err, needle), "... message names the path and '%s'", needle);
	if (!strstr(err, path) || !strstr(err, needle))
		printf("#   message: %s\n", err);
}

static void test_png(void)
{
	unsigned char buf[sizeof(png1x1) + 8];
	const char *good = put("good.png", png1x1, sizeof(png1x1));

	valid(good, "PNG", "1x1 PNG");
	valid(good, "png", "1x1 PNG (lower-case format)");
	invalid(put("trunc.png", png1x1, sizeof(png1x1) - 1), "PNG", "truncated: no IEND chunk",
	        "PNG missing its last byte");
	invalid(put("trunc2.png", png1x1, 50), "PNG", "truncated: no IEND chunk",
	        "PNG cut after IDAT start");
	invalid(put("tiny.png", png1x1, 10), "PNG", "truncated", "PNG cut after the signature");
	invalid(put("sig.png", png1x1, 5), "PNG", "not a PNG file: bad signature",
	        "PNG cut inside the signature");
	memcpy(buf, png1x1, sizeof(png1x1));
	buf[1] = 'X';
	invalid(put("badsig.png", buf, sizeof(png1x1)), "PNG", "not a PNG file: bad signature",
	        "PNG with a broken signature");
	memcpy(buf, png1x1, sizeof(png1x1));
	buf[12] = 'X';
	invalid(put("noihdr.png", buf, sizeof(png1x1)), "PNG", "IHDR", "PNG without IHDR first");
	memcpy(buf, png1x1, sizeof(png1x1));
	memcpy(buf + sizeof(png1x1), "trailing", 8);
	invalid(put("trailing.png", buf, sizeof(buf)), "PNG", "no IEND",
	        "PNG with junk after IEND");
	invalid(put("empty.png", "", 0), "PNG", "empty (0 bytes)", "empty file");
	invalid(put("junk.png", "hello, world\n", 13), "PNG", "not a PNG file", "text file");
	valid(good, "SOMETHING_NEW", "PNG checked as an unknown format");
	valid(good, NULL, "PNG checked with no format");
	invalid(put("empty.any", "", 0), NULL, "empty (0 bytes)", "empty file, no format");
}

static void test_missing(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/nope.png", dir);
	invalid(path, "PNG", "missing", "nonexistent file");
	invalid(dir, "PNG", "not a regular file", "a directory");
	snprintf(path, sizeof(path), "%s/good.png/x", dir);
	invalid(path, "PNG", "cannot open", "a path through a file");
	ok(strstr(err, strerror(ENOTDIR)) != NULL, "... with strerror: %s", err);

	char tiny[16];
	ok(dr_imgcheck(path, "PNG", tiny, sizeof(tiny)) == -1 && strlen(tiny) == 15,
	   "small error buffer is truncated safely");
}

static void test_jpeg(void)
{
	static const unsigned char jpg[] = {0xff, 0xd8, 0xff, 0xe0, 0,    0x10, 'J',
	                                    'F',  'I',  'F',  0,    0xff, 0xd9};
	valid(put("good.jpg", jpg, sizeof(jpg)), "JPEG", "minimal JPEG");
	invalid(put("trunc.jpg", jpg, sizeof(jpg) - 1), "JPEG", "truncated", "JPEG without EOI");
	invalid(put("bad.jpg", jpg + 1, sizeof(jpg) - 1), "JPEG", "not a JPEG file",
	        "JPEG without SOI");
	invalid(put("soi.jpg", jpg, 2), "JPEG", "truncated", "JPEG that is only SOI");
	invalid(put("one.jpg", jpg, 1), "JPEG", "not a JPEG file", "one byte");
	invalid(put("png.jpg", png1x1, sizeof(png1x1)), "JPEG", "not a JPEG file",
	        "a PNG checked as JPEG");
}

static void test_magic_formats(void)
{
	unsigned char b[64];

	valid(put("a.exr", "\x76\x2f\x31\x01\x02\0\0\0", 8), "OPEN_EXR", "EXR");
	valid(put("b.exr", "\x76\x2f\x31\x01\x02\0\0\0", 8), "OPEN_EXR_MULTILAYER", "EXR");
	invalid(put("c.exr", "\x76\x2f\x31", 3), "OPEN_EXR", "not an OpenEXR", "short EXR");
	invalid(put("d.exr", png1x1, sizeof(png1x1)), "OPEN_EXR", "bad magic", "PNG as EXR");

	valid(put("a.tif", "II*\0\x08\0\0\0", 8), "TIFF", "little-endian TIFF");
	valid(put("b.tif", "MM\0*\0\0\0\x08", 8), "TIFF", "big-endian TIFF");
	invalid(put("c.tif", "II\0*", 4), "TIFF", "not a TIFF", "mixed-up TIFF header");

	memset(b, 0, sizeof(b));
	memcpy(b, "BM", 2);
	b[2] = 58; /* file size 58 */
	valid(put("a.bmp", b, 58), "BMP", "BMP with matching size");
	valid(put("b.bmp", b, 60), "BMP", "BMP with padding after");
	invalid(put("c.bmp", b, 57), "BMP", "truncated", "BMP shorter than its header says");
	invalid(put("d.bmp", "BM\x01", 3), "BMP", "truncated", "BMP without size field");
	invalid(put("e.bmp", "MB", 2), "BMP", "not a BMP", "BMP with bad signature");
	b[5] = 0x80; /* a size of 2 GiB and more */
	invalid(put("f.bmp", b, 58), "BMP", "truncated", "BMP with a huge size field");

	valid(put("a.hdr", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n", 34), "HDR", "Radiance HDR");
	valid(put("b.hdr", "#?RGBE\n", 7), "HDR", "RGBE HDR");
	invalid(put("c.hdr", "#?RAD", 5), "HDR", "not a Radiance", "short HDR");

	memset(b, 0, sizeof(b));
	memcpy(b, "RIFF\x18\0\0\0WEBPVP8 ", 16);
	valid(put("a.webp", b, 32), "WEBP", "WebP with matching size");
	invalid(put("b.webp", b, 31), "WEBP", "truncated", "WebP shorter than RIFF says");
	invalid(put("c.webp", "RIFF\x04\0\0\0WAVE", 12), "WEBP", "not a WebP", "RIFF but not WebP");
	invalid(put("d.webp", "RIFF\x04\0\0\0", 8), "WEBP", "not a WebP", "RIFF header only");
	memcpy(b, "RIFF\xff\xff\xff\xff", 8);
	invalid(put("e.webp", b, 32), "WEBP", "truncated", "WebP with maximal RIFF size");

	valid(put("a.jp2", "\0\0\0\x0cjP  \r\n\x87\n", 12), "JPEG2000", "JP2 box");
	valid(put("b.j2c", "\xff\x4f\xff\x51\0\x2f", 6), "JPEG2000", "J2K codestream");
	invalid(put("c.jp2", "\0\0\0\x0cjP", 6), "JPEG2000", "not a JPEG 2000", "short JP2");

	valid(put("a.rgb", "\x01\xda\x01\x01", 4), "IRIS", "IRIS");
	invalid(put("b.rgb", "\xda\x01", 2), "IRIS", "not an IRIS", "IRIS with swapped magic");

	valid(put("a.dpx", "SDPX\0\0\x08\0", 8), "DPX", "big-endian DPX");
	valid(put("b.dpx", "XPDS\0\x08\0\0", 8), "DPX", "little-endian DPX");
	invalid(put("c.dpx", "SDP", 3), "DPX", "not a DPX", "short DPX");

	valid(put("a.cin", "\x80\x2a\x5f\xd7\0\0", 6), "CINEON", "big-endian Cineon");
	valid(put("b.cin", "\xd7\x5f\x2a\x80\0\0", 6), "CINEON", "little-endian Cineon");
	invalid(put("c.cin", "\x80\x2a\x5f\xd6", 4), "CINEON", "not a Cineon", "bad Cineon");

	memset(b, 0, sizeof(b));
	valid(put("a.tga", b, 18), "TARGA", "TGA header");
	valid(put("b.tga", b, 18), "TARGA_RAW", "raw TGA header");
	invalid(put("c.tga", b, 17), "TARGA", "truncated", "short TGA");
	invalid(put("d.tga", "", 0), "TARGA_RAW", "empty (0 bytes)", "empty TGA");
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(dir, sizeof(dir), "%s/drender-test-imgcheck-XXXXXX",
	                 tmp && *tmp ? tmp : "/tmp");
	if (n < 0 || (size_t)n >= sizeof(dir) || !mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_png();
	test_missing();
	test_jpeg();
	test_magic_formats();

	int left = 0;
	for (int i = 0; i < nfiles; i++)
		left += unlink(files[i]) != 0;
	left += rmdir(dir) != 0;
	ok(left == 0, "temporary files removed");
	return done_testing();
}
