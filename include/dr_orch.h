/* Orchestrator (rank 0): hands frames to render nodes as they free up, tracks them, shows progress.
 */
#ifndef DR_ORCH_H
#define DR_ORCH_H

#include "dr_msg.h"
#include "dr_opts.h"
#include "dr_outpath.h"
#include "dr_report.h"
#include "dr_sched.h"

#include <stdbool.h>

typedef struct dr_orch_node {
	int pid;
	bool hello, ready, loadfail;
	bool waiting; /* asked for work, not answered yet */
	bool stopped; /* STOP sent */
	double last_seen; /* when it last said anything (monotonic seconds) */
	char loaderr[1024];
} dr_orch_node;

typedef struct dr_orch {
	const dr_opts *opts;
	const dr_outpath *out;
	dr_chan *chan;
	dr_sched *sched;
	int nslots;
	dr_orch_node *nodes;
	dr_report_node *info; /* rank, host, threads per slot, for the report */
	double t0;            /* start (monotonic) */
	double last_draw;     /* last progress redraw */
	int tty;              /* live progress line on this terminal, or -1 */
	bool quiet;
	bool all_loadfail;  /* every node failed to load the scene: bad input */
	int silent;         /* slot of a node silent past --node-timeout, or -1 */
	char loaderr[1024]; /* the first load error */
} dr_orch;

/* Set up for the frames in O: skips frames already on disk unless --overwrite. TTY: a terminal
 * for the live progress line, or -1 for one line per frame. Returns 0, or -1 with ERR. */
int dr_orch_init(dr_orch *r, const dr_opts *o, const dr_outpath *out, dr_chan *chan, int tty,
                 char *err, size_t errlen);

/* Handle one message from render node rank SRC. Returns 0, or -1 with ERR. */
int dr_orch_handle(dr_orch *r, const dr_msg *m, int src, char *err, size_t errlen);

/* Give waiting nodes work (or STOP), and redraw progress. Returns 0, or -1 with ERR. */
int dr_orch_tick(dr_orch *r, char *err, size_t errlen);

/* True once every frame is finished and every node has been told to stop. */
bool dr_orch_finished(const dr_orch *r);

/* Tell every node not yet stopped to stop (end of job, or giving up). */
int dr_orch_stop_all(dr_orch *r, char *err, size_t errlen);

/* Fill a report for the run so far. */
void dr_orch_report(const dr_orch *r, dr_report *rep, int exit_code, const char *status,
                    const char *message);

void dr_orch_destroy(dr_orch *r);

#endif
