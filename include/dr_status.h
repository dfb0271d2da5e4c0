/* Rank 0's exit status, told through a file for the launcher (scripts/drender-mpirun): under
 * `mpirun --enable-recovery`, mpirun's own exit status is 0 whatever rank 0 returns. */
#ifndef DR_STATUS_H
#define DR_STATUS_H

#include <stddef.h>

/* The variable naming the file; unset or empty: nothing is written. */
#define DR_STATUS_ENV "DRENDER_STATUS_FILE"

/* Write CODE as one line ("75\n") to PATH, atomically: a temporary file next to it, then a
 * rename, so a reader sees the whole line or no file. Uses only open/write/rename (no stdio,
 * no allocation). Returns 0, or -1 with the reason in ERR. */
int dr_status_write(const char *path, int code, char *err, size_t errlen);

/* dr_status_write to the file named by DRENDER_STATUS_FILE, when it is set; 0 when unset. */
int dr_status_tell(int code, char *err, size_t errlen);

#endif
