/* GPU assignment: which GPU each render node of a host drives, chosen by its local rank. */
#include "dr_gpu.h"

#include "dr_msg.h"
#include "dr_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Entries of a comma-separated device list; Slurm's "NoDevFiles" means none. */
static int count_visible(const char *v)
{
	int n = 0;

	if (strcmp(v, "NoDevFiles") == 0)
		return 0;
	while (*v) {
		size_t len = strcspn(v, ",");

		for (size_t i = 0; i < len; i++)
			if (v[i] != ' ') {
				n++;
				break;
			}
		v += len;
		if (*v == ',')
			v++;
	}
	return n;
}

int dr_gpu_assign(int idx, int nrender, const char *visible_name, const char *visible,
                  int gpus_per_node, const char *host, int *gpu, int *ngpus, char *err,
                  size_t errlen)
{
	int nvis = visible ? count_visible(visible) : -1;

	if (idx < 0 || nrender < 1 || idx >= nrender || gpus_per_node < 0)
		return dr_seterr(err, errlen, "internal error: render node %d of %d on host %s",
		                 idx, nrender, host);
	if (!visible_name)
		visible_name = "CUDA_VISIBLE_DEVICES";
	if (nvis == 0)
		return dr_seterr(err, errlen, "host %s: %s='%.64s' leaves no GPU visible", host,
		                 visible_name, visible);
	if (gpus_per_node > 0) {
		if (nvis > 0 && gpus_per_node > nvis)
			return dr_seterr(
			        err, errlen, "--gpus-per-node %d but %s on host %s lists %d GPU%s",
			        gpus_per_node, visible_name, host, nvis, nvis == 1 ? "" : "s");
		*gpu = idx % gpus_per_node;
		*ngpus = gpus_per_node;
		return 0;
	}
	if (nvis > 0 && nrender > nvis)
		return dr_seterr(err, errlen,
		                 "%d render nodes on host %s but %d GPU%s (%s=%.64s): use "
		                 "--gpus-per-node %d to share, or fewer ranks",
		                 nrender, host, nvis, nvis == 1 ? "" : "s", visible_name, visible,
		                 nvis);
	*gpu = idx;
	*ngpus = nvis > 0 ? nvis : 0;
	return 0;
}

const char *dr_gpu_visible(const char **name)
{
	static const char *const names[] = {"CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
	                                    "ROCR_VISIBLE_DEVICES"};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const char *v = getenv(names[i]);
		if (v) {
			*name = names[i];
			return v;
		}
	}
	*name = NULL;
	return NULL;
}

/* FNV-1a of S (NULL and "" differ), as a non-negative colour for MPI_Comm_split. */
static int colour_of(const char *s)
{
	uint32_t h = 2166136261u;

	if (!s)
		return 1;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return (int)(h & 0x3fffffff) + 2;
}

/* This process's local rank on its host: OMPI_COMM_WORLD_LOCAL_RANK, else FALLBACK. */
static int local_rank(int fallback)
{
	const char *v = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
	char *end;
	long r;

	if (!v || !*v)
		return fallback;
	errno = 0;
	r = strtol(v, &end, 10);
	return *end || errno || r < 0 || r > 1000000 ? fallback : (int)r;
}

#define WHY_LEN 256 /* bytes of each rank's failure gathered at rank 0 */

int dr_gpu_plan(MPI_Comm comm, int is_render, int gpus_per_node, bool enforce, int *gpu, char *why,
                size_t whylen, char *err, size_t errlen)
{
	MPI_Comm local = MPI_COMM_NULL, group = MPI_COMM_NULL;
	const char *vname, *visible = dr_gpu_visible(&vname);
	char host[256] = "", mine[WHY_LEN] = "", *all = NULL;
	int rc, rank = 0, size = 1, lrank = 0, idx = 0, n = 1, ngpus, bad = 0, anybad = 0, ret = -1;

	*gpu = -1;
	why[0] = '\0';
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "unknown-host");
	rc = MPI_Comm_rank(comm, &rank);
	if (rc == MPI_SUCCESS)
		rc = MPI_Comm_size(comm, &size);
	if (rc == MPI_SUCCESS)
		rc = MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
	if (rc == MPI_SUCCESS)
		rc = MPI_Comm_set_errhandler(local, MPI_ERRORS_RETURN);
	if (rc == MPI_SUCCESS)
		rc = MPI_Comm_rank(local, &lrank);
	/* render nodes that see the same devices, ordered by local rank */
	if (rc == MPI_SUCCESS)
		rc = MPI_Comm_split(local, is_render ? colour_of(visible) : MPI_UNDEFINED,
		                    local_rank(lrank), &group);
	if (rc == MPI_SUCCESS && group != MPI_COMM_NULL) {
		rc = MPI_Comm_rank(group, &idx);
		if (rc == MPI_SUCCESS)
			rc = MPI_Comm_size(group, &n);
	}
	if (rc != MPI_SUCCESS)
		goto mpi_failed;
	if (is_render && dr_gpu_assign(idx, n, vname, visible, gpus_per_node, host, gpu, &ngpus,
	                               mine, sizeof mine) != 0) {
		*gpu = -1;
		bad = 1;
		snprintf(why, whylen, "%s", mine);
	}
	if (!enforce) {
		ret = 0;
		goto out;
	}
	rc = MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, comm);
	if (rc == MPI_SUCCESS && anybad && rank == 0 && !(all = calloc((size_t)size, WHY_LEN))) {
		dr_seterr(err, errlen, "out of memory");
		rc = MPI_ERR_NO_MEM;
	}
	if (rc == MPI_SUCCESS && anybad)
		rc = MPI_Gather(mine, WHY_LEN, MPI_CHAR, all, WHY_LEN, MPI_CHAR, 0, comm);
	if (rc != MPI_SUCCESS)
		goto mpi_failed;
	if (!anybad) {
		ret = 0;
		goto out;
	}
	dr_seterr(err, errlen, "a render node has no GPU of its own");
	for (int r = 0; all && r < size; r++)
		if (all[(size_t)r * WHY_LEN]) {
			all[(size_t)r * WHY_LEN + WHY_LEN - 1] = '\0';
			dr_seterr(err, errlen, "%s", all + (size_t)r * WHY_LEN);
			break;
		}
	goto out;
mpi_failed:
	dr_wire_fail(rc, "sharing GPUs among this host's ranks failed", err, errlen);
out:
	free(all);
	if (group != MPI_COMM_NULL)
		MPI_Comm_free(&group);
	if (local != MPI_COMM_NULL)
		MPI_Comm_free(&local);
	return ret;
}
