/* Unit tests for dr_cpus: the even share of a host's CPUs, and the MPI plan for a single rank. */
#include "dr_cpus.h"
#include "tap.h"
#include "testmpi.h"

#include <stdlib.h>

static void test_share(void)
{
	static const struct {
		int ncpus, nworkers, idx, want;
	} t[] = {
	        {2, 2, 0, 1}, {2, 2, 1, 1},  {2, 1, 0, 2},  {3, 2, 0, 2},  {3, 2, 1, 1},
	        {1, 3, 0, 1}, {1, 3, 1, 1},  {1, 3, 2, 1},  {8, 3, 0, 3},  {8, 3, 1, 3},
	        {8, 3, 2, 2}, {16, 4, 3, 4}, {7, 7, 6, 1},  {5, 8, 7, 1},  {64, 1, 0, 64},
	        {0, 2, 0, 1}, {4, 0, 0, 1},  {-1, 1, 0, 1}, {4, -2, 0, 1},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		is_int(dr_cpus_share(t[i].ncpus, t[i].nworkers, t[i].idx), t[i].want,
		       "%d cpus, %d workers, worker %d -> %d", t[i].ncpus, t[i].nworkers, t[i].idx,
		       t[i].want);

	/* Shares add up to the CPU count whenever there are at least as many CPUs as workers. */
	int bad = 0;
	for (int c = 1; c <= 40; c++)
		for (int w = 1; w <= 12; w++) {
			int sum = 0, lo = c, hi = 0;
			for (int i = 0; i < w; i++) {
				int s = dr_cpus_share(c, w, i);
				sum += s;
				lo = s < lo ? s : lo;
				hi = s > hi ? s : hi;
				if (s < 1)
					bad++;
			}
			if ((c >= w && sum != c) || (c < w && sum != w) || hi - lo > 1)
				bad++;
		}
	is_int(bad, 0, "shares are even, at least 1, and use every CPU");
}

static void test_plan(void)
{
	cpu_set_t mask, cpus;
	int threads = -1, rc, size = 0;
	char err[256] = "";

	CPU_ZERO(&mask);
	ok(sched_getaffinity(0, sizeof mask, &mask) == 0, "read our affinity mask");
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	is_int(size, 1, "singleton MPI: one rank");

	CPU_ZERO(&cpus);
	rc = dr_cpus_plan(MPI_COMM_WORLD, 1, &cpus, &threads, err, sizeof err);
	is_int(rc, 0, "plan succeeds (%s)", err);
	is_int(threads, CPU_COUNT(&mask), "one rendering rank gets every CPU of its mask");
	ok(CPU_EQUAL(&cpus, &mask), "the host's CPUs are our mask");

	threads = -1;
	rc = dr_cpus_plan(MPI_COMM_WORLD, 0, &cpus, &threads, err, sizeof err);
	ok(rc == 0 && threads == 1, "a rank that does not render gets 1 (got %d)", threads);
}

int main(void)
{
	setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
	setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
	test_share();
	LEAKS_OFF();
	int rc = MPI_Init(NULL, NULL);
	LEAKS_ON();
	if (rc != MPI_SUCCESS) {
		ok(0, "MPI_Init");
		return done_testing();
	}
	test_plan();
	LEAKS_OFF();
	MPI_Finalize();
	LEAKS_ON();
	return done_testing();
}
