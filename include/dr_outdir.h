/* Output directories: create them, prove they are writable, and remove stale temporary files. */
#ifndef DR_OUTDIR_H
#define DR_OUTDIR_H

#include "dr_err.h"
#include "dr_frames.h"
#include "dr_outpath.h"
#include "dr_render_cfg.h"

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

/* Open the regular file PATH for reading, refusing a symlink as its last component and, when ROOT
 * (a real path) is given, a file whose real location (of the open descriptor, so no race with a
 * rename) is not under ROOT. Returns the descriptor; or -1 with ERR and *KIND: DR_E_NOT_FOUND
 * when there is no such file, DR_E_FORBIDDEN when it is refused (or not readable), DR_E_INTERNAL
 * when it cannot be opened for another reason. */
int dr_outdir_open_confined(const char *path, const char *root, dr_err *kind, char *err,
                            size_t errlen);

/* Name of the manifest in an output directory: what its frames were made from. */
#define DR_OUTDIR_MANIFEST ".drender-manifest.json"

/*
 * What a directory's frames were made from. A skip (a frame whose file exists is not rendered
 * again) is right only when these agree, so a run or job into a directory whose manifest says
 * otherwise is refused unless it overwrites. Its JSON form:
 *   {"scene": "/real/path.blend", "size": 123, "mtime_ns": 1700000000123456789,
 *    "format": "PNG", "engine": "", "samples": 0}
 */
typedef struct dr_outdir_manifest {
	char scene[DR_PATH_MAX]; /* real path of the .blend */
	long long size;          /* its size in bytes */
	long long mtime_ns;      /* its modification time, nanoseconds since the epoch */
	char format[32];         /* canonical format name */
	char engine[32];         /* canonical engine name, "" = the scene's */
	int samples;             /* 0 = the scene's */
} dr_outdir_manifest;

/* The manifest of job settings C (its scene is looked at: real path, size, mtime). 0, or -1
 * with ERR naming the scene. */
int dr_outdir_manifest_of(const dr_render_cfg *c, dr_outdir_manifest *m, char *err, size_t errlen);

/* M as one line of JSON (with a newline) into BUF. 0, or -1 if it does not fit. */
int dr_outdir_manifest_encode(const dr_outdir_manifest *m, char *buf, size_t len);

/* Back from dr_outdir_manifest_encode's text. 0, or -1 with ERR; M untouched on failure. */
int dr_outdir_manifest_decode(const char *text, dr_outdir_manifest *m, char *err, size_t errlen);

/* True when HAVE (a directory's) and WANT (a new run's) differ; WHY then names every difference,
 * e.g. "scene /a.blend, not /b.blend; samples 64, not 128". */
bool dr_outdir_manifest_differs(const dr_outdir_manifest *have, const dr_outdir_manifest *want,
                                char *why, size_t whylen);

/* Check output directory DIR against WANT: no manifest or the same one is fine; another one is
 * refused (DR_E_CONFLICT, ERR naming DIR and the differences) unless OVERWRITE. With WRITE,
 * a missing (or, with OVERWRITE, a different) manifest is then written (atomically). A manifest
 * that cannot be read counts as a different one. Returns DR_OK, or DR_E_CONFLICT or
 * DR_E_INTERNAL (a path too long, a manifest that cannot be written) with ERR. */
dr_err dr_outdir_manifest_check(const char *dir, const dr_outdir_manifest *want, bool write,
                                bool overwrite, char *err, size_t errlen);

/* dr_outdir_manifest_check for the directory of the frames' first final path, with the manifest
 * of C. */
dr_err dr_outdir_manifest_check_frames(const dr_outpath *o, const dr_frames *f,
                                       const dr_render_cfg *c, bool write, bool overwrite,
                                       char *err, size_t errlen);

#endif
