/* Unit tests for dr_blob and dr_wire: a file over MPI in chunks, to this process itself. */
#include "dr_blob.h"
#include "dr_util.h"
#include "tap.h"
#include "testfs.h"
#include "testmpi.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CH   1000
#define SIZE (2 * CH + 517)

static char dir[] = "/tmp/dr-test-blob-XXXXXX";
static dr_peer self; /* this process, on MPI_COMM_SELF */

static void write_file(const char *path, size_t size)
{
	FILE *f = fopen(path, "wb");
	for (size_t i = 0; f && i < size; i++)
		fputc((int)(i * 7 % 251), f);
	if (f)
		fclose(f);
}

static bool same_files(const char *a, const char *b)
{
	char ha[DR_SHA256_HEX], hb[DR_SHA256_HEX], err[DR_ERRLEN];
	uint64_t sa, sb;

	return dr_sha256_file(a, ha, &sa, err, sizeof err) == 0 &&
	       dr_sha256_file(b, hb, &sb, err, sizeof err) == 0 && sa == sb && !strcmp(ha, hb);
}

/* Move every chunk of O into IN (through MPI to this rank itself). Returns the chunks put. */
static int carry(dr_blob_out *o, dr_sendq *q, dr_blob_in *in, int window, int *maxflight)
{
	char buf[sizeof(dr_wire_chunk) + CH], err[DR_ERRLEN];
	int put = 0, n, k;
	dr_wire_chunk h;

	for (int round = 0; round < 100 && !dr_blob_in_done(in); round++) {
		if (dr_blob_out_pump(o, q, o->nchunks, window, err, sizeof err) < 0)
			return -1;
		if (dr_blob_out_inflight(o, q) > *maxflight)
			*maxflight = dr_blob_out_inflight(o, q);
		while ((k = dr_wire_recv(MPI_COMM_SELF, 0, 5, buf, sizeof buf, &n, NULL, err,
		                         sizeof err)) == 1)
			if (dr_blob_header(buf, (size_t)n, &h) == 0 &&
			    dr_blob_in_put(in, &h, buf, (size_t)n, err, sizeof err) == 1)
				put++;
		if (k < 0 || dr_sendq_test(q, err, sizeof err) < 0)
			return -1;
	}
	return put;
}

static void test_to_file(void)
{
	char src[64], dst[64];
	dr_blob_out o;
	dr_blob_in in;
	dr_sendq q = {0};
	int fd, out, most = 0;

	snprintf(src, sizeof src, "%s/a", dir);
	snprintf(dst, sizeof dst, "%s/b", dir);
	write_file(src, SIZE);
	fd = open(src, O_RDONLY);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dr_blob_out_init(&o, fd, SIZE, CH, self, 5, 3, 4, 0);
	is_int(o.nchunks, 3, "three chunks, the last short");
	dr_blob_in_init(&in, NULL, out, SIZE, CH);
	ok(!dr_blob_in_done(&in) && !dr_blob_in_stalled(&in, dr_now(), 10), "waiting, not stalled");
	ok(dr_blob_in_stalled(&in, dr_now() + 11, 10), "stalled after the timeout");
	is_int(carry(&o, &q, &in, 2, &most), 3, "every chunk came, in order");
	ok(most <= 2, "never more than the window in flight");
	ok(dr_blob_out_sent(&o) && dr_blob_in_done(&in), "both sides are done");
	close(out);
	ok(same_files(src, dst), "the copy is the file");
	dr_sendq_settle(&q, 1);
	close(fd);
}

static void test_refused(void)
{
	char buf[sizeof(dr_wire_chunk) + CH] = {0}, why[DR_ERRLEN];
	dr_wire_chunk h = {.idx = 1};
	dr_blob_in in;
	char dst[64];
	int out;

	snprintf(dst, sizeof dst, "%s/c", dir);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dr_blob_in_init(&in, NULL, out, SIZE, CH);
	memcpy(buf, &h, sizeof h);
	is_int(dr_blob_in_put(&in, &h, buf, sizeof buf, why, sizeof why), 0,
	       "a chunk out of order is dropped");
	h.idx = 0;
	is_int(dr_blob_in_put(&in, &h, buf, sizeof buf - 1, why, sizeof why), 0,
	       "a chunk of the wrong length is dropped");
	is_int(dr_blob_header(buf, 3, &h), -1, "too short for a header");
	is_int(in.got, 0, "nothing taken");
	dr_blob_in_init(&in, NULL, out, 0, CH);
	ok(dr_blob_in_done(&in), "an empty blob is done at once");
	close(out);
}

