/* Render node: runs the tasks rank 0 hands it on one supervised Blender and reports each frame. */
#ifndef DR_NODE_H
#define DR_NODE_H

#include "dr_blender.h"
#include "dr_msg.h"
#include "dr_opts.h"
#include "dr_outdir.h"
#include "dr_outpath.h"

#include <stdbool.h>

typedef struct dr_node {
	const dr_opts *opts;
	const dr_outpath *out;
	dr_chan *chan;
	dr_blender *bl;
	char host[256];
	char tag[300];
	int threads;
	int queue[DR_CHUNK_MAX]; /* frames of the current task not started yet */
	int qhead, qlen;
	int frame;             /* frame in flight, -1 = none */
	double started;        /* when it started (monotonic seconds) */
	char tmp[DR_PATH_MAX]; /* its temporary file */
	bool ready;            /* Blender has the scene; READY was sent */
	bool requested;        /* a REQUEST is outstanding */
	bool stopped;          /* STOP received, or could not start */
	double last_sent;      /* when we last said something to rank 0 */
} dr_node;

/* Start Blender (for a warm node) and say HELLO to rank 0. CPUS: Blender's affinity, or NULL.
 * Returns 0, or -1 with ERR for an MPI failure (a Blender that cannot start is reported to rank 0
 * as LOADFAIL, not as an error here). */
int dr_node_start(dr_node *n, const dr_opts *o, const dr_outpath *out, dr_chan *chan, int threads,
                  const cpu_set_t *cpus, char *err, size_t errlen);

/* Handle a message from rank 0 (TASK or STOP). Returns 0, or -1 with ERR. */
int dr_node_handle(dr_node *n, const dr_msg *m, char *err, size_t errlen);

/* Move on: start the next frame, wait up to WAIT_MS for Blender, report results, enforce the
 * timeout. Returns 0, or -1 with ERR on an MPI failure. */
int dr_node_tick(dr_node *n, int wait_ms, char *err, size_t errlen);

/* Interrupted: kill Blender now and remove the temporary file in flight. */
void dr_node_abort(dr_node *n);

/* Stop Blender and free everything. */
void dr_node_destroy(dr_node *n);

double dr_now(void); /* monotonic seconds */

#endif
