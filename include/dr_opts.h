/* Command line: parse drender's options and arguments into a plain struct; no I/O, no MPI. */
#ifndef DR_OPTS_H
#define DR_OPTS_H

#include "dr_frames.h"
#include "dr_jobs.h"
#include "dr_run_cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* --stage: when rank 0 sends the scene to the render nodes. */
enum { DR_STAGE_AUTO = 0, DR_STAGE_ALWAYS, DR_STAGE_NEVER };

/* --cache-max's default (bytes). */
#define DR_CACHE_MAX_DEFAULT (20ULL << 30)

typedef struct dr_opts {
	const char *scene;       /* SCENE.blend (points into argv) */
	dr_frames frames;        /* requested frames, owned */
	const char *output;      /* -o PATTERN, NULL = default */
	const char *format;      /* canonical Blender format name, default "PNG" */
	const char *engine;      /* canonical engine name, NULL = the scene's */
	const char *device;      /* --device: canonical device name, NULL = the scene's */
	int gpus_per_node;       /* --gpus-per-node N, 0 = one GPU per render node */
	bool no_persistent_data; /* --no-persistent-data */
	const char *blender;     /* --blender, else $DRENDER_BLENDER, else "blender" */
	const char *report;      /* --report FILE.json, NULL = none */
	int samples;             /* 0 = the scene's */
	const char *video;       /* --video FILE (.mp4, .webm, .mov), NULL = none */
	double fps;              /* --fps N: the video's frame rate, 0 = the scene's */
	int still;               /* --still FRAME (with has_still) */
	bool has_still;          /* --still given: one frame split by samples */
	int split;               /* --split N: sample ranges; -1 = auto (2 per render node) */
	int threads;             /* -t, 0 = share the node's CPUs among its render nodes */
	int chunk;               /* frames per task, >= 1 */
	int retries;             /* extra attempts for a failed frame */
	double timeout;          /* seconds per frame, 0 = none */
	double node_timeout;     /* a render node silent this long is lost (seconds); 0 = the
	                          * default, until dr_opts_resolve */
	double load_timeout;     /* seconds a warm Blender may take to load a scene */
	double stall;            /* --stall: seconds without Blender CPU time before a retry */
	int verbosity;           /* -1 quiet, 0 normal, 1+ verbose */
	bool one_shot, overwrite, allow_autoexec;
	bool no_speculate;      /* frames in ascending order, no speculative copies */
	bool serve;             /* --serve: a long-running service */
	const char *listen;     /* --listen ADDR:PORT for --serve (default 127.0.0.1:4000) */
	const char *http;       /* --http ADDR:PORT: read-only API during a batch */
	const char *blend_root; /* --blend-root DIR: scenes a request may name (see below) */
	const char
	        *output_root; /* --output-root DIR: where requested jobs write (default output) */
	const char *token;    /* --token, else --token-file's, else $DRENDER_TOKEN (the caller
	                       * fills those in: dr_opts_load_token) */
	/* --token-file FILE (the token kept off the command line), and what it held (owned) */
	const char *token_file;
	char *token_read;
	const char *tls_cert;  /* --tls-cert FILE: serve HTTPS with this PEM certificate */
	const char *tls_key;   /* --tls-key FILE: ... and this PEM private key */
	int max_queued;        /* --max-queued N: more queued jobs get 429 (default 100) */
	int max_frames;        /* --max-frames N: frames one request may ask for (413 beyond) */
	int max_queued_frames; /* --max-queued-frames N: frames of unfinished jobs (429 beyond) */
	int rate_limit;        /* --rate-limit N: requests/s per client address, 0 = none */
	int min_nodes;         /* --min-nodes N: a service with fewer live nodes exits (75) */
	int keep_jobs;         /* --keep-jobs N: finished jobs kept in the job table, 0 = all */
	double keep_for;       /* --keep-for DURATION: seconds a finished job is kept, 0 = always */
	bool help, version;    /* print and exit 0; nothing else is filled */
	bool allow_missing; /* --allow-missing: render a scene whose external files are missing */
	int stage;          /* --stage: DR_STAGE_AUTO (default), DR_STAGE_ALWAYS, DR_STAGE_NEVER */
	const char *cache_dir; /* --cache-dir DIR: a node's staged-file cache, NULL = the default */
	unsigned long long cache_max; /* --cache-max SIZE in bytes, 0 = no bound */
	bool collect;                 /* --collect: every node sends its frames to rank 0 */
	const char *allow_host;       /* --allow-host NAME,...: Host names the API answers */
	/* --blend-root's default for --serve: the directory of --scene, kept here; blend_root stays
	 * NULL without --scene, or when that directory is / (requests then name no scene). */
	char blend_root_dflt[4096];
} dr_opts;

/* Parse ARGV. ENV_BLENDER is $DRENDER_BLENDER (or NULL). Returns 0, or -1 with a one-line
 * message in ERR (usage errors: the caller prints it and exits 2). */
int dr_opts_parse(int argc, char **argv, const char *env_blender, dr_opts *o, char *err,
                  size_t errlen);

void dr_opts_free(dr_opts *o);

/* Settle O's token: --token, else the first line of --token-file's file, else ENV (the value
 * of $DRENDER_TOKEN, NULL or "" = none). 0, or -1 with ERR (both options given, a file that
 * cannot be read or holds no token). */
int dr_opts_load_token(dr_opts *o, const char *env, char *err, size_t errlen);

/* The settings of a render node (C) and of the orchestrator (R) from parsed options O. */
void dr_opts_node_cfg(const dr_opts *o, dr_node_cfg *c);
void dr_opts_orch_cfg(const dr_opts *o, dr_orch_cfg *r);
/* The job table's settings (all but its directory) from O. */
void dr_opts_jobs_cfg(const dr_opts *o, dr_jobs_cfg *c);

void dr_opts_usage(FILE *f);

/* For --still: settle --split auto for NODES render nodes (2 ranges each, at least 2) and make
 * O's frames the range indices 0..split-1. 0, or -1 with ERR. Nothing to do without --still. */
int dr_opts_still_frames(dr_opts *o, int nodes, char *err, size_t errlen);

/* Defaults resolved once after MPI start, for every rank alike: --node-timeout's
 * (DR_NODE_TIMEOUT_RECOVERY when RECOVERY, i.e. mpirun --enable-recovery, else DR_NODE_TIMEOUT)
 * and --still's ranges for NODES render nodes (dr_opts_still_frames). 0, or -1 with ERR. */
int dr_opts_resolve(dr_opts *o, int nodes, bool recovery, char *err, size_t errlen);

#endif
