/* Frames coming home: a render node without rank 0's output directory sends each frame to rank 0.
 */
#ifndef DR_COLLECT_H
#define DR_COLLECT_H

#include "dr_msg.h"
#include "dr_outpath.h"
#include "dr_report.h"

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A node that does not see rank 0's output directory (or runs with --collect) renders and checks
 * each frame on its own disk as always; then, instead of reporting it done, it hands the frame
 * here. The node's side sends it to rank 0 in chunks (a header, then the bytes, on a tag of their
 * own, a window of chunks in flight). Rank 0's side receives with MPI_Improbe/MPI_Imrecv into one
 * chunk-sized buffer (memory bounded, whatever the frame's size), writes a temporary file in the
 * real output directory, checks it (dr_imgcheck), renames it into place and only then
 * delivers the node's RESULT, which came in the header (dr_chan_inject), and acknowledges: a frame
 * is done only when it is on rank 0's disk, and coming home costs the transfer and one answer. On
 * that answer the node deletes its copy (unless it shares the directory); when the answer says it
 * failed, the node sends its RESULT failed. A node lost mid-transfer
 * sends no RESULT, so rank 0 requeues the frame as for any lost node; its half-written temporary
 * file is removed when the transfer has been silent for the timeout.
 *
 * Both sides are pumped from dr_chan_poll (dr_chan_add_side), so that rank 0's loop keeps
 * dispatching while frames come home.
 */
typedef struct dr_collect dr_collect;

/* Where job JOB's frames go on rank 0: its frame naming into OUT and its canonical format into
 * FORMAT. 0, or -1 when the job is not known (any more). */
typedef int (*dr_collect_where)(void *ctx, int job, dr_outpath *out, char *format, size_t flen);
/* Rank 0's side, for the peers of CHAN (it must outlive C; a "rank" is a peer id), where each
 * frame's RESULT is delivered once the frame is in place: WHERE(CTX, ...) names each frame's place
 * (a batch's one job, or a service's jobs). TIMEOUT: seconds a transfer may be silent before it is
 * dropped. PER_FRAME: keep each frame's figures for the report (a batch), else totals only (a
 * service runs for ever). NULL with ERR on failure. */
dr_collect *dr_collect_home(dr_chan *chan, dr_collect_where where, void *ctx, double timeout,
                            bool per_frame, char *err, size_t errlen);
/* A node's side: frames go to rank 0 (peer 0 of CHAN's table), RESULTs out through CHAN once rank 0
 * has the frame; KEEP_COPY: the node shares
 * rank 0's directory (--collect forced it), so its "copy" is the frame itself and stays. */
dr_collect *dr_collect_node(dr_chan *chan, bool keep_copy, char *err, size_t errlen);

/* A node's rendered, checked frame at PATH, with the RESULT to send once rank 0 has it (for
 * dr_node_cfg's push). 0, or -1 with ERR. */
int dr_collect_push(void *collect, const dr_msg *result, const char *path, char *err,
                    size_t errlen);

/* Move transfers on (for dr_chan_add_side). 0, or -1 with ERR on an MPI failure. */
int dr_collect_pump(void *collect, char *err, size_t errlen);

/* True while a node has frames not yet acknowledged. */
bool dr_collect_busy(const dr_collect *c);

/* Rank 0: frames brought home so far, sorted by frame (for the report; none unless PER_FRAME),
 * and the bytes and seconds of all of them. */
void dr_collect_stats(const dr_collect *c, const dr_report_home **home, size_t *n, uint64_t *bytes,
                      double *seconds);

/* Drop transfers in flight (their temporary files too) and free C. NULL is fine. */
void dr_collect_close(dr_collect *c);

#endif
