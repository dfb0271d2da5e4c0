/* Video: encode a job's finished frames, in frame order, into one movie with FFmpeg. */
#include "dr_video.h"

#include "dr_proc.h"
#include "dr_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Blender's frame-rate question, run with --python-expr. */
static const char fps_code[] = "import bpy\n"
                               "r = bpy.context.scene.render\n"
                               "print('DRENDER_FPS=%r' % (r.fps / r.fps_base), flush=True)\n";

const char *dr_video_container(const char *path)
{
	static const char *const names[][2] = {{".mp4", "mp4"}, {".webm", "webm"}, {".mov", "mov"}};
	size_t len = path ? strlen(path) : 0;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		size_t el = strlen(names[i][0]);
		if (len > el && strcasecmp(path + len - el, names[i][0]) == 0 &&
		    path[len - el - 1] != '/')
			return names[i][1];
	}
	return NULL;
}

int dr_video_check_path(const char *path, char *err, size_t errlen)
{
	if (!path || !path[0])
		return dr_seterr(err, errlen, "--video wants a file name");
	if (strlen(path) >= 4000)
		return dr_seterr(err, errlen, "--video: the file name is too long");
	if (!dr_video_container(path))
		return dr_seterr(err, errlen,
		                 "--video %.200s: the name must end in .mp4, .webm or .mov", path);
	return 0;
}

int dr_video_check_fps(double fps, char *err, size_t errlen)
{
	if (!(fps == 0 || (fps > 0 && fps <= DR_VIDEO_FPS_MAX)))
		return dr_seterr(err, errlen, "the frame rate must be above 0 and at most %g",
		                 DR_VIDEO_FPS_MAX);
	return 0;
}

int dr_video_fps_text(double fps, char *buf, size_t len)
{
	int n;

	if (!(fps > 0 && fps <= DR_VIDEO_FPS_MAX))
		return -1;
	n = snprintf(buf, len, "%.7g", fps);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

int dr_video_link_name(const char *dir, size_t i, const char *ext, char *buf, size_t len)
{
	int n;

	if (i > 9999999) {
		if (len)
			buf[0] = '\0';
		return -1;
	}
	n = snprintf(buf, len, "%s/%07zu%s", dir, i, ext);
	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -1;
	}
	return 0;
}

