/* How a drender process ends: signals noted, rank 0's status file, a barrier that does not spin,
 * and MPI_Finalize under a watchdog where a lost rank could keep it from returning. */
#ifndef DR_EXIT_H
#define DR_EXIT_H

#include <signal.h>

/* Note this process's RANK (rank 0 tells its status) and catch SIGINT, SIGTERM and SIGHUP (SIGPIPE
 * is ignored). Returns the flag a signal sets: the programs' loops check it and clean up. */
volatile sig_atomic_t *dr_exit_init(int rank);

/* Rank 0's last word: its exit status CODE, to the file named by DRENDER_STATUS_FILE (for
 * scripts/drender-mpirun, since mpirun --enable-recovery exits 0 whatever rank 0 returns).
 * Called on every exit path, just before MPI_Finalize or _exit. Returns CODE. */
int dr_exit_status(int code);

/* Wait for every rank, tell the status, finalize MPI. Returns CODE, for main to return. */
int dr_exit_finish(int code);

#endif
