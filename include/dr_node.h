/* Render node: runs the tasks rank 0 hands it on one supervised Blender and reports each frame. */
#ifndef DR_NODE_H
#define DR_NODE_H

#include "dr_blender.h"
#include "dr_msg.h"
#include "dr_outdir.h"
#include "dr_outpath.h"
#include "dr_render_cfg.h"
#include "dr_run_cfg.h"

#include <stdbool.h>

/* What a job asks of Blender and where its frames go (from a JOB message, or the command line). */
typedef struct dr_node_job {
	int id;               /* -1 = none */
	dr_render_cfg render; /* what Blender renders */
	dr_outpath out;       /* render's frame naming */
} dr_node_job;

/*
 * Where a render node is, changed only in dr_node.c's set_state(), which logs each change at
 * debug level:
 *
 *   WARMING --Blender ready (READY sent)--> READY --new settings--> LOADING --ready--> READY
 *   WARMING, LOADING --load failed (LOADFAIL sent)--> NO_BLENDER --a task--> LOADING
 *   start without a scene, or a scene that cannot even be named --> NO_BLENDER
 *   any --STOP--> STOPPED
 *
 * Whether a request is outstanding and which frame is in flight are not states: a node holds one
 * task ahead, so it asks for work while it renders.
 */
enum dr_node_state {
	DR_NODE_WARMING = 0, /* Blender loads the command line's scene; READY not sent yet */
	DR_NODE_NO_BLENDER,  /* no Blender (a service without a default scene, or a load failed) */
	DR_NODE_LOADING,     /* Blender (re)loads for a job's settings; READY was sent */
	DR_NODE_READY,       /* Blender has its scene loaded */
	DR_NODE_STOPPED,     /* STOP received: nothing more to do */
};

typedef struct dr_node {
	enum dr_node_state state; /* see above; read it, do not write it */
	dr_node_cfg cfg;
	dr_chan *chan;
	const cpu_set_t *cpus;
	dr_blender *bl;
	dr_node_job job;      /* the job of the current task */
	dr_render_cfg loaded; /* settings bl was started with (scene "" = none) */
	char host[256];
	char tag[300];
	int threads;
	int queue[DR_CHUNK_MAX]; /* frames of the current task not started yet */
	int qhead, qlen;
	int frame;             /* frame in flight, -1 = none */
	double started;        /* when it started (monotonic seconds) */
	double cpu_seen;       /* Blender's CPU seconds at the last look (--stall), -1 = none */
	double cpu_since;      /* when that CPU time last went up */
	double cpu_looked;     /* when we last looked */
	double wait;           /* how long the node sat idle before the frame in flight */
	double idle_since;     /* when it last became idle (a frame ended, Blender got ready) */
	char tmp[DR_PATH_MAX]; /* its temporary file */
	char last_dir[DR_PATH_MAX]; /* output directory last prepared */
	bool requested;             /* a request is outstanding */
	double last_sent;           /* when we last said something to rank 0 */
	char device[128];           /* the devices the loaded Blender renders on ("" = not said) */
	double peak_mb;             /* its Blender's peak memory (MiB), 0 = unknown */
	dr_blender *lister;         /* --one-shot: a warm Blender that lists the scene's external
	                             * files (dr_assets) before the first frame, or NULL */
	int samples;                /* samples of the still's range just rendered, 0 = none */
	char fetched[DR_PATH_MAX + 200]; /* the copy of the job's scene the next load opens
	                                  * (cfg.fetch), "" = the scene itself */
	bool warm_fetch; /* warming up: the default scene is fetched first (cfg.fetch) */
	/* the version (dr_cache_version) of cfg.scene when its staged copy was first loaded, if
	 * this node sees cfg.scene ("" = unknown); staged_checked: looked already */
	char staged_version[72];
	bool staged_checked;
} dr_node;

/* Say HELLO to rank 0 and, if the command line names a scene, start Blender on it. CPUS: Blender's
 * affinity, or NULL. Returns 0, or -1 with ERR for an MPI failure (a Blender that cannot start
 * is reported to rank 0 as LOADFAIL, not as an error here). */
int dr_node_start(dr_node *n, const dr_node_cfg *o, dr_chan *chan, int threads,
                  const cpu_set_t *cpus, char *err, size_t errlen);

/* Handle a message from rank 0 (JOB, TASK, CANCEL or STOP). Returns 0, or -1 with ERR. */
int dr_node_handle(dr_node *n, const dr_msg *m, char *err, size_t errlen);

/* Move on: start the next frame, wait up to WAIT_MS for Blender, report results, enforce the
 * timeout. Returns 0, or -1 with ERR on an MPI failure. */
int dr_node_tick(dr_node *n, int wait_ms, char *err, size_t errlen);

/* True once rank 0 has said STOP. */
bool dr_node_stopped(const dr_node *n);

/* True when the node has nothing to do but wait for rank 0. */
bool dr_node_idle(const dr_node *n);

/* Interrupted: kill Blender now and remove the temporary file in flight. */
void dr_node_abort(dr_node *n);

/* Stop Blender and free everything. */
void dr_node_destroy(dr_node *n);

#endif
