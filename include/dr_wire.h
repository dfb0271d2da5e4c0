/* The MPI wire: every tag, message kind, chunk size and window, and the helpers all protocols use.
 */
#ifndef DR_WIRE_H
#define DR_WIRE_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Tags. Each protocol has tags of its own so that one never receives another's message: the
 * record (dr_msg) on one tag; staging's control and chunks (dr_stage); frames coming home
 * (dr_collect); scenes a node fetches (dr_fetch). Chunks never travel in dr_msg's 8 KB record.
 */
enum dr_wire_tag {
	DR_TAG_MSG = 7,         /* dr_msg's record, both ways */
	DR_TAG_STAGE_CTL = 21,  /* staging: control messages (enum dr_stage_kind), both ways */
	DR_TAG_STAGE_DATA = 22, /* staging: a chunk along the chain (dr_wire_chunk, then bytes) */
	DR_TAG_PUSH = 23,       /* node -> 0: a frame's header, then its chunks (dr_collect) */
	DR_TAG_ACK = 24,        /* 0 -> node: the frame is in place, or why not */
	DR_TAG_FETCH_REQ = 25,  /* node -> 0: enum dr_fetch_kind ASK .. DONE */
	DR_TAG_FETCH_ANS = 26,  /* 0 -> node: enum dr_fetch_kind SCENE .. FAIL */
	DR_TAG_FETCH_DATA =
	        27, /* 0 -> node: a chunk of a packed scene (dr_wire_chunk, then bytes) */
};

/* Distinct, and below 64 (so that one 64-bit mask checks them all). */
#define DR_WIRE_BIT(t) (1ULL << (t))
#define DR_WIRE_TAGS_SUM                                                                           \
	(DR_WIRE_BIT(DR_TAG_MSG) + DR_WIRE_BIT(DR_TAG_STAGE_CTL) +                                 \
	 DR_WIRE_BIT(DR_TAG_STAGE_DATA) + DR_WIRE_BIT(DR_TAG_PUSH) + DR_WIRE_BIT(DR_TAG_ACK) +     \
	 DR_WIRE_BIT(DR_TAG_FETCH_REQ) + DR_WIRE_BIT(DR_TAG_FETCH_ANS) +                           \
	 DR_WIRE_BIT(DR_TAG_FETCH_DATA))
#define DR_WIRE_TAGS_OR                                                                            \
	(DR_WIRE_BIT(DR_TAG_MSG) | DR_WIRE_BIT(DR_TAG_STAGE_CTL) |                                 \
	 DR_WIRE_BIT(DR_TAG_STAGE_DATA) | DR_WIRE_BIT(DR_TAG_PUSH) | DR_WIRE_BIT(DR_TAG_ACK) |     \
	 DR_WIRE_BIT(DR_TAG_FETCH_REQ) | DR_WIRE_BIT(DR_TAG_FETCH_ANS) |                           \
	 DR_WIRE_BIT(DR_TAG_FETCH_DATA))
_Static_assert(DR_TAG_MSG < 64 && DR_TAG_STAGE_CTL < 64 && DR_TAG_STAGE_DATA < 64 &&
                       DR_TAG_PUSH < 64 && DR_TAG_ACK < 64 && DR_TAG_FETCH_REQ < 64 &&
                       DR_TAG_FETCH_ANS < 64 && DR_TAG_FETCH_DATA < 64,
               "a tag is 64 or more: widen the check");
_Static_assert(DR_WIRE_TAGS_SUM == DR_WIRE_TAGS_OR, "two MPI tags are the same");

/* dr_msg's record (DR_TAG_MSG). */
enum dr_msg_type {
	DR_MSG_HELLO = 1, /* node -> 0: host, pid, threads; Blender is starting */
	DR_MSG_READY,     /* node -> 0: Blender has the first scene loaded; asks for work */
	DR_MSG_LOADFAIL,  /* node -> 0: Blender cannot load job's scene (text says why) */
	DR_MSG_REQUEST,   /* node -> 0: idle, wants a task */
	DR_MSG_RESULT,    /* node -> 0: job's frame done (ok = 1) or failed (text says why) */
	DR_MSG_TASK,      /* 0 -> node: render job's frames[0..n) */
	DR_MSG_STOP,      /* 0 -> node: no more work; quit Blender and finish */
	DR_MSG_HEARTBEAT, /* node -> 0: still alive (sent when nothing else was for a while) */
	DR_MSG_JOB,       /* 0 -> node: settings of job (JSON in text), sent before its tasks */
	DR_MSG_CANCEL,    /* 0 -> node: drop job's frame (or all its frames if frame < 0); with
	                   * n = 1 only if it has not started yet */
	DR_MSG_RENDERED,  /* node -> 0: job's frame is rendered and checked and on its way home
	                   * (dr_collect): the node is free for work; its RESULT follows */
};

