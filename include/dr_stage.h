/* Staging: rank 0 sends the scene to the render nodes that lack it, over MPI, into their caches. */
#ifndef DR_STAGE_H
#define DR_STAGE_H

#include "dr_wire.h"

#include <mpi.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Before any frame, rank 0 offers the file it chose to stage (its size and SHA-256, and the path
 * it knows it by) to every render node. Each node answers from its own disk: the file at that
 * path has the same size and hash (nothing to do), the cache holds it (nothing to send), or it
 * needs it. The nodes that need it receive it in fixed-size chunks along dr_xfer's chain, each
 * forwarding what it has to the next; chunks go on their own MPI tags with MPI_Isend/MPI_Irecv
 * (never through dr_msg's 8 KB record), a window of chunks in flight per sender (memory bounded,
 * never whole files). A node silent for the timeout is lost: its children are re-fed by the
 * nearest live ancestor, and sends to it are abandoned, never waited on. A node writes into its
 * cache (dr_cache: renamed into place only after the hash checks out) and Blender opens that copy.
 */

typedef struct dr_stage_cfg {
	bool always;           /* stage even to nodes that see the same file at the same path */
	bool never;            /* stage to no one: only the probe below is asked about */
	const char *probe;     /* rank 0: a file it wrote in its output directory, or NULL */
	const char *token;     /* ... and its content: a node that reads it shares the directory */
	const char *cache_dir; /* a node's cache directory (NULL = $TMPDIR/drender-cache) */
	uint64_t cache_max;    /* its bound in bytes, 0 = none */
	uint32_t chunk;        /* chunk size, 0 = DR_WIRE_STAGE_CHUNK */
	int window;            /* chunks in flight per sender and child, 0 = DR_WIRE_STAGE_WINDOW */
	int fanout;            /* 1 = a chain (the default when 0), d = a d-ary tree */
	double timeout;        /* a node silent this long while staging is lost (seconds) */
	volatile sig_atomic_t *interrupted; /* set by a signal: give up */
	/* Only ask: each node says whether it has PATH at that path (same size and SHA-256);
	 * nothing is sent, and R->need counts the nodes that lack it. MORE tells the nodes whether
	 * another offer follows (the file to send them, made only because someone needs it). */
	bool ask, more;
	/* The file PATH was made from (e.g. a packed copy of the scene): a node that has this one
	 * at its path needs nothing and opens it; NULL = PATH itself. */
	const char *same_as;
	/* Rank 0: one flag per rank of COMM, or NULL. A rank flagged is offered nothing and not
	 * waited for; a rank that does not answer an offer in time is flagged (so that a node lost
	 * in an ask round does not hold up the offer that follows it). */
	unsigned char *silent;
} dr_stage_cfg;

/* What staging did (rank 0). */
typedef struct dr_stage_result {
	uint64_t size;      /* the file's size */
	uint64_t bytes;     /* bytes delivered to nodes that had to receive the file */
	double seconds;     /* from the offer to the last node's answer (0 when nothing ran) */
	int same, cached;   /* nodes that had it at the same path / in their cache */
	int staged, failed; /* nodes that received it / that were lost or failed */
	int collect;        /* nodes that do not see rank 0's probe: their frames come home */
	int need;           /* an ask round: nodes that lack the file */
} dr_stage_result;

/* Rank 0: offer PATH to every other rank of COMM and send it where needed. 0 with R filled, or -1
 * with ERR (the file cannot be read, an MPI failure, interrupted); waiting nodes are then told to
 * go on without it. */
int dr_stage_source(MPI_Comm comm, const dr_stage_cfg *c, const char *path, dr_stage_result *r,
                    char *err, size_t errlen);

/* A render node: answer rank 0's offers (an ask round may come first) and receive/forward as told.
 * LOCAL gets the path Blender should open (rank 0's path when the node sees the same file, else the
 * cached copy); *SHARED whether it sees rank 0's probe (or there is none), i.e. shares its output
 * directory. 0, or -1 with ERR when the node could not get the file (LOCAL is then rank 0's path:
 * loading it fails and is reported as any load failure), or on an MPI failure. */
int dr_stage_node(MPI_Comm comm, const dr_stage_cfg *c, char *local, size_t len, bool *shared,
                  char *err, size_t errlen);

/* The default cache directory (dr_cache_default_dir: one per user). */
void dr_stage_default_cache(char *buf, size_t len);

/* A packed copy of SCENE for staging (dr_assets_pack: its textures, libraries and fonts inside),
 * in rank 0's cache directory CACHE_DIR (NULL: the default) under packed/, named by the SHA-256 of
 * the scene's content (HEX, or NULL: computed here) and its real path: two copies of one .blend
 * in different folders have different textures. A later run or job reuses the copy while the
 * files packed into it are unchanged (dr_assets_pack_fresh), else packs again. Blocks while
 * Blender packs (seconds). 0 with OUT, or -1 with ERR. */
int dr_stage_pack(const char *blender, const char *scene, const char *cache_dir, const char *hex,
                  char *out, size_t len, char *err, size_t errlen);

#endif
