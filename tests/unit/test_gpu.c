/* Unit tests for dr_gpu: which GPU each render node of a host takes. */
#include "dr_gpu.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* The GPU of node IDX of N, or -1 with ERR. */
static int assign(int idx, int n, const char *visible, int per_node, char *err, size_t len)
{
	int gpu = -2, ngpus = -2;

	err[0] = '\0';
	if (dr_gpu_assign(idx, n, "CUDA_VISIBLE_DEVICES", visible, per_node, "hostA", &gpu, &ngpus,
	                  err, len) != 0)
		return -1;
	return gpu;
}

static void test_no_list(void)
{
	char err[256];
	int ngpus = -1, gpu = -1;

	/* nothing narrows the devices: node i takes GPU i, Blender says whether it exists */
	is_int(assign(0, 4, NULL, 0, err, sizeof err), 0, "no list: node 0 takes GPU 0");
	is_int(assign(3, 4, NULL, 0, err, sizeof err), 3, "no list: node 3 takes GPU 3");
	ok(dr_gpu_assign(1, 2, NULL, NULL, 0, "h", &gpu, &ngpus, err, sizeof err) == 0 &&
	           ngpus == 0,
	   "no list: the number of GPUs is unknown here");
}

static void test_visible(void)
{
	char err[256];

	is_int(assign(0, 2, "4,5", 0, err, sizeof err), 0,
	       "CUDA_VISIBLE_DEVICES=4,5: node 0, GPU 0");
	is_int(assign(1, 2, "4,5", 0, err, sizeof err), 1,
	       "CUDA_VISIBLE_DEVICES=4,5: node 1, GPU 1");
	is_int(assign(2, 3, "GPU-aa,GPU-bb", 0, err, sizeof err), -1,
	       "more render nodes than visible GPUs: refused");
	ok(strstr(err, "3 render nodes on host hostA but 2 GPUs") &&
	           strstr(err, "--gpus-per-node 2 to share"),
	   "more nodes than GPUs: the numbers and what to do");
	is_int(assign(0, 1, "", 0, err, sizeof err), -1, "an empty list: refused");
	ok(strstr(err, "no GPU visible") != NULL, "an empty list: says so");
	is_int(assign(0, 1, "NoDevFiles", 0, err, sizeof err), -1, "Slurm's NoDevFiles: no GPU");
	/* Slurm --gpus-per-task binding: each rank sees its own one-entry list, alone in its group
	 */
	is_int(assign(0, 1, "3", 0, err, sizeof err), 0, "bound to one GPU: its first device");
}

static void test_sharing(void)
{
	char err[256];

	is_int(assign(0, 4, NULL, 2, err, sizeof err), 0, "--gpus-per-node 2: node 0 on GPU 0");
	is_int(assign(1, 4, NULL, 2, err, sizeof err), 1, "--gpus-per-node 2: node 1 on GPU 1");
	is_int(assign(2, 4, NULL, 2, err, sizeof err), 0, "--gpus-per-node 2: node 2 shares GPU 0");
	is_int(assign(3, 4, "0,1", 2, err, sizeof err), 1,
	       "--gpus-per-node 2 with 2 visible: node 3 shares GPU 1");
	is_int(assign(0, 2, "0", 2, err, sizeof err), -1,
	       "--gpus-per-node above the list: refused");
	ok(strstr(err, "--gpus-per-node 2") && strstr(err, "lists 1 GPU"),
	   "--gpus-per-node above the list: both numbers named");
	is_int(assign(2, 2, NULL, 0, err, sizeof err), -1, "an index out of range: refused");
}

static void test_visible_env(void)
{
	const char *name;

	unsetenv("CUDA_VISIBLE_DEVICES");
	unsetenv("HIP_VISIBLE_DEVICES");
	unsetenv("ROCR_VISIBLE_DEVICES");
	ok(dr_gpu_visible(&name) == NULL && name == NULL, "visible: none set");
	setenv("HIP_VISIBLE_DEVICES", "1", 1);
	ok(dr_gpu_visible(&name) && strcmp(name, "HIP_VISIBLE_DEVICES") == 0,
	   "visible: HIP_VISIBLE_DEVICES read");
	setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
	ok(strcmp(dr_gpu_visible(&name), "0,1") == 0 && strcmp(name, "CUDA_VISIBLE_DEVICES") == 0,
	   "visible: CUDA_VISIBLE_DEVICES first");
	unsetenv("CUDA_VISIBLE_DEVICES");
	unsetenv("HIP_VISIBLE_DEVICES");
}

int main(void)
{
	test_no_list();
	test_visible();
	test_sharing();
	test_visible_env();
	return done_testing();
}
