/* Frame lists: parse frame specs and START/END pairs into sorted, de-duplicated frame arrays. */
#include "dr_frames.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_EXAMPLE "1-20,25,30-40:2"
#define BITMAP_BYTES ((DR_FRAME_MAX + 1 + 7) / 8)

enum scan {
	SCAN_OK,
	SCAN_NOT_NUMBER,
	SCAN_NEGATIVE,
	SCAN_TOO_BIG, /* does not fit in a long */
};

/* Scan an unsigned decimal number at P (after optional blanks); *END points just past it. */
static enum scan scan_number(const char *p, const char **end, long *v)
{
	char *e;

	while (isspace((unsigned char)*p))
		p++;
	*end = p;
	if (*p == '-')
		return SCAN_NEGATIVE;
	if (!isdigit((unsigned char)*p))
		return SCAN_NOT_NUMBER;
	errno = 0;
	*v = strtol(p, &e, 10);
	if (e == p)
		return SCAN_NOT_NUMBER;
	*end = e;
	return errno == ERANGE ? SCAN_TOO_BIG : SCAN_OK;
}

/* Skip blanks from P without passing STOP. */
static const char *skip_blanks(const char *p, const char *stop)
{
	while (p < stop && isspace((unsigned char)*p))
		p++;
	return p;
}

/* Mark frames A, A+STEP, ... up to B (all within 0..DR_FRAME_MAX) in BM; whole bytes at once for
 * STEP 1. */
static void bitmap_set_range(unsigned char *bm, long a, long b, long step)
{
	if (step == 1) {
		while (a <= b && (a & 7)) {
			bm[a >> 3] |= (unsigned char)(1u << (a & 7));
			a++;
		}
		if (b - a + 1 >= 8) {
			long bytes = (b - a + 1) / 8;
			memset(bm + (a >> 3), 0xff, (size_t)bytes);
			a += bytes * 8;
		}
	}
	for (; a <= b; a += step) {
		bm[a >> 3] |= (unsigned char)(1u << (a & 7));
		if (b - a < step)
			break;
	}
}

static size_t bitmap_count(const unsigned char *bm)
{
	size_t n = 0;
	for (size_t i = 0; i < BITMAP_BYTES; i++)
		n += (size_t)__builtin_popcount(bm[i]);
	return n;
}

/* Turn the N frames marked in BM into OUT; OUT untouched on error. */
static int bitmap_to_frames(const unsigned char *bm, size_t n, dr_frames *out, char *err,
                            size_t errlen)
{
	size_t k = 0;
	int *v = malloc(n * sizeof(*v));

	if (!v) {
		snprintf(err, errlen, "out of memory for %zu frames", n);
		return -1;
	}
	for (size_t i = 0; i < BITMAP_BYTES; i++) {
		if (!bm[i])
			continue;
		for (int bit = 0; bit < 8; bit++)
			if (bm[i] & (1u << bit))
				v[k++] = (int)(i * 8 + (size_t)bit);
	}
	out->v = v;
	out->n = n;
	return 0;
}

/* Explain a failed scan of one number inside ITEM (LEN bytes), or a value above DR_FRAME_MAX. */
static void item_number_error(enum scan s, const char *item, int len, long value, char *err,
                              size_t errlen)
{
	switch (s) {
	case SCAN_NEGATIVE:
		snprintf(err, errlen, "frame list item '%.*s': frame numbers cannot be negative",
		         len, item);
		break;
	case SCAN_NOT_NUMBER:
		snprintf(err, errlen,
		         "frame list item '%.*s' is not a frame number or range "
		         "(use N, A-B or A-B:STEP, e.g. " SPEC_EXAMPLE ")",
		         len, item);
		break;
	case SCAN_TOO_BIG:
	case SCAN_OK:
		if (s == SCAN_TOO_BIG)
			snprintf(err, errlen,
			         "frame list item '%.*s': number too large (Blender's highest "
			         "frame is %d)",
			         len, item, DR_FRAME_MAX);
		else
			snprintf(err, errlen,
			         "frame list item '%.*s': frame %ld is above Blender's highest "
			         "frame %d",
			         len, item, value, DR_FRAME_MAX);
		break;
	}
}

/* Parse one trimmed ITEM of LEN bytes (it ends at a ',' or '\0') and mark its frames in BM. */
static int parse_item(const char *item, int len, unsigned char *bm, char *err, size_t errlen)
{
	const char *p, *stop = item + len;
	long a, b, step = 1;
	enum scan s;

	s = scan_number(item, &p, &a);
	p = skip_blanks(p, stop);
	if (s != SCAN_OK || a > DR_FRAME_MAX) {
		item_number_error(s, item, len, a, err, errlen);
		return -1;
	}
	b = a;
	if (*p == '-') {
		s = scan_number(p + 1, &p, &b);
		p = skip_blanks(p, stop);
		if (s != SCAN_OK || b > DR_FRAME_MAX) {
			item_number_error(s, item, len, b, err, errlen);
			return -1;
		}
		if (*p == ':') {
			s = scan_number(p + 1, &p, &step);
			p = skip_blanks(p, stop);
			if (s == SCAN_NEGATIVE || (s == SCAN_OK && step < 1)) {
				snprintf(err, errlen,
				         "frame list item '%.*s': the step (after ':') must be at "
				         "least 1",
				         len, item);
				return -1;
			}
			if (s == SCAN_TOO_BIG)
				step = LONG_MAX;
			else if (s != SCAN_OK) {
				item_number_error(s, item, len, 0, err, errlen);
				return -1;
			}
		}
	}
	if (p != stop) {
		item_number_error(SCAN_NOT_NUMBER, item, len, 0, err, errlen);
		return -1;
	}
	if (a > b) {
		snprintf(err, errlen,
		         "frame list item '%.*s': the range runs backwards (%ld is after %ld); "
		         "write %ld-%ld",
		         len, item, a, b, b, a);
		return -1;
	}
	bitmap_set_range(bm, a, b, step);
	return 0;
}

