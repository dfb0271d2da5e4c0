/* Output directories: create them, prove they are writable, and remove stale temporary files. */
#ifndef DR_OUTDIR_H
#define DR_OUTDIR_H

#include "dr_frames.h"
#include "dr_outpath.h"

#include <stdbool.h>
#include <stddef.h>

/* Create (like mkdir -p) every directory the frames' final paths need and check that a file can
 * be created in each. Returns 0, or -1 with a message naming the directory and the system error. */
int dr_outdir_prepare(const dr_outpath *o, const dr_frames *f, char *err, size_t errlen);

/* Temporary-file tag of this process: "<host>-<pid>", with characters outside [A-Za-z0-9._-]
 * replaced by '_'. */
void dr_outdir_tag(const char *host, char *buf, size_t len);

/* Remove temporary files in the frames' directories left by dead processes of this host (their
 * tag names HOST and a pid that no longer runs). Returns how many were removed. */
size_t dr_outdir_clean_stale(const dr_outpath *o, const dr_frames *f, const char *host);

/* Name of the lock file in an output directory. */
#define DR_OUTDIR_LOCK ".drender-lock"

/* Take output directory DIR for one run or job: an exclusive flock on DIR/.drender-lock, which
 * then names HOLDER (e.g. "host vm pid 123 job abc"). Returns the lock's descriptor (keep it
 * open for as long as the directory is owned; closing it releases the lock); or -1 with ERR, and
 * errno EBUSY when another run or job holds it (ERR names that holder). */
int dr_outdir_lock(const char *dir, const char *holder, char *err, size_t errlen);

/* The lock for the directory of the frames' first final path, made first if need be (see
 * dr_outdir_lock). */
int dr_outdir_lock_frames(const dr_outpath *o, const dr_frames *f, const char *holder, char *err,
                          size_t errlen);

/* Is the real path P at or below the real directory ROOT (on a path-component boundary)? */
bool dr_outdir_under(const char *p, const char *root);

/* Open the regular file PATH for reading, refusing a symlink as its last component and, when ROOT
 * (a real path) is given, a file whose real location (of the open descriptor, so no race with a
 * rename) is not under ROOT. Returns the descriptor; or -1 with ERR, and errno ENOENT when there
 * is no such file, EACCES when it is refused. */
int dr_outdir_open_confined(const char *path, const char *root, char *err, size_t errlen);

#endif
