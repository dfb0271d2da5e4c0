/* Job specs: what one job renders, from the command line or an HTTP request body, validated. */
#ifndef DR_JOBSPEC_H
#define DR_JOBSPEC_H

#include "dr_err.h"
#include "dr_frames.h"
#include "dr_outpath.h"
#include "dr_render_cfg.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct dr_jobspec {
	dr_render_cfg render; /* scene (absolute for HTTP jobs), output ("" = decided on submit),
	                       * format, engine, samples */
	int priority;         /* higher runs first; default 0 */
	dr_frames frames;     /* owned */
	/* "still"/"split" and "video" wait for the output pattern (dr_jobspec_finish) */
	int still_ranges; /* a still split into this many ranges is still to be set up; 0 = none */
	int still_frame;
	bool video_pending; /* "video": true: a video named after the scene, next to the frames */
	double video_fps;
} dr_jobspec;

typedef struct dr_jobspec_limits {
	const char *blend_root;    /* real path; "blend" must resolve (symlinks too) under it */
	const char *output_root;   /* real path; "output" names a directory under it */
	const char *default_scene; /* --scene (real path), used when the body names no "blend"; or
	                              NULL */
	size_t max_frames;         /* most frames one job may ask for */
	int auto_ranges;           /* "split": "auto": ranges (2 per render node); 0 = 4 */
} dr_jobspec_limits;

/*
 * Parse and validate a POST /render body (LEN bytes, not NUL-terminated):
 *   {"from": 1, "to": 20}  or  {"frames": "1-20,30"}   (exactly one of the two forms)
 *   optional: "blend" (relative path under blend_root), "output" (a name: letters, digits, '-',
 *   '_', '.', not starting with '.'), "engine", "format", "samples" (1..2^24), "priority"
 *   (-1000..1000), "device".
 *   A still instead of frames: {"still": 3, "split": 8} or "split": "auto" (the default: LIM's
 *   auto_ranges), no "from"/"to"/"frames"; the job's frames are then the ranges 0..N-1.
 *   "video": true (+ optional "fps", 0 < fps <= 1000) encodes the frames at the end (not with a
 *   still).
 * The output pattern becomes "<output_root>/<output>/<scene name>_####" when "output" is given,
 * else it is left "" (the job table fills in "<output_root>/<job id>/<scene name>_####").
 * Returns DR_OK and fills OUT; or an error kind with a message naming the field in ERR:
 * DR_E_INVALID malformed JSON, wrong types, bad or absurd frame ranges, unknown engine/format,
 * unknown fields, strings that are not UTF-8 or hold a NUL, no "blend" and no default scene;
 * DR_E_TOO_LARGE more frames than LIM's max_frames; DR_E_FORBIDDEN a path that escapes its root
 * (absolute, "..", or a symlink leading outside); DR_E_NOT_FOUND a "blend" that does not exist;
 * DR_E_NOMEM. On failure OUT is untouched. No I/O beyond realpath/stat on the blend path. */
dr_err dr_jobspec_from_json(const char *body, size_t len, const dr_jobspec_limits *lim,
                            dr_jobspec *out, char *err, size_t errlen);

/* Re-check, when a job starts (or is read back from the journal), that its paths are still where
 * they were when it was accepted: the scene's real path is itself (no symlink was put on its way)
 * and under LIM's blend root (or is the default scene), and the output directory, if it exists,
 * is itself and under the output root. 0, or -1 with ERR naming the path. */
int dr_jobspec_confined(const dr_jobspec *s, const dr_jobspec_limits *lim, char *err,
                        size_t errlen);

/* Journal form: every field, frames as a spec string. NULL on out of memory. */
cJSON *dr_jobspec_to_json(const dr_jobspec *s);

/* Back from the journal form (trusted input, still checked). 0, or -1 with ERR. */
int dr_jobspec_from_journal(const cJSON *j, dr_jobspec *out, char *err, size_t errlen);

/* Once S's output pattern is known: a "still" becomes a still split (dr_render_cfg_set_still: the
 * ranges as frames 0..N-1) and "video": true a video "<output dir>/<scene name>.mp4" at "fps"
 * (0 = the scene's). Does nothing the second time. 0, or -1 with ERR. */
int dr_jobspec_finish(dr_jobspec *s, char *err, size_t errlen);

/* Set S's output pattern to "<ROOT>/<DIR>/<scene name>_####" (the scene's basename without
 * ".blend", '#' replaced by '_'). 0, or -1 with ERR (too long) and S untouched. */
int dr_jobspec_set_output(dr_jobspec *s, const char *root, const char *dir, char *err,
                          size_t errlen);

/* Deep copy. 0, or -1 on out of memory. */
int dr_jobspec_copy(dr_jobspec *dst, const dr_jobspec *src);

void dr_jobspec_free(dr_jobspec *s);

#endif
