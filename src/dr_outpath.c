/* Output naming: Blender format names and extensions, '#' expansion, final and temporary paths. */
#include "dr_outpath.h"
#include "dr_frames.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct format {
	const char *name; /* canonical, as in Blender's Python API */
	const char *ext;
	const char *arg; /* what Blender's -F / --render-format accepts */
};

static const struct format formats[] = {
        {"PNG", ".png", "PNG"},
        {"JPEG", ".jpg", "JPEG"},
        {"JPEG2000", ".jp2", "JP2"},
        {"BMP", ".bmp", "BMP"},
        {"TARGA", ".tga", "TGA"},
        {"TARGA_RAW", ".tga", "RAWTGA"},
        {"IRIS", ".rgb", "IRIS"},
        {"CINEON", ".cin", "CINEON"},
        {"DPX", ".dpx", "DPX"},
        {"OPEN_EXR", ".exr", "EXR"},
        {"OPEN_EXR_MULTILAYER", ".exr", "MULTILAYER"},
        {"HDR", ".hdr", "HDR"},
        {"TIFF", ".tif", "TIFF"},
        {"WEBP", ".webp", "WEBP"},
};

/* Other spellings: common extensions and Blender's own -F names. */
static const struct {
	const char *alias, *name;
} aliases[] = {
        {"JPG", "JPEG"},
        {"EXR", "OPEN_EXR"},
        {"TIF", "TIFF"},
        {"TGA", "TARGA"},
        {"RAWTGA", "TARGA_RAW"},
        {"JP2", "JPEG2000"},
        {"MULTILAYER", "OPEN_EXR_MULTILAYER"},
};

/* Movie formats Blender knows but drender cannot use (it renders one file per frame). */
static const char *const movies[] = {"FFMPEG", "AVI_JPEG", "AVI_RAW", "AVIJPEG", "AVIRAW"};

/* Room kept free in DR_PATH_MAX for the temporary name next to the final one. */
#define TEMP_ROOM 128

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct format *format_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < COUNT(aliases); i++)
		if (strcasecmp(name, aliases[i].alias) == 0) {
			name = aliases[i].name;
			break;
		}
	for (size_t i = 0; i < COUNT(formats); i++)
		if (strcasecmp(name, formats[i].name) == 0)
			return &formats[i];
	return NULL;
}

const char *dr_format_ext(const char *format)
{
	const struct format *f = format_find(format);
	return f ? f->ext : NULL;
}

const char *dr_format_canonical(const char *format)
{
	const struct format *f = format_find(format);
	return f ? f->name : NULL;
}

const char *dr_format_blender_arg(const char *format)
{
	const struct format *f = format_find(format);
	return f ? f->arg : NULL;
}

/* Append-only writer into a fixed buffer that remembers whether anything was cut off. */
struct sbuf {
	char *buf;
	size_t len, pos;
	int full;
};

static void sb_add(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->full || n >= sb->len - sb->pos) {
		sb->full = 1;
		return;
	}
	memcpy(sb->buf + sb->pos, s, n);
	sb->pos += n;
	sb->buf[sb->pos] = '\0';
}

static void sb_frame(struct sbuf *sb, int width, int frame)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%0*d", width, frame);

	if (n < 0 || (size_t)n >= sizeof(num))
		sb->full = 1;
	else
		sb_add(sb, num, (size_t)n);
}

static int ends_with_ci(const char *s, size_t slen, const char *suffix)
{
	size_t n = strlen(suffix);
	return slen >= n && strncasecmp(s + slen - n, suffix, n) == 0;
}

