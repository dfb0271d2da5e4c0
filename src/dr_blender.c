/* Blender supervision: Blender's command lines and the warm line protocol, on top of dr_proc. */
#include "dr_blender.h"

#include "dr_imgcheck.h"
#include "dr_log.h"
#include "dr_outpath.h"
#include "dr_proc.h"
#include "dr_util.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver_py.h"

#define TAIL_LINES     6         /* lines of Blender's output quoted in an error */
#define REPLY_MAX      (1 << 20) /* longest reply line accepted from the driver */
#define CHILD_CMD_FD   3         /* where the warm driver finds its command pipe */
#define CHILD_REPLY_FD 4         /* ... and its reply pipe */
#define EOF_GRACE_MS   2000      /* how long a Blender that closed its pipes may take to exit */
#define QUIT_GRACE_MS  3000      /* how long a warm Blender may take to quit */

/*
 * Where a dr_blender is, changed only by set_state(). "READY reported" means the caller has had
 * (or is about to get, at the next dr_blender_poll) its DR_BL_READY event; a warm Blender reports
 * it when the driver says "ready", a one-shot one at the first poll.
 *
 *   warm:      DOWN --render--> LOADING_FRAME --"ready"--> RENDERING --done/error--> READY
 *              create: LOADING --"ready"--> READY --render--> RENDERING
 *              LOADING --render--> LOADING_FRAME; any state --death/kill--> DOWN
 *   one-shot:  create: LOADING --poll--> READY --render--> RENDERING --exit/kill--> READY
 *              LOADING --render--> LOADING_FRAME --poll--> RENDERING
 */
enum bl_state {
	BL_DOWN,          /* warm: no Blender runs; one starts with the next frame */
	BL_LOADING,       /* READY not reported yet (warm: the scene loads), no frame asked */
	BL_LOADING_FRAME, /* READY not reported yet, a frame already asked for */
	BL_READY,         /* READY reported, no frame in flight */
	BL_RENDERING,     /* READY reported, a frame in flight */
};

static const char *const state_names[] = {"DOWN", "LOADING", "LOADING_FRAME", "READY", "RENDERING"};

struct dr_blender {
	/* configuration (owned copies) */
	char *exe;            /* resolved executable path */
	dr_render_cfg render; /* render.engine "" = the scene's */
	int threads;
	bool one_shot;
	bool allow_autoexec;
	bool verbose;
	int gpu;
	char *gpu_why;
	int gpu_threads;
	bool persistent_data;
	double load_timeout; /* 0 = none */
	bool list_assets;    /* ask "ready" for the scene's external files */
	char *assets;        /* what the last "ready" listed (JSON array), or NULL */
	char *assets_error;  /* ... or why the listing failed, or NULL */

	dr_proc *proc;         /* the Blender process (one at a time) */
	enum bl_state state;   /* see set_state() */
	double started;        /* when the process or the frame in flight started (dr_now) */
	double load_started;   /* warm: when the process now loading was started (dr_now) */
	int frame;             /* the frame in flight (LOADING_FRAME, RENDERING) */
	char *tmp_path;        /* one-shot: where Blender writes */
	char driver[PATH_MAX]; /* warm: the driver's file (see driver_file), "" = not written yet */

	/* reply line buffer */
	char *rbuf;
	size_t rlen, rcap;
};

/* The one place where B's state changes. */
static void set_state(dr_blender *b, enum bl_state to)
{
	if (b->state != to)
		dr_debug("blender %ld: %s -> %s", (long)dr_proc_pid(b->proc), state_names[b->state],
		         state_names[to]);
	b->state = to;
}

static bool busy(const dr_blender *b)
{
	return b->state == BL_LOADING_FRAME || b->state == BL_RENDERING;
}

static bool reported_ready(const dr_blender *b)
{
	return b->state == BL_READY || b->state == BL_RENDERING;
}

/* The frame in flight is over (rendered, failed or abandoned): READY stays as it was. */
static void frame_over(dr_blender *b)
{
	if (b->state == BL_LOADING_FRAME)
		set_state(b, BL_LOADING);
	else if (b->state == BL_RENDERING)
		set_state(b, BL_READY);
}

/* A frame was asked for. */
static void frame_asked(dr_blender *b)
{
	set_state(b, reported_ready(b) ? BL_RENDERING : BL_LOADING_FRAME);
}

/* Find EXE: a name with a '/' is used as is, a bare name is looked up in PATH.
 * Returns a malloc'ed path or NULL with ERR. */
static char *resolve_exe(const char *exe, char *err, size_t errlen)
{
	const char *path, *p, *end;
	struct stat st;
	char buf[PATH_MAX];
	char *found = NULL;
	int n;

	if (!exe || !*exe) {
		dr_seterr(err, errlen,
		          "Blender executable '' not found (set --blender or DRENDER_BLENDER)");
		return NULL;
	}
	if (strchr(exe, '/')) {
		if (access(exe, X_OK) == 0 && stat(exe, &st) == 0 && S_ISREG(st.st_mode))
			found = strdup(exe);
		else {
			dr_seterr(err, errlen,
			          "Blender executable '%s' not found (set --blender or "
			          "DRENDER_BLENDER): %s",
			          exe,
			          access(exe, X_OK) == 0 ? "not a regular file" : strerror(errno));
			return NULL;
		}
	} else {
		path = getenv("PATH");
		if (!path)
			path = "/usr/local/bin:/usr/bin:/bin";
		for (p = path; !found; p = end + 1) {
			end = strchr(p, ':');
			if (!end)
				end = p + strlen(p);
			if (end == p)
				n = snprintf(buf, sizeof(buf), "./%s", exe);
			else
				n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - p), p, exe);
			if (n > 0 && (size_t)n < sizeof(buf) && access(buf, X_OK) == 0 &&
			    stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
				found = strdup(buf);
				if (!found)
					break;
			}
			if (!*end)
				break;
		}
		if (!found && errno != ENOMEM) {
			dr_seterr(err, errlen,
			          "Blender executable '%s' not found (set --blender or "
			          "DRENDER_BLENDER)",
			          exe);
			return NULL;
		}
	}
	if (!found)
		dr_seterr(err, errlen, "out of memory");
	return found;
}

