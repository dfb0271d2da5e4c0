/* CPU sharing: how many Blender threads each render node gets on its host, from the affinity masks.
 */
#include "dr_cpus.h"

#include "dr_msg.h"

#include <stdio.h>
#include <string.h>

int dr_cpus_share(int ncpus, int nworkers, int idx)
{
	int t;
	if (ncpus < 1 || nworkers < 1)
		return 1;
	t = ncpus / nworkers + (idx < ncpus % nworkers ? 1 : 0);
	return t < 1 ? 1 : t;
}

int dr_cpus_plan(MPI_Comm comm, int is_render, cpu_set_t *cpus, int *threads, char *err,
                 size_t errlen)
{
	MPI_Comm local = MPI_COMM_NULL;
	cpu_set_t mine;
	int rc, nrender = 0, idx = 0, lrank = 0, ret = -1;

	CPU_ZERO(&mine);
	if (sched_getaffinity(0, sizeof mine, &mine) != 0) {
		snprintf(err, errlen, "cannot read this process's CPU affinity");
		return -1;
	}
	rc = MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
	if (rc == MPI_SUCCESS)
		rc = MPI_Comm_set_errhandler(local, MPI_ERRORS_RETURN);
	if (rc == MPI_SUCCESS)
		rc = MPI_Comm_rank(local, &lrank);
	/* Bitwise OR of the raw masks: the CPUs any rank of this job may use on this host. */
	if (rc == MPI_SUCCESS)
		rc = MPI_Allreduce(&mine, cpus, (int)sizeof mine, MPI_BYTE, MPI_BOR, local);
	if (rc == MPI_SUCCESS)
		rc = MPI_Allreduce(&is_render, &nrender, 1, MPI_INT, MPI_SUM, local);
	if (rc == MPI_SUCCESS)
		rc = MPI_Exscan(&is_render, &idx, 1, MPI_INT, MPI_SUM, local);
	if (rc != MPI_SUCCESS) {
		dr_wire_fail(rc, "sharing CPUs among this host's ranks failed", err, errlen);
		goto out;
	}
	if (lrank == 0)
		idx = 0; /* MPI_Exscan leaves rank 0's result undefined */
	*threads = dr_cpus_share(CPU_COUNT(cpus), nrender, idx);
	ret = 0;
out:
	if (local != MPI_COMM_NULL)
		MPI_Comm_free(&local);
	return ret;
}