/* Expand '#' runs of PATTERN for FRAME and add EXT unless already there. */
static int expand(const char *pattern, const char *ext, int frame, char *buf, size_t len)
{
	struct sbuf sb = {buf, len, 0, 0};
	const char *p = pattern;

	if (!buf || len == 0)
		return -1;
	buf[0] = '\0';
	if (frame < 0)
		return -1;
	while (*p) {
		size_t lit = strcspn(p, "#");
		sb_add(&sb, p, lit);
		p += lit;
		if (*p == '#') {
			size_t run = strspn(p, "#");
			if (run > 64) {
				sb.full = 1;
				break;
			}
			sb_frame(&sb, (int)run, frame);
			p += run;
		}
	}
	if (!ends_with_ci(buf, sb.pos, ext))
		sb_add(&sb, ext, strlen(ext));
	if (sb.full) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

int dr_outpath_init(dr_outpath *o, const char *pattern, const char *scene, const char *format,
                    char *err, size_t errlen)
{
	const struct format *f = format_find(format);
	dr_outpath tmp;
	char probe[DR_PATH_MAX];
	int n;

	if (!f) {
		for (size_t i = 0; format && i < COUNT(movies); i++)
			if (strcasecmp(format, movies[i]) == 0) {
				snprintf(
				        err, errlen,
				        "output format '%s' is a movie format; drender renders one "
				        "file per frame: use an image format such as PNG or "
				        "OPEN_EXR",
				        format);
				return -1;
			}
		snprintf(err, errlen,
		         "unknown output format '%s' (use PNG, JPEG, JPEG2000, BMP, TARGA, "
		         "TARGA_RAW, IRIS, CINEON, DPX, OPEN_EXR, OPEN_EXR_MULTILAYER, HDR, TIFF "
		         "or WEBP)",
		         format ? format : "");
		return -1;
	}
	memset(&tmp, 0, sizeof(tmp));
	if (pattern) {
		if (!*pattern) {
			snprintf(err, errlen, "the output pattern is empty");
			return -1;
		}
		if (strncmp(pattern, "//", 2) == 0) {
			snprintf(err, errlen,
			         "output pattern '%s' starts with '//', which Blender reads as "
			         "relative to the .blend file: give a path relative to the current "
			         "directory or an absolute one",
			         pattern);
			return -1;
		}
		n = snprintf(tmp.pattern, sizeof(tmp.pattern), "%s%s", pattern,
		             strchr(pattern, '#') ? "" : "####");
	} else {
		const char *base, *slash;
		size_t blen;

		if (!scene || !*scene) {
			snprintf(err, errlen, "no scene file to name the output after");
			return -1;
		}
		slash = strrchr(scene, '/');
		base = slash ? slash + 1 : scene;
		blen = strlen(base);
		if (ends_with_ci(base, blen, ".blend"))
			blen -= strlen(".blend");
		if (blen == 0) {
			snprintf(err, errlen,
			         "cannot name the output after scene '%s': give -o PATTERN", scene);
			return -1;
		}
		n = snprintf(tmp.pattern, sizeof(tmp.pattern), "output/%.*s_####", (int)blen, base);
	}
	if (n < 0 || (size_t)n >= sizeof(tmp.pattern)) {
		snprintf(err, errlen, "the output pattern is too long (at most %d bytes)",
		         DR_PATH_MAX - 5);
		return -1;
	}
	n = snprintf(tmp.ext, sizeof(tmp.ext), "%s", f->ext);
	if (n < 0 || (size_t)n >= sizeof(tmp.ext)) {
		snprintf(err, errlen, "internal error: extension '%s' too long", f->ext);
		return -1;
	}
	/* The widest frame number must fit too, with room for the temporary name. */
	if (expand(tmp.pattern, tmp.ext, DR_FRAME_MAX, probe, sizeof(probe) - TEMP_ROOM) < 0) {
		snprintf(err, errlen,
		         "the output pattern '%.200s...' gives paths that are too long",
		         tmp.pattern);
		return -1;
	}
	*o = tmp;
	return 0;
}

int dr_outpath_frame(const dr_outpath *o, int frame, char *buf, size_t len)
{
	return expand(o->pattern, o->ext, frame, buf, len);
}

int dr_outpath_dir(const dr_outpath *o, int frame, char *buf, size_t len)
{
	char path[DR_PATH_MAX];
	const char *slash;
	size_t dlen;
	int n;

	if (!buf || len == 0)
		return -1;
	buf[0] = '\0';
	if (expand(o->pattern, o->ext, frame, path, sizeof(path)) < 0)
		return -1;
	slash = strrchr(path, '/');
	if (!slash) {
		n = snprintf(buf, len, ".");
	} else {
		dlen = (size_t)(slash - path);
		while (dlen > 0 && path[dlen - 1] == '/')
			dlen--;
		if (dlen == 0)
			dlen = 1; /* the root directory */
		if (dlen > (size_t)DR_PATH_MAX)
			return -1;
		n = snprintf(buf, len, "%.*s", (int)dlen, path);
	}
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

static int tag_ok(const char *tag, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tag[i];
		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return 0;
	}
	return 1;
}

int dr_outpath_temp(const dr_outpath *o, int frame, const char *tag, char *buf, size_t len)
{
	char dir[DR_PATH_MAX];
	int n;

	if (!buf || len == 0)
		return -1;
	buf[0] = '\0';
	if (!tag || !tag_ok(tag, strlen(tag)) || frame < 0 || frame > 9999999)
		return -1;
	if (dr_outpath_dir(o, frame, dir, sizeof(dir)) < 0)
		return -1;
	n = snprintf(buf, len, "%s%s%s%s-%0*d", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
	             DR_TMP_MARKER, tag, DR_TMP_DIGITS, frame);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

/* "<tag>-<DR_TMP_DIGITS digits>" exactly, in the N bytes at S. */
static int tag_and_digits(const char *s, size_t n)
{
	if (n < (size_t)DR_TMP_DIGITS + 2 || s[n - DR_TMP_DIGITS - 1] != '-')
		return 0;
	for (size_t i = n - DR_TMP_DIGITS; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return tag_ok(s, n - DR_TMP_DIGITS - 1);
}

bool dr_outpath_is_temp(const char *name)
{
	const char *rest, *dot;
	size_t n;

	if (!name || strncmp(name, DR_TMP_MARKER, strlen(DR_TMP_MARKER)) != 0)
		return false;
	rest = name + strlen(DR_TMP_MARKER);
	n = strlen(rest);
	if (tag_and_digits(rest, n))
		return true;
	/* Also with an image extension, in case Blender added one. */
	dot = strrchr(rest, '.');
	if (!dot || !dot[1] || strlen(dot + 1) > 8)
		return false;
	for (const char *c = dot + 1; *c; c++)
		if (!isalnum((unsigned char)*c))
			return false;
	return tag_and_digits(rest, (size_t)(dot - rest));
}