/* Append S to A's argv (the caller sized the table). */
static void push(dr_video_argv *a, const char *s)
{
	if (a->n < DR_VIDEO_ARGV_MAX)
		a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

/* Copy S into FIELD (LEN bytes). 0, or -1 with ERR naming WHAT. */
static int copy(char *field, size_t len, const char *s, const char *what, char *err, size_t errlen)
{
	if (!s || !s[0])
		return dr_seterr(err, errlen, "%s is empty", what);
	if (strlen(s) >= len)
		return dr_seterr(err, errlen, "%s is too long", what);
	memcpy(field, s, strlen(s) + 1);
	return 0;
}

int dr_video_ffmpeg_argv(dr_video_argv *a, const char *ffmpeg, const char *dir, const char *ext,
                         double fps, const char *container, const char *out, char *err,
                         size_t errlen)
{
	dr_video_argv n;
	int k;

	memset(&n, 0, sizeof n);
	if (!ffmpeg || !ffmpeg[0] || !ext || ext[0] != '.' || !container)
		return dr_seterr(err, errlen, "bad FFmpeg settings");
	if (dr_video_fps_text(fps, n.fps, sizeof n.fps) != 0)
		return dr_seterr(err, errlen, "bad frame rate %g", fps);
	k = snprintf(n.input, sizeof n.input, "%s/%%07d%s", dir ? dir : "", ext);
	if (!dir || !dir[0] || k < 0 || (size_t)k >= sizeof n.input)
		return dr_seterr(err, errlen,
		                 "the frame sequence's directory is empty or too long");
	if (copy(n.output, sizeof n.output, out, "the video's temporary name", err, errlen) != 0)
		return -1;
	push(&n, ffmpeg);
	push(&n, "-nostdin");
	push(&n, "-hide_banner");
	push(&n, "-loglevel");
	push(&n, "error");
	push(&n, "-y");
	push(&n, "-f");
	push(&n, "image2");
	push(&n, "-framerate");
	push(&n, n.fps);
	push(&n, "-start_number");
	push(&n, "0");
	push(&n, "-i");
	push(&n, n.input);
	/* 4:2:0 wants even sizes: drop a last odd row or column rather than fail. */
	push(&n, "-vf");
	push(&n, "scale=trunc(iw/2)*2:trunc(ih/2)*2");
	push(&n, "-pix_fmt");
	push(&n, "yuv420p");
	if (strcmp(container, "webm") == 0) {
		push(&n, "-c:v");
		push(&n, "libvpx-vp9");
		push(&n, "-b:v");
		push(&n, "0");
		push(&n, "-crf");
		push(&n, "32");
		push(&n, "-deadline");
		push(&n, "realtime");
		push(&n, "-cpu-used");
		push(&n, "8");
	} else if (strcmp(container, "mp4") == 0 || strcmp(container, "mov") == 0) {
		push(&n, "-c:v");
		push(&n, "libx264");
		push(&n, "-preset");
		push(&n, "veryfast");
		push(&n, "-crf");
		push(&n, "18");
		push(&n, "-movflags");
		push(&n, "+faststart");
	} else {
		return dr_seterr(err, errlen, "unknown container '%.32s'", container);
	}
	push(&n, "-f");
	push(&n, container);
	push(&n, n.output);
	/* The strings live in N: move them, then point the table at the copy. */
	*a = n;
	for (size_t i = 0; i < a->n; i++) {
		if (n.v[i] == n.fps)
			a->v[i] = a->fps;
		else if (n.v[i] == n.input)
			a->v[i] = a->input;
		else if (n.v[i] == n.output)
			a->v[i] = a->output;
	}
	return 0;
}

int dr_video_ffprobe_argv(dr_video_argv *a, const char *ffprobe, const char *path, char *err,
                          size_t errlen)
{
	memset(a, 0, sizeof *a);
	if (!ffprobe || !ffprobe[0])
		return dr_seterr(err, errlen, "ffprobe's name is empty");
	if (copy(a->output, sizeof a->output, path, "the video's name", err, errlen) != 0)
		return -1;
	push(a, ffprobe);
	push(a, "-v");
	push(a, "error");
	push(a, "-count_frames");
	push(a, "-select_streams");
	push(a, "v:0");
	push(a, "-show_entries");
	push(a, "stream=nb_read_frames,r_frame_rate");
	push(a, "-of");
	push(a, "default=noprint_wrappers=1");
	push(a, a->output);
	return 0;
}

/* The value after KEY at the start of a line of TEXT (the last such line), or NULL. */
static const char *line_value(const char *text, const char *key)
{
	const char *found = NULL, *p = text;
	size_t kl = strlen(key);

	while (p && *p) {
		if (strncmp(p, key, kl) == 0)
			found = p + kl;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return found;
}

int dr_video_parse_probe(const char *text, long *frames, double *fps, char *err, size_t errlen)
{
	const char *v = line_value(text ? text : "", "nb_read_frames=");
	char *end;
	long n;
	double num, den = 1;

	if (!v)
		return dr_seterr(err, errlen, "ffprobe found no video stream");
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || (*end && *end != '\n' && *end != '\r') || n < 0)
		return dr_seterr(err, errlen, "ffprobe could not count the frames");
	*frames = n;
	*fps = 0;
	if ((v = line_value(text, "r_frame_rate="))) {
		num = strtod(v, &end);
		if (end != v && *end == '/') {
			const char *d = end + 1;
			den = strtod(d, &end);
			if (end == d)
				den = 0;
		}
		if (den > 0 && isfinite(num / den))
			*fps = num / den;
	}
	return 0;
}

int dr_video_check_probe(const char *text, long want, char *err, size_t errlen)
{
	long got;
	double fps;

	if (dr_video_parse_probe(text, &got, &fps, err, errlen) != 0)
		return -1;
	if (got != want)
		return dr_seterr(err, errlen, "the video has %ld frames instead of %ld", got, want);
	return 0;
}

int dr_video_fps_argv(dr_video_argv *a, const char *blender, const char *scene, bool allow_autoexec,
                      char *err, size_t errlen)
{
	memset(a, 0, sizeof *a);
	if (!blender || !blender[0])
		return dr_seterr(err, errlen, "Blender's name is empty");
	if (copy(a->scene, sizeof a->scene, scene, "the scene", err, errlen) != 0)
		return -1;
	push(a, blender);
	push(a, "-b");
	push(a, a->scene);
	if (!allow_autoexec)
		push(a, "--disable-autoexec");
	push(a, "--python-expr");
	push(a, fps_code);
	return 0;
}

int dr_video_parse_fps(const char *text, double *fps)
{
	const char *v = line_value(text ? text : "", "DRENDER_FPS=");
	char *end;
	double f;

	if (!v)
		return -1;
	f = strtod(v, &end);
	if (end == v || (*end && *end != '\n' && *end != '\r') || !(f > 0 && f <= DR_VIDEO_FPS_MAX))
		return -1;
	*fps = f;
	return 0;
}

/* ---- acting: files and processes ---- */

/* EXE as a path: a name with '/' as is, else looked up in PATH. 0, or -1 with ERR. */
static int find_exe(const char *exe, char *buf, size_t len, char *err, size_t errlen)
{
	const char *path = getenv("PATH"), *p, *end;
	struct stat st;
	int n;

	if (strchr(exe, '/')) {
		n = snprintf(buf, len, "%s", exe);
		if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0)
			return 0;
		return dr_seterr(err, errlen, "%s: %s", exe, strerror(errno));
	}
	for (p = path ? path : "/usr/local/bin:/usr/bin:/bin";; p = end + 1) {
		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		if (end == p)
			n = snprintf(buf, len, "./%s", exe);
		else
			n = snprintf(buf, len, "%.*s/%s", (int)(end - p), p, exe);
		if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0 && stat(buf, &st) == 0 &&
		    S_ISREG(st.st_mode))
			return 0;
		if (!*end)
			break;
	}
	return dr_seterr(err, errlen, "%s is not installed (not found in PATH)", exe);
}

