/* Byte sends in flight over MPI (staging, frames coming home): complete, count, or abandon them. */
#ifndef DR_SENDQ_H
#define DR_SENDQ_H

#include "dr_wire.h"

#include <mpi.h>
#include <stddef.h>

/* Sends in flight, each an MPI_Isend of a malloc'ed buffer the queue owns. A send to a lost rank
 * is abandoned: MPI_Request_free, and its buffer is kept for good (MPI may still read it; a few
 * chunks per lost rank at most): sends to a dead rank may never complete, so never wait on them. */
typedef struct dr_sendq {
	MPI_Request *req;
	void **buf;
	dr_peer *dest;
	int *tag;
	size_t n, cap, capb, capd, capt;
} dr_sendq;

/* Send LEN bytes of BUF (malloc'ed; the queue takes it, and frees it on failure too) to peer TO
 * with TAG. 0, or -1 with ERR. */
int dr_sendq_add(dr_sendq *s, dr_peer to, int tag, void *buf, size_t len, char *err, size_t errlen);

/* Complete finished sends. Returns how many, or -1 with ERR. */
int dr_sendq_test(dr_sendq *s, char *err, size_t errlen);

/* Sends to TO with TAG in flight. */
int dr_sendq_inflight(const dr_sendq *s, dr_peer to, int tag);

/* Never wait for sends to TO again. */
void dr_sendq_abandon(dr_sendq *s, dr_peer to);

/* Abandon everything and free the queue. */
void dr_sendq_free(dr_sendq *s);

/* Wait up to SECS (without spinning) for sends in flight, then dr_sendq_free. */
void dr_sendq_settle(dr_sendq *s, double secs);

#endif
