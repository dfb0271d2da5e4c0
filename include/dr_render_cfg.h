/* Job settings: what Blender renders and where frames go, one type from request to render node. */
#ifndef DR_RENDER_CFG_H
#define DR_RENDER_CFG_H

#include "dr_outpath.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Most samples a job may ask for. */
#define DR_SAMPLES_MAX (1 << 24)

/*
 * One job's settings. A command line or a POST /render body becomes one of these once; it travels
 * inside the job (the job table, the orchestrator, the JOB message) and is decoded once on the
 * render node, which hands it to Blender. Its JSON form (journal and wire alike) is the object
 *   {"scene": "...", "output": "...", "format": "PNG", "engine": "", "samples": 0, "device": ""}
 * whose members other objects (a journal record) may carry alongside their own ("device" may be
 * missing: text written before it existed means the scene's device).
 */
typedef struct dr_render_cfg {
	char scene[DR_PATH_MAX];  /* .blend as Blender opens it */
	char output[DR_PATH_MAX]; /* output pattern with '#' padding; "" = the default */
	char format[32];          /* canonical Blender format name, e.g. "PNG" */
	char engine[32];          /* canonical engine name, "" = the scene's */
	int samples;              /* 0 = the scene's */
	char video[DR_PATH_MAX];  /* a video of the frames to make at the end (.mp4, .webm, .mov);
	                           * "" = none. JSON member "video", absent when "" */
	double fps;               /* the video's frame rate; 0 = the scene's. JSON "fps", absent
	                           * when 0 */
	char device[16];          /* CPU, CUDA, OPTIX, HIP, ONEAPI or AUTO; "" = the scene's */
	/* A still split by samples (dr_render_cfg_set_still): the job's "frames" are range indices
	 * 0..ranges-1, each rendered to a multilayer EXR named by OUTPUT/FORMAT above; the merged
	 * image goes to still_output (FORMAT still_format). JSON "still", "ranges", "stillOutput",
	 * "stillFormat", absent when ranges is 0. */
	int still;                      /* the frame */
	int ranges;                     /* sample ranges; 0 = not a still split */
	char still_output[DR_PATH_MAX]; /* the merged image's pattern ("" = the default) */
	char still_format[32];          /* the merged image's format */
	/* The merge of a still split (dr_render_cfg_set_merge): a job of one frame, the still,
	 * made by merging the ranges instead of rendering. JSON "merge": true, absent when false.
	 */
	bool merge;
	/* The exact version of the scene the job renders: its content's SHA-256 (dr_cache_version)
	 * as rank 0 found it when the job was added; a warm Blender loaded for another version is
	 * reloaded. "" = not named. JSON "sceneVersion", absent when "". */
	char version[72];
} dr_render_cfg;

/* Fill C from its parts, checked and made canonical: SCENE non-empty; OUTPUT NULL or "" for the
 * default; FORMAT NULL for PNG, else any name dr_format_canonical knows (not a movie); ENGINE NULL
 * or "" for the scene's, else any name dr_engine_canonical knows; SAMPLES 0..DR_SAMPLES_MAX.
 * Returns 0, or -1 with ERR naming the bad part and C untouched. */
int dr_render_cfg_init(dr_render_cfg *c, const char *scene, const char *output, const char *format,
                       const char *engine, int samples, char *err, size_t errlen);

/* A job's settings in parts, as a command line gives them. */
typedef struct dr_render_args {
	const char *scene, *output, *format, *engine; /* as dr_render_cfg_init takes them */
	int samples;
	const char *video; /* NULL or "": no video (dr_render_cfg_set_video) */
	double fps;
	int still, ranges; /* ranges > 0: a still split (dr_render_cfg_set_still) */
	bool resolve;      /* resolve the output pattern (dr_render_cfg_outpath) before the split */
} dr_render_args;

/* The one builder of a job's settings from parts: dr_render_cfg_init, the video, the output
 * pattern resolved (A->resolve) and the still split, in that order. 0, or -1 with ERR and C
 * untouched. */
int dr_render_cfg_build(dr_render_cfg *c, const dr_render_args *a, char *err, size_t errlen);

/* Ask C for a video at VIDEO (NULL or "" = none; see dr_video_check_path) made at FPS frames per
 * second (0 = the scene's). 0, or -1 with ERR and C untouched. */
int dr_render_cfg_set_video(dr_render_cfg *c, const char *video, double fps, char *err,
                            size_t errlen);
