/* Messages between rank 0 and render nodes: one fixed-size record over MPI, or a local queue. */
#include "dr_msg.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DR_TAG 7

void dr_mpi_strerror(int code, char *buf, size_t len)
{
	char s[MPI_MAX_ERROR_STRING];
	int n = 0;
	if (MPI_Error_string(code, s, &n) != MPI_SUCCESS)
		snprintf(s, sizeof s, "MPI error %d", code);
	snprintf(buf, len, "%s", s);
}

int dr_chan_init(dr_chan *c, MPI_Comm comm, char *err, size_t errlen)
{
	int rc;
	memset(c, 0, sizeof *c);
	c->comm = comm;
	if ((rc = MPI_Comm_rank(comm, &c->rank)) != MPI_SUCCESS ||
	    (rc = MPI_Comm_size(comm, &c->size)) != MPI_SUCCESS) {
		char m[256];
		dr_mpi_strerror(rc, m, sizeof m);
		snprintf(err, errlen, "MPI: %s", m);
		return -1;
	}
	return 0;
}

void dr_chan_destroy(dr_chan *c)
{
	free(c->local);
	c->local = NULL;
	c->nlocal = c->caplocal = 0;
}

int dr_chan_send(dr_chan *c, int dest, const dr_msg *m, char *err, size_t errlen)
{
	if (dest == c->rank) {
		if (c->nlocal == c->caplocal) {
			size_t cap = c->caplocal ? 2 * c->caplocal : 8;
			dr_msg *p = realloc(c->local, cap * sizeof *p);
			if (!p) {
				snprintf(err, errlen, "out of memory queueing a message");
				return -1;
			}
			c->local = p;
			c->caplocal = cap;
		}
		c->local[c->nlocal++] = *m;
		return 0;
	}
	size_t len = offsetof(dr_msg, text) + strnlen(m->text, sizeof m->text - 1) + 1;
	int rc = MPI_Send(m, (int)len, MPI_BYTE, dest, DR_TAG, c->comm);
	if (rc != MPI_SUCCESS) {
		char s[256];
		dr_mpi_strerror(rc, s, sizeof s);
		snprintf(err, errlen, "sending to rank %d failed: %s", dest, s);
		return -1;
	}
	return 0;
}

int dr_chan_poll(dr_chan *c, dr_msg *m, int *src, char *err, size_t errlen)
{
	int flag = 0, rc;
	MPI_Status st;

	if (c->nlocal > 0) {
		*m = c->local[0];
		memmove(c->local, c->local + 1, (c->nlocal - 1) * sizeof *m);
		c->nlocal--;
		*src = c->rank;
		return 1;
	}
	if (c->size == 1)
		return 0;
	rc = MPI_Iprobe(MPI_ANY_SOURCE, DR_TAG, c->comm, &flag, &st);
	if (rc == MPI_SUCCESS && !flag)
		return 0;
	if (rc == MPI_SUCCESS) {
		memset(m, 0, sizeof *m); /* only the used part of text travels */
		rc = MPI_Recv(m, (int)sizeof *m, MPI_BYTE, st.MPI_SOURCE, DR_TAG, c->comm, &st);
		m->text[sizeof m->text - 1] = '\0';
	}
	if (rc != MPI_SUCCESS) {
		char s[256];
		dr_mpi_strerror(rc, s, sizeof s);
		snprintf(err, errlen, "receiving a message failed: %s", s);
		return -1;
	}
	*src = st.MPI_SOURCE;
	return 1;
}
