/* Dispatch policy (pure): which render node gets which job's frames next, one task held ahead,
 * taking a held task back for an idle node, speculative copies, and when a node is told to stop. */
#ifndef DR_DISPATCH_H
#define DR_DISPATCH_H

#include "dr_sched.h"

#include <stdbool.h>
#include <stddef.h>

/* Contract. The caller (rank 0's orchestrator, or a simulator) owns the clock and the messages:
 * it reports what the nodes said (ready, request, result, load failure), asks dr_dispatch_decide
 * for decisions at time NOW and carries every decision out in the order given. Frame state lives
 * in each job's dr_sched (borrowed, not owned: the caller creates and destroys it); the dispatcher
 * keeps what each node holds, so that it knows who may be given more and what may be taken back.
 * No MPI, no I/O, no clock reads. */

#define DR_DISPATCH_FRAMES_MAX   256 /* most frames in one task (the wire's chunk limit) */
#define DR_DISPATCH_HIST_BUCKETS 12

typedef struct dr_dispatch_cfg {
	int nslots;          /* render nodes, numbered 0..nslots-1 */
	bool serve;          /* a service: nodes are never stopped for lack of work */
	double node_timeout; /* seconds of silence after which a node counts as lost; < 0: never */
} dr_dispatch_cfg;

typedef enum dr_dispatch_kind {
	DR_DISPATCH_WAIT = 0, /* nothing to do for this node now */
	DR_DISPATCH_TASK,     /* give frames[0..nframes) of job to slot (after its settings if
	                       * announce) */
	DR_DISPATCH_CANCEL,   /* ask slot to give back frames[0] of job if it has not started it
	                       * (held ahead), for idle node for_slot; or, with nframes 0, to drop
	                       * everything of job (the job was cancelled) */
	DR_DISPATCH_STOP,     /* tell slot to stop: no job will ever have work for it */
} dr_dispatch_kind;

typedef struct dr_dispatch_decision {
	dr_dispatch_kind kind;
	int slot;      /* the node the message goes to */
	int job;       /* job number, -1 for STOP */
	bool announce; /* TASK: the node does not have this job's settings yet */
	int for_slot;  /* CANCEL of a held frame: the idle node it is taken back for, else -1 */
	int nframes;
	int frames[DR_DISPATCH_FRAMES_MAX];
} dr_dispatch_decision;

/* What the dispatcher knows of one node (read-only for callers). */
typedef struct dr_dispatch_node {
	bool waiting;     /* asked for work, not answered yet */
	bool stopped;     /* told to stop */
	double last_seen; /* when it last said anything (caller's clock) */
	int announced;    /* job whose settings it was last sent, -1 = none */
	int job;          /* job of the frames it holds, -1 = none */
	int nframes;      /* frames handed to it and not reported yet, in render order: frames[0]
	                   * is in flight, the rest are held ahead behind it */
	int frames[2 * DR_DISPATCH_FRAMES_MAX];
	int revoking; /* a held frame being taken back for an idle node, -1 = none */
	bool lost;    /* declared lost (dr_dispatch_lost): never given anything again */
} dr_dispatch_node;

typedef struct dr_dispatch dr_dispatch;

/* A dispatcher for CFG->nslots nodes, all last seen at NOW. NULL with ERR on bad config or OOM. */
dr_dispatch *dr_dispatch_create(const dr_dispatch_cfg *cfg, double now, char *err, size_t errlen);
void dr_dispatch_destroy(dr_dispatch *d);

/* Add job JOB (a number never used before) of PRIORITY (higher first; equal: lower JOB first)
 * whose frames SCHED tracks. Jobs with equal SETTINGS run in one warm Blender without a reload,
 * so a node prefers one whose settings it already has. A job whose SCHED is already finished is
 * ended at once. Returns 0, or -1 with ERR (OOM, duplicate number). */
int dr_dispatch_add_job(dr_dispatch *d, int job, int priority, int settings, dr_sched *sched,
                        char *err, size_t errlen);

/* Job JOB gets no more work (finished, failed or cancelled). Unknown numbers are ignored. */
void dr_dispatch_end_job(dr_dispatch *d, int job);
bool dr_dispatch_job_ended(const dr_dispatch *d, int job);

/* Forget ended job JOB for good (a long-running service must not keep every job it ever ran):
 * its schedule is no longer borrowed. Refused (-1) while the job has not ended or a node still
 * holds a frame of it (try again after the receipts); 0 when forgotten or unknown. */
int dr_dispatch_forget_job(dr_dispatch *d, int job);