int dr_frames_parse(const char *spec, dr_frames *out, char *err, size_t errlen)
{
	unsigned char *bm = NULL;
	const char *p = spec;
	size_t n;
	int rc = -1;

	while (p && isspace((unsigned char)*p))
		p++;
	if (!p || !*p) {
		snprintf(err, errlen, "the frame list is empty: give frames like " SPEC_EXAMPLE);
		goto out;
	}
	bm = calloc(BITMAP_BYTES, 1);
	if (!bm) {
		snprintf(err, errlen, "out of memory parsing the frame list");
		goto out;
	}
	for (p = spec;;) {
		const char *start = p, *stop;

		while (*p && *p != ',')
			p++;
		stop = p;
		while (start < stop && isspace((unsigned char)*start))
			start++;
		while (stop > start && isspace((unsigned char)stop[-1]))
			stop--;
		if (start == stop) {
			snprintf(err, errlen,
			         "frame list '%s' has an empty item (a stray comma?): give frames "
			         "like " SPEC_EXAMPLE,
			         spec);
			goto out;
		}
		if (stop - start > INT_MAX) {
			snprintf(err, errlen, "frame list item is absurdly long");
			goto out;
		}
		if (parse_item(start, (int)(stop - start), bm, err, errlen) < 0)
			goto out;
		if (!*p)
			break;
		p++;
	}
	n = bitmap_count(bm);
	if (n > DR_FRAMES_COUNT_MAX) {
		snprintf(err, errlen,
		         "frame list '%s' gives %zu frames, more than the limit of %d per job",
		         spec, n, DR_FRAMES_COUNT_MAX);
		goto out;
	}
	rc = bitmap_to_frames(bm, n, out, err, errlen);
out:
	free(bm);
	return rc;
}

int dr_frames_number(const char *s, const char *what, int *out, char *err, size_t errlen)
{
	const char *end;
	long v = 0;
	enum scan sc;

	if (!what)
		what = "frame";
	if (!s) {
		snprintf(err, errlen, "%s is missing: give a frame number", what);
		return -1;
	}
	sc = scan_number(s, &end, &v);
	end = skip_blanks(end, end + strlen(end));
	if (sc == SCAN_OK && *end)
		sc = SCAN_NOT_NUMBER;
	switch (sc) {
	case SCAN_OK:
		if (v > DR_FRAME_MAX) {
			snprintf(err, errlen, "%s '%s' is above Blender's highest frame %d", what,
			         s, DR_FRAME_MAX);
			return -1;
		}
		*out = (int)v;
		return 0;
	case SCAN_NEGATIVE:
		snprintf(err, errlen, "%s '%s': frame numbers cannot be negative", what, s);
		return -1;
	case SCAN_TOO_BIG:
		snprintf(err, errlen, "%s '%s' is too large (Blender's highest frame is %d)", what,
		         s, DR_FRAME_MAX);
		return -1;
	case SCAN_NOT_NUMBER:
		break;
	}
	snprintf(err, errlen, "%s '%s' is not a frame number (a whole number like 1 or 250)", what,
	         s);
	return -1;
}

int dr_frames_range(const char *start, const char *end, dr_frames *out, char *err, size_t errlen)
{
	int a, b, *v;

	if (dr_frames_number(start, "START", &a, err, errlen) < 0 ||
	    dr_frames_number(end, "END", &b, err, errlen) < 0)
		return -1;
	if (a > b) {
		snprintf(err, errlen, "START (%d) is after END (%d): the range runs backwards", a,
		         b);
		return -1;
	}
	if ((long)b - a + 1 > DR_FRAMES_COUNT_MAX) {
		snprintf(err, errlen,
		         "frames %d to %d are %ld frames, more than the limit of %d per job", a, b,
		         (long)b - a + 1, DR_FRAMES_COUNT_MAX);
		return -1;
	}
	v = malloc(((size_t)b - (size_t)a + 1) * sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory for frames %d to %d", a, b);
		return -1;
	}
	for (int f = a; f <= b; f++)
		v[f - a] = f;
	out->v = v;
	out->n = (size_t)b - (size_t)a + 1;
	return 0;
}

void dr_frames_free(dr_frames *f)
{
	if (!f)
		return;
	free(f->v);
	f->v = NULL;
	f->n = 0;
}
