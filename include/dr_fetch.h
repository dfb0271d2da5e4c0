/* Pulled scenes: under --serve a render node asks rank 0 for a job's scene before Blender opens it.
 */
#ifndef DR_FETCH_H
#define DR_FETCH_H

#include "dr_cache.h"
#include "dr_wire.h"

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Under --serve every job names its own scene (a path under --blend-root on rank 0), and a render
 * node that does not see rank 0's files could not load it. So before a node (re)starts Blender for
 * a job, it asks (dr_fetch_client, through dr_node_cfg's fetch hook):
 *
 *   node -> 0  ASK job J                 0 -> node  SCENE size + SHA-256 of J's scene file
 *   (the node's own file at that path matches: done, "same")
 *   node -> 0  WANT job J                0 -> node  PACKED size + SHA-256 of its packed copy
 *   (the node's dr_cache has it: done, "cached")
 *   node -> 0  SEND from chunk K         0 -> node  chunks on a tag of their own, a window in
 *                                                   flight, into a dr_cache_wr entry ("staged")
 *   node -> 0  DONE how it went (for rank 0's log and counters)
 *
 * Rank 0 serves only the scene of a job it knows (a callback resolves the job number; a node never
 * names a path). Hashing and packing (dr_assets_pack runs Blender) happen in a worker thread that
 * never calls MPI, memoised per scene path, size and mtime; the side pump answers once the result
 * is there, so rank 0's loop never waits on them. A node lost mid-transfer is abandoned
 * (dr_fetch_server_lost, or a transfer that makes no progress for the timeout); a node whose
 * transfer stalls gives up after the timeout and reports the load as failed.
 */

/* Message kinds and outcomes: enum dr_fetch_kind and dr_fetch_outcome in dr_wire.h. */

/* One request or answer (DR_TAG_FETCH_REQ node -> 0, DR_TAG_FETCH_ANS 0 -> node; chunks on
 * DR_TAG_FETCH_DATA). */
typedef struct dr_fetch_msg {
	int32_t kind, job, seq, outcome;
	int64_t size, have;
	double seconds;
	char hex[DR_SHA256_HEX];
	char text[4400]; /* only its used part is sent */
} dr_fetch_msg;

/* Most bytes dr_fetch_encode writes. */
#define DR_FETCH_MSG_MAX sizeof(dr_fetch_msg)

/* M as bytes into BUF (only the used part of its text). Returns the length, or -1 if LEN is too
 * small. */
int dr_fetch_encode(const dr_fetch_msg *m, unsigned char *buf, size_t len);

/* N bytes back into M, checked (a known kind, a valid hash where one is carried, a terminated
 * text). 0, or -1 with ERR. */
int dr_fetch_decode(const unsigned char *buf, size_t n, dr_fetch_msg *m, char *err, size_t errlen);

/* Pure: a file's hash remembered by path, size and mtime, so that a file is not hashed again
 * until it changes. Bounded: the oldest entry goes first. */
#define DR_FETCH_MEMO_MAX 64
typedef struct dr_fetch_memo {
	struct dr_fetch_memo_ent {
		char path[4096];
		uint64_t size;
		int64_t mtime_ns;
		char hex[DR_SHA256_HEX];
	} e[DR_FETCH_MEMO_MAX];
	size_t n, next;
} dr_fetch_memo;

/* The hash of PATH as it was at SIZE and MTIME_NS into HEX: true if known. */
bool dr_fetch_memo_get(const dr_fetch_memo *m, const char *path, uint64_t size, int64_t mtime_ns,
                       char hex[DR_SHA256_HEX]);

/* Remember HEX for PATH at SIZE and MTIME_NS (replacing what PATH had). */
void dr_fetch_memo_put(dr_fetch_memo *m, const char *path, uint64_t size, int64_t mtime_ns,
                       const char *hex);

/* Pure: after rank 0's SCENE answer, may the node open its own file (true: "same"), or does it
 * WANT the packed copy? LOCAL_HEX NULL: it has no such file (or another size). ALWAYS: --stage
 * always. */
bool dr_fetch_use_own(bool always, const char *local_hex, uint64_t local_size, const char *hex,
                      uint64_t size);

/* ---- rank 0 ---- */

typedef struct dr_fetch_server_cfg {
	const char *blender; /* for dr_assets_pack */
	const char
	        *cache_dir; /* rank 0's packed copies go under CACHE_DIR/packed (NULL: default) */
	double timeout;     /* seconds a transfer may make no progress before it is dropped */
	/* Job number -> its scene's path. 0, or -1 for a job rank 0 does not know. */
	int (*scene_of)(void *ctx, int job, char *path, size_t len);
	void *scene_ctx;
} dr_fetch_server_cfg;

/* What rank 0 served so far. */
typedef struct dr_fetch_stats {
	int same, cached, staged, failed; /* DONE outcomes */
	uint64_t bytes;                   /* bytes staged */
	double seconds;                   /* seconds spent staging them (summed over nodes) */
} dr_fetch_stats;

typedef struct dr_fetch_server dr_fetch_server;

/* Rank 0's side, for the peers of PEERS (the channel's table, dr_chan_peers: it must outlive the
 * server; a "rank" below is a peer id). C's strings are copied. NULL with ERR on failure. */
dr_fetch_server *dr_fetch_server_create(const dr_peers *peers, const dr_fetch_server_cfg *c,
                                        char *err, size_t errlen);

/* Answer requests and move transfers on (for dr_chan_add_side). 0, or -1 with ERR on an MPI
 * failure. */
int dr_fetch_server_pump(void *srv, char *err, size_t errlen);

/* RANK was declared lost: its requests are dropped and its sends abandoned, never waited on. */
void dr_fetch_server_lost(dr_fetch_server *s, int rank);

/* The same as a callback (for dr_chan_on_forget). */
void dr_fetch_server_forget(void *srv, int rank);

void dr_fetch_server_stats(const dr_fetch_server *s, dr_fetch_stats *st);

/* Abandon transfers, wait for the worker threads, free S. NULL is fine. */
void dr_fetch_server_close(dr_fetch_server *s);

/* ---- a render node ---- */

typedef struct dr_fetch_client_cfg {
	const char *cache_dir; /* the node's cache (NULL: dr_stage_default_cache) */
	uint64_t cache_max;    /* its bound in bytes, 0 = none */
	bool always;           /* --stage always: never open the node's own file */
	double timeout;        /* seconds a transfer may bring nothing before it fails */
} dr_fetch_client_cfg;

typedef struct dr_fetch_client dr_fetch_client;

/* A node's side: rank 0 is peer 0 of PEERS (dr_chan_peers). */
dr_fetch_client *dr_fetch_client_create(const dr_peers *peers, const dr_fetch_client_cfg *c,
                                        char *err, size_t errlen);

/* Answers and chunks in (for dr_chan_add_side). 0, or -1 with ERR on an MPI failure. */
int dr_fetch_client_pump(void *cli, char *err, size_t errlen);

/* dr_node_cfg's fetch hook: job JOB's SCENE. 0 with LOCAL the path Blender opens, 1 pending (call
 * again later), -1 with WHY. */
int dr_fetch_client_fetch(void *cli, int job, const char *scene, char *local, size_t len, char *why,
                          size_t whylen);

void dr_fetch_client_close(dr_fetch_client *c);

#endif
