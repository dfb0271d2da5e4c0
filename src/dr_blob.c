/* A blob stream over MPI: a file sent in numbered chunks, a window in flight, into a cache entry or
 * a file. */
#include "dr_blob.h"
#include "dr_util.h"
#include "dr_xfer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void dr_blob_out_init(dr_blob_out *o, int fd, uint64_t size, uint32_t chunk, dr_peer to, int tag,
                      int32_t id0, int32_t id1, int64_t from)
{
	*o = (dr_blob_out){.to = to,
	                   .tag = tag,
	                   .id0 = id0,
	                   .id1 = id1,
	                   .fd = fd,
	                   .size = size,
	                   .chunk = chunk,
	                   .nchunks = dr_xfer_nchunks(size, chunk),
	                   .next = from,
	                   .last = dr_now()};
}

/* Chunk K of O into a new message *OUT (header, then the bytes) of *N bytes: 0, -1 with ERR when
 * out of memory, -2 with ERR when the file cannot be read. */
static int read_chunk(const dr_blob_out *o, int64_t k, char **out, size_t *n, char *err,
                      size_t errlen)
{
	uint32_t len = dr_xfer_chunk_len(o->size, o->chunk, k);
	dr_wire_chunk h = {.id0 = o->id0, .id1 = o->id1, .idx = k};
	char *buf = malloc(sizeof h + (size_t)len);
	size_t off = 0;

	if (!buf)
		return dr_seterr(err, errlen, "out of memory");
	memcpy(buf, &h, sizeof h);
	while (off < len) {
		ssize_t got = pread(o->fd, buf + sizeof h + off, len - off,
		                    (off_t)((uint64_t)k * o->chunk + off));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			dr_seterr(err, errlen, "cannot read chunk %lld: %s", (long long)k,
			          got < 0 ? strerror(errno) : "the file shrank");
			free(buf);
			return -2;
		}
		off += (size_t)got;
	}
	*out = buf;
	*n = sizeof h + len;
	return 0;
}

int dr_blob_out_pump(dr_blob_out *o, dr_sendq *q, int64_t have, int window, char *err,
                     size_t errlen)
{
	int64_t k;
	int went = 0;

	while ((k = dr_xfer_next(o->nchunks, have, o->next, dr_blob_out_inflight(o, q), window)) >=
	       0) {
		char *buf = NULL;
		size_t n = 0;
		int rc = read_chunk(o, k, &buf, &n, err, errlen);

		if (rc != 0)
			return rc;
		if (dr_sendq_add(q, o->to, o->tag, buf, n, err, errlen) != 0)
			return -1;
		o->next++;
		o->last = dr_now();
		went++;
	}
	return went;
}

int dr_blob_out_inflight(const dr_blob_out *o, const dr_sendq *q)
{
	return dr_sendq_inflight(q, o->to, o->tag);
}

bool dr_blob_out_sent(const dr_blob_out *o)
{
	return o->next >= o->nchunks;
}

void dr_blob_in_init(dr_blob_in *in, dr_cache_wr *w, int fd, uint64_t size, uint32_t chunk)
{
	*in = (dr_blob_in){.w = w,
	                   .fd = fd,
	                   .size = size,
	                   .chunk = chunk,
	                   .nchunks = dr_xfer_nchunks(size, chunk)};
	in->started = in->last = dr_now();
}

int dr_blob_header(const void *msg, size_t n, dr_wire_chunk *h)
{
	if (n < sizeof *h)
		return -1;
	memcpy(h, msg, sizeof *h);
	return 0;
}

/* LEN bytes at DATA into IN's file at chunk K's offset. 0, or -1 with WHY. */
static int write_at(dr_blob_in *in, int64_t k, const char *data, size_t len, char *why,
                    size_t whylen)
{
	size_t off = 0;

	if (in->w)
		return dr_cache_append(in->w, data, len, why, whylen);
	while (off < len) {
		ssize_t n = pwrite(in->fd, data + off, len - off,
		                   (off_t)((uint64_t)k * in->chunk + off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dr_seterr(why, whylen, "%s", strerror(errno));
		off += (size_t)n;
	}
	return 0;
}

int dr_blob_in_put(dr_blob_in *in, const dr_wire_chunk *h, const void *msg, size_t n, char *why,
                   size_t whylen)
{
	size_t len = n - sizeof *h;

	if (n < sizeof *h || h->idx != in->got ||
	    len != dr_xfer_chunk_len(in->size, in->chunk, in->got))
		return 0;
	if (write_at(in, h->idx, (const char *)msg + sizeof *h, len, why, whylen) != 0)
		return -1;
	in->got++;
	in->last = dr_now();
	return 1;
}

bool dr_blob_in_done(const dr_blob_in *in)
{
	return in->got >= in->nchunks;
}

bool dr_blob_in_stalled(const dr_blob_in *in, double now, double timeout)
{
	return !dr_blob_in_done(in) && now - in->last > timeout;
}
