/* Byte sends in flight over MPI (staging, frames coming home): complete, count, or abandon them. */
#include "dr_sendq.h"
#include "dr_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dr_sendq_add(dr_sendq *s, dr_peer to, int tag, void *buf, size_t len, char *err, size_t errlen)
{
	int rc;

	if (dr_grow(&s->req, &s->cap, s->n + 1, sizeof *s->req) != 0 ||
	    dr_grow(&s->buf, &s->capb, s->n + 1, sizeof *s->buf) != 0 ||
	    dr_grow(&s->dest, &s->capd, s->n + 1, sizeof *s->dest) != 0 ||
	    dr_grow(&s->tag, &s->capt, s->n + 1, sizeof *s->tag) != 0) {
		free(buf);
		return dr_seterr(err, errlen, "out of memory");
	}
	rc = MPI_Isend(buf, (int)len, MPI_BYTE, to.rank, tag, to.comm, &s->req[s->n]);
	if (rc != MPI_SUCCESS) {
		free(buf);
		return dr_wire_fail(rc, "MPI_Isend", err, errlen);
	}
	s->buf[s->n] = buf;
	s->dest[s->n] = to;
	s->tag[s->n] = tag;
	s->n++;
	return 0;
}

static void drop(dr_sendq *s, size_t i)
{
	s->n--;
	s->req[i] = s->req[s->n];
	s->buf[i] = s->buf[s->n];
	s->dest[i] = s->dest[s->n];
	s->tag[i] = s->tag[s->n];
}

int dr_sendq_test(dr_sendq *s, char *err, size_t errlen)
{
	int done, k = 0, rc;

	for (size_t i = 0; i < s->n;) {
		rc = MPI_Test(&s->req[i], &done, MPI_STATUS_IGNORE);
		if (rc != MPI_SUCCESS)
			return dr_wire_fail(rc, "MPI_Test", err, errlen);
		if (!done) {
			i++;
			continue;
		}
		free(s->buf[i]);
		drop(s, i);
		k++;
	}
	return k;
}

int dr_sendq_inflight(const dr_sendq *s, dr_peer to, int tag)
{
	int k = 0;

	for (size_t i = 0; i < s->n; i++)
		k += dr_peer_eq(s->dest[i], to) && s->tag[i] == tag;
	return k;
}

/* Abandon the sends to TO (all when ALL). */
static void abandon(dr_sendq *s, dr_peer to, bool all)
{
	for (size_t i = 0; i < s->n;) {
		if (!all && !dr_peer_eq(s->dest[i], to)) {
			i++;
			continue;
		}
		MPI_Request_free(&s->req[i]); /* the buffer stays allocated: see dr_sendq */
		drop(s, i);
	}
}

void dr_sendq_abandon(dr_sendq *s, dr_peer to)
{
	abandon(s, to, false);
}

void dr_sendq_free(dr_sendq *s)
{
	abandon(s, (dr_peer){.comm = MPI_COMM_NULL, .rank = -1}, true);
	free(s->req);
	free(s->buf);
	free(s->dest);
	free(s->tag);
	memset(s, 0, sizeof *s);
}

void dr_sendq_settle(dr_sendq *s, double secs)
{
	char err[DR_ERRLEN];
	double end = dr_now() + secs;

	while (s->n && dr_now() < end && dr_sendq_test(s, err, sizeof err) >= 0)
		if (s->n)
			dr_sleep_ms(1);
	dr_sendq_free(s);
}
