/* Messages between rank 0 and render nodes: one fixed-size record over MPI, or a local queue. */
#include "dr_msg.h"

#include "dr_loop.h"
#include "dr_util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct dr_chan {
	MPI_Comm comm;
	int rank, size;
	dr_peers peers; /* whom a peer id names: the ranks of COMM (id = rank), then joined nodes */
	struct dr_local { /* queued messages to self (or delivered as from SRC: dr_chan_inject) */
		dr_msg m;
		int src;
	} * local;
	size_t nlocal, caplocal;
	MPI_Request *reqs; /* sends in flight */
	dr_msg **bufs;     /* their buffers */
	int *dests;        /* their destination ranks */
	size_t nsend, capsend;
	dr_msg **orphans; /* buffers of sends to forgotten ranks (see dr_chan_forget) */
	size_t norphans, caporphans;
	struct dr_loop *loop; /* side pumps (dr_chan_add_side) run at every poll */
	uint64_t *sides;      /* their handles */
	size_t nsides, capsides;
	double side_max; /* the longest any one side pump took (seconds): how long byte transfers
	                  * held up the loop that polls, at most (dr_chan_side_max) */
	struct dr_forget_hook { /* see dr_chan_on_forget */
		void (*fn)(void *ctx, int rank);
		void *ctx;
	} * forget;
	size_t nforget, capforget;
};

