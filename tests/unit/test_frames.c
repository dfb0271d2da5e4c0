/* Unit tests for dr_frames: frame specs, START/END ranges, single numbers and their errors. */
#include "dr_frames.h"
#include "tap.h"

#include <stdlib.h>

static char err[512];

/* Parse SPEC and compare with WANT (N frames); "" when equal, else a description. */
static int parses_to(const char *spec, const int *want, size_t n)
{
	dr_frames f = {0};
	int same;

	err[0] = '\0';
	if (dr_frames_parse(spec, &f, err, sizeof(err)) < 0) {
		printf("# parse '%s' failed: %s\n", spec, err);
		return 0;
	}
	same = f.n == n && memcmp(f.v, want, n * sizeof(int)) == 0;
	if (!same) {
		printf("# parse '%s' gave %zu frames:", spec, f.n);
		for (size_t i = 0; i < f.n && i < 20; i++)
			printf(" %d", f.v[i]);
		printf("\n");
	}
	dr_frames_free(&f);
	return same;
}

/* SPEC must fail, leave OUT untouched and produce a message containing NEEDLE. */
static void parse_fails(const char *spec, const char *needle)
{
	int sentinel = 42;
	dr_frames f = {&sentinel, 7};

	err[0] = '\0';
	int rc = dr_frames_parse(spec, &f, err, sizeof(err));
	ok(rc == -1 && f.v == &sentinel && f.n == 7, "'%s' is refused, output untouched",
	   spec ? spec : "(null)");
	ok(strstr(err, needle) != NULL, "message for '%s' mentions '%s'", spec ? spec : "(null)",
	   needle);
	if (!strstr(err, needle))
		printf("#   message: %s\n", err);
}

