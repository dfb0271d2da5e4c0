/* Rank 0's program: checks before start-up, the job table and HTTP API, the one poll loop that
 * drives the orchestrator (and rank 0's own render node when it is alone), and how a run ends. */
#ifndef DR_SERVICE_H
#define DR_SERVICE_H

#include "dr_frames.h"
#include "dr_jobs.h"
#include "dr_msg.h"
#include "dr_report.h"
#include "dr_run_cfg.h"

#include <sched.h>
#include <signal.h>
#include <stdbool.h>

/* What rank 0 needs from the command line. */
typedef struct dr_service_cfg {
	dr_orch_cfg orch;        /* the orchestrator's settings */
	dr_node_cfg node;        /* rank 0's own render node's, when it renders alone */
	dr_jobs_cfg jobs;        /* the job table's limits (its directory is filled in here) */
	bool serve;              /* --serve: a service; else a batch of FRAMES */
	const char *http;        /* --http ADDR:PORT during a batch, or NULL */
	const char *listen;      /* --serve's ADDR:PORT */
	const char *token;       /* API token, or NULL */
	const char *tls_cert;    /* --tls-cert PEM file, or NULL (plain HTTP) */
	const char *tls_key;     /* --tls-key PEM file, or NULL */
	const char *allow_host;  /* --allow-host names, comma-separated, or NULL */
	double rate_limit;       /* requests per second per client, 0: none */
	size_t max_queued;       /* 0: no limit */
	size_t max_frames;       /* frames one request may ask for (413 beyond); 0: the default */
	const char *scene;       /* the batch's scene, or --serve's default scene (may be NULL) */
	const char *blend_root;  /* --serve: NULL = "." */
	const char *output_root; /* --serve: NULL = "output" */
	const char *output, *format, *engine; /* the batch's settings */
	int samples;
	const char *video;       /* --video FILE, or NULL */
	double fps;              /* --fps, 0 = the scene's */
	int still;               /* --still FRAME, when split > 0 */
	int split;               /* sample ranges of the still; 0 = not a still */
	int auto_split;          /* "split": "auto" in POST /render: ranges (2 per render node) */
	const dr_frames *frames; /* the batch's frames */
	const char *report;      /* --report FILE.json, or NULL */
	bool quiet;              /* -q: no progress line */
	dr_report_stage stage;   /* what staging did before the batch (main.c fills it in) */
	const char *cache_dir;   /* --cache-dir: where the scenes nodes fetch are packed */
	bool fetch;              /* --serve: render nodes pull the scenes they lack (dr_fetch;
	                          * false with --stage never) */
} dr_service_cfg;

typedef struct dr_service dr_service;

/* Rank 0's checks before any render node starts (scene, output directory, the API's roots) and
 * the API itself when asked for. Returns 0 with *OUT set, or an exit code (DR_EXIT_USAGE,
 * DR_EXIT_RUNTIME; the message is logged) with *OUT NULL. CFG is kept: it must outlive *OUT. */
int dr_service_open(dr_service **out, const dr_service_cfg *cfg);

/* Run until the batch ends, or until *INTERRUPTED for a service (which then clears it to stop
 * its nodes cleanly). THREADS and CPUS are for rank 0's own render node when CHAN has one rank.
 * Returns the exit code (DR_EXIT_*); after a runtime failure with other ranks, MPI_Abort. */
int dr_service_run(dr_service *s, dr_chan *chan, int threads, const cpu_set_t *cpus,
                   volatile sig_atomic_t *interrupted);

/* Rank 0's output directory, resolved once by dr_service_open: a batch's first frame's directory
 * (made), a service's output root (real path); NULL for a still's ranges, which stay on the node
 * that merges them. Staging's shared-storage probe goes there (dr_stageplan). */
const char *dr_service_outdir(const dr_service *s);

/* True when dr_service_run lost a render node on the way: a barrier over the world would never
 * complete, so the caller finalizes without one. */
bool dr_service_lost_nodes(const dr_service *s);

/* The scene of the job numbered JOB in messages (for dr_fetch's scene_of; SVC is the service):
 * 0 with PATH, or -1 for a job it does not know (or outside dr_service_run). Job -1 is --serve's
 * default scene (--scene), which the render nodes warm up on. */
int dr_service_scene_of(void *svc, int job, char *path, size_t len);

/* Stop the API and free S (NULL is fine). */
void dr_service_close(dr_service *s);

#endif