/* Run A (A->v[0] resolved already into EXE) to its end; the status goes to *STATUS, the output's
 * tail to TAIL. 0, or -1 with ERR (could not start, or interrupted). */
static int run(const char *what, const char *exe, const dr_video_argv *a,
               volatile sig_atomic_t *interrupted, int *status, char *tail, size_t taillen,
               char *err, size_t errlen)
{
	dr_proc_cfg pc = {.what = what, .cmd_fd = -1, .reply_fd = -1};
	dr_proc *p = dr_proc_create(&pc, err, errlen);
	int rc = -1;

	if (!p)
		return -1;
	if (dr_proc_spawn(p, exe, (char *const *)a->v, err, errlen) != 0)
		goto out;
	while (!dr_proc_wait_exit(p, 200))
		if (interrupted && *interrupted) {
			dr_seterr(err, errlen, "%s was interrupted", what);
			goto out;
		}
	*status = dr_proc_kill(p);
	dr_proc_tail(p, tail, taillen);
	rc = 0;
out:
	dr_proc_destroy(p);
	return rc;
}

/* The last line of TAIL that says something (for a one-line error). */
static const char *last_line(char *tail)
{
	size_t len = strlen(tail);
	char *nl;

	while (len && (tail[len - 1] == '\n' || tail[len - 1] == '\r'))
		tail[--len] = '\0';
	nl = strrchr(tail, '\n');
	return nl ? nl + 1 : tail;
}

/* Directory part of PATH into BUF ("." without one). 0, or -1 if it does not fit. */
static int dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	int n = !slash          ? snprintf(buf, len, ".")
	        : slash == path ? snprintf(buf, len, "/")
	                        : snprintf(buf, len, "%.*s", (int)(slash - path), path);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

