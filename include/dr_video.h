/* Video: encode a job's finished frames, in frame order, into one movie with FFmpeg. */
#ifndef DR_VIDEO_H
#define DR_VIDEO_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* Highest frame rate --fps and "fps" accept. */
#define DR_VIDEO_FPS_MAX 1000.0

/* Frame rate used when neither --fps nor the scene can say (stated in --help and README). */
#define DR_VIDEO_FPS_DEFAULT 24.0

/* Most arguments any command built here has. */
#define DR_VIDEO_ARGV_MAX 48

/*
 * How a video is made (pure parts first, then the one acting function):
 *   - the frames are linked, in the order given, as <dir>/0000000<ext>, 0000001<ext>, ... in a
 *     private directory next to the video, so that FFmpeg's image2 demuxer reads them as one
 *     gapless sequence whatever the frame numbers and padding (a frame list 1-20:2 too);
 *   - ffmpeg -framerate FPS -i <dir>/%07d<ext> writes the container named by the video's
 *     extension (.mp4 and .mov: H.264 yuv420p; .webm: VP9) to a temporary name in the video's
 *     directory;
 *   - when FFmpeg exits 0 and ffprobe counts exactly as many frames as were linked, the temporary
 *     file is renamed into place; otherwise it is removed and the error says why.
 * No shell anywhere: every command is an argv array run through dr_proc.
 */

/* A command line under construction: V[0..N) then a NULL; strings point into the struct or to
 * literals. */
typedef struct dr_video_argv {
	const char *v[DR_VIDEO_ARGV_MAX + 1];
	size_t n;
	char fps[32];
	char input[4200];
	char output[4200];
	char scene[4200];
} dr_video_argv;

/* FFmpeg's muxer name for PATH's extension (.mp4 -> "mp4", .webm -> "webm", .mov -> "mov", any
 * letter case), or NULL. */
const char *dr_video_container(const char *path);

/* Check a --video FILE: non-empty, ends in .mp4, .webm or .mov, not a directory name. 0, or -1
 * with ERR. */
int dr_video_check_path(const char *path, char *err, size_t errlen);

/* Check an --fps value: 0 (= the scene's) or in (0, DR_VIDEO_FPS_MAX]. 0, or -1 with ERR. */
int dr_video_check_fps(double fps, char *err, size_t errlen);

/* FFmpeg's text for a frame rate (e.g. "12", "29.97003"). 0, or -1 if it does not fit. */
int dr_video_fps_text(double fps, char *buf, size_t len);

/* The name of sequence element I (0-based) in DIR with extension EXT: DIR/0000012.png. 0, or -1
 * if it does not fit or I > 9999999. */
int dr_video_link_name(const char *dir, size_t i, const char *ext, char *buf, size_t len);

/* FFmpeg's argv: encode the sequence in DIR (names from dr_video_link_name, EXT) at FPS into OUT
 * with CONTAINER's codec (see dr_video_container). 0, or -1 with ERR. */
int dr_video_ffmpeg_argv(dr_video_argv *a, const char *ffmpeg, const char *dir, const char *ext,
                         double fps, const char *container, const char *out, char *err,
                         size_t errlen);

/* ffprobe's argv: decode every frame of PATH's first video stream, print nb_read_frames and
 * r_frame_rate as key=value lines. 0, or -1 with ERR. */
int dr_video_ffprobe_argv(dr_video_argv *a, const char *ffprobe, const char *path, char *err,
                          size_t errlen);

/* Read ffprobe's output TEXT (see dr_video_ffprobe_argv) into *FRAMES and *FPS (0 if absent or
 * 0/0). 0, or -1 with ERR when there is no frame count. */
int dr_video_parse_probe(const char *text, long *frames, double *fps, char *err, size_t errlen);

/* Whether the probe TEXT shows a valid video of WANT frames. 0, or -1 with ERR saying what is
 * wrong. */
int dr_video_check_probe(const char *text, long want, char *err, size_t errlen);

/* The argv that makes Blender print the frame rate of SCENE (one line "DRENDER_FPS=<float>") and
 * quit: BLENDER -b SCENE [--disable-autoexec] --python-expr CODE. 0, or -1 with ERR. */
int dr_video_fps_argv(dr_video_argv *a, const char *blender, const char *scene, bool allow_autoexec,
                      char *err, size_t errlen);

/* The frame rate in Blender's output TEXT (the last "DRENDER_FPS=" line). 0 with *FPS, or -1. */
int dr_video_parse_fps(const char *text, double *fps);

/* One encode, as the acting part takes it. */
typedef struct dr_video_job {
	const char *path;                   /* the video (.mp4, .webm, .mov) */
	const char *const *frames;          /* frame files in video order */
	size_t n;                           /* how many (>= 1) */
	double fps;                         /* > 0 */
	const char *ffmpeg;                 /* executable (a path, or a name looked up in PATH) */
	const char *ffprobe;                /* likewise */
	volatile sig_atomic_t *interrupted; /* stop early when set (may be NULL) */
} dr_video_job;

/* Make J's video (see above). 0, or -1 with ERR (the video is then neither made nor changed). */
int dr_video_encode(const dr_video_job *j, char *err, size_t errlen);

/* An encode in the background, for rank 0 whose loop must go on (rank 0 keeps answering its
 * nodes and /health): a thread of its own runs dr_video_scene_fps (when the job has no frame
 * rate) and dr_video_encode, whose FFmpeg and ffprobe run through dr_proc; it never calls MPI. */
typedef struct dr_video_bg dr_video_bg;

/* Start J (copied) in the background; J's fps <= 0: ask BLENDER (allow_autoexec as given) for
 * SCENE's rate first, DR_VIDEO_FPS_DEFAULT if it cannot say. NULL with ERR. */
dr_video_bg *dr_video_bg_start(const dr_video_job *j, const char *blender, const char *scene,
                               bool allow_autoexec, char *err, size_t errlen);

/* 1 while it runs; 0 once the video is made (*FPS: its rate); -1 once it failed, with ERR.
 * Never blocks. */
int dr_video_bg_poll(dr_video_bg *b, double *fps, char *err, size_t errlen);

/* Why the scene's frame rate could not be learnt (the video is then made at
 * DR_VIDEO_FPS_DEFAULT) into BUF: true, or false when it was known or given. */
bool dr_video_bg_note(dr_video_bg *b, char *buf, size_t len);

/* Stop an encode still running (FFmpeg is killed), wait for its thread and free B. NULL is
 * fine. */
void dr_video_bg_free(dr_video_bg *b);

/* Ask Blender (BLENDER, a path or a name in PATH) for SCENE's frame rate. 0 with *FPS, or -1 with
 * ERR. */
int dr_video_scene_fps(const char *blender, const char *scene, bool allow_autoexec, double *fps,
                       char *err, size_t errlen);

#endif
