/* A job as rank 0's orchestrator runs it (its settings, scheduler, one record per frame and the
 * phases that follow its frames), and the orchestrator's state that its modules share: dr_orch
 * (job registry, dispatch), dr_still and dr_encode (phases), dr_oview (what is shown). */
#ifndef DR_OJOB_H
#define DR_OJOB_H

#include "dr_dispatch.h"
#include "dr_orch.h"

#include <cJSON.h>
#include <stdbool.h>

/* One frame of a job as rank 0 tracks it beside the scheduler's item (same index): its timings
 * for the report and what the job table was last told of it (GET /jobs/<id>/frames). */
typedef struct dr_oframe {
	dr_report_times times;   /* dispatch wait and when it was done (the report's) */
	int pub_attempts;        /* the attempts last published */
	unsigned char pub_state; /* the letter last published, 0 = never */
	bool dirty;              /* in the job's DIRTY list: looked at by the next publish */
} dr_oframe;

typedef struct dr_phase dr_phase;

/* What follows a job's frames (a still's merge, a video's encode): a job is over once its frames
 * ended and each of its phases is done. Hooks other than poll and done may be NULL. */
typedef struct dr_phase_ops {
	const char *name;
	/* Every tick, before dispatch: start once the job's frames ended, then follow. */
	void (*poll)(dr_phase *p, dr_orch *r, dr_ojob *j);
	/* True once the phase has nothing left to do (made, failed, or not needed). */
	bool (*done)(const dr_phase *p);
	/* Its object in the job's status JSON O. */
	void (*describe)(const dr_phase *p, const dr_ojob *j, cJSON *o);
	/* Why it failed the job (the job's outcome is then "failed"), or NULL. */
	const char *(*failed)(const dr_phase *p);
	/* A frame of the job was done (M: its RESULT). */
	void (*result)(dr_phase *p, const dr_ojob *j, const dr_msg *m);
	/* Its part of the job's report. */
	void (*report)(const dr_phase *p, const dr_ojob *j, dr_report *rep);
	/* The progress line while the job runs; false: the plain frames line. */
	bool (*line)(const dr_phase *p, const dr_ojob *j, double elapsed, char *buf, size_t len);
	void (*destroy)(dr_phase *p);
} dr_phase_ops;

struct dr_phase {
	const dr_phase_ops *ops;
};

#define DR_OJOB_PHASES 2

struct dr_ojob {
	int num;                /* id in messages */
	char id[DR_JOB_ID_MAX]; /* public id */
	dr_node_job cfg;        /* what Blender needs, where frames go (cfg.id == num) */
	char cfg_json[8192];    /* cfg as the JOB message carries it */
	int priority;
	int settings;     /* jobs with the same value share Blender settings (no reload) */
	dr_frames frames; /* owned */
	dr_sched *sched;
	dr_oframe *rec; /* per frame (the scheduler's index) */
	double t0;      /* added (monotonic) */
	bool started, ended, cancelled;
	bool published_end; /* its final state went to the job table */
	bool all_loadfail;  /* no render node could load its scene */
	bool nothing_to_do; /* a phase's product is already there: every frame is skipped */
	size_t clamped;     /* frame times out of range (dr_report_clamp_seconds) */
	bool scanning;      /* looking for frames already on disk; not yet dispatched */
	size_t scan_next;   /* the next frame (index) to look for */
	size_t scan_found;  /* frames found so far */
	int lockfd;         /* a service's job: its output directory's lock until it ends, or -1 */
	char loaderr[4096]; /* room for a list of missing files (dr_assets) */
	/* Frames whose record may have changed (a task, a result, a lost node): a publish looks
	 * only at them; at every frame when FRAMES_ALL is set (start, stranded frames, cancel, end)
	 * and every DR_OJOB_WALK_S as a safety net. */
	size_t *dirty, ndirty, capdirty;
	bool frames_all;                 /* look at every frame at the next publish */
	bool frames_sent;                /* the table has the job's frame list */
	double frames_walk;              /* dr_now() of the last look at every frame */
	dr_phase *phase[DR_OJOB_PHASES]; /* what follows its frames, in order */
	int nphases;
	struct dr_ojob *child;  /* a job a phase runs for it (a still's merge), cancelled with it */
	struct dr_ojob *parent; /* the job whose phase runs this one (cleared when it is done) */
};

/* Seconds between two looks at every frame of a job (a safety net: changes are marked). */
#ifndef DR_OJOB_WALK_S
#define DR_OJOB_WALK_S 30.0
#endif

struct dr_orch {
	dr_orch_cfg opts;
	dr_chan *chan;
	int nslots;
	dr_dispatch *disp;         /* the dispatch policy and what each node holds */
	dr_dispatch_decision *dec; /* room for one round of decisions (nslots) */
	dr_report_node *info;      /* rank, host, threads per slot, for reports */
	dr_ojob **jobs;
	size_t njobs, capjobs;
	unsigned long seq; /* jobs added so far: the next job's number */
	double t0;
	double last_draw;
	int tty; /* live progress line on this terminal, or -1 */
	bool quiet;
	bool serve;    /* a service: nodes are never stopped for lack of work */
	bool recovery; /* mpirun keeps the job alive when a rank dies (--enable-recovery) */
	int silent;    /* without recovery: slot of a node silent past --node-timeout, or -1 */
	bool *hushed;  /* per slot: a lost node that spoke again was told to stop */
	dr_metrics metrics;
	const dr_jobspec_limits *lim; /* a service's roots, re-checked on adoption, or NULL */
	dr_jobs_cell *cells;          /* room for one publish's changed cells */
	size_t capcells;
	const char *blender; /* asked for a scene's frame rate (a video without "fps") */
	bool allow_autoexec;
};

/* A job for R numbered NUM, named ID, with settings RENDER (output pattern resolved) and FRAMES
 * (copied). NULL with ERR. */
dr_ojob *dr_ojob_create(const dr_orch *r, int num, const char *id, const dr_render_cfg *render,
                        const dr_frames *frames, char *err, size_t errlen);

/* Free J and its phases (NULL is fine). */
void dr_ojob_destroy(dr_ojob *j);

/* Add phase P (owned from now on) to J. 0, or -1 when J has no room (P is destroyed). */
int dr_ojob_add_phase(dr_ojob *j, dr_phase *p);

/* The record of FRAME may have changed: looked at by the next publish. */
void dr_ojob_mark(dr_ojob *j, int frame);

/* Why a phase failed J, or NULL. */
const char *dr_ojob_phase_failed(const dr_ojob *j);

/* "job X: " in a service, "" in a batch: the prefix of J's log lines into BUF. */
const char *dr_ojob_prefix(const dr_orch *r, const dr_ojob *j, char *buf, size_t len);

#endif
