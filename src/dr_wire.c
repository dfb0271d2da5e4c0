/* The MPI wire's helpers: the peer table, one way to receive a message, one way to report an MPI
 * error. */
#include "dr_wire.h"
#include "dr_util.h"

#include <stdio.h>
#include <stdlib.h>

int dr_wire_fail(int rc, const char *what, char *err, size_t errlen)
{
	char buf[MPI_MAX_ERROR_STRING];
	int len = 0;

	if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS)
		snprintf(buf, sizeof buf, "MPI error %d", rc);
	return dr_seterr(err, errlen, "%s: %s", what, buf);
}

int dr_wire_recv(MPI_Comm comm, int src, int tag, void *buf, size_t max, int *n, int *from,
                 char *err, size_t errlen)
{
	MPI_Message msg;
	MPI_Status st;
	int flag, rc;

	if ((rc = MPI_Improbe(src, tag, comm, &flag, &msg, &st)) != MPI_SUCCESS)
		return dr_wire_fail(rc, "MPI_Improbe", err, errlen);
	if (!flag)
		return 0;
	if ((rc = MPI_Get_count(&st, MPI_BYTE, n)) != MPI_SUCCESS)
		return dr_wire_fail(rc, "MPI_Get_count", err, errlen);
	if (from)
		*from = st.MPI_SOURCE;
	if (*n < 0 || (size_t)*n > max) {
		void *sink = malloc(*n > 0 ? (size_t)*n : 1);
		rc = sink ? MPI_Mrecv(sink, *n > 0 ? *n : 0, MPI_BYTE, &msg, MPI_STATUS_IGNORE)
		          : MPI_ERR_NO_MEM;
		free(sink);
		return rc != MPI_SUCCESS ? dr_wire_fail(rc, "MPI_Mrecv", err, errlen) : 2;
	}
	if ((rc = MPI_Mrecv(buf, *n, MPI_BYTE, &msg, MPI_STATUS_IGNORE)) != MPI_SUCCESS)
		return dr_wire_fail(rc, "MPI_Mrecv", err, errlen);
	return 1;
}

int dr_wire_recv_from(dr_peer from, int tag, void *buf, size_t max, int *n, char *err,
                      size_t errlen)
{
	return dr_wire_recv(from.comm, from.rank, tag, buf, max, n, NULL, err, errlen);
}

int dr_wire_recv_any(const dr_peers *t, int tag, void *buf, size_t max, int *n, int *id, char *err,
                     size_t errlen)
{
	for (int i = 0; i < t->n; i++) {
		int k, from = -1;
		bool seen = false;

		for (int j = 0; j < i && !seen; j++) /* each communicator once */
			seen = t->p[j].comm == t->p[i].comm;
		if (seen || t->p[i].comm == MPI_COMM_NULL)
			continue;
		k = dr_wire_recv(t->p[i].comm, MPI_ANY_SOURCE, tag, buf, max, n, &from, err,
		                 errlen);
		if (k != 0) {
			*id = dr_peers_find(t, t->p[i].comm, from);
			return k;
		}
	}
	return 0;
}

int dr_peers_init(dr_peers *t, MPI_Comm comm, char *err, size_t errlen)
{
	int size = 0, rc;

	*t = (dr_peers){0};
	if ((rc = MPI_Comm_size(comm, &size)) != MPI_SUCCESS)
		return dr_wire_fail(rc, "MPI_Comm_size", err, errlen);
	for (int i = 0; i < size; i++)
		if (dr_peers_add(t, comm, i) < 0) {
			dr_peers_free(t);
			return dr_seterr(err, errlen, "out of memory");
		}
	return 0;
}

int dr_peers_add(dr_peers *t, MPI_Comm comm, int rank)
{
	size_t cap = (size_t)t->cap;

	if (dr_grow(&t->p, &cap, (size_t)t->n + 1, sizeof *t->p) != 0)
		return -1;
	t->cap = (int)cap;
	t->p[t->n] = (dr_peer){.comm = comm, .rank = rank};
	return t->n++;
}

dr_peer dr_peers_get(const dr_peers *t, int id)
{
	if (id < 0 || id >= t->n)
		return (dr_peer){.comm = MPI_COMM_NULL, .rank = -1};
	return t->p[id];
}

int dr_peers_find(const dr_peers *t, MPI_Comm comm, int rank)
{
	for (int i = 0; i < t->n; i++)
		if (t->p[i].comm == comm && t->p[i].rank == rank)
			return i;
	return -1;
}

void dr_peers_free(dr_peers *t)
{
	free(t->p);
	*t = (dr_peers){0};
}