static void test_valid_specs(void)
{
	static const int one[] = {5};
	static const int zero[] = {0};
	static const int r[] = {1, 2, 3, 4};
	static const int mixed[] = {1, 2, 3, 25, 30, 32, 34, 36, 38, 40};
	static const int dup[] = {1, 2, 3, 4, 5, 6};
	static const int step[] = {0, 3, 6, 9};
	static const int maxf[] = {DR_FRAME_MAX};
	static const int big_step[] = {1};

	ok(parses_to("5", one, 1), "single frame");
	ok(parses_to("0", zero, 1), "frame 0 is allowed");
	ok(parses_to("1-4", r, 4), "range");
	ok(parses_to("4-4", (const int[]){4}, 1), "one-frame range");
	ok(parses_to("1-3,25,30-40:2", mixed, 10), "the documented example");
	ok(parses_to("  1-3 , 25 ,\t30-40:2  ", mixed, 10), "whitespace around items");
	ok(parses_to("1 - 3, 25, 30 - 40 : 2", mixed, 10), "whitespace inside items");
	ok(parses_to("5,3-6,1-2,4,6", dup, 6), "unsorted overlapping items are sorted and deduped");
	ok(parses_to("0-10:3", step, 4), "step that does not land on the end");
	ok(parses_to("0-9:3", step, 4), "step that lands on the end");
	ok(parses_to("1048574", maxf, 1), "DR_FRAME_MAX itself");
	ok(parses_to("1-5:99999999999999999999999", big_step, 1), "huge step gives one frame");
	ok(parses_to("007", (const int[]){7}, 1), "leading zeros");
	ok(parses_to("3-11:8", (const int[]){3, 11}, 2), "step reaching the end exactly");
	ok(parses_to("6-17", (const int[]){6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, 12),
	   "range crossing byte boundaries");

	/* Large but legal: exactly DR_FRAMES_COUNT_MAX frames. */
	dr_frames f = {0};
	int rc = dr_frames_parse("1-1000000", &f, err, sizeof(err));
	ok(rc == 0 && f.n == DR_FRAMES_COUNT_MAX, "1-1000000 gives exactly the maximum count");
	int inorder = rc == 0;
	for (size_t i = 0; inorder && i < f.n; i++)
		inorder = f.v[i] == (int)i + 1;
	ok(inorder, "... ascending and complete");
	dr_frames_free(&f);
	ok(f.v == NULL && f.n == 0, "dr_frames_free resets the struct");
	dr_frames_free(&f);
	ok(1, "dr_frames_free twice is safe");
	dr_frames_free(NULL);
	ok(1, "dr_frames_free(NULL) is safe");

	/* Many overlapping big items still dedupe to a legal count. */
	rc = dr_frames_parse("0-900000,0-900000,5-900000:7,900000", &f, err, sizeof(err));
	ok(rc == 0 && f.n == 900001, "overlapping big ranges dedupe (got %zu)", f.n);
	dr_frames_free(&f);

	rc = dr_frames_parse("0-1048574:2", &f, err, sizeof(err));
	ok(rc == 0 && f.n == 524288 && f.v[f.n - 1] == 1048574, "every other frame of the maximum");
	dr_frames_free(&f);
}

static void test_bad_specs(void)
{
	parse_fails(NULL, "empty");
	parse_fails("", "empty");
	parse_fails("   \t", "empty");
	parse_fails("1,,2", "empty item");
	parse_fails("1,,2", "'1,,2'");
	parse_fails(",1", "empty item");
	parse_fails("1,", "empty item");
	parse_fails("1, ,2", "empty item");
	parse_fails("abc", "'abc'");
	parse_fails("abc", "not a frame number");
	parse_fails("1,x7,3", "'x7'");
	parse_fails("1.5", "'1.5'");
	parse_fails("0x10", "'0x10'");
	parse_fails("+5", "'+5'");
	parse_fails("1-", "'1-'");
	parse_fails("-", "'-'");
	parse_fails("1-3:", "'1-3:'");
	parse_fails("1 2", "'1 2'");
	parse_fails("5:2", "'5:2'");
	parse_fails("1-3-5", "'1-3-5'");
	parse_fails("1-3:2x", "'1-3:2x'");
	parse_fails("-5", "'-5'");
	parse_fails("-5", "negative");
	parse_fails("1,3--5", "'3--5'");
	parse_fails("3--5", "negative");
	parse_fails("20-1", "'20-1'");
	parse_fails("20-1", "backwards");
	parse_fails("20-1", "1-20");
	parse_fails("1-10:0", "'1-10:0'");
	parse_fails("1-10:0", "at least 1");
	parse_fails("1-10:-2", "at least 1");
	parse_fails("1048575", "'1048575'");
	parse_fails("1048575", "1048574");
	parse_fails("1-1048575", "'1-1048575'");
	parse_fails("99999999999999999999999", "'99999999999999999999999'");
	parse_fails("0-1048574", "1048575 frames");
	parse_fails("0-1048574", "1000000");
	parse_fails("0-500000,500001-1000000", "1000001 frames");
	parse_fails("1-3,bad,5-6", "'bad'");
}

static void test_range(void)
{
	dr_frames f = {0};
	int rc = dr_frames_range("1", "20", &f, err, sizeof(err));
	ok(rc == 0 && f.n == 20 && f.v[0] == 1 && f.v[19] == 20, "range 1..20");
	dr_frames_free(&f);

	rc = dr_frames_range("7", "7", &f, err, sizeof(err));
	ok(rc == 0 && f.n == 1 && f.v[0] == 7, "range 7..7");
	dr_frames_free(&f);

	rc = dr_frames_range("0", "999999", &f, err, sizeof(err));
	ok(rc == 0 && f.n == DR_FRAMES_COUNT_MAX && f.v[999999] == 999999, "largest legal range");
	dr_frames_free(&f);

	int sentinel = 1;
	f.v = &sentinel;
	f.n = 3;
	rc = dr_frames_range("20", "1", &f, err, sizeof(err));
	ok(rc == -1 && f.v == &sentinel && f.n == 3, "START > END refused, output untouched");
	ok(strstr(err, "START (20) is after END (1)") != NULL, "message says so: %s", err);

	rc = dr_frames_range("x", "5", &f, err, sizeof(err));
	ok(rc == -1 && strstr(err, "START") && strstr(err, "'x'"), "bad START named: %s", err);
	rc = dr_frames_range("1", "5y", &f, err, sizeof(err));
	ok(rc == -1 && strstr(err, "END") && strstr(err, "'5y'"), "bad END named: %s", err);
	rc = dr_frames_range("0", "1048574", &f, err, sizeof(err));
	ok(rc == -1 && strstr(err, "1048575 frames"), "too many frames: %s", err);
	rc = dr_frames_range(NULL, "5", &f, err, sizeof(err));
	ok(rc == -1 && strstr(err, "START is missing"), "missing START: %s", err);
	ok(f.v == &sentinel && f.n == 3, "output still untouched");
}

static void test_number(void)
{
	int v = -7;

	ok(dr_frames_number("12", "START", &v, err, sizeof(err)) == 0 && v == 12, "12");
	ok(dr_frames_number("0", "START", &v, err, sizeof(err)) == 0 && v == 0, "0");
	ok(dr_frames_number(" 3 ", "START", &v, err, sizeof(err)) == 0 && v == 3, "blanks ok");
	ok(dr_frames_number("1048574", "END", &v, err, sizeof(err)) == 0 && v == DR_FRAME_MAX,
	   "maximum");

	v = -7;
	ok(dr_frames_number("1048575", "END", &v, err, sizeof(err)) == -1 && v == -7,
	   "above maximum refused, output untouched");
	ok(strstr(err, "END") && strstr(err, "'1048575'") && strstr(err, "1048574"), "msg: %s",
	   err);
	ok(dr_frames_number("-1", "START", &v, err, sizeof(err)) == -1 && strstr(err, "negative") &&
	           strstr(err, "START"),
	   "negative: %s", err);
	ok(dr_frames_number("", "START", &v, err, sizeof(err)) == -1 &&
	           strstr(err, "not a frame number"),
	   "empty: %s", err);
	ok(dr_frames_number("12abc", "END", &v, err, sizeof(err)) == -1 && strstr(err, "'12abc'"),
	   "trailing junk: %s", err);
	ok(dr_frames_number("1e3", "END", &v, err, sizeof(err)) == -1 && strstr(err, "'1e3'"),
	   "no floats: %s", err);
	ok(dr_frames_number("99999999999999999999", "END", &v, err, sizeof(err)) == -1 &&
	           strstr(err, "too large"),
	   "overflow: %s", err);
	ok(dr_frames_number("5", NULL, &v, err, sizeof(err)) == 0 && v == 5, "WHAT may be NULL");
	ok(v == 5, "value kept");

	char tiny[8];
	ok(dr_frames_number("abc", "START", &v, tiny, sizeof(tiny)) == -1 && strlen(tiny) == 7,
	   "message truncated safely to a small buffer");
}

int main(void)
{
	test_valid_specs();
	test_bad_specs();
	test_range();
	test_number();
	return done_testing();
}
