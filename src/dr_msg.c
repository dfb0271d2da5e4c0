/* Messages between rank 0 and render nodes: one fixed-size record over MPI, or a local queue. */
#include "dr_msg.h"

#include "dr_util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool dr_mpi_recovery(void)
{
	const char *v = getenv("OMPI_MCA_orte_enable_recovery");
	return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

int dr_chan_init(dr_chan *c, MPI_Comm comm, char *err, size_t errlen)
{
	int rc;
	memset(c, 0, sizeof *c);
	c->comm = comm;
	if ((rc = MPI_Comm_rank(comm, &c->rank)) != MPI_SUCCESS ||
	    (rc = MPI_Comm_size(comm, &c->size)) != MPI_SUCCESS)
		return dr_wire_fail(rc, "MPI", err, errlen);
	return 0;
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

void dr_chan_destroy(dr_chan *c, double timeout_s)
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

int dr_chan_send(dr_chan *c, int dest, const dr_msg *m, char *err, size_t errlen)
{
	if (dest == c->rank) {
		if (dr_grow(&c->local, &c->caplocal, c->nlocal + 1, sizeof *c->local) != 0)
			return dr_seterr(err, errlen, "out of memory queueing a message");
		c->local[c->nlocal++] = *m;
		return 0;
	}
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
	int rc = MPI_Isend(copy, (int)len, MPI_BYTE, dest, DR_TAG_MSG, c->comm, &c->reqs[c->nsend]);
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
	for (int i = 0; i < c->nforget; i++)
		c->forget[i].fn(c->forget[i].ctx, dest);
}

int dr_chan_on_forget(dr_chan *c, void (*fn)(void *ctx, int rank), void *ctx)
{
	if (c->nforget >= (int)(sizeof c->forget / sizeof c->forget[0]))
		return -1;
	c->forget[c->nforget++] = (struct dr_forget_hook){fn, ctx};
	return 0;
}

int dr_chan_add_side(dr_chan *c, int (*fn)(void *ctx, char *err, size_t errlen), void *ctx)
{
	if (c->nside >= (int)(sizeof c->side / sizeof c->side[0]))
		return -1;
	c->side[c->nside++] = (struct dr_side){fn, ctx};
	return 0;
}

void dr_chan_clear_sides(dr_chan *c)
{
	c->nside = 0;
	c->nforget = 0;
}

int dr_chan_poll(dr_chan *c, dr_msg *m, int *src, char *err, size_t errlen)
{
	int n = 0, k;

	if (c->nlocal > 0) {
		*m = c->local[0];
		memmove(c->local, c->local + 1, (c->nlocal - 1) * sizeof *m);
		c->nlocal--;
		*src = c->rank;
		return 1;
	}
	if (c->size == 1)
		return 0;
	for (int i = 0; i < c->nside; i++) {
		double t0 = dr_now(), took;
		if (c->side[i].fn(c->side[i].ctx, err, errlen) != 0)
			return -1;
		took = dr_now() - t0;
		if (took > c->side_max)
			c->side_max = took;
	}
	if (c->nsend > 0 && reap_sends(c, err, errlen) != 0)
		return -1;
	memset(m, 0, sizeof *m); /* only the used part of text travels */
	k = dr_wire_recv(c->comm, MPI_ANY_SOURCE, DR_TAG_MSG, m, sizeof *m, &n, src, err, errlen);
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
