/* How a drender process ends: signals noted, rank 0's status file, a barrier that does not spin,
 * and MPI_Finalize under a watchdog. */
#include "dr_exit.h"

#include "dr_log.h"
#include "dr_msg.h"
#include "dr_status.h"
#include "dr_util.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Set by SIGINT/SIGTERM/SIGHUP; the loops check it and clean up. */
static volatile sig_atomic_t interrupted;

/* This process's rank once MPI has said it; -1 before. */
static int my_rank = -1;

static void on_signal(int sig)
{
	interrupted = sig;
}

volatile sig_atomic_t *dr_exit_init(int rank)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	my_rank = rank;
	return &interrupted;
}

/* Seconds MPI_Finalize may take under --enable-recovery before the process leaves without it. */
#define FINALIZE_GRACE_S 10

static volatile int exit_code; /* for the finalize watchdog */

int dr_exit_status(int code)
{
	char err[DR_ERRLEN];

	if (my_rank == 0 && dr_status_tell(code, err, sizeof err) != 0)
		dr_error("%s", err);
	return code;
}

static void *finalize_watchdog(void *arg)
{
	(void)arg;
	dr_sleep_ms(FINALIZE_GRACE_S * 1000.0);
	_exit(exit_code);
	return NULL;
}

/* Wait for every rank without spinning (a blocking MPI_Barrier busy-polls a core), then finalize.
 * Under mpirun --enable-recovery a rank may be dead: a barrier over the world would never
 * complete, and MPI_Finalize's own fence sometimes waits for the dead too (seen with Open MPI
 * 4.1: survivors sleeping in ompi_mpi_finalize for good after a rank was killed). There the
 * barrier is left out and a watchdog thread ends the process with CODE if MPI_Finalize has not
 * returned after FINALIZE_GRACE_S seconds. */
int dr_exit_finish(int code)
{
	MPI_Request req;
	pthread_t watchdog;
	int done = 0, size = 1;
	bool recovery = dr_mpi_recovery();

	if (MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS)
		size = 1;
	if (size > 1 && !recovery && MPI_Ibarrier(MPI_COMM_WORLD, &req) == MPI_SUCCESS) {
		while (!done && !interrupted) {
			if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
				break;
			if (!done)
				dr_sleep_ms(2);
		}
		if (!done)
			return dr_exit_status(
			        code); /* interrupted or broken: no MPI_Finalize hang */
	}
	exit_code = code;
	dr_exit_status(code);
	fflush(NULL);
	if (size > 1 && recovery && pthread_create(&watchdog, NULL, finalize_watchdog, NULL) == 0)
		pthread_detach(watchdog);
	MPI_Finalize();
	return code;
}