static void test_to_cache(void)
{
	char src[64], cdir[64], hex[DR_SHA256_HEX], err[DR_ERRLEN], path[4200];
	uint64_t size;
	dr_cache cache;
	dr_cache_wr w;
	dr_blob_out o;
	dr_blob_in in;
	dr_sendq q = {0};
	int fd, most = 0;

	snprintf(src, sizeof src, "%s/a", dir);
	snprintf(cdir, sizeof cdir, "%s/cache", dir);
	ok(dr_sha256_file(src, hex, &size, err, sizeof err) == 0, "hashed");
	ok(dr_cache_open(&cache, cdir, 0, err, sizeof err) == 0 &&
	           dr_cache_begin(&cache, hex, "blend", size, &w, err, sizeof err) == 0,
	   "a cache entry begun");
	fd = open(src, O_RDONLY);
	dr_blob_out_init(&o, fd, size, CH, self, 5, 0, 0, 0);
	dr_blob_in_init(&in, &w, -1, size, CH);
	is_int(carry(&o, &q, &in, 8, &most), 3, "into the cache entry");
	ok(dr_cache_commit(&w, path, sizeof path, err, sizeof err) == 0, "its hash checks out");
	ok(same_files(src, path), "the cached copy is the file");
	dr_sendq_settle(&q, 1);
	close(fd);
	dr_cache_close(&cache);
}

static void test_shrank_and_oversize(void)
{
	char src[64], err[DR_ERRLEN], small[8];
	dr_blob_out o;
	dr_sendq q = {0};
	int fd, n = 0;

	snprintf(src, sizeof src, "%s/short", dir);
	write_file(src, 10);
	fd = open(src, O_RDONLY);
	dr_blob_out_init(&o, fd, SIZE, CH, self, 6, 0, 0, 0);
	is_int(dr_blob_out_pump(&o, &q, o.nchunks, 2, err, sizeof err), -2,
	       "a file that shrank cannot be sent");
	close(fd);
	write_file(src, 100);
	fd = open(src, O_RDONLY);
	dr_blob_out_init(&o, fd, 100, CH, self, 6, 0, 0, 0);
	is_int(dr_blob_out_pump(&o, &q, 1, 2, err, sizeof err), 1, "one chunk");
	is_int(dr_wire_recv(MPI_COMM_SELF, 0, 6, small, sizeof small, &n, NULL, err, sizeof err), 2,
	       "a message too long for the buffer is received and dropped");
	is_int(n, (int)sizeof(dr_wire_chunk) + 100, "its length is said");
	is_int(dr_wire_recv(MPI_COMM_SELF, 0, 6, small, sizeof small, &n, NULL, err, sizeof err), 0,
	       "then nothing is waiting");
	ok(dr_wire_fail(MPI_ERR_TRUNCATE, "what", err, sizeof err) == -1 &&
	           strncmp(err, "what: ", 6) == 0,
	   "an MPI error says what failed");
	dr_sendq_settle(&q, 1);
	close(fd);
}

static void test_peers(void)
{
	char err[DR_ERRLEN], buf[16] = "hi";
	dr_peers t;
	dr_sendq q = {0};
	MPI_Comm other;
	int id, n = 0, from = -1;

	ok(dr_peers_init(&t, MPI_COMM_SELF, err, sizeof err) == 0 && t.n == 1,
	   "one peer per rank of a communicator");
	MPI_Comm_dup(MPI_COMM_SELF, &other);
	MPI_Comm_set_errhandler(other, MPI_ERRORS_RETURN);
	id = dr_peers_add(&t, other, 0);
	is_int(id, 1, "a peer from another communicator gets the next id");
	is_int(dr_peers_find(&t, other, 0), 1, "found by communicator and rank");
	is_int(dr_peers_find(&t, other, 3), -1, "not another rank");
	is_int(dr_peers_get(&t, 7).rank, -1, "an unknown id is no peer");
	ok(dr_sendq_add(&q, dr_peers_get(&t, id), 9, strdup(buf), 3, err, sizeof err) == 0,
	   "a send to the joined peer");
	is_int(dr_sendq_inflight(&q, dr_peers_get(&t, id), 9) +
	               dr_sendq_inflight(&q, dr_peers_get(&t, 0), 9),
	       1, "in flight to it, not to the other");
	memset(buf, 0, sizeof buf);
	is_int(dr_wire_recv_any(&t, 9, buf, sizeof buf, &n, &from, err, sizeof err), 1,
	       "received from any peer");
	ok(from == 1 && strcmp(buf, "hi") == 0, "its id and bytes");
	dr_sendq_settle(&q, 1);
	MPI_Comm_free(&other);
	dr_peers_free(&t);
}

int main(int argc, char **argv)
{
	LEAKS_OFF();
	if (MPI_Init(&argc, &argv) != MPI_SUCCESS)
		return 1;
	LEAKS_ON();
	MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
	self = (dr_peer){.comm = MPI_COMM_SELF, .rank = 0};
	if (!mkdtemp(dir))
		return 1;
	test_to_file();
	test_refused();
	test_to_cache();
	test_shrank_and_oversize();
	test_peers();
	testfs_rm_tree(dir);
	LEAKS_OFF();
	MPI_Finalize();
	LEAKS_ON();
	return done_testing();
}
