/* Pure transfer planning: fixed-size chunks and a pipelined forwarding tree that survives loss. */
#ifndef DR_XFER_H
#define DR_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Chunks of a SIZE-byte file cut in CHUNK-byte pieces (the last may be shorter; 0 for 0). */
int64_t dr_xfer_nchunks(uint64_t size, uint32_t chunk);

/* Bytes in chunk K of that file (0 if K is out of range). */
uint32_t dr_xfer_chunk_len(uint64_t size, uint32_t chunk, int64_t k);

/*
 * Who forwards to whom. Member 0 is the source (rank 0); members 1..n-1 are the nodes that need
 * the file, in the order given. With FANOUT 1 they form a chain 0 -> 1 -> 2 -> ..., each node
 * forwarding every chunk it has received to the next while it receives the following ones, so
 * that all of them get the file in about the time of one copy plus one chunk per hop (on a
 * switched network, every link carries the file once). With FANOUT d > 1 it is a d-ary tree
 * (shorter paths, but a node's uplink carries d copies).
 *
 * When a member is lost, its children are adopted by its nearest live ancestor (the source in
 * the end), which goes on sending them from where they have got to (their own "have" counts,
 * reported to rank 0): nothing already received is sent again beyond what was unconfirmed.
 */
typedef struct dr_xfer_plan {
	int n;         /* members, source included */
	int *rank;     /* rank of each member */
	int *parent;   /* member each receives from; -1 for the source */
	bool *lost;    /* declared lost */
	int64_t *have; /* chunks each member has received in order (the source: all) */
	int64_t nchunks;
} dr_xfer_plan;

/* Plan a transfer of NCHUNKS chunks from RANKS[0] (the source) to RANKS[1..N). 0, or -1 (out of
 * memory or a bad argument: N < 1, FANOUT < 1). */
int dr_xfer_plan_init(dr_xfer_plan *p, const int *ranks, int n, int fanout, int64_t nchunks);

void dr_xfer_plan_free(dr_xfer_plan *p);

/* Member index of RANK, or -1. */
int dr_xfer_member(const dr_xfer_plan *p, int rank);

/* Children of member M (live ones, in order) into OUT (room for p->n). Returns how many. */
int dr_xfer_children(const dr_xfer_plan *p, int m, int *out);

/* Member M reports it has HAVE chunks (counts only go up). */
void dr_xfer_progress(dr_xfer_plan *p, int m, int64_t have);

/* Member M is lost: its live children move to its nearest live ancestor. Their member indices go
 * to ORPHANS (room for p->n) and the adopter's index to *ADOPTER. Returns how many orphans (0 if
 * M was already lost or is the source). */
int dr_xfer_lose(dr_xfer_plan *p, int m, int *orphans, int *adopter);

/* True when every live member has every chunk. */
bool dr_xfer_complete(const dr_xfer_plan *p);

/*
 * A sender's choice, per child: the next chunk to send, given what the sender has (SENDER_HAVE
 * chunks), how far it has sent to that child (SENT: the next chunk it would send), how many of
 * those sends are still in flight (INFLIGHT) and the window. Returns the chunk index, or -1 for
 * "nothing now" (all sent, window full, or the sender has not received it yet).
 */
int64_t dr_xfer_next(int64_t nchunks, int64_t sender_have, int64_t sent, int inflight, int window);

#endif
