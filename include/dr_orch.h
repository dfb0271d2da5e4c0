/* Orchestrator (rank 0): hands frames of its jobs to render nodes as they free up, tracks them,
 * shows progress and reports. */
#ifndef DR_ORCH_H
#define DR_ORCH_H

#include "dr_jobs.h"
#include "dr_msg.h"
#include "dr_node.h"
#include "dr_opts.h"
#include "dr_report.h"
#include "dr_sched.h"

#include <stdbool.h>

typedef struct dr_ojob {
	int num;                /* id in messages */
	char id[DR_JOB_ID_MAX]; /* public id */
	dr_node_job cfg;        /* what Blender needs, where frames go (cfg.id == num) */
	char cfg_json[8192];    /* cfg as the JOB message carries it */
	int priority;
	dr_frames frames; /* owned */
	dr_sched *sched;
	double t0;           /* added (monotonic) */
	double *dispatch;    /* per frame: seconds its render node waited for the task */
	double *finished_at; /* per frame: seconds after t0 it was done */
	bool started, ended, cancelled;
	bool published_end; /* its final state went to the job table */
	bool all_loadfail;  /* no render node could load its scene */
	char loaderr[1024];
} dr_ojob;

typedef struct dr_orch_node {
	bool waiting;                 /* asked for work, not answered yet */
	bool stopped;                 /* STOP sent */
	double last_seen;             /* when it last said anything (monotonic seconds) */
	int announced;                /* job whose settings it was last sent, -1 = none */
	int job;                      /* job of the frames it has in flight, -1 = none */
	int frames[2 * DR_CHUNK_MAX]; /* handed to it, not reported yet, in the order it renders
	                               * them: frames[0] is in flight, the rest wait behind it */
	int nframes;
	int revoking; /* a waiting frame being taken back for an idle node, -1 = none */
} dr_orch_node;

typedef struct dr_orch {
	const dr_opts *opts;
	dr_chan *chan;
	int nslots;
	dr_orch_node *nodes;
	dr_report_node *info; /* rank, host, threads per slot, for reports */
	dr_ojob **jobs;
	size_t njobs, capjobs;
	unsigned long seq; /* jobs added so far: the next job's number */
	double t0;
	double last_draw;
	int tty; /* live progress line on this terminal, or -1 */
	bool quiet;
	bool serve; /* a service: nodes are never stopped for lack of work */
	int silent; /* slot of a node silent past --node-timeout, or -1 */
	dr_metrics metrics;
} dr_orch;

/* Set up. TTY: a terminal for the live progress line, or -1 for log lines. SERVE: a service.
 * Returns 0, or -1 with ERR. */
int dr_orch_init(dr_orch *r, const dr_opts *o, dr_chan *chan, int tty, bool serve, char *err,
                 size_t errlen);

/* Add a job (settings and frames copied); frames already on disk are skipped unless --overwrite.
 * Returns the job, or NULL with ERR (e.g. an output pattern that cannot be used). */
dr_ojob *dr_orch_add(dr_orch *r, const char *id, const dr_render_cfg *render, int priority,
                     const dr_frames *frames, char *err, size_t errlen);

/* Cancel a job: frames in flight are stopped, finished frames are kept. */
int dr_orch_cancel(dr_orch *r, dr_ojob *j, char *err, size_t errlen);

/* Handle one message from render node rank SRC. Returns 0, or -1 with ERR. */
int dr_orch_handle(dr_orch *r, const dr_msg *m, int src, char *err, size_t errlen);

/* Give waiting nodes work (or STOP), notice silent nodes, redraw progress. 0, or -1 with ERR. */
int dr_orch_tick(dr_orch *r, char *err, size_t errlen);

/* True once every job has ended and (in a batch) every node has been told to stop. */
bool dr_orch_finished(const dr_orch *r);

/* Tell every node not yet stopped to stop. */
int dr_orch_stop_all(dr_orch *r, char *err, size_t errlen);

/* The job's state for the job table. */
dr_job_state dr_orch_state(const dr_ojob *j);

/* The job's status fields as JSON text (malloc'd; see dr_jobs_publish), or NULL on OOM. */
char *dr_orch_status(const dr_orch *r, const dr_ojob *j);

/* Fill a report for job J. */
void dr_orch_report(const dr_orch *r, const dr_ojob *j, dr_report *rep, int exit_code,
                    const char *status, const char *message);

void dr_orch_destroy(dr_orch *r);

#endif
