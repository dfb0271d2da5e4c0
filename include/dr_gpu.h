/* GPU assignment: which GPU each render node of a host drives, chosen by its local rank. */
#ifndef DR_GPU_H
#define DR_GPU_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Render nodes on one host take distinct GPUs in the order of their local rank
 * (OMPI_COMM_WORLD_LOCAL_RANK); rank 0 renders nothing and takes none. The index is a position in
 * the list of devices Blender sees, which CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES (set by the
 * user, or by Slurm's --gpus binding) already narrow: with a binding that gives each rank its own
 * list, every rank is alone with its list and takes its first device.
 */

/* The GPU (0-based, among the devices Blender sees) for the render node IDX (0-based, by local
 * rank) of NRENDER render nodes on HOST that see the same devices. VISIBLE is the value of the
 * environment variable VISIBLE_NAME (e.g. CUDA_VISIBLE_DEVICES), NULL when unset; GPUS_PER_NODE is
 * --gpus-per-node (0 = not given), which says how many GPUs the render nodes share round-robin.
 * *NGPUS gets the number of GPUs known from these (0 = unknown: Blender will say). Pure.
 * Returns 0 with *GPU, or -1 with ERR naming the numbers and what to do. */
int dr_gpu_assign(int idx, int nrender, const char *visible_name, const char *visible,
                  int gpus_per_node, const char *host, int *gpu, int *ngpus, char *err,
                  size_t errlen);

/* The variable that narrows the GPUs of this process (CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES,
 * ROCR_VISIBLE_DEVICES, first set wins) into *NAME and its value (NULL when none is set). */
const char *dr_gpu_visible(const char **name);

/* Collective over COMM (every rank calls it): each render node (IS_RENDER) learns its GPU into
 * *GPU, or -1 with WHY (an assignment that failed: more render nodes than GPUs). With ENFORCE (a
 * GPU device was asked for on the command line) one failure anywhere fails every rank: returns -1
 * on all of them, and rank 0's ERR names the first one. Returns 0 otherwise. */
int dr_gpu_plan(MPI_Comm comm, int is_render, int gpus_per_node, bool enforce, int *gpu, char *why,
                size_t whylen, char *err, size_t errlen);

#endif
