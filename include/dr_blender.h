/* Blender supervision: one warm Blender fed over pipes, or one Blender per frame; never via a
 * shell. */
#ifndef DR_BLENDER_H
#define DR_BLENDER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* cpu_set_t; the Makefile passes -D_GNU_SOURCE too */
#endif
#include "dr_render_cfg.h"
#include "dr_util.h"

#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Warm mode protocol (src/driver.py runs inside Blender, embedded in the binary):
 *
 *   blender -b SCENE [--disable-autoexec] -t THREADS --python $TMPDIR/drender-UID/driver-HASH.py --
 *           --drender-fds CMD_FD,REPLY_FD --drender-settings '<json>'
 *
 * settings json: {"engine": "CYCLES"|null, "samples": N|0, "format": "PNG", "threads": N,
 *                 "device": "CUDA"|...|"", "gpu": N|-1, "gpu_why": "..."|null,
 *                 "gpu_threads": N|0, "persistent_data": true|false [, "assets": true]}
 * Commands (one JSON object per line on CMD_FD):
 *   {"cmd": "render", "frame": 12, "path": "/abs/dir/.drender-tmp-host-1-0000012"
 *    [, "thumb": "/abs/dir/.thumbs/.drender-tmp-host-1-0000012.thumb"]}
 *     With "thumb", the driver also writes a small PNG preview of the frame there (160 px wide,
 *     tone-mapped by Blender's colour management) once the frame is written; a preview that
 *     cannot be made is skipped, never an error. Drivers that do not know "thumb" ignore it.
 *   {"cmd": "quit"}
 * Replies (one JSON object per line on REPLY_FD):
 *   {"event": "ready", "scene": "Scene", "engine": "CYCLES", "frame_start": 1, "frame_end": 250,
 *    "device": "CUDA:0 NVIDIA A100"           (the devices Cycles will use, or "CPU")
 *    [, "assets": [{"kind": "image", "name": "checker.png", "path": "//tex/checker.png",
 *                   "abs": "/s/tex/checker.png", "exists": false, "packed": false}, ...]]
 *    [, "assets_error": "..."]}               (with the setting "assets": the scene's external
 *                                              files, see dr_assets.h; or why they could not
 *                                              be listed)
 *   {"event": "fatal", "error": "..."}        (the settings cannot be honoured, e.g. a GPU type
 *                                              Blender does not see; Blender then exits)
 *   {"event": "done", "frame": 12, "seconds": 1.25, "peak_mb": 321.5}
 *   (a still's range adds "samples": the range's sample count)
 *   {"event": "error", "frame": 12, "error": "Python traceback or message"}
 * If Blender cannot load SCENE it exits (status 0) without running the driver: EOF before "ready"
 * is a load failure, and the tail of Blender's output says why.
 *
 * One-shot mode runs, per frame:
 *   blender -b SCENE [--disable-autoexec] -t THREADS -o <tmp with digits as '#######'> -x 0
 *           -F FORMAT [-E ENGINE] [--python-expr <set samples>] -f FRAME
 * and the frame is done when Blender exits 0 and the temporary file exists.
 *
 * In both modes Blender runs under dr_proc (see dr_proc.h): its own process group, killed with its
 * parent, stdin from /dev/null, stdout+stderr into a pipe whose last few KiB are kept for error
 * messages (and echoed to our stderr when verbose).
 */

typedef struct dr_blender_cfg {
	const char *exe;       /* Blender executable: path, or a name looked up in PATH */
	dr_render_cfg render;  /* scene, format ("" = PNG), engine ("" = the scene's), samples
	                        * (0 = the scene's); the output pattern is not used here.
	                        * A merge job (render.merge, dr_render_cfg_set_merge) runs one
	                        * short-lived Blender per "frame" (the still) that merges the
	                        * ranges into the temporary path, as a one-shot render would */
	int threads;           /* >= 1 */
	bool one_shot;         /* start Blender per frame instead of keeping one warm */
	bool allow_autoexec;   /* omit --disable-autoexec */
	bool verbose;          /* echo Blender's output to our stderr */
	const cpu_set_t *cpus; /* affinity for Blender, NULL = inherit ours */
	int gpu;               /* the GPU among those Blender sees for a GPU device, -1 = none */
	const char *gpu_why;   /* why there is none, or NULL */
	int gpu_threads;       /* threads for a node that renders on a GPU, 0 = THREADS */
	bool persistent_data;  /* warm: keep Cycles' render data between frames */
	double load_timeout;   /* warm: seconds a Blender may take to load the scene and say
	                        * "ready" before it is killed (DR_BL_LOAD_FAILED); 0 = no limit */
	bool list_assets;      /* warm: "ready" lists the scene's external files (dr_assets.h),
	                        * read with dr_blender_assets */
} dr_blender_cfg;

enum dr_bl_kind {
	DR_BL_NONE = 0,    /* nothing happened within the timeout */
	DR_BL_READY,       /* warm Blender has loaded the scene (one-shot: reported at once) */
	DR_BL_LOAD_FAILED, /* Blender could not load the scene; error says why */
	DR_BL_DONE,        /* frame rendered to the temporary path (not yet validated) */
	DR_BL_FAILED, /* frame failed: Python error, crash, non-zero exit, ...; error says why */
};

typedef struct dr_bl_event {
	enum dr_bl_kind kind;
	int frame;             /* for DONE and FAILED */
	double seconds;        /* render seconds for DONE */
	char error[DR_ERRLEN]; /* for LOAD_FAILED and FAILED */
	char device[128];      /* READY: the devices Cycles uses ("" = not said) */
	double peak_mb;        /* DONE: Blender's peak memory so far (MiB), 0 = unknown */
	int samples;           /* DONE: samples of a still's range ("samples"), 0 = not said */
} dr_bl_event;

typedef struct dr_blender dr_blender;

/* Start Blender (warm: spawn it now; one-shot: only check that EXE can be found).
 * The config's strings are copied. Returns NULL with ERR on failure (e.g. executable not found). */
dr_blender *dr_blender_create(const dr_blender_cfg *cfg, char *err, size_t errlen);

/* Ask for FRAME to be rendered to TMP_PATH (see dr_outpath_temp). Only one frame at a time.
 * If the warm Blender has died since, it is restarted first. Returns 0 or -1 with ERR. */
int dr_blender_render(dr_blender *b, int frame, const char *tmp_path, char *err, size_t errlen);

/* The same, asking a warm Blender for a thumbnail at THUMB too (NULL: none; one-shot mode makes
 * none). */
int dr_blender_render_thumb(dr_blender *b, int frame, const char *tmp_path, const char *thumb,
                            char *err, size_t errlen);

/* A still's merge job (MERGE, render.merge) in this warm Blender, loaded for the same still's
 * ranges (dr_render_cfg_merges_in): as dr_blender_render, but "frame" FRAME (the still) is
 * merged from the ranges into TMP_PATH, with no Blender start-up and no second scene load.
 * 0, or -1 with ERR. */
int dr_blender_merge_warm(dr_blender *b, const dr_render_cfg *merge, int frame,
                          const char *tmp_path, char *err, size_t errlen);

/* Wait up to TIMEOUT_MS for the next event and fill EV (DR_BL_NONE on timeout). A warm Blender
 * that dies turns the frame in flight into DR_BL_FAILED (or the load into DR_BL_LOAD_FAILED).
 * Returns 0, or -1 on an internal error with EV->error set. */
int dr_blender_poll(dr_blender *b, int timeout_ms, dr_bl_event *ev);

/* True while a frame is in flight. */
bool dr_blender_busy(const dr_blender *b);

/* Kill the whole Blender process group now (SIGKILL) and reap it; the frame in flight, if any,
 * is abandoned. A later dr_blender_render restarts Blender. */
void dr_blender_kill(dr_blender *b);

/* Ask a warm Blender to quit (up to 3 s, then kill), reap it and free everything. NULL is fine. */
void dr_blender_destroy(dr_blender *b);

/* What the last "ready" listed of the scene's external files, as the JSON array text (see
 * dr_assets.h); NULL when not asked for (list_assets), not said (one-shot mode, an older driver)
 * or not yet. *ERROR gets the driver's reason when the listing itself failed, else NULL. Valid
 * until the next dr_blender_poll. */
const char *dr_blender_assets(const dr_blender *b, const char **error);

/* Blender's executable EXE resolved as dr_blender_create does (a bare name is looked up in PATH):
 * a malloc'ed path, or NULL with ERR. */
char *dr_blender_find(const char *exe, char *err, size_t errlen);

/* Write the embedded driver to its private file (once) and put the file's path in PATH, for
 * other one-off Blender runs (dr_assets_pack). 0, or -1 with ERR. */
int dr_blender_driver(char *path, size_t len, char *err, size_t errlen);

/* Pid of the current Blender process, or 0 when none runs (for tests and logs). */
pid_t dr_blender_pid(const dr_blender *b);

#endif
