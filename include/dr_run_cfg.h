/* Run settings: what a render node and the orchestrator take from the command line. */
#ifndef DR_RUN_CFG_H
#define DR_RUN_CFG_H

#include <stdbool.h>
#include <stddef.h>

struct dr_msg;

/*
 * main.c turns the parsed options into these (dr_opts_node_cfg, dr_opts_orch_cfg), so that the
 * modules below it never see dr_opts: each takes only the settings it uses. Strings point into
 * argv or the environment and live as long as the process.
 */

/* Most frames in one task (--chunk's bound; the TASK message carries this many). */
#define DR_CHUNK_MAX 256

/* A render node's settings. */
typedef struct dr_node_cfg {
	const char *blender; /* Blender executable */
	const char *scene;   /* scene to warm up on: a batch's scene, or a service's default; NULL =
	                      * none (Blender starts with the first job) */
	const char *format;  /* warm-up settings: canonical format name */
	const char *engine;  /* canonical engine name, NULL = the scene's */
	int samples;         /* 0 = the scene's */
	bool serve;          /* a service: warm up under the scene's real path, as jobs name it */
	bool one_shot;       /* start Blender for every task */
	bool allow_autoexec; /* let the scene's Python scripts run */
	bool verbose;        /* pass Blender's own output through */
	double timeout;      /* seconds a frame may render, 0 = no limit */
	const char *device;  /* canonical device (dr_device_canonical) for jobs that name none,
	                      * NULL = the scene's */
	int gpu;             /* this node's GPU among those Blender sees (dr_gpu_plan), -1 = none */
	const char *gpu_why; /* why it has none (an assignment that failed), or NULL */
	bool persistent_data;    /* a warm Blender keeps Cycles' render data between frames */
	bool threads_set;        /* -t was given: a GPU node keeps it instead of a few threads */
	double load_timeout;     /* seconds a warm Blender may take to load a scene, 0 = no limit */
	double stall;            /* seconds a frame's Blender may use no CPU time, 0 = no limit */
	bool allow_missing;      /* render even when the scene's external files are missing */
	int still, split;        /* a batch's --still FRAME --split N (N resolved; 0 = none): the
	                          * warm-up loads the scene as the ranges need it, not twice */
	const char *scene_local; /* the staged copy Blender opens whenever a job names scene
	                          * (dr_stage), NULL = scene itself */
	/* Frames come home (dr_collect): a rendered, checked frame at PATH is handed to
	 * push(push_ctx, ...) with the RESULT to send once rank 0 has it, instead of that RESULT
	 * going out now. NULL: the node shares rank 0's output directory. */
	int (*push)(void *ctx, const struct dr_msg *result, const char *path, char *err,
	            size_t errlen);
	void *push_ctx;
	/* Scenes pulled from rank 0 (dr_fetch, --serve): before Blender (re)starts for job JOB's
	 * SCENE, fetch(fetch_ctx, ...) says 0 = ready (LOCAL: the path Blender opens), 1 = not yet
	 * (asked again on a later tick; the node keeps heartbeating), -1 = failed (WHY goes to rank
	 * 0 as the load's failure). NULL: Blender opens the scene as named. */
	int (*fetch)(void *ctx, int job, const char *scene, char *local, size_t len, char *why,
	             size_t whylen);
	void *fetch_ctx;
} dr_node_cfg;

#define DR_NODE_TIMEOUT_RECOVERY 10.0 /* --node-timeout's default when lost nodes are survived */
#define DR_NODE_TIMEOUT          30.0 /* ... and when a lost node ends the job anyway */

/* The orchestrator's settings. */
typedef struct dr_orch_cfg {
	int chunk;           /* frames per task, 1..DR_CHUNK_MAX */
	int retries;         /* extra attempts for a failed frame */
	double node_timeout; /* a render node silent this long is lost (seconds), resolved once
	                      * after MPI start (dr_opts_resolve) */
	bool no_speculate;   /* ascending order, no speculative copies (no tail control) */
	bool overwrite;      /* render frames whose output exists */
	bool quiet;          /* errors and the summary only */
	bool serve;          /* a long-running service (no terminal display) */
	int min_nodes;       /* a service with fewer live render nodes and nothing running ends */
} dr_orch_cfg;

#endif