int dr_video_encode(const dr_video_job *j, char *err, size_t errlen)
{
	const char *container = dr_video_container(j->path), *ext = NULL;
	char ffmpeg[PATH_MAX], ffprobe[PATH_MAX], vdir[PATH_MAX], seq[PATH_MAX], tmp[PATH_MAX];
	char link[PATH_MAX], target[PATH_MAX], tail[DR_PROC_TAIL_SIZE + 1], why[DR_ERRLEN];
	dr_video_argv *a = malloc(sizeof *a);
	size_t linked = 0;
	int status = -1, rc = -1, n;
	bool have_seq = false, have_tmp = false;

	if (!a)
		return dr_seterr(err, errlen, "out of memory");
	if (!container || j->n == 0 || !(ext = strrchr(j->frames[0], '.')) || strchr(ext, '/')) {
		dr_seterr(err, errlen,
		          "nothing to encode (no frames, or a name without extension)");
		goto out;
	}
	if (find_exe(j->ffmpeg, ffmpeg, sizeof ffmpeg, err, errlen) != 0 ||
	    find_exe(j->ffprobe, ffprobe, sizeof ffprobe, err, errlen) != 0)
		goto out;
	if (dir_of(j->path, vdir, sizeof vdir) != 0) {
		dr_seterr(err, errlen, "the video's name is too long");
		goto out;
	}
	n = snprintf(seq, sizeof seq, "%s/.drender-video-XXXXXX", vdir);
	if (n < 0 || (size_t)n >= sizeof seq || !mkdtemp(seq)) {
		dr_seterr(err, errlen, "cannot make a directory in %s for the frame sequence: %s",
		          vdir,
		          n < 0 || (size_t)n >= sizeof seq ? "name too long" : strerror(errno));
		goto out;
	}
	have_seq = true;
	for (linked = 0; linked < j->n; linked++) {
		if (!realpath(j->frames[linked], target)) {
			dr_seterr(err, errlen, "frame %s: %s", j->frames[linked], strerror(errno));
			goto out;
		}
		if (dr_video_link_name(seq, linked, ext, link, sizeof link) != 0 ||
		    symlink(target, link) != 0) {
			dr_seterr(err, errlen, "cannot link frame %s into %s: %s",
			          j->frames[linked], seq, strerror(errno));
			goto out;
		}
	}
	n = snprintf(tmp, sizeof tmp, "%s.drender-tmp-%ld", seq, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof tmp ||
	    dr_video_ffmpeg_argv(a, ffmpeg, seq, ext, j->fps, container, tmp, err, errlen) != 0)
		goto out;
	have_tmp = true;
	if (run("FFmpeg", ffmpeg, a, j->interrupted, &status, tail, sizeof tail, err, errlen) != 0)
		goto out;
	if (status != 0) {
		dr_proc_describe(status, why, sizeof why);
		dr_seterr(err, errlen, "FFmpeg %s: %s", why, last_line(tail));
		goto out;
	}
	if (dr_video_ffprobe_argv(a, ffprobe, tmp, err, errlen) != 0 ||
	    run("ffprobe", ffprobe, a, j->interrupted, &status, tail, sizeof tail, err, errlen) !=
	            0)
		goto out;
	if (status != 0) {
		dr_proc_describe(status, why, sizeof why);
		dr_seterr(err, errlen, "ffprobe %s on the new video: %s", why, last_line(tail));
		goto out;
	}
	if (dr_video_check_probe(tail, (long)j->n, why, sizeof why) != 0) {
		dr_seterr(err, errlen, "the new video is not valid: %s", why);
		goto out;
	}
	if (rename(tmp, j->path) != 0) {
		dr_seterr(err, errlen, "cannot rename the video into %s: %s", j->path,
		          strerror(errno));
		goto out;
	}
	have_tmp = false;
	rc = 0;
out:
	if (have_tmp)
		unlink(tmp);
	for (size_t i = 0; have_seq && i < linked; i++)
		if (dr_video_link_name(seq, i, ext, link, sizeof link) == 0)
			unlink(link);
	if (have_seq)
		rmdir(seq);
	free(a);
	return rc;
}

int dr_video_scene_fps(const char *blender, const char *scene, bool allow_autoexec, double *fps,
                       char *err, size_t errlen)
{
	char exe[PATH_MAX], tail[DR_PROC_TAIL_SIZE + 1], why[256];
	dr_video_argv *a = malloc(sizeof *a);
	int status = -1, rc = -1;

	if (!a)
		return dr_seterr(err, errlen, "out of memory");
	if (find_exe(blender, exe, sizeof exe, err, errlen) != 0 ||
	    dr_video_fps_argv(a, exe, scene, allow_autoexec, err, errlen) != 0 ||
	    run("Blender", exe, a, NULL, &status, tail, sizeof tail, err, errlen) != 0)
		goto out;
	if (dr_video_parse_fps(tail, fps) != 0) {
		dr_proc_describe(status, why, sizeof why);
		dr_seterr(err, errlen, "Blender did not say the scene's frame rate (it %s)", why);
		goto out;
	}
	rc = 0;
out:
	free(a);
	return rc;
}