/* ---- Blender's output in error messages ---- */

/* The last line of Blender's output that starts with "Error:", if any, into LINE. */
static bool tail_error_line(const dr_blender *b, char *line, size_t len)
{
	char lin[DR_PROC_TAIL_SIZE + 1];
	const char *p, *best = NULL;
	size_t n;

	dr_proc_tail(b->proc, lin, sizeof(lin));
	for (p = lin; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, "Error:", 6) == 0)
			best = p;
	if (!best)
		return false;
	n = strcspn(best, "\r\n");
	snprintf(line, len, "%.*s", (int)n, best);
	return true;
}

/* Append the last few lines of Blender's output to MSG, as many as fit. */
static void append_tail(const dr_blender *b, char *msg, size_t len, size_t *pos)
{
	static const char head[] = "; Blender's last output:\n";
	char lin[DR_PROC_TAIL_SIZE + 1];
	size_t n = dr_proc_tail(b->proc, lin, sizeof(lin)), start, room;
	int lines = 0;

	while (n > 0 && (lin[n - 1] == '\n' || lin[n - 1] == '\r' || lin[n - 1] == ' '))
		n--;
	lin[n] = '\0';
	if (n == 0 || *pos + sizeof(head) + 16 >= len)
		return;
	start = n;
	while (start > 0 && lines < TAIL_LINES) {
		size_t end = start;

		while (start > 0 && lin[start - 1] != '\n')
			start--;
		if (end > start)
			lines++;
		if (lines < TAIL_LINES && start > 0)
			start--; /* step over the newline before this line */
	}
	room = len - *pos - sizeof(head);
	if (n - start > room) {
		const char *nl;

		start = n - room;
		nl = memchr(lin + start, '\n', n - start);
		if (nl && (size_t)(nl + 1 - lin) < n)
			start = (size_t)(nl + 1 - lin); /* begin at a line */
	}
	while (start < n && lin[start] == '\n')
		start++;
	dr_append(msg, len, pos, "%s%s", head, lin + start);
}

/* Format an int into BUF; false if it does not fit (it always does for the sizes used here). */
static bool format_int(char *buf, size_t len, int v)
{
	int n = snprintf(buf, len, "%d", v);

	return n > 0 && (size_t)n < len;
}

/* ---- the driver, shipped as a file ---- */

