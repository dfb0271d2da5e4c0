/* Orchestrator (rank 0): hands frames of its jobs to render nodes as they free up, tracks them,
 * shows progress and reports. */
#ifndef DR_ORCH_H
#define DR_ORCH_H

#include "dr_jobs.h"
#include "dr_msg.h"
#include "dr_node.h"
#include "dr_report.h"
#include "dr_run_cfg.h"
#include "dr_sched.h"

#include <stdbool.h>

/* A job as the orchestrator runs it, and the orchestrator itself: opaque, like dr_sched. Rank 0
 * owns one orchestrator; the service loop (dr_service) feeds it messages and ticks, and moves jobs
 * between it and the job table with dr_orch_adopt and dr_orch_publish. */
typedef struct dr_ojob dr_ojob;
typedef struct dr_orch dr_orch;

/* An orchestrator for the render nodes on CHAN. TTY: a terminal for the live progress line, or -1
 * for log lines. NULL with ERR on failure. */
dr_orch *dr_orch_create(const dr_orch_cfg *o, dr_chan *chan, int tty, char *err, size_t errlen);

/* Add a job (settings and frames copied); frames already on disk are skipped unless --overwrite.
 * Returns the job, or NULL with ERR (e.g. an output pattern that cannot be used). */
dr_ojob *dr_orch_add(dr_orch *r, const char *id, const dr_render_cfg *render, int priority,
                     const dr_frames *frames, char *err, size_t errlen);

/* A job's video (render.video) is encoded in the background at its end (dr_encode); a job
 * without a frame rate asks BLENDER (a path or a name in PATH) for its scene's. */
void dr_orch_video_tools(dr_orch *r, const char *blender, bool allow_autoexec);

/* Seconds a render node may be silent before it is lost (--node-timeout, or its default). */
double dr_orch_node_timeout(const dr_orch *r);
/* The settings of the job numbered NUM (as messages name it), or NULL for a job the orchestrator
 * does not know (ended and forgotten, or never). */
const dr_node_job *dr_orch_job_cfg(const dr_orch *r, int num);
/* Cancel a job: frames in flight are stopped, finished frames are kept. */
int dr_orch_cancel(dr_orch *r, dr_ojob *j, char *err, size_t errlen);

/* Handle one message from render node rank SRC. Returns 0, or -1 with ERR. */
int dr_orch_handle(dr_orch *r, const dr_msg *m, int src, char *err, size_t errlen);

/* Give waiting nodes work (or STOP), notice silent nodes, redraw progress. 0, or -1 with ERR. */
int dr_orch_tick(dr_orch *r, char *err, size_t errlen);

/* The job named ID (its public id), or NULL. */
dr_ojob *dr_orch_find(const dr_orch *r, const char *id);

/* True once every job is over (dr_ojob_ended) and (in a batch) every node has been told to
 * stop. */
bool dr_orch_finished(const dr_orch *r);

/* Tell every node not yet stopped to stop. */
int dr_orch_stop_all(dr_orch *r, char *err, size_t errlen);

/* The job's state for the job table. */
dr_job_state dr_orch_state(const dr_ojob *j);

/* Add the jobs queued in TABLE, a service's or a batch's one (a job that cannot be added is
 * published as failed with its error). */
void dr_orch_adopt(dr_orch *r, dr_jobs *table);

/* A service's roots: from now on, dr_orch_adopt refuses a job whose paths left them since it was
 * accepted (dr_jobspec_confined). LIM must outlive R. */
void dr_orch_confine(dr_orch *r, const dr_jobspec_limits *lim);

/* Honour cancel requests from TABLE and publish every job's state and status (once more after it
 * ended, then no more) and the metrics. */
void dr_orch_publish(dr_orch *r, dr_jobs *table);

/* Whether the run can go on with the render nodes it has. 0 when it can; else the exit code, with
 * a message for the user in ERR: DR_EXIT_RUNTIME when a node went silent and mpirun was started
 * without --enable-recovery (a dead rank would end the world anyway), or when a batch lost every
 * render node before its frames were done; DR_EXIT_TOO_FEW_NODES for a service with fewer live
 * nodes than --min-nodes and nothing running. (With recovery, a lost node's frames simply go to
 * the others.) */
int dr_orch_check_nodes(const dr_orch *r, char *err, size_t errlen);

/* True once any render node was declared lost (MPI collectives over the world would hang). */
bool dr_orch_lost_any(const dr_orch *r);

/* True when mpirun keeps the job alive past a dead rank (--enable-recovery). */
bool dr_orch_recovery(const dr_orch *r);

/* How batch job J ended, as the exit code (DR_EXIT_*), with the report's STATUS and a MESSAGE
 * (MSGLEN bytes, "" when none). FAILED: the run stopped on the runtime error ERROR;
 * INTERRUPTED: by a signal. */
int dr_orch_outcome(const dr_orch *r, const dr_ojob *j, bool interrupted, bool failed,
                    const char *error, const char **status, char *msg, size_t msglen);

/* True once J is over: its frames ended and every phase after them (merge, video) is done. */
bool dr_ojob_ended(const dr_ojob *j);

void dr_orch_destroy(dr_orch *r);

#endif