/* Most sample ranges one still may be cut into. */
#define DR_RANGES_MAX 1024

/* Make C a still split: frame FRAME (>= 0) cut into RANGES (2..DR_RANGES_MAX) sample ranges.
 * C's output pattern and format become the merged image's; the ranges are written as
 * OPEN_EXR_MULTILAYER next to it, "<merged image's path>.range-####.exr". No video. 0, or -1
 * with ERR and C untouched. */
int dr_render_cfg_set_still(dr_render_cfg *c, int frame, int ranges, char *err, size_t errlen);

/* Make a still split C (dr_render_cfg_set_still) the job that merges its ranges: its one frame is
 * the still, its OUTPUT and FORMAT the merged image's (still_output, still_format); the ranges
 * stay named by the still's settings (dr_render_cfg_ranges_of). 0, or -1 with ERR and C
 * untouched. */
int dr_render_cfg_set_merge(dr_render_cfg *c, char *err, size_t errlen);

/* The still split (the ranges' job) that the merge job M (dr_render_cfg_set_merge) merges, into
 * RANGES. 0, or -1 with ERR. */
int dr_render_cfg_ranges_of(const dr_render_cfg *m, dr_render_cfg *ranges, char *err,
                            size_t errlen);

/* Whether the merge job M (dr_render_cfg_set_merge) can run in a warm Blender loaded for LOADED:
 * the same still's ranges (scene, engine, samples, device, frame, ranges). */
bool dr_render_cfg_merges_in(const dr_render_cfg *m, const dr_render_cfg *loaded);

/* Samples of range K (0-based) of RANGES over SAMPLES: sizes decrease linearly (weights 2R, 2R-1,
 * ..., R+1), so the long ranges start first and the short ones fill the end; OFFSET is where it
 * starts in the sample sequence. The driver cuts ranges the same way (range_of in driver.py).
 * Returns the count, or -1 for arguments out of range. */
int dr_render_cfg_range_samples(int samples, int ranges, int k, int *offset);

/* The merged image's path of a still split C. 0, or -1 with ERR. */
int dr_render_cfg_still_path(const dr_render_cfg *c, char *buf, size_t len, char *err,
                             size_t errlen);

/* Set C's device from NAME (any case; NULL or "" = the scene's): cpu, cuda, optix, hip, oneapi or
 * auto. 0, or -1 with ERR listing the choices and C untouched. */
int dr_render_cfg_set_device(dr_render_cfg *c, const char *name, char *err, size_t errlen);

/* Device name as drender passes it to Blender (CPU, CUDA, OPTIX, HIP, ONEAPI, AUTO) for NAME in
 * any case; NULL if unknown. */
const char *dr_device_canonical(const char *name);

/* True for a device that is a GPU backend (CUDA, OPTIX, HIP, ONEAPI), not CPU, AUTO or "". */
bool dr_device_is_gpu(const char *canon);

/* Add C's members to the JSON object O. 0, or -1 on out of memory. */
int dr_render_cfg_add_json(const dr_render_cfg *c, cJSON *o);

/* Read C's members from the JSON object O (checked as dr_render_cfg_init does). 0, or -1 with
 * ERR naming the member; C untouched on failure. */
int dr_render_cfg_from_json(const cJSON *o, dr_render_cfg *c, char *err, size_t errlen);

/* C as JSON text into BUF (the JOB message). 0, or -1 if it does not fit or out of memory. */
int dr_render_cfg_encode(const dr_render_cfg *c, char *buf, size_t len);

/* Back from dr_render_cfg_encode's text. 0, or -1 with ERR; C untouched on failure. */
int dr_render_cfg_decode(const char *text, dr_render_cfg *c, char *err, size_t errlen);

/* True when A and B need the same loaded Blender (scene, format, engine, samples and device agree;
 * the output pattern travels with each frame). */
bool dr_render_cfg_same_blender(const dr_render_cfg *a, const dr_render_cfg *b);

/* Naming of C's frames (dr_outpath_init with C's pattern, scene and format). 0, or -1 with ERR. */
int dr_render_cfg_outpath(const dr_render_cfg *c, dr_outpath *o, char *err, size_t errlen);

/* Engine name as Blender knows it (CYCLES, BLENDER_EEVEE, BLENDER_WORKBENCH) for NAME in any
 * case, or the short names cycles/eevee/workbench; NULL if unknown. */
const char *dr_engine_canonical(const char *name);

#endif