/* FNV-1a of S: names the driver's file, so that binaries with different drivers never share one. */
static unsigned long long fnv1a(const char *s)
{
	unsigned long long h = 14695981039346656037ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* True when PATH is a regular file of ours (not a link), private, holding exactly TEXT. */
static bool driver_file_ok(const char *path, const char *text)
{
	size_t len = strlen(text), got = 0;
	struct stat st;
	bool same = false;
	char *buf;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    !(st.st_mode & 077) && (size_t)st.st_size == len && (buf = malloc(len + 1))) {
		while (got < len) {
			ssize_t n = read(fd, buf + got, len - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		same = got == len && memcmp(buf, text, len) == 0;
		free(buf);
	}
	close(fd);
	return same;
}

/* Write the embedded driver once to $TMPDIR/drender-UID/driver-HASH.py (a 0700 directory of ours,
 * the file 0600, created with O_EXCL under a temporary name and renamed into place) and put its
 * path in PATH: Blender runs it with --python, so that the process list shows a short command
 * line instead of 10 KB of Python. Returns 0, or -1 with ERR. */
static int driver_file(char *path, size_t len, char *err, size_t errlen)
{
	const char *tmpdir = getenv("TMPDIR");
	char dir[PATH_MAX], tmp[PATH_MAX];
	size_t n = strlen(dr_driver_py), done = 0;
	struct stat st;
	int fd, w;

	if (!tmpdir || tmpdir[0] != '/')
		tmpdir = "/tmp";
	w = snprintf(dir, sizeof dir, "%s/drender-%ld", tmpdir, (long)geteuid());
	if (w < 0 || (size_t)w >= sizeof dir)
		return dr_seterr(err, errlen, "TMPDIR is too long");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return dr_seterr(err, errlen, "cannot create %s: %s", dir, strerror(errno));
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077))
		return dr_seterr(err, errlen,
		                 "%s is not a private directory of this user (a link, another "
		                 "owner or open to others): refusing to put Blender's driver there",
		                 dir);
	w = snprintf(path, len, "%s/driver-%016llx.py", dir, fnv1a(dr_driver_py));
	if (w < 0 || (size_t)w >= len)
		return dr_seterr(err, errlen, "TMPDIR is too long");
	if (driver_file_ok(path, dr_driver_py))
		return 0;
	w = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	if (w < 0 || (size_t)w >= sizeof tmp)
		return dr_seterr(err, errlen, "TMPDIR is too long");
	unlink(tmp); /* ours: a leftover of this pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return dr_seterr(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
	while (done < n) {
		ssize_t k = write(fd, dr_driver_py + done, n - done);
		if (k <= 0)
			break;
		done += (size_t)k;
	}
	errno = 0;
	if (close(fd) != 0 || done < n || rename(tmp, path) != 0) {
		int e = errno ? errno : ENOSPC;
		unlink(tmp);
		return dr_seterr(err, errlen, "cannot write Blender's driver to %s: %s", path,
		                 strerror(e));
	}
	return 0;
}

/* ---- command lines ---- */

/* Start Blender with ARGV (warm or one-shot, as the dr_proc was made). 0, or -1 with ERR. */
static int spawn(dr_blender *b, char *const argv[], char *err, size_t errlen)
{
	if (dr_proc_spawn(b->proc, b->exe, argv, err, errlen) < 0)
		return -1;
	b->rlen = 0;
	b->started = dr_now();
	return 0;
}

/* The start of every Blender command line: executable, scene, auto-exec policy, threads.
 * Returns how many of ARGV it filled. */
static int common_argv(const dr_blender *b, const char **argv, const char *threads)
{
	int n = 0;
	argv[n++] = b->exe;
	argv[n++] = "-b";
	argv[n++] = b->render.scene;
	if (!b->allow_autoexec)
		argv[n++] = "--disable-autoexec";
	argv[n++] = "-t";
	argv[n++] = threads;
	return n;
}

/* Build the warm command line and start Blender. */
static int spawn_warm(dr_blender *b, char *err, size_t errlen)
{
	char fds[32], threads[16];
	char *settings = NULL;
	cJSON *json = cJSON_CreateObject();
	const char *argv[16];
	int n = 0, rc = -1;

	if (!json ||
	    !(b->render.engine[0] ? cJSON_AddStringToObject(json, "engine", b->render.engine)
	                          : cJSON_AddNullToObject(json, "engine")) ||
	    !cJSON_AddNumberToObject(json, "samples", b->render.samples) ||
	    !cJSON_AddStringToObject(json, "format", b->render.format) ||
	    !cJSON_AddNumberToObject(json, "threads", b->threads) ||
	    !cJSON_AddStringToObject(json, "device", b->render.device) ||
	    !cJSON_AddNumberToObject(json, "gpu", b->gpu) ||
	    !(b->gpu_why ? cJSON_AddStringToObject(json, "gpu_why", b->gpu_why)
	                 : cJSON_AddNullToObject(json, "gpu_why")) ||
	    !cJSON_AddNumberToObject(json, "gpu_threads", b->gpu_threads) ||
	    !cJSON_AddBoolToObject(json, "persistent_data", b->persistent_data) ||
	    (b->list_assets && !cJSON_AddBoolToObject(json, "assets", true)) ||
	    (b->render.ranges > 0 &&
	     (!cJSON_AddNumberToObject(json, "still", b->render.still) ||
	      !cJSON_AddNumberToObject(json, "ranges", b->render.ranges))) ||
	    !(settings = cJSON_PrintUnformatted(json))) {
		dr_seterr(err, errlen, "out of memory");
		goto out;
	}
	n = snprintf(fds, sizeof(fds), "%d,%d", CHILD_CMD_FD, CHILD_REPLY_FD);
	if (n < 0 || (size_t)n >= sizeof(fds) ||
	    !format_int(threads, sizeof(threads), b->threads)) {
		dr_seterr(err, errlen, "internal error: Blender arguments do not fit");
		goto out;
	}
	if (!b->driver[0] && driver_file(b->driver, sizeof b->driver, err, errlen) != 0)
		goto out;
	n = common_argv(b, argv, threads);
	argv[n++] = "--python";
	argv[n++] = b->driver;
	argv[n++] = "--";
	argv[n++] = "--drender-fds";
	argv[n++] = fds;
	argv[n++] = "--drender-settings";
	argv[n++] = settings;
	argv[n] = NULL;
	rc = spawn(b, (char *const *)argv, err, errlen);
	if (rc == 0) {
		b->load_started = b->started;
		set_state(b, BL_LOADING);
	}
out:
	cJSON_free(settings);
	cJSON_Delete(json);
	return rc;
}

/* Build the one-shot command line for FRAME into TMP and start Blender. */
static int spawn_one_shot(dr_blender *b, int frame, const char *tmp, char *err, size_t errlen)
{
	char threads[16], frame_s[16], expr[512];
	char *pattern = NULL;
	const char *argv[24];
	size_t len = strlen(tmp);
	int n = 0, rc = -1;

	for (size_t i = 0; i < DR_TMP_DIGITS; i++) {
		if (len < DR_TMP_DIGITS || tmp[len - 1 - i] < '0' || tmp[len - 1 - i] > '9') {
			dr_seterr(err, errlen,
			          "temporary path '%s' does not end in %d digits (one-shot needs "
			          "them)",
			          tmp, DR_TMP_DIGITS);
			return -1;
		}
	}
	pattern = strdup(tmp);
	if (!pattern) {
		dr_seterr(err, errlen, "out of memory");
		return -1;
	}
	memset(pattern + len - DR_TMP_DIGITS, '#', DR_TMP_DIGITS);
	if (!format_int(threads, sizeof(threads), b->threads) ||
	    !format_int(frame_s, sizeof(frame_s), frame)) {
		dr_seterr(err, errlen, "internal error: Blender arguments do not fit");
		goto out;
	}
	n = common_argv(b, argv, threads);
	argv[n++] = "-o";
	argv[n++] = pattern;
	argv[n++] = "-x";
	argv[n++] = "0";
	argv[n++] = "-F";
	argv[n++] = dr_format_blender_arg(
	        b->render.format); /* e.g. TARGA is "TGA" on the command line */
	if (b->render.engine[0]) {
		argv[n++] = "-E";
		argv[n++] = b->render.engine;
	}
	if (b->render.samples > 0) {
		int w = snprintf(expr, sizeof(expr),
		                 "import bpy\n"
		                 "s = bpy.context.scene\n"
		                 "if s.render.engine == 'CYCLES':\n"
		                 "    s.cycles.samples = %d\n"
		                 "    s.cycles.use_adaptive_sampling = False\n"
		                 "elif hasattr(s, 'eevee'):\n"
		                 "    s.eevee.taa_render_samples = %d\n",
		                 b->render.samples, b->render.samples);
		if (w < 0 || (size_t)w >= sizeof(expr)) {
			dr_seterr(err, errlen, "internal error: samples expression too long");
			goto out;
		}
		argv[n++] = "--python-expr";
		argv[n++] = expr;
	}
	argv[n++] = "-f";
	argv[n++] = frame_s;
	argv[n] = NULL;
	rc = spawn(b, (char *const *)argv, err, errlen);
out:
	free(pattern);
	return rc;
}

/* ---- warm replies ---- */

/* Fill EV as a failure of FRAME (0 = none was in flight), or as a load failure, with WHY and the
 * output tail. */
static void fail_event(const dr_blender *b, dr_bl_event *ev, bool load, int frame, const char *why)
{
	size_t pos = 0;

	ev->frame = frame;
	if (load) {
		char line[512];
		ev->kind = DR_BL_LOAD_FAILED;
		if (tail_error_line(b, line, sizeof(line))) {
			/* Blender said why in one line: that is the whole story */
			dr_append(ev->error, sizeof(ev->error), &pos,
			          "Blender could not load '%s': %s", b->render.scene, line);
			return;
		}
		dr_append(ev->error, sizeof(ev->error), &pos, "Blender could not load '%s' (%s)",
		          b->render.scene, why);
	} else {
		ev->kind = DR_BL_FAILED;
		dr_append(ev->error, sizeof(ev->error), &pos, "%s", why);
	}
	append_tail(b, ev->error, sizeof(ev->error), &pos);
}

/* Warm Blender has gone (or must go): reap it and turn that into an event if it matters. */
static void warm_died(dr_blender *b, dr_bl_event *ev, const char *protocol_error)
{
	char how[128], why[512];
	bool was_ready = reported_ready(b), was_busy = busy(b);
	int status;

	if (!protocol_error)
		dr_proc_wait_exit(b->proc, EOF_GRACE_MS);
	set_state(b, BL_DOWN);
	status = dr_proc_kill(b->proc);
	b->rlen = 0;
	if (!was_busy && was_ready) {
		if (b->verbose)
			fprintf(stderr,
			        "[blender] idle Blender %s; it restarts with the next frame\n",
			        protocol_error ? protocol_error : "ended");
		return;
	}
	if (protocol_error)
		snprintf(how, sizeof(how), "was stopped: %s", protocol_error);
	else if (status == -1)
		snprintf(how, sizeof(how), "went away");
	else
		dr_proc_describe(status, how, sizeof(how));
	if (was_busy && was_ready)
		snprintf(why, sizeof(why), "Blender %s while rendering frame %d", how, b->frame);
	else if (was_busy)
		snprintf(why, sizeof(why), "Blender %s before it was ready to render frame %d", how,
		         b->frame);
	else
		snprintf(why, sizeof(why), "Blender %s before it was ready", how);
	fail_event(b, ev, !was_ready, was_busy ? b->frame : 0, why);
}

/* Keep what a "ready" reply JSON says of the scene's external files (see dr_blender_assets). */
static void keep_assets(dr_blender *b, const cJSON *json)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, "assets");
	const cJSON *why = cJSON_GetObjectItemCaseSensitive(json, "assets_error");

	free(b->assets);
	free(b->assets_error);
	b->assets = cJSON_IsArray(list) ? cJSON_PrintUnformatted(list) : NULL;
	b->assets_error = cJSON_IsString(why) ? strdup(why->valuestring) : NULL;
}

