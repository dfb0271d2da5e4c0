/* Messages between rank 0 and render nodes: one fixed-size record over MPI, or a local queue. */
#ifndef DR_MSG_H
#define DR_MSG_H

#include "dr_run_cfg.h"
#include "dr_wire.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* A render node says something at least this often (seconds). */
#define DR_HEARTBEAT_S 2.0

typedef struct dr_msg {
	int32_t type;
	int32_t job;                  /* TASK, RESULT, JOB, CANCEL, LOADFAIL */
	int32_t n;                    /* TASK: number of frames */
	int32_t frames[DR_CHUNK_MAX]; /* TASK */
	int32_t frame;                /* RESULT, CANCEL */
	int32_t ok;                   /* RESULT */
	int32_t threads;              /* HELLO */
	int32_t pid;                  /* HELLO */
	double seconds;               /* RESULT: render seconds */
	double wait;                  /* RESULT: seconds the node waited for this task */
	char host[256];               /* HELLO */
	char text[8192]; /* RESULT, LOADFAIL: error; JOB: settings. Last: only its used part is sent
	                  */
} dr_msg;

/* Where messages go: MPI_COMM_WORLD with MPI_ERRORS_RETURN, plus a local queue that carries
 * rank 0's messages to itself when it renders alone. Sends never block: a blocking MPI_Send can
 * spin until the receiver polls, so each send is an MPI_Isend of a private copy, completed by
 * later calls. Opaque: read it through the accessors below. */
typedef struct dr_chan dr_chan;

/* A channel on COMM, or NULL with ERR. dr_chan_free(C, TIMEOUT_S) waits up to TIMEOUT_S for
 * sends in flight (without spinning), then frees everything; NULL is fine. */
dr_chan *dr_chan_create(MPI_Comm comm, char *err, size_t errlen);
void dr_chan_free(dr_chan *c, double timeout_s);

/* Send M to peer DEST (a rank of the job's communicator, or a joined peer's id). Returns 0, or -1
 * with ERR. */
int dr_chan_send(dr_chan *c, int dest, const dr_msg *m, char *err, size_t errlen);

/* Deliver M at the next dr_chan_poll as if peer SRC had sent it (a protocol on another tag that
 * carried it, dr_collect: a frame's RESULT travels with the frame). 0, or -1 with ERR. */
int dr_chan_inject(dr_chan *c, int src, const dr_msg *m, char *err, size_t errlen);

/* Receive one message if any is waiting (never blocks); also completes finished sends.
 * Returns 1 with M and *SRC filled, 0 if none, -1 with ERR on an MPI error. */
int dr_chan_poll(dr_chan *c, dr_msg *m, int *src, char *err, size_t errlen);

/* Run FN(CTX) at every dr_chan_poll (before it looks for a message), so that byte transfers on
 * other tags (frames coming home, dr_collect; scenes fetched, dr_fetch) move on wherever the loops
 * poll; FN returns 0 (or 1: it did something), or -1 with ERR, which dr_chan_poll then returns. A
 * pump on dr_chan_loop(C); 0, or -1 when out of memory. */
int dr_chan_add_side(dr_chan *c, int (*fn)(void *ctx, char *err, size_t errlen), void *ctx);

/* Run no side pumps any more (nor forget hooks). */
void dr_chan_clear_sides(dr_chan *c);

/* The loop whose pumps dr_chan_poll runs: an owner adds its pump there and removes it by its
 * handle (dr_loop_add_pump, dr_loop_remove). */
struct dr_loop *dr_chan_loop(dr_chan *c);

/* The peer table: a message's source and destination, and every protocol's peer ids, are indices
 * into it. */
const dr_peers *dr_chan_peers(const dr_chan *c);

/* A peer on COMM at RANK (a node that joined over its own communicator, MPI_Comm_accept): its id,
 * by which dr_chan_send and every protocol given this channel's table reach it; -1 when out of
 * memory. The communicator needs MPI_ERRORS_RETURN, and stays the caller's to free after
 * dr_chan_free. */
int dr_chan_add_peer(dr_chan *c, MPI_Comm comm, int rank);

/* Accessors, so that callers need not read the struct (it becomes private). */
int dr_chan_rank(const dr_chan *c);
int dr_chan_size(const dr_chan *c);
MPI_Comm dr_chan_comm(const dr_chan *c);
double dr_chan_side_max(const dr_chan *c);

/* Call FN(CTX, RANK) whenever dr_chan_forget(RANK) is, so that a side pump's transfers to a lost
 * rank are abandoned too (dr_fetch). 0, or -1 when out of memory. */
int dr_chan_on_forget(dr_chan *c, void (*fn)(void *ctx, int rank), void *ctx);

/* Rank DEST is gone (declared lost): sends to it still in flight are abandoned, never waited on
 * again. A send to a dead peer may never complete nor fail, so each request is released with
 * MPI_Request_free (MPI completes or drops it on its own) and its buffer is kept until
 * dr_chan_free, so that MPI never reads freed memory meanwhile. */
void dr_chan_forget(dr_chan *c, int dest);

/* True when mpirun keeps the job alive past a dead rank (mpirun --enable-recovery, which hands
 * its ranks OMPI_MCA_orte_enable_recovery=1). Without it a dead rank ends the world. */
bool dr_mpi_recovery(void);

#endif