/* Staging's control messages (DR_TAG_STAGE_CTL). */
enum dr_stage_kind {
	DR_STAGE_OFFER = 1, /* 0 -> node: the file (size, hash, path), or only a question (ask) */
	DR_STAGE_ANSWER,    /* node -> 0: enum dr_stage_answer, and whether it sees the probe */
	DR_STAGE_FEED,      /* 0 -> node: forward to RANK from chunk COUNT */
	DR_STAGE_UNFEED,    /* 0 -> node: stop forwarding to RANK */
	DR_STAGE_PROGRESS,  /* node -> 0: chunks received (also the keep-alive) */
	DR_STAGE_DONE,      /* node -> 0: it has the file (status 0), or why not */
	DR_STAGE_FINISH,    /* 0 -> node: go on (ask: another offer follows) */
	DR_STAGE_PARENT,    /* 0 -> node: receive from RANK from now on */
};
enum dr_stage_answer { DR_STAGE_SAME = 1, DR_STAGE_CACHED, DR_STAGE_NEED, DR_STAGE_FAIL };

/* A fetch's requests and answers (DR_TAG_FETCH_REQ node -> 0, then DR_TAG_FETCH_ANS). */
enum dr_fetch_kind {
	DR_FETCH_ASK = 1, /* job: what is its scene? */
	DR_FETCH_WANT,    /* job: I lack it, what is its packed copy? */
	DR_FETCH_SEND,    /* job: send the packed copy from chunk HAVE */
	DR_FETCH_CANCEL,  /* stop sending (the node moved on) */
	DR_FETCH_DONE,    /* outcome, size, seconds; text: the node's host */
	DR_FETCH_SCENE,   /* size, hex of the scene file; text: its path */
	DR_FETCH_PACKED,  /* size, hex of the copy to stage; have: chunk size; text: extension */
	DR_FETCH_FAIL,    /* text: why */
};

/* How a node got a scene (DONE's outcome). */
enum dr_fetch_outcome {
	DR_FETCH_SAME = 1, /* its own file at the same path has the same size and hash */
	DR_FETCH_CACHED,   /* its cache had the packed copy */
	DR_FETCH_STAGED,   /* it received the packed copy */
	DR_FETCH_FAILED,   /* it could not get it */
};

/*
 * Chunks. Frames coming home and fetched scenes go point to point in a quarter MiB per chunk,
 * eight in flight: one chunk is a couple of milliseconds on a gigabit link, so receiving or
 * reading one never holds rank 0's loop up for long. Staging goes along a chain (dr_xfer) in
 * bigger chunks, fewer in flight per child, since each node forwards what it has.
 */
#define DR_WIRE_CHUNK        (256 * 1024)
#define DR_WIRE_WINDOW       8
#define DR_WIRE_STAGE_CHUNK  (1 << 20)
#define DR_WIRE_STAGE_WINDOW 4

/* Every chunk message starts with this: which blob (two numbers the protocol chooses: a job and a
 * frame, or a request's sequence number) and the chunk's index; its bytes follow. */
typedef struct dr_wire_chunk {
	int32_t id0, id1;
	int64_t idx;
} dr_wire_chunk;

/*
 * Peers. A render node is addressed through a peer handle: a communicator and a rank in it. The
 * channel owns the table of peers (dr_chan_peers); a peer's id is its index there. The nodes
 * launched with the job are the ranks of MPI_COMM_WORLD, with id = world rank; a node that joins
 * later (MPI_Comm_accept) is added to the table with its own communicator, and every protocol
 * reaches it the same way.
 */
typedef struct dr_peer {
	MPI_Comm comm;
	int rank;
} dr_peer;

typedef struct dr_peers {
	dr_peer *p;
	int n, cap;
} dr_peers;

/* One peer per rank of COMM (id = rank). 0, or -1 with ERR. */
int dr_peers_init(dr_peers *t, MPI_Comm comm, char *err, size_t errlen);

/* A peer on COMM at RANK: its id, or -1 when out of memory. */
int dr_peers_add(dr_peers *t, MPI_Comm comm, int rank);

/* The peer with id ID (a null peer, rank -1, for an unknown id). */
dr_peer dr_peers_get(const dr_peers *t, int id);

/* The id of the peer on COMM at RANK, or -1. */
int dr_peers_find(const dr_peers *t, MPI_Comm comm, int rank);

void dr_peers_free(dr_peers *t);

/* Same peer? */
static inline bool dr_peer_eq(dr_peer a, dr_peer b)
{
	return a.comm == b.comm && a.rank == b.rank;
}

/* An MPI error code as "WHAT: MPI's message" into ERR; returns -1. The one MPI error helper. */
int dr_wire_fail(int rc, const char *what, char *err, size_t errlen);

/*
 * The one receive helper: one message on TAG from SRC (MPI_ANY_SOURCE: any) if one is waiting,
 * into BUF (room for MAX bytes), with MPI_Improbe + MPI_Mrecv (a matched message cannot be taken
 * by another receive). 1 with its length in *N and its sender in *FROM (may be NULL), 0 if none,
 * 2 when it was longer than MAX (received whole, then dropped; *N says how long), -1 with ERR.
 */
int dr_wire_recv(MPI_Comm comm, int src, int tag, void *buf, size_t max, int *n, int *from,
                 char *err, size_t errlen);

/* The same from peer FROM. */
int dr_wire_recv_from(dr_peer from, int tag, void *buf, size_t max, int *n, char *err,
                      size_t errlen);

/* The same from any peer of T (each of their communicators in turn): *ID is the sender's id. */
int dr_wire_recv_any(const dr_peers *t, int tag, void *buf, size_t max, int *n, int *id, char *err,
                     size_t errlen);

#endif