const char *dr_blender_assets(const dr_blender *b, const char **error)
{
	if (error)
		*error = b ? b->assets_error : NULL;
	return b ? b->assets : NULL;
}

char *dr_blender_find(const char *exe, char *err, size_t errlen)
{
	return resolve_exe(exe, err, errlen);
}

int dr_blender_driver(char *path, size_t len, char *err, size_t errlen)
{
	return driver_file(path, len, err, errlen);
}

/* Handle one reply line. Returns true when EV holds an event. */
static bool handle_reply(dr_blender *b, const char *line, dr_bl_event *ev)
{
	cJSON *json = cJSON_Parse(line);
	const cJSON *event, *frame, *seconds, *error, *peak;
	bool got = false;

	if (!json || !cJSON_IsObject(json) ||
	    !cJSON_IsString(event = cJSON_GetObjectItemCaseSensitive(json, "event"))) {
		cJSON_Delete(json);
		warm_died(b, ev, "it sent a reply that is not a JSON event");
		return ev->kind != DR_BL_NONE;
	}
	frame = cJSON_GetObjectItemCaseSensitive(json, "frame");
	if (strcmp(event->valuestring, "ready") == 0) {
		if (!reported_ready(b)) {
			const cJSON *dev = cJSON_GetObjectItemCaseSensitive(json, "device");

			set_state(b, b->state == BL_LOADING_FRAME ? BL_RENDERING : BL_READY);
			keep_assets(b, json);
			ev->kind = DR_BL_READY;
			if (cJSON_IsString(dev))
				snprintf(ev->device, sizeof ev->device, "%s", dev->valuestring);
			got = true;
		}
	} else if (strcmp(event->valuestring, "fatal") == 0 && !reported_ready(b)) {
		/* the driver cannot honour the settings (a device Blender does not see): it says
		 * why by itself and exits; a frame asked for meanwhile fails with the load */
		error = cJSON_GetObjectItemCaseSensitive(json, "error");
		ev->kind = DR_BL_LOAD_FAILED;
		ev->frame = busy(b) ? b->frame : 0;
		dr_seterr(ev->error, sizeof(ev->error), "Blender cannot render '%s' as asked: %s",
		          b->render.scene,
		          cJSON_IsString(error) ? error->valuestring : "(no message)");
		cJSON_Delete(json);
		dr_proc_wait_exit(b->proc, EOF_GRACE_MS);
		set_state(b, BL_DOWN);
		dr_proc_kill(b->proc);
		b->rlen = 0;
		return true;
	} else if (strcmp(event->valuestring, "done") == 0) {
		if (!busy(b) || !cJSON_IsNumber(frame) || (int)frame->valuedouble != b->frame) {
			cJSON_Delete(json);
			warm_died(b, ev, "it reported a frame that was not asked for");
			return ev->kind != DR_BL_NONE;
		}
		seconds = cJSON_GetObjectItemCaseSensitive(json, "seconds");
		peak = cJSON_GetObjectItemCaseSensitive(json, "peak_mb");
		if (cJSON_IsNumber(peak) && peak->valuedouble > 0)
			ev->peak_mb = peak->valuedouble;
		const cJSON *samples = cJSON_GetObjectItemCaseSensitive(json, "samples");
		if (cJSON_IsNumber(samples) && samples->valuedouble >= 1 &&
		    samples->valuedouble <= DR_SAMPLES_MAX)
			ev->samples = (int)samples->valuedouble;
		ev->kind = DR_BL_DONE;
		ev->frame = b->frame;
		ev->seconds =
		        cJSON_IsNumber(seconds) ? seconds->valuedouble : dr_now() - b->started;
		frame_over(b);
		got = true;
	} else if (strcmp(event->valuestring, "error") == 0 && busy(b)) {
		error = cJSON_GetObjectItemCaseSensitive(json, "error");
		/* a Python error says why by itself: no output tail */
		ev->kind = DR_BL_FAILED;
		ev->frame = b->frame;
		snprintf(ev->error, sizeof(ev->error), "Python error while rendering frame %d: %s",
		         b->frame, cJSON_IsString(error) ? error->valuestring : "(no message)");
		frame_over(b);
		got = true;
	} else if (b->verbose) {
		fprintf(stderr, "[blender %ld] ignored reply: %s\n", (long)dr_proc_pid(b->proc),
		        line);
	}
	cJSON_Delete(json);
	return got;
}

