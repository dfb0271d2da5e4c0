/* CPU sharing: how many Blender threads each render node gets on its host, from the affinity masks.
 */
#ifndef DR_CPUS_H
#define DR_CPUS_H

#include <mpi.h>
#include <sched.h>
#include <stddef.h>

/* Threads for the render node with index IDX (0-based) among NWORKERS on a host with NCPUS usable
 * CPUs: an even share, the remainder to the first ones, at least 1. Pure. */
int dr_cpus_share(int ncpus, int nworkers, int idx);

/* Collective over COMM (every rank calls it): the union of the affinity masks of all ranks on this
 * rank's host goes to CPUS, and *THREADS gets this rank's share among the host's render nodes
 * (IS_RENDER != 0 for a rank that renders). Returns 0, or -1 with ERR. */
int dr_cpus_plan(MPI_Comm comm, int is_render, cpu_set_t *cpus, int *threads, char *err,
                 size_t errlen);

#endif
