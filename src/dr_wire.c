/* The MPI wire's helpers: one way to receive a message, one way to report an MPI error. */
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