/* Take complete lines from the reply buffer until one yields an event. */
static bool process_lines(dr_blender *b, dr_bl_event *ev)
{
	while (dr_proc_pid(b->proc) > 0 && b->rlen > 0) {
		char *nl = memchr(b->rbuf, '\n', b->rlen);
		size_t used;
		bool got;

		if (!nl)
			return false;
		*nl = '\0';
		used = (size_t)(nl - b->rbuf) + 1;
		got = handle_reply(b, b->rbuf, ev);
		if (dr_proc_pid(b->proc) > 0) { /* handle_reply may have ended Blender */
			memmove(b->rbuf, b->rbuf + used, b->rlen - used);
			b->rlen -= used;
		}
		if (got)
			return true;
	}
	return false;
}

/* Read what the driver has sent. Returns -1 when the line gets absurdly long. */
static int read_replies(dr_blender *b)
{
	while (dr_proc_reply_open(b->proc)) {
		ssize_t n;

		if (b->rcap - b->rlen < 4096 &&
		    (b->rlen + 4096 > REPLY_MAX ||
		     dr_grow(&b->rbuf, &b->rcap, b->rlen + 4096, 1) < 0))
			return -1;
		n = dr_proc_read_reply(b->proc, b->rbuf + b->rlen, b->rcap - b->rlen - 1);
		if (n > 0)
			b->rlen += (size_t)n;
		else if (n < 0)
			return 0; /* EAGAIN (or worse: treated as nothing yet); 0 = EOF closed it */
	}
	return 0;
}

/* True when the warm Blender has closed its reply pipe or exited: it must be replaced. */
static bool warm_gone(const dr_blender *b)
{
	return !dr_proc_reply_open(b->proc) || dr_proc_exited(b->proc);
}