struct dr_video_bg {
	pthread_t thread;
	pthread_mutex_t mu;
	int state; /* 1 running, 0 made, -1 failed (under MU) */
	char err[DR_ERRLEN];
	char note[DR_ERRLEN]; /* why the scene's frame rate is unknown, "" = it is known */
	volatile sig_atomic_t stop;
	dr_video_job job;
	char *path, *blender, *scene, **frames;
	bool allow_autoexec;
};

static void *bg_main(void *arg)
{
	dr_video_bg *b = arg;
	char err[DR_ERRLEN] = "";
	int rc = 0;

	if (b->job.fps <= 0 && dr_video_scene_fps(b->blender, b->scene, b->allow_autoexec,
	                                          &b->job.fps, err, sizeof err) != 0) {
		b->job.fps = DR_VIDEO_FPS_DEFAULT;
		pthread_mutex_lock(&b->mu);
		memcpy(b->note, err, sizeof b->note);
		pthread_mutex_unlock(&b->mu);
		err[0] = '\0';
	}
	if (!b->stop)
		rc = dr_video_encode(&b->job, err, sizeof err);
	else
		rc = dr_seterr(err, sizeof err, "stopped");
	pthread_mutex_lock(&b->mu);
	b->state = rc == 0 ? 0 : -1;
	memcpy(b->err, err, sizeof b->err);
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void bg_release(dr_video_bg *b)
{
	for (size_t i = 0; b->frames && i < b->job.n; i++)
		free(b->frames[i]);
	free(b->frames);
	free(b->path);
	free(b->blender);
	free(b->scene);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

dr_video_bg *dr_video_bg_start(const dr_video_job *j, const char *blender, const char *scene,
                               bool allow_autoexec, char *err, size_t errlen)
{
	dr_video_bg *b = calloc(1, sizeof *b);
	bool oom;

	if (!b || pthread_mutex_init(&b->mu, NULL) != 0) {
		free(b);
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	b->job = *j;
	b->state = 1;
	b->allow_autoexec = allow_autoexec;
	b->path = strdup(j->path);
	b->blender = strdup(blender ? blender : "blender");
	b->scene = strdup(scene ? scene : "");
	b->frames = calloc(j->n ? j->n : 1, sizeof *b->frames);
	oom = !b->path || !b->blender || !b->scene || !b->frames;
	for (size_t i = 0; !oom && i < j->n; i++)
		oom = !(b->frames[i] = strdup(j->frames[i]));
	if (oom) {
		bg_release(b);
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	b->job.path = b->path;
	b->job.frames = (const char *const *)b->frames;
	b->job.interrupted = &b->stop;
	if (pthread_create(&b->thread, NULL, bg_main, b) != 0) {
		bg_release(b);
		dr_seterr(err, errlen, "cannot start the encoder's thread");
		return NULL;
	}
	return b;
}

int dr_video_bg_poll(dr_video_bg *b, double *fps, char *err, size_t errlen)
{
	int state;

	pthread_mutex_lock(&b->mu);
	state = b->state;
	if (state < 0)
		snprintf(err, errlen, "%s", b->err);
	pthread_mutex_unlock(&b->mu);
	if (state == 0 && fps)
		*fps = b->job.fps;
	return state;
}

bool dr_video_bg_note(dr_video_bg *b, char *buf, size_t len)
{
	bool any;

	pthread_mutex_lock(&b->mu);
	any = b->note[0] != '\0';
	snprintf(buf, len, "%s", b->note);
	pthread_mutex_unlock(&b->mu);
	return any;
}

void dr_video_bg_free(dr_video_bg *b)
{
	if (!b)
		return;
	b->stop = 1;
	pthread_join(b->thread, NULL);
	bg_release(b);
}
