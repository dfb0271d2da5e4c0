/* Unit tests for dr_fetch's pure parts: the request/answer encoding, the hash memo, and a node's
 * choice between its own file and rank 0's packed copy. */
#include "dr_fetch.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define HEX_A "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define HEX_B "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static char err[256];

static void test_encoding(void)
{
	unsigned char buf[DR_FETCH_MSG_MAX];
	dr_fetch_msg m = {
	        .kind = DR_FETCH_PACKED, .job = 7, .seq = 3, .size = 12345, .have = 262144};
	dr_fetch_msg d;
	int n;

	memcpy(m.hex, HEX_A, sizeof m.hex);
	snprintf(m.text, sizeof m.text, ".blend");
	n = dr_fetch_encode(&m, buf, sizeof buf);
	ok(n > 0 && (size_t)n < sizeof buf / 2,
	   "an answer is sent as its used part only (%d bytes)", n);
	is_int(dr_fetch_decode(buf, (size_t)n, &d, err, sizeof err), 0, "and decodes");
	ok(d.kind == DR_FETCH_PACKED && d.job == 7 && d.seq == 3 && d.size == 12345 &&
	           d.have == 262144,
	   "with its numbers");
	is_str(d.hex, HEX_A, "its hash");
	is_str(d.text, ".blend", "and its text");
	is_int(dr_fetch_encode(&m, buf, 10), -1, "a buffer too small is refused");

	is_int(dr_fetch_decode(buf, 5, &d, err, sizeof err), -1, "a short message is refused");
	is_int(dr_fetch_decode(buf, (size_t)n - 1, &d, err, sizeof err), -1,
	       "an unterminated text is refused");

	m.kind = 99;
	n = dr_fetch_encode(&m, buf, sizeof buf);
	is_int(dr_fetch_decode(buf, (size_t)n, &d, err, sizeof err), -1,
	       "an unknown kind is refused");

	m.kind = DR_FETCH_SCENE;
	memcpy(m.hex, "not-a-hash", 11);
	n = dr_fetch_encode(&m, buf, sizeof buf);
	is_int(dr_fetch_decode(buf, (size_t)n, &d, err, sizeof err), -1,
	       "an answer with a bad hash is refused (%s)", err);

	m.kind = DR_FETCH_PACKED;
	memcpy(m.hex, HEX_A, sizeof m.hex);
	m.have = 0;
	n = dr_fetch_encode(&m, buf, sizeof buf);
	is_int(dr_fetch_decode(buf, (size_t)n, &d, err, sizeof err), -1,
	       "a packed answer without a chunk size is refused");

	dr_fetch_msg q = {.kind = DR_FETCH_ASK, .job = 4, .seq = 1};
	n = dr_fetch_encode(&q, buf, sizeof buf);
	is_int(dr_fetch_decode(buf, (size_t)n, &d, err, sizeof err), 0,
	       "a question carries no hash and decodes");
	ok(d.kind == DR_FETCH_ASK && d.job == 4 && d.text[0] == '\0', "a job number, no path");
}

static void test_memo(void)
{
	dr_fetch_memo *m = calloc(1, sizeof *m);
	char hex[DR_SHA256_HEX], path[64];

	ok(!dr_fetch_memo_get(m, "/a.blend", 10, 100, hex), "an empty memo knows nothing");
	dr_fetch_memo_put(m, "/a.blend", 10, 100, HEX_A);
	ok(dr_fetch_memo_get(m, "/a.blend", 10, 100, hex) && strcmp(hex, HEX_A) == 0,
	   "a hash is remembered by path, size and mtime");
	ok(!dr_fetch_memo_get(m, "/a.blend", 10, 101, hex), "not once the mtime changed");
	ok(!dr_fetch_memo_get(m, "/a.blend", 11, 100, hex), "nor the size");
	ok(!dr_fetch_memo_get(m, "/b.blend", 10, 100, hex), "nor for another path");
	dr_fetch_memo_put(m, "/a.blend", 11, 101, HEX_B);
	ok(dr_fetch_memo_get(m, "/a.blend", 11, 101, hex) && strcmp(hex, HEX_B) == 0 &&
	           !dr_fetch_memo_get(m, "/a.blend", 10, 100, hex) && m->n == 1,
	   "a changed file replaces its entry");
	for (int i = 0; i < DR_FETCH_MEMO_MAX + 5; i++) {
		snprintf(path, sizeof path, "/s%d.blend", i);
		dr_fetch_memo_put(m, path, 1, 1, HEX_A);
	}
	is_int(m->n, DR_FETCH_MEMO_MAX, "the memo is bounded");
	ok(dr_fetch_memo_get(m, "/s68.blend", 1, 1, hex) &&
	           !dr_fetch_memo_get(m, "/a.blend", 11, 101, hex),
	   "the oldest entries went first");
	free(m);
}

static void test_choice(void)
{
	ok(dr_fetch_use_own(false, HEX_A, 10, HEX_A, 10),
	   "same size and hash: the node's own file");
	ok(!dr_fetch_use_own(true, HEX_A, 10, HEX_A, 10), "but not under --stage always");
	ok(!dr_fetch_use_own(false, HEX_B, 10, HEX_A, 10), "another hash: the packed copy");
	ok(!dr_fetch_use_own(false, HEX_A, 9, HEX_A, 10), "another size: the packed copy");
	ok(!dr_fetch_use_own(false, NULL, 0, HEX_A, 10), "no file: the packed copy");
}

int main(void)
{
	test_encoding();
	test_memo();
	test_choice();
	return done_testing();
}