/* ---- one-shot end ---- */

static void one_shot_ended(dr_blender *b, dr_bl_event *ev)
{
	char how[128], why[DR_ERRLEN];
	struct stat st;
	double secs = dr_now() - b->started;
	int status = dr_proc_kill(b->proc);

	frame_over(b);
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    stat(b->tmp_path, &st) == 0 && st.st_size > 0) {
		ev->kind = DR_BL_DONE;
		ev->frame = b->frame;
		ev->seconds = secs;
		return;
	}
	if (status == -1)
		snprintf(why, sizeof(why), "Blender went away while rendering frame %d", b->frame);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		dr_proc_describe(status, how, sizeof(how));
		snprintf(why, sizeof(why), "Blender %s while rendering frame %d", how, b->frame);
	} else if (stat(b->tmp_path, &st) < 0)
		snprintf(why, sizeof(why), "Blender exited without writing frame %d to '%s'",
		         b->frame, b->tmp_path);
	else
		snprintf(why, sizeof(why), "Blender wrote an empty file for frame %d at '%s'",
		         b->frame, b->tmp_path);
	fail_event(b, ev, false, b->frame, why);
}

/* ---- the load bound ---- */

/* When a warm Blender that is still loading must have said "ready" (dr_now), or 0 for no bound. */
static double load_deadline(const dr_blender *b)
{
	if (b->one_shot || b->load_timeout <= 0 || reported_ready(b) || b->state == BL_DOWN ||
	    dr_proc_pid(b->proc) <= 0)
		return 0;
	return b->load_started + b->load_timeout;
}

/* The warm Blender took longer than --load-timeout to load: kill its process group and fill EV
 * as a load failure (with the frame asked for, if any). */
static void load_timed_out(dr_blender *b, dr_bl_event *ev)
{
	char why[256];
	bool was_busy = busy(b);
	int frame = b->frame;

	snprintf(why, sizeof(why),
	         "it did not finish loading within %g s (--load-timeout) and was killed",
	         b->load_timeout);
	set_state(b, BL_DOWN);
	dr_proc_kill(b->proc);
	b->rlen = 0;
	fail_event(b, ev, true, was_busy ? frame : 0, why);
}

static int spawn_merge(dr_blender *b, const char *tmp, char *err, size_t errlen);
static char *merge_job_text(const dr_render_cfg *r, const char *tmp, int threads, char *err,
                            size_t errlen);

/* ---- public API ---- */