/* Cancel job JOB: it ends, frames handed out go back to its pending count, and CANCEL decisions
 * (nframes 0) for every node holding some of its frames go to OUT (room for nslots). Returns
 * how many. */
int dr_dispatch_cancel_job(dr_dispatch *d, int job, dr_dispatch_decision *out, int max);

/* ---- what the nodes said (call dr_dispatch_heard for every message, then the one that fits) */

/* SLOT said something at NOW (it is alive). */
void dr_dispatch_heard(dr_dispatch *d, int slot, double now);
/* The node's first request: it holds nothing. */
void dr_dispatch_ready(dr_dispatch *d, int slot);
/* It asks for work (possibly while it still renders its last frame: one task ahead). */
void dr_dispatch_request(dr_dispatch *d, int slot);
/* It could not load a job's settings: it holds nothing, has no settings, and asks for work. */
void dr_dispatch_loadfail(dr_dispatch *d, int slot);

/* SLOT has rendered FRAME, which is on its way to rank 0 (frames coming home): SLOT no longer
 * holds it, so that it is given work meanwhile; the frame's RESULT still follows (unless SLOT is
 * lost: the frame is then the scheduler's to hand out again, as any frame of a lost node). A
 * frame being taken back from SLOT stays held: its receipt is the RESULT. */
void dr_dispatch_rendered(dr_dispatch *d, int slot, int frame);

/* SLOT reports FRAME of JOB: OK > 0 rendered, 0 failed, < 0 dropped (receipt of a CANCEL).
 * The frame is no longer held by SLOT. Returns 1 when this was the receipt of a frame taken
 * back for an idle node: the dispatcher has returned it to JOB's pending frames and the caller
 * must not process it further; 0 otherwise (the caller updates the schedule: done, failed...). */
int dr_dispatch_result(dr_dispatch *d, int slot, int job, int frame, int ok);

/* SLOT is lost (silent past the timeout, or its process died): what it held, in flight or ahead,
 * goes back to the pending frames of every job not ended at once (dr_sched_drop: not an attempt of
 * theirs, and it gets no more of their work; a job added later leaves it out too), it gets no more
 * decisions and counts as stopped (no STOP is sent). Its later messages must not be passed in: a
 * late result is the caller's to accept once or discard (dr_sched_done_late). Returns how many
 * frames went back; 0 for a node already lost. */
int dr_dispatch_lost(dr_dispatch *d, int slot);

/* Tell every node not yet stopped to stop: STOP decisions to OUT (room for nslots). Returns how
 * many. */
int dr_dispatch_stop_all(dr_dispatch *d, dr_dispatch_decision *out, int max);

/* Nodes not declared lost. */
int dr_dispatch_live(const dr_dispatch *d);

/* ---- deciding ---- */

/* A node (not stopped, not lost) silent for more than cfg.node_timeout at NOW (the least recently
 * heard), or -1. O(1). */
int dr_dispatch_silent(const dr_dispatch *d, double now);

/* Decide for the waiting nodes at NOW, the empty ones first, each in the order they asked: a task
 * (fresh frames of the first job by
 * priority then submission, preferring among the top priority a job whose settings the node
 * already has; for a node still rendering, only more of its own job and only while that job has
 * more pending frames than there are nodes and dr_sched_ahead_ok); with nothing fresh left, a held
 * frame taken back from another node (one at a time) before a speculative copy of a straggler; STOP
 * in a batch when no job will ever have work for an empty node; else nothing. Decisions other than
 * WAIT go to OUT (room for MAX >= nslots), state is updated as if they were carried out. Returns
 * how many. Nodes that can get nothing are skipped without a look where the reason holds for all of
 * them: amortised O(jobs) per decision and per call, whatever the number of nodes. */
int dr_dispatch_decide(dr_dispatch *d, double now, dr_dispatch_decision *out, int max);

/* ---- reading ---- */

const dr_dispatch_node *dr_dispatch_node_get(const dr_dispatch *d, int slot);
/* Nodes holding frames. O(1). */
int dr_dispatch_busy(const dr_dispatch *d);
/* True when every node has been told to stop. */
bool dr_dispatch_all_stopped(const dr_dispatch *d);

/* Histogram bucket of a frame's render SECONDS: 0..DR_DISPATCH_HIST_BUCKETS-1 for upper bounds
 * 0.1 0.25 0.5 1 2.5 5 10 30 60 120 300 600 s, DR_DISPATCH_HIST_BUCKETS above 600 s. */
int dr_dispatch_hist_bucket(double seconds);

#endif