bool dr_mpi_recovery(void)
{
	const char *v = getenv("OMPI_MCA_orte_enable_recovery");
	return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

static void chan_destroy(dr_chan *c, double timeout_s);

static int chan_init(dr_chan *c, MPI_Comm comm, char *err, size_t errlen)
{
	int rc;
	memset(c, 0, sizeof *c);
	c->comm = comm;
	if ((rc = MPI_Comm_rank(comm, &c->rank)) != MPI_SUCCESS ||
	    (rc = MPI_Comm_size(comm, &c->size)) != MPI_SUCCESS)
		return dr_wire_fail(rc, "MPI", err, errlen);
	if (dr_peers_init(&c->peers, comm, err, errlen) != 0)
		return -1;
	/* the poll's caller waits between polls: this loop's own back-off is not used */
	if (!(c->loop = dr_loop_create(0.2, 2, err, errlen))) {
		dr_peers_free(&c->peers);
		return -1;
	}
	return 0;
}

dr_chan *dr_chan_create(MPI_Comm comm, char *err, size_t errlen)
{
	dr_chan *c = malloc(sizeof *c);

	if (!c) {
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (chan_init(c, comm, err, errlen) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

void dr_chan_free(dr_chan *c, double timeout_s)
{
	if (!c)
		return;
	chan_destroy(c, timeout_s);
	free(c);
}

/* Complete the sends in flight that have finished. Returns 0, or -1 with ERR. */
static int reap_sends(dr_chan *c, char *err, size_t errlen)
{
	size_t k = 0;
	for (size_t i = 0; i < c->nsend; i++) {
		int done = 0, rc = MPI_Test(&c->reqs[i], &done, MPI_STATUS_IGNORE);
		if (rc != MPI_SUCCESS)
			return dr_wire_fail(rc, "sending a message failed", err, errlen);
		if (done) {
			free(c->bufs[i]);
			continue;
		}
		c->reqs[k] = c->reqs[i];
		c->dests[k] = c->dests[i];
		c->bufs[k++] = c->bufs[i];
	}
	c->nsend = k;
	return 0;
}

static void chan_destroy(dr_chan *c, double timeout_s)
{
	char err[DR_ERRLEN];
	for (double waited = 0; c->nsend > 0 && waited < timeout_s; waited += 0.001) {
		if (reap_sends(c, err, sizeof err) != 0)
			break;
		if (c->nsend > 0)
			dr_sleep_ms(1);
	}
	for (size_t i = 0; i < c->nsend; i++) {
		MPI_Request_free(&c->reqs[i]); /* the peer is gone or stuck: let MPI drop it */
		free(c->bufs[i]);
	}
	for (size_t i = 0; i < c->norphans; i++)
		free(c->orphans[i]);
	free(c->orphans);
	dr_loop_destroy(c->loop);
	dr_peers_free(&c->peers);
	free(c->sides);
	free(c->forget);
	c->loop = NULL;
	c->sides = NULL;
	c->forget = NULL;
	c->nsides = c->capsides = c->nforget = c->capforget = 0;
	free(c->reqs);
	free(c->bufs);
	free(c->dests);
	free(c->local);
	c->reqs = NULL;
	c->bufs = NULL;
	c->dests = NULL;
	c->orphans = NULL;
	c->local = NULL;
	c->nlocal = c->caplocal = c->nsend = c->capsend = c->norphans = c->caporphans = 0;
}

int dr_chan_inject(dr_chan *c, int src, const dr_msg *m, char *err, size_t errlen)
{
	if (dr_grow(&c->local, &c->caplocal, c->nlocal + 1, sizeof *c->local) != 0)
		return dr_seterr(err, errlen, "out of memory queueing a message");
	c->local[c->nlocal].m = *m;
	c->local[c->nlocal++].src = src;
	return 0;
}

int dr_chan_send(dr_chan *c, int dest, const dr_msg *m, char *err, size_t errlen)
{
	if (dest == c->rank)
		return dr_chan_inject(c, c->rank, m, err, errlen);
	if (reap_sends(c, err, errlen) != 0)
		return -1;
	if (c->nsend == c->capsend) {
		/* three arrays of one length: grow the others to the first's new capacity */
		size_t cap = c->capsend, cap2 = c->capsend, cap3 = c->capsend;
		if (dr_grow(&c->reqs, &cap, c->nsend + 1, sizeof *c->reqs) != 0 ||
		    dr_grow(&c->bufs, &cap2, cap, sizeof *c->bufs) != 0 ||
		    dr_grow(&c->dests, &cap3, cap, sizeof *c->dests) != 0)
			return dr_seterr(err, errlen, "out of memory sending a message");
		c->capsend = cap;
	}
	size_t len = offsetof(dr_msg, text) + strnlen(m->text, sizeof m->text - 1) + 1;
	dr_msg *copy = malloc(len);
	if (!copy)
		return dr_seterr(err, errlen, "out of memory sending a message");
	memcpy(copy, m, len);
	copy->text[len - offsetof(dr_msg, text) - 1] = '\0';
	dr_peer to = dr_peers_get(&c->peers, dest);
	if (to.rank < 0) {
		free(copy);
		return dr_seterr(err, errlen, "sending to rank %d failed: no such peer", dest);
	}
	int rc = MPI_Isend(copy, (int)len, MPI_BYTE, to.rank, DR_TAG_MSG, to.comm,
	                   &c->reqs[c->nsend]);
	if (rc != MPI_SUCCESS) {
		char what[64];
		free(copy);
		snprintf(what, sizeof what, "sending to rank %d failed", dest);
		return dr_wire_fail(rc, what, err, errlen);
	}
	c->dests[c->nsend] = dest;
	c->bufs[c->nsend++] = copy;
	return 0;
}

void dr_chan_forget(dr_chan *c, int dest)
{
	size_t k = 0;

	for (size_t i = 0; i < c->nsend; i++) {
		if (c->dests[i] == dest && dr_grow(&c->orphans, &c->caporphans, c->norphans + 1,
		                                   sizeof *c->orphans) == 0) {
			MPI_Request_free(&c->reqs[i]);
			c->orphans[c->norphans++] = c->bufs[i];
			continue;
		}
		c->reqs[k] = c->reqs[i];
		c->dests[k] = c->dests[i];
		c->bufs[k++] = c->bufs[i];
	}
	c->nsend = k;
	for (size_t i = 0; i < c->nforget; i++)
		c->forget[i].fn(c->forget[i].ctx, dest);
}

int dr_chan_on_forget(dr_chan *c, void (*fn)(void *ctx, int rank), void *ctx)
{
	if (dr_grow(&c->forget, &c->capforget, c->nforget + 1, sizeof *c->forget) != 0)
		return -1;
	c->forget[c->nforget++] = (struct dr_forget_hook){fn, ctx};
	return 0;
}

int dr_chan_add_side(dr_chan *c, int (*fn)(void *ctx, char *err, size_t errlen), void *ctx)
{
	dr_loop_id id;

	if (dr_grow(&c->sides, &c->capsides, c->nsides + 1, sizeof *c->sides) != 0 ||
	    !(id = dr_loop_add_pump(c->loop, fn, ctx)))
		return -1;
	c->sides[c->nsides++] = id;
	return 0;
}

void dr_chan_clear_sides(dr_chan *c)
{
	for (size_t i = 0; i < c->nsides; i++)
		dr_loop_remove(c->loop, c->sides[i]);
	c->nsides = 0;
	c->nforget = 0;
}

const dr_peers *dr_chan_peers(const dr_chan *c)
{
	return &c->peers;
}

int dr_chan_add_peer(dr_chan *c, MPI_Comm comm, int rank)
{
	return dr_peers_add(&c->peers, comm, rank);
}

struct dr_loop *dr_chan_loop(dr_chan *c)
{
	return c->loop;
}

int dr_chan_rank(const dr_chan *c)
{
	return c->rank;
}

int dr_chan_size(const dr_chan *c)
{
	return c->size;
}

MPI_Comm dr_chan_comm(const dr_chan *c)
{
	return c->comm;
}

double dr_chan_side_max(const dr_chan *c)
{
	return c->side_max;
}

int dr_chan_poll(dr_chan *c, dr_msg *m, int *src, char *err, size_t errlen)
{
	int n = 0, k;

	if (c->nlocal > 0) {
		*m = c->local[0].m;
		*src = c->local[0].src;
		memmove(c->local, c->local + 1, (c->nlocal - 1) * sizeof *c->local);
		c->nlocal--;
		return 1;
	}
	if (c->size == 1)
		return 0;
	if (dr_loop_turn(c->loop, err, errlen) < 0)
		return -1;
	c->side_max = dr_loop_pump_max(c->loop);
	if (c->nsend > 0 && reap_sends(c, err, errlen) != 0)
		return -1;
	memset(m, 0, sizeof *m); /* only the used part of text travels */
	k = dr_wire_recv_any(&c->peers, DR_TAG_MSG, m, sizeof *m, &n, src, err, errlen);
	if (k == 2)
		return dr_seterr(err, errlen, "receiving a message failed: %d bytes from rank %d",
		                 n, *src);
	if (k < 0) {
		char why[DR_ERRLEN];
		snprintf(why, sizeof why, "%s", err);
		return dr_seterr(err, errlen, "receiving a message failed: %s", why);
	}
	m->text[sizeof m->text - 1] = '\0';
	return k;
}