dr_blender *dr_blender_create(const dr_blender_cfg *cfg, char *err, size_t errlen)
{
	dr_blender *b = NULL;
	dr_proc_cfg pc;

	if (!cfg || !cfg->render.scene[0] || cfg->threads < 1 || cfg->render.samples < 0) {
		dr_seterr(err, errlen, "internal error: bad Blender configuration");
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	b->state = BL_DOWN;
	if (cfg->one_shot && cfg->render.device[0]) {
		dr_seterr(err, errlen,
		          "--device %s needs a warm Blender: --one-shot does not choose devices",
		          cfg->render.device);
		goto fail;
	}
	b->exe = resolve_exe(cfg->exe, err, errlen);
	if (!b->exe)
		goto fail;
	b->render = cfg->render;
	if (!b->render.format[0])
		memcpy(b->render.format, "PNG", sizeof "PNG");
	b->threads = cfg->threads;
	b->one_shot = cfg->one_shot || cfg->render.merge; /* a merge: one Blender per merge */
	b->allow_autoexec = cfg->allow_autoexec;
	b->list_assets = cfg->list_assets;
	b->verbose = cfg->verbose;
	b->gpu = cfg->gpu;
	b->gpu_threads = cfg->gpu_threads;
	b->persistent_data = cfg->persistent_data;
	if (cfg->gpu_why && !(b->gpu_why = strdup(cfg->gpu_why))) {
		dr_seterr(err, errlen, "out of memory");
		goto fail;
	}
	b->load_timeout = cfg->load_timeout > 0 ? cfg->load_timeout : 0;
	pc = (dr_proc_cfg){
	        .what = b->render.merge ? "Blender (merge)" : "Blender",
	        .echo_tag = cfg->verbose ? "blender" : NULL,
	        .cmd_fd = b->one_shot ? -1 : CHILD_CMD_FD,
	        .reply_fd = b->one_shot ? -1 : CHILD_REPLY_FD,
	        .cpus = cfg->cpus,
	};
	b->proc = dr_proc_create(&pc, err, errlen);
	if (!b->proc)
		goto fail;
	if (b->one_shot)
		set_state(b, BL_LOADING); /* READY comes with the first poll */
	else if (spawn_warm(b, err, errlen) < 0)
		goto fail;
	return b;
fail:
	dr_blender_destroy(b);
	return NULL;
}

/* Send the warm driver a "render" command, or with MERGE (a merge's job JSON text, see
 * merge_job_text) a "merge" command, for FRAME into TMP_PATH. */
static int send_render(dr_blender *b, int frame, const char *tmp_path, const char *thumb,
                       const char *merge, char *err, size_t errlen)
{
	cJSON *json = cJSON_CreateObject(), *job = merge ? cJSON_Parse(merge) : NULL;
	char *text = NULL, why[256];
	size_t len;
	int rc = -1;

	if (!json || (merge && (!job || !cJSON_AddItemToObject(json, "job", job))) ||
	    (job = NULL, !cJSON_AddStringToObject(json, "cmd", merge ? "merge" : "render")) ||
	    !cJSON_AddNumberToObject(json, "frame", frame) ||
	    !cJSON_AddStringToObject(json, "path", tmp_path) ||
	    (thumb && !cJSON_AddStringToObject(json, "thumb", thumb)) ||
	    !(text = cJSON_PrintUnformatted(json))) {
		dr_seterr(err, errlen, "out of memory");
		goto out;
	}
	len = strlen(text);
	text[len] = '\n'; /* replaces the terminator; written by length */
	rc = dr_proc_write(b->proc, text, len + 1, why, sizeof(why));
	text[len] = '\0';
	if (rc < 0)
		dr_seterr(err, errlen, "cannot send frame %d to Blender: %s", frame, why);
out:
	cJSON_free(text);
	cJSON_Delete(job);
	cJSON_Delete(json);
	return rc;
}

/* Reap the warm Blender (after a grace period to exit by itself): the next frame starts another. */
static void warm_replace(dr_blender *b)
{
	dr_proc_wait_exit(b->proc, EOF_GRACE_MS);
	set_state(b, BL_DOWN);
	dr_proc_kill(b->proc);
	b->rlen = 0;
}

/* Send a command to the warm Blender (see send_render); a Blender that died (or closed its pipes)
 * since is replaced first, and one that dies just now gets one fresh start. */
static int warm_send(dr_blender *b, int frame, const char *tmp_path, const char *thumb,
                     const char *merge, char *err, size_t errlen)
{
	if (dr_proc_pid(b->proc) > 0 && warm_gone(b))
		warm_replace(b);
	if (dr_proc_pid(b->proc) <= 0 && spawn_warm(b, err, errlen) < 0)
		return -1;
	if (send_render(b, frame, tmp_path, thumb, merge, err, errlen) == 0)
		return 0;
	warm_replace(b);
	if (spawn_warm(b, err, errlen) < 0 ||
	    send_render(b, frame, tmp_path, thumb, merge, err, errlen) < 0)
		return -1;
	return 0;
}

int dr_blender_render(dr_blender *b, int frame, const char *tmp_path, char *err, size_t errlen)
{
	return dr_blender_render_thumb(b, frame, tmp_path, NULL, err, errlen);
}

int dr_blender_render_thumb(dr_blender *b, int frame, const char *tmp_path, const char *thumb,
                            char *err, size_t errlen)
{
	if (!b || !tmp_path || !*tmp_path)
		return dr_seterr(err, errlen, "internal error: bad render request");
	if (busy(b))
		return dr_seterr(err, errlen, "internal error: frame %d is still in flight",
		                 b->frame);
	if (b->one_shot) {
		char *copy = strdup(tmp_path);

		if (!copy)
			return dr_seterr(err, errlen, "out of memory");
		if ((b->render.merge ? spawn_merge(b, tmp_path, err, errlen)
		                     : spawn_one_shot(b, frame, tmp_path, err, errlen)) < 0) {
			free(copy);
			return -1;
		}
		free(b->tmp_path);
		b->tmp_path = copy;
	} else {
		if (warm_send(b, frame, tmp_path, thumb, NULL, err, errlen) < 0)
			return -1;
	}
	b->frame = frame;
	b->started = dr_now();
	frame_asked(b);
	return 0;
}

int dr_blender_merge_warm(dr_blender *b, const dr_render_cfg *merge, int frame,
                          const char *tmp_path, char *err, size_t errlen)
{
	char *text;
	int rc;

	if (!b || b->one_shot || !merge->merge || !tmp_path || !*tmp_path)
		return dr_seterr(err, errlen, "internal error: no warm Blender to merge in");
	if (busy(b))
		return dr_seterr(err, errlen, "internal error: frame %d is still in flight",
		                 b->frame);
	if (!(text = merge_job_text(merge, tmp_path, b->threads, err, errlen)))
		return -1;
	rc = warm_send(b, frame, tmp_path, NULL, text, err, errlen);
	cJSON_free(text);
	if (rc < 0)
		return -1;
	b->frame = frame;
	b->started = dr_now();
	frame_asked(b);
	return 0;
}

int dr_blender_poll(dr_blender *b, int timeout_ms, dr_bl_event *ev)
{
	double deadline;

	if (!ev)
		return -1;
	memset(ev, 0, sizeof(*ev));
	ev->kind = DR_BL_NONE;
	if (!b) {
		snprintf(ev->error, sizeof(ev->error), "internal error: no Blender");
		return -1;
	}
	if (b->one_shot && !reported_ready(b)) { /* one-shot: nothing to load */
		set_state(b, b->state == BL_LOADING_FRAME ? BL_RENDERING : BL_READY);
		ev->kind = DR_BL_READY;
		return 0;
	}
	if (timeout_ms < 0)
		timeout_ms = INT_MAX / 2;
	deadline = dr_now() + timeout_ms / 1000.0;
	for (;;) {
		double left, ldl;

		if (!b->one_shot && dr_proc_pid(b->proc) > 0) {
			if (process_lines(b, ev))
				return 0;
			if (dr_proc_pid(b->proc) > 0 && read_replies(b) < 0) {
				warm_died(b, ev, "its reply line is too long");
				if (ev->kind != DR_BL_NONE)
					return 0;
			}
			if (dr_proc_pid(b->proc) > 0 && process_lines(b, ev))
				return 0;
			if (dr_proc_pid(b->proc) > 0 && warm_gone(b)) {
				warm_died(b, ev, NULL);
				if (ev->kind != DR_BL_NONE)
					return 0;
			}
		} else if (b->one_shot && dr_proc_pid(b->proc) > 0) {
			dr_proc_drain(b->proc);
			if (dr_proc_exited(b->proc)) {
				one_shot_ended(b, ev);
				return 0;
			}
		}
		ldl = load_deadline(b);
		if (ldl > 0 && dr_now() >= ldl) {
			load_timed_out(b, ev);
			return 0;
		}
		left = (deadline - dr_now()) * 1000.0;
		if (left <= 0)
			return 0;
		if (ldl > 0 && (ldl - dr_now()) * 1000.0 < left)
			left = (ldl - dr_now()) *
			       1000.0; /* wake up when the load runs out of time */
		if (dr_proc_poll(b->proc, left < 1         ? 1
		                          : left > INT_MAX ? INT_MAX
		                                           : (int)left) < 0) {
			if (errno == EINTR)
				return 0; /* let the caller look at its signal flags */
			snprintf(ev->error, sizeof(ev->error), "poll on Blender's pipes: %s",
			         strerror(errno));
			return -1;
		}
	}
}

bool dr_blender_busy(const dr_blender *b)
{
	return b && busy(b);
}

void dr_blender_kill(dr_blender *b)
{
	if (!b)
		return;
	if (b->one_shot)
		frame_over(b); /* the next frame starts its own Blender */
	else
		set_state(b, BL_DOWN);
	dr_proc_kill(b->proc);
	b->rlen = 0;
}

void dr_blender_destroy(dr_blender *b)
{
	if (!b)
		return;
	if (b->proc && dr_proc_pid(b->proc) > 0 && !b->one_shot) {
		static const char quit[] = "{\"cmd\":\"quit\"}\n";

		if (dr_proc_write(b->proc, quit, sizeof(quit) - 1, NULL, 0) == 0) {
			dr_proc_close_cmd(b->proc); /* EOF also means quit */
			dr_proc_wait_exit(b->proc, QUIT_GRACE_MS);
		}
	}
	dr_proc_destroy(b->proc);
	free(b->exe);
	free(b->gpu_why);
	free(b->assets);
	free(b->assets_error);
	free(b->tmp_path);
	free(b->rbuf);
	free(b);
}

pid_t dr_blender_pid(const dr_blender *b)
{
	return b ? dr_proc_pid(b->proc) : 0;
}

/* The merge's job for the driver (--drender-merge): the range EXRs of the still split that merge
 * job R merges, and where the merged image goes (TMP). A cJSON_Print string, or NULL with ERR. */
static char *merge_job_text(const dr_render_cfg *r, const char *tmp, int threads, char *err,
                            size_t errlen)
{
	cJSON *job = cJSON_CreateObject(), *inputs = NULL;
	dr_render_cfg ranges;
	dr_outpath op;
	char path[DR_PATH_MAX], *text = NULL;

	if (dr_render_cfg_ranges_of(r, &ranges, err, errlen) != 0 ||
	    dr_render_cfg_outpath(&ranges, &op, err, errlen) != 0)
		goto out;
	if (!job || !(inputs = cJSON_AddArrayToObject(job, "inputs"))) {
		dr_seterr(err, errlen, "out of memory");
		goto out;
	}
	for (int k = 0; k < r->ranges; k++)
		if (dr_outpath_frame(&op, k, path, sizeof path) != 0 ||
		    !cJSON_AddItemToArray(inputs, cJSON_CreateString(path))) {
			dr_seterr(err, errlen, "out of memory or a range's name too long");
			goto out;
		}
	if (!cJSON_AddStringToObject(job, "output", tmp) ||
	    !cJSON_AddStringToObject(job, "format", r->still_format) ||
	    !(r->engine[0] ? cJSON_AddStringToObject(job, "engine", r->engine)
	                   : cJSON_AddNullToObject(job, "engine")) ||
	    !cJSON_AddNumberToObject(job, "frame", r->still) ||
	    !cJSON_AddNumberToObject(job, "threads", threads) ||
	    !(text = cJSON_PrintUnformatted(job)))
		dr_seterr(err, errlen, "out of memory");
out:
	cJSON_Delete(job);
	return text;
}

/* A merge job's "frame" (the still): a short-lived Blender on the scene merges the ranges into
 * TMP with Cycles' merge_images (driver.py, merge_main), as a one-shot render would write it. */
static int spawn_merge(dr_blender *b, const char *tmp, char *err, size_t errlen)
{
	char threads[16], *text = NULL;
	const char *argv[16];
	int n, rc = -1;

	if (!format_int(threads, sizeof threads, b->threads) ||
	    !(text = merge_job_text(&b->render, tmp, b->threads, err, errlen)))
		goto out;
	if (!b->driver[0] && driver_file(b->driver, sizeof b->driver, err, errlen) != 0)
		goto out;
	n = common_argv(b, argv, threads);
	argv[n++] = "--python";
	argv[n++] = b->driver;
	argv[n++] = "--";
	argv[n++] = "--drender-merge";
	argv[n++] = text;
	argv[n] = NULL;
	rc = spawn(b, (char *const *)argv, err, errlen);
out:
	cJSON_free(text);
	return rc;
}
