/* A blob stream over MPI: a file sent in numbered chunks, a window in flight, into a cache entry or
 * a file. */
#ifndef DR_BLOB_H
#define DR_BLOB_H

#include "dr_cache.h"
#include "dr_sendq.h"
#include "dr_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Staging (dr_stage), frames coming home (dr_collect) and fetched scenes (dr_fetch) each move a
 * file the same way: chunk K of a SIZE-byte file is one message on the protocol's data tag, a
 * dr_wire_chunk header (two numbers naming the blob, and K) and then the bytes; the sender keeps
 * up to a window of chunks in flight per receiver (dr_sendq: a send to a lost peer is abandoned,
 * never waited on); the receiver takes chunks in order only and appends them to a dr_cache entry
 * (renamed into place once the hash checks out) or writes them into a temporary file; each side
 * knows when it last moved a chunk, for its progress and its stall timeout. What a protocol adds
 * is only its questions and answers.
 */

/* The sending side of one blob to one receiver. */
typedef struct dr_blob_out {
	dr_peer to;       /* the receiver */
	int tag;          /* the data tag */
	int32_t id0, id1; /* the blob's name in every chunk's header */
	int fd;           /* read from (not owned) */
	uint64_t size;
	uint32_t chunk;
	int64_t nchunks, next; /* chunks in all; the next to send */
	double last;           /* when a chunk last went (dr_now) */
} dr_blob_out;

/* A blob of SIZE bytes read from FD, to peer TO on TAG in CHUNK-byte pieces, from chunk FROM. */
void dr_blob_out_init(dr_blob_out *o, int fd, uint64_t size, uint32_t chunk, dr_peer to, int tag,
                      int32_t id0, int32_t id1, int64_t from);

/* Send what the sender has (HAVE chunks: o->nchunks for a whole file, fewer while it is still
 * receiving it) up to WINDOW in flight through Q. Returns how many went, -1 with ERR on an
 * MPI failure or out of memory, -2 with ERR when the file cannot be read (shrank). */
int dr_blob_out_pump(dr_blob_out *o, dr_sendq *q, int64_t have, int window, char *err,
                     size_t errlen);

/* Chunks of O in flight in Q. */
int dr_blob_out_inflight(const dr_blob_out *o, const dr_sendq *q);

/* True when every chunk has gone (not necessarily arrived). */
bool dr_blob_out_sent(const dr_blob_out *o);

/* The receiving side of one blob: into a cache entry W (dr_cache_begin'd), or else into FD at each
 * chunk's offset. */
typedef struct dr_blob_in {
	dr_cache_wr *w; /* the cache entry, or NULL */
	int fd;         /* else the file written into (not owned) */
	uint64_t size;
	uint32_t chunk;
	int64_t nchunks, got; /* chunks in all; chunks received in order */
	double started, last; /* when it began; when a chunk last came (dr_now) */
} dr_blob_in;

void dr_blob_in_init(dr_blob_in *in, dr_cache_wr *w, int fd, uint64_t size, uint32_t chunk);

/* One chunk message MSG of N bytes (header, then bytes) whose header is H (already read). 1 when
 * it was the next chunk and is written, 0 when it was not the next one (or the wrong length):
 * dropped, -1 with WHY when it cannot be written. */
int dr_blob_in_put(dr_blob_in *in, const dr_wire_chunk *h, const void *msg, size_t n, char *why,
                   size_t whylen);

/* The header of a chunk message of N bytes into H: 0, or -1 when too short. */
int dr_blob_header(const void *msg, size_t n, dr_wire_chunk *h);

/* True when every chunk is in. */
bool dr_blob_in_done(const dr_blob_in *in);

/* True when nothing came for TIMEOUT seconds up to NOW (and some is still missing). */
bool dr_blob_in_stalled(const dr_blob_in *in, double now, double timeout);

#endif
