/* Render node: runs the tasks rank 0 hands it on one supervised Blender and reports each frame. */
#include "dr_node.h"

#include "dr_assets.h"
#include "dr_cache.h"
#include "dr_imgcheck.h"
#include "dr_log.h"
#include "dr_proc.h"
#include "dr_util.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const state_names[] = {"WARMING", "NO_BLENDER", "LOADING", "READY", "STOPPED"};

/* The one place where N's state changes (see dr_node.h). */
static void set_state(dr_node *n, enum dr_node_state to)
{
	if (n->state != to)
		dr_debug("node %s: %s -> %s", n->host, state_names[n->state], state_names[to]);
	n->state = to;
}

static int send_msg(dr_node *n, dr_msg *m, char *err, size_t errlen)
{
	n->last_sent = dr_now();
	return dr_chan_send(n->chan, 0, m, err, errlen);
}

static int send_simple(dr_node *n, int type, int job, const char *text, char *err, size_t errlen)
{
	dr_msg m = {.type = type, .job = job, .threads = n->threads, .pid = (int32_t)getpid()};
	snprintf(m.host, sizeof m.host, "%s", n->host);
	if (text)
		snprintf(m.text, sizeof m.text, "%s", text);
	if (type == DR_MSG_REQUEST || type == DR_MSG_READY || type == DR_MSG_LOADFAIL)
		n->requested = true; /* each of these asks for work */
	return send_msg(n, &m, err, errlen);
}

/* Parse a JOB message's settings into J. 0, or -1 with ERR. */
static int job_decode(int id, const char *text, dr_node_job *j, char *err, size_t errlen)
{
	dr_node_job nj = {.id = id};

	if (dr_render_cfg_decode(text, &nj.render, err, errlen) != 0 ||
	    dr_render_cfg_outpath(&nj.render, &nj.out, err, errlen) != 0)
		return -1;
	*j = nj;
	return 0;
}

/* Is the loaded Blender's scene the version the current job names? Yes if the job names none;
 * a Blender whose version is unknown (warmed up on a copy of a scene this node cannot see) is
 * taken to hold the first version a job names, and is known by it from then on. */
static bool same_version(dr_node *n)
{
	if (!n->job.render.version[0])
		return true;
	if (!n->loaded.version[0])
		snprintf(n->loaded.version, sizeof n->loaded.version, "%s", n->job.render.version);
	return strcmp(n->job.render.version, n->loaded.version) == 0;
}

/* The version of the scene at PATH (dr_cache_version) into OUT, "" if this node cannot read it. */
static void version_of(const char *path, char *out, size_t len)
{
	char why[DR_ERRLEN];

	if (dr_cache_version(path, out, len, why, sizeof why) != 0)
		out[0] = '\0';
}

/* (Re)start Blender for the current job's settings. Returns 0; -1 with WHY if it cannot start. */
static int load(dr_node *n, char *why, size_t whylen)
{
	dr_blender_cfg cfg = {
	        .exe = n->cfg.blender,
	        .render = n->job.render,
	        .threads = n->threads,
	        .one_shot = n->cfg.one_shot,
	        .allow_autoexec = n->cfg.allow_autoexec,
	        .verbose = n->cfg.verbose,
	        .cpus = n->cpus,
	        .gpu = n->cfg.gpu,
	        .gpu_why = n->cfg.gpu_why,
	        .gpu_threads = n->cfg.threads_set ? 0 : (n->threads < 2 ? n->threads : 2),
	        .persistent_data = n->cfg.persistent_data,
	        .load_timeout = n->cfg.load_timeout,
	        .list_assets = true,
	};
	char have[72] = "";
	const char *want = n->job.render.version;

	/* a staged scene: Blender opens the node's cached copy (names and outputs keep the
	 * scene's own name), unless the job names a version other than the one staged (the scene
	 * was edited since): then the scene itself */
	if (n->cfg.scene_local && n->cfg.scene && strcmp(cfg.render.scene, n->cfg.scene) == 0) {
		if (!n->staged_checked)
			version_of(n->cfg.scene, n->staged_version, sizeof n->staged_version);
		n->staged_checked = true;
		if (want[0] && n->staged_version[0] && strcmp(n->staged_version, want) != 0)
			dr_info("%s changed since it was staged: loading it from its own path",
			        n->cfg.scene);
		else
			snprintf(cfg.render.scene, sizeof cfg.render.scene, "%s",
			         n->cfg.scene_local);
	}
	/* a fetched scene (--serve without shared storage): the same, per job */
	if (n->fetched[0] && strlen(n->fetched) < sizeof cfg.render.scene)
		memcpy(cfg.render.scene, n->fetched, strlen(n->fetched) + 1); /* fits: checked */
	/* a job that names no device renders on the command line's */
	if (!cfg.render.device[0] && n->cfg.device)
		snprintf(cfg.render.device, sizeof cfg.render.device, "%s", n->cfg.device);
	n->device[0] = '\0';
	n->peak_mb = 0;
	dr_blender_destroy(n->lister);
	n->lister = NULL;
	dr_blender_destroy(n->bl);
	/* warming up stays warming up: READY is still to be said */
	set_state(n, n->state == DR_NODE_WARMING ? DR_NODE_WARMING : DR_NODE_LOADING);
	/* the version this Blender is loaded for: the job's (once loaded for it, a job of that
	 * version never reloads it), else that of the scene as named if this node sees it (the
	 * warm-up; a copy's own hash is not the scene's: a packed copy differs) */
	if (!want[0] || strcmp(cfg.render.scene, n->job.render.scene) == 0)
		version_of(n->job.render.scene, have, sizeof have);
	if (want[0] && have[0] && strcmp(have, want) != 0)
		dr_warn("%s changed after job %d was submitted: rendering what it holds now",
		        n->job.render.scene, n->job.id);
	n->loaded = n->job.render;
	if (!want[0])
		snprintf(n->loaded.version, sizeof n->loaded.version, "%s", have);
	n->bl = dr_blender_create(&cfg, why, whylen);
	if (!n->bl) {
		n->loaded.scene[0] = '\0';
		return -1;
	}
	dr_debug("Blender started on %s for %s with %d thread%s", n->host, n->job.render.scene,
	         n->threads, n->threads == 1 ? "" : "s");
	if (cfg.one_shot) { /* one-shot Blenders run no driver: a warm one lists the files */
		char lerr[DR_ERRLEN];

		cfg.one_shot = false;
		n->lister = dr_blender_create(&cfg, lerr, sizeof lerr);
		if (!n->lister)
			dr_debug("the scene's external files are not checked: %s", lerr);
	}
	return 0;
}

int dr_node_start(dr_node *n, const dr_node_cfg *o, dr_chan *chan, int threads,
                  const cpu_set_t *cpus, char *err, size_t errlen)
{
	char why[DR_ERRLEN] = "", real[DR_PATH_MAX];

	memset(n, 0, sizeof *n);
	n->cfg = *o;
	n->chan = chan;
	n->cpus = cpus;
	n->threads = threads;
	n->frame = -1;
	n->job.id = -1;
	if (gethostname(n->host, sizeof n->host - 1) != 0)
		snprintf(n->host, sizeof n->host, "unknown-host");
	dr_outdir_tag(n->host, n->tag, sizeof n->tag);
	if (send_simple(n, DR_MSG_HELLO, -1, NULL, err, errlen))
		return -1;
	if (!o->scene) { /* a service without a default scene: Blender starts with the first job */
		set_state(n, DR_NODE_NO_BLENDER);
		n->idle_since = dr_now();
		return send_simple(n, DR_MSG_READY, -1, NULL, err, errlen);
	}
	/* Warm up on the command line's scene: it is job 0 of a batch run, or the service's
	 * default scene. A LOADFAIL for job -1 says this failed. */
	/* A service's jobs name scenes by real path: warm up under the same name. */
	if (!o->serve || !realpath(o->scene, real))
		snprintf(real, sizeof real, "%s", o->scene);
	dr_render_args a = {.scene = real,
	                    .format = o->format,
	                    .engine = o->engine,
	                    .samples = o->samples,
	                    .still = o->still,
	                    .ranges = o->split};
	if (dr_render_cfg_build(&n->job.render, &a, why, sizeof why) != 0) {
		set_state(n, DR_NODE_NO_BLENDER);
		return send_simple(n, DR_MSG_LOADFAIL, -1, why, err, errlen);
	}
	if (o->fetch) { /* the scene from rank 0 first (dr_fetch): the ticks ask, then load */
		n->warm_fetch = true;
		return 0;
	}
	if (load(n, why, sizeof why) != 0) {
		set_state(n, DR_NODE_NO_BLENDER);
		return send_simple(n, DR_MSG_LOADFAIL, -1, why, err, errlen);
	}
	return 0;
}

bool dr_node_stopped(const dr_node *n)
{
	return n->state == DR_NODE_STOPPED;
}

bool dr_node_idle(const dr_node *n)
{
	return n->frame < 0 && n->qlen == 0 &&
	       (n->state == DR_NODE_READY || n->state == DR_NODE_STOPPED || !n->bl);
}

static void drop_queue(dr_node *n)
{
	n->qhead = n->qlen = 0;
}

/* Tell rank 0 that FRAME was dropped on its request (not a failure). */
static int ack_cancel(dr_node *n, int frame, char *err, size_t errlen)
{
	dr_msg m = {.type = DR_MSG_RESULT, .job = n->job.id, .frame = frame, .ok = -1};
	return send_msg(n, &m, err, errlen);
}

int dr_node_handle(dr_node *n, const dr_msg *m, char *err, size_t errlen)
{
	char why[DR_ERRLEN];

	switch (m->type) {
	case DR_MSG_STOP:
		set_state(n, DR_NODE_STOPPED);
		return 0;
	case DR_MSG_JOB: {
		dr_node_job j;
		if (job_decode(m->job, m->text, &j, why, sizeof why) != 0)
			return send_simple(n, DR_MSG_LOADFAIL, m->job, why, err, errlen);
		if (n->frame >= 0 || n->qlen > 0) { /* cannot happen: rank 0 waits for a request */
			dr_warn("job %d arrived while job %d was in flight; dropping the latter",
			        m->job, n->job.id);
			dr_node_abort(n);
			drop_queue(n);
		}
		n->job = j;
		return 0;
	}
	case DR_MSG_TASK:
		/* Appended: a node asks for its next task while it renders its last frame. */
		n->requested = false;
		if (m->n < 1 || m->job != n->job.id || n->qlen + m->n > DR_CHUNK_MAX) {
			dr_warn("ignoring a task for job %d (%d frames) while on job %d with %d "
			        "queued",
			        m->job, m->n, n->job.id, n->qlen);
			return 0;
		}
		memmove(n->queue, n->queue + n->qhead, (size_t)n->qlen * sizeof n->queue[0]);
		memcpy(n->queue + n->qlen, m->frames, (size_t)m->n * sizeof m->frames[0]);
		n->qhead = 0;
		n->qlen += m->n;
		return 0;
	case DR_MSG_CANCEL:
		/* Drop the frame(s); each dropped frame is acknowledged (ok = -1) so that rank 0
		 * knows what this node still holds. */
		if (m->job != n->job.id)
			return 0;
		for (int i = n->qhead; i < n->qhead + n->qlen;) {
			if (m->frame >= 0 && n->queue[i] != m->frame) {
				i++;
				continue;
			}
			if (ack_cancel(n, n->queue[i], err, errlen))
				return -1;
			memmove(&n->queue[i], &n->queue[i + 1],
			        (size_t)(n->qhead + n->qlen - i - 1) * sizeof(int));
			n->qlen--;
		}
		/* The whole job is cancelled while Blender still loads its scene for it: kill the
		 * load too (it may never end), so that the node is free for the next job. */
		if (m->frame < 0 && n->bl && n->state == DR_NODE_LOADING && n->qlen == 0 &&
		    n->frame < 0) {
			dr_blender_kill(n->bl);
			dr_blender_destroy(n->bl);
			n->bl = NULL;
			dr_blender_destroy(n->lister);
			n->lister = NULL;
			n->loaded.scene[0] = '\0';
			set_state(n, DR_NODE_NO_BLENDER);
			n->idle_since = dr_now();
			return 0;
		}
		/* n = 1: take it back only if it has not started (rank 0 wants it for an idle node)
		 */
		if (n->frame >= 0 && (m->frame < 0 || m->frame == n->frame) && m->n != 1) {
			int frame = n->frame;
			dr_node_abort(n); /* Blender restarts with the next frame */
			n->idle_since = dr_now();
			return ack_cancel(n, frame, err, errlen);
		}
		return 0;
	default:
		return 0;
	}
}

/* What a READY or a rendered frame's RESULT says of N's Blender, as JSON into BUF:
 * {"device": "CUDA:0 NVIDIA A100", "peak_mb": 321.5} (a still's range adds "samples": 16); NULL
 * when nothing is known. */
static const char *device_text(const dr_node *n, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	const char *ret = NULL;

	if (o && (n->device[0] || n->peak_mb > 0) &&
	    cJSON_AddStringToObject(o, "device", n->device) &&
	    cJSON_AddNumberToObject(o, "peak_mb", n->peak_mb) &&
	    (n->samples <= 0 || cJSON_AddNumberToObject(o, "samples", n->samples)) &&
	    (text = cJSON_PrintUnformatted(o)) && strlen(text) < len) {
		memcpy(buf, text, strlen(text) + 1);
		ret = buf;
	}
	cJSON_free(text);
	cJSON_Delete(o);
	return ret;
}

/* The RESULT of the node's frame; the node is idle from now on. */
static dr_msg result_msg(dr_node *n, int ok, double seconds, const char *text)
{
	dr_msg m = {.type = DR_MSG_RESULT,
	            .job = n->job.id,
	            .frame = n->frame,
	            .ok = ok,
	            .seconds = seconds,
	            .wait = n->wait};
	if (text)
		snprintf(m.text, sizeof m.text, "%s", text);
	n->frame = -1;
	n->idle_since = dr_now();
	return m;
}

static int report(dr_node *n, int ok, double seconds, const char *text, char *err, size_t errlen)
{
	dr_msg m = result_msg(n, ok, seconds, text);
	return send_msg(n, &m, err, errlen);
}

/* Frames come home (dr_collect): the RESULT of the frame at FINAL goes out once rank 0 has it. */
static int push_home(dr_node *n, double seconds, const char *text, const char *final, char *err,
                     size_t errlen)
{
	dr_msg m = result_msg(n, 1, seconds, text);
	dr_msg r = {.type = DR_MSG_RENDERED, .job = m.job, .frame = m.frame};

	if (n->cfg.push(n->cfg.push_ctx, &m, final, err, errlen) != 0)
		return -1;
	return send_msg(n, &r, err, errlen); /* rank 0 may give work meanwhile */
}

/* The thumbnail of the file at PATH: "<dir>/.thumbs/<name>.thumb", PNG data without a .png suffix
 * so that globs for frames do not count it (GET /jobs/<id>/frames/<n>/thumb reads it). -1 if it
 * does not fit. */
static int thumb_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	int w;

	if (!slash)
		return -1;
	w = snprintf(out, len, "%.*s/.thumbs/%s.thumb", (int)(slash - path), path, slash + 1);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

/* The frame is in place at FINAL: its thumbnail (if the driver made one) goes in place after it,
 * so that a thumbnail never shows a frame that is not there. A thumbnail is a nicety: failures
 * are dropped quietly. */
static void place_thumb(const dr_node *n, const char *final)
{
	char tmp[DR_PATH_MAX], dst[DR_PATH_MAX];

	if (thumb_of(n->tmp, tmp, sizeof tmp) != 0 || access(tmp, F_OK) != 0)
		return;
	if (thumb_of(final, dst, sizeof dst) != 0 || rename(tmp, dst) != 0) {
		dr_debug("frame %d: thumbnail not kept: %s", n->frame, strerror(errno));
		unlink(tmp);
	}
}

static void drop_thumb(const dr_node *n)
{
	char tmp[DR_PATH_MAX];

	if (n->tmp[0] && thumb_of(n->tmp, tmp, sizeof tmp) == 0)
		unlink(tmp);
}

/* Blender says FRAME is rendered: check the file, move it into place, report. */
static int finish_frame(dr_node *n, double seconds, char *err, size_t errlen)
{
	char final[DR_PATH_MAX], why[2 * DR_PATH_MAX + 100];

	if (dr_imgcheck(n->tmp, n->job.render.format, why, sizeof why) != 0) {
		drop_thumb(n);
		unlink(n->tmp);
		return report(n, 0, 0, why, err, errlen);
	}
	if (dr_outpath_frame(&n->job.out, n->frame, final, sizeof final) != 0) {
		drop_thumb(n);
		unlink(n->tmp);
		return report(n, 0, 0, "output path too long", err, errlen);
	}
	if (rename(n->tmp, final) != 0) {
		snprintf(why, sizeof why, "cannot move %s to %s: %s", n->tmp, final,
		         strerror(errno));
		drop_thumb(n);
		unlink(n->tmp);
		return report(n, 0, 0, why, err, errlen);
	}
	place_thumb(n, final);
	if (n->cfg.push)
		return push_home(n, seconds, device_text(n, why, sizeof why), final, err, errlen);
	return report(n, 1, seconds, device_text(n, why, sizeof why), err, errlen);
}

static int fail_frame(dr_node *n, const char *why, char *err, size_t errlen)
{
	drop_thumb(n);
	unlink(n->tmp);
	return report(n, 0, 0, why, err, errlen);
}

/* Make sure FRAME's output directory exists (and clean what dead runs of this host left there):
 * once per directory. */
static int prepare_dir(dr_node *n, int frame, char *why, size_t whylen)
{
	char dir[DR_PATH_MAX];
	dr_frames one = {&frame, 1};

	if (dr_outpath_dir(&n->job.out, frame, dir, sizeof dir) != 0) {
		snprintf(why, whylen, "output path too long");
		return -1;
	}
	if (strcmp(dir, n->last_dir) == 0)
		return 0;
	if (dr_outdir_prepare(&n->job.out, &one, why, whylen) != 0)
		return -1;
	dr_outdir_clean_stale(&n->job.out, &one, n->host);
	/* the hidden folder of thumbnails (see place_thumb); without it, there are none */
	if (strlen(dir) + 9 < sizeof n->last_dir) {
		char th[DR_PATH_MAX + 16];
		snprintf(th, sizeof th, "%s/.thumbs", dir);
		if (mkdir(th, 0777) != 0 && errno != EEXIST)
			dr_debug("cannot make %s: %s", th, strerror(errno));
	}
	snprintf(n->last_dir, sizeof n->last_dir, "%s", dir);
	return 0;
}

/* The job is a still's merge and the warm Blender is loaded for its ranges: it merges, with no
 * Blender start-up and no second scene load (the merge job's own Blender otherwise, and always
 * with DRENDER_COLD_MERGE=1 in the environment: for measurements and tests). */
static bool warm_merge(const dr_node *n)
{
	const char *cold = getenv("DRENDER_COLD_MERGE");

	return n->bl && !n->cfg.one_shot && !(cold && strcmp(cold, "1") == 0) &&
	       dr_render_cfg_merges_in(&n->job.render, &n->loaded);
}

static int start_next(dr_node *n, char *err, size_t errlen)
{
	char why[DR_ERRLEN] = "";
	int frame = n->queue[n->qhead++];

	n->qlen--;
	n->frame = frame;
	n->started = n->cpu_since = n->cpu_looked = dr_now();
	n->cpu_seen = -1;
	n->wait = n->idle_since > 0 ? n->started - n->idle_since : 0;
	n->tmp[0] = '\0';
	/* Hold one task ahead: ask for the next one now, so that it is here when this frame is
	 * done and the node never waits for rank 0 between frames. */
	if (n->qlen == 0 && !n->requested && dr_chan_size(n->chan) > 1 &&
	    send_simple(n, DR_MSG_REQUEST, -1, NULL, err, errlen) != 0)
		return -1;
	if (prepare_dir(n, frame, why, sizeof why) != 0)
		return report(n, 0, 0, why, err, errlen);
	if (dr_outpath_temp(&n->job.out, frame, n->tag, n->tmp, sizeof n->tmp) != 0)
		return report(n, 0, 0, "temporary path too long", err, errlen);
	if (warm_merge(n)) {
		if (dr_blender_merge_warm(n->bl, &n->job.render, frame, n->tmp, why, sizeof why) !=
		    0)
			return fail_frame(n, why, err, errlen);
		return 0;
	}
	char thumb[DR_PATH_MAX];
	if (dr_blender_render_thumb(n->bl, frame, n->tmp,
	                            thumb_of(n->tmp, thumb, sizeof thumb) == 0 ? thumb : NULL, why,
	                            sizeof why) != 0)
		return fail_frame(n, why, err, errlen);
	return 0;
}

/* Blender cannot load the job's scene: tell rank 0 (which takes back the task) and ask again. */
static int load_failed(dr_node *n, const char *why, char *err, size_t errlen)
{
	int job = n->state == DR_NODE_WARMING ? -1 : n->job.id;
	dr_blender_destroy(n->lister);
	n->lister = NULL;
	dr_blender_destroy(n->bl);
	n->bl = NULL;
	n->loaded.scene[0] = '\0';
	n->frame = -1;
	drop_queue(n);
	set_state(n, DR_NODE_NO_BLENDER);
	return send_simple(n, DR_MSG_LOADFAIL, job, why, err, errlen);
}

/* Blender has loaded the scene: judge the external files its "ready" listed (dr_assets). Returns
 * 0 when rendering may start (warnings logged by the lowest render node only, so that they show
 * once), or -1 with the list of missing files in WHY. BL: the node's warm Blender, or in
 * --one-shot its lister. A Blender that listed nothing (an older driver) is not checked. */
static int check_assets(dr_node *n, const dr_blender *bl, char *why, size_t whylen)
{
	const char *failed = NULL, *text = dr_blender_assets(bl, &failed);
	char warn[DR_ERRLEN], perr[256];
	dr_assets a = {0};
	dr_assets_summary s;
	bool speak = dr_chan_rank(n->chan) <= 1;

	if (!text) {
		if (failed && speak)
			dr_warn("the scene's external files were not checked: %s", failed);
		return 0;
	}
	if (dr_assets_parse(text, &a, perr, sizeof perr) != 0) {
		if (speak)
			dr_warn("the scene's external files were not checked: %s", perr);
		return 0;
	}
	s = dr_assets_judge(&a, n->host, n->cfg.allow_missing, why, whylen, warn, sizeof warn);
	dr_debug("%s: the scene uses %zu external files (%zu missing, %zu by absolute path)",
	         n->host, a.n, s.missing, s.absolute);
	if (!s.fatal && warn[0] && speak)
		dr_warn("%s", warn);
	dr_assets_free(&a);
	return s.fatal ? -1 : 0;
}

/* True when the frame in flight's Blender has used no CPU time for --stall seconds (looked at
 * once a second): stuck, not slow. A Blender whose CPU time cannot be read never counts. */
static bool stalled(dr_node *n)
{
	double now = dr_now(), cpu;

	if (now - n->cpu_looked < 1)
		return false;
	n->cpu_looked = now;
	cpu = dr_proc_cpu_seconds(dr_blender_pid(n->bl));
	if (cpu < 0 || cpu > n->cpu_seen) {
		n->cpu_seen = cpu;
		n->cpu_since = now;
		return false;
	}
	return now - n->cpu_since > n->cfg.stall;
}

/* --one-shot: wait for the lister's "ready", judge the files it lists, then let the one-shot
 * Blender report ready (the next ticks). A lister that cannot load the scene is the load's
 * failure: the one-shot Blender could not load it either. */
static int poll_lister(dr_node *n, int wait_ms, char *err, size_t errlen)
{
	dr_bl_event ev;
	char why[DR_ERRLEN];
	int bad;

	if (dr_blender_poll(n->lister, wait_ms, &ev) != 0 || ev.kind == DR_BL_LOAD_FAILED)
		return load_failed(n, ev.error, err, errlen);
	if (ev.kind != DR_BL_READY)
		return 0;
	bad = check_assets(n, n->lister, why, sizeof why);
	dr_blender_destroy(n->lister);
	n->lister = NULL;
	return bad ? load_failed(n, why, err, errlen) : 0;
}

/* The scene Blender is to open for JOB (-1: the warm-up), from rank 0 first when the node fetches
 * (dr_fetch): 0 once it is there (n->fetched names the copy to open, "" = the scene itself), 1
 * while it is on its way (the node naps briefly; its ticks go on, heartbeats too), -1 with WHY
 * when it cannot be had. */
static int fetch_scene(dr_node *n, int job, int wait_ms, char *why, size_t whylen)
{
	int k;

	n->fetched[0] = '\0';
	if (!n->cfg.fetch)
		return 0;
	k = n->cfg.fetch(n->cfg.fetch_ctx, job, n->job.render.scene, n->fetched, sizeof n->fetched,
	                 why, whylen);
	if (k != 0) {
		n->fetched[0] = '\0';
		if (k > 0)
			dr_sleep_ms(wait_ms < 2 ? wait_ms : 2);
		return k > 0 ? 1 : -1;
	}
	if (strcmp(n->fetched, n->job.render.scene) == 0)
		n->fetched[0] = '\0';
	return 0;
}

/* Warming up on a service's default scene, fetched from rank 0 first: ask until it is there,
 * then start Blender on it. A failure is the warm-up's LOADFAIL (job -1). */
static int warm_fetch(dr_node *n, int wait_ms, char *err, size_t errlen)
{
	char why[DR_ERRLEN];
	int k = fetch_scene(n, -1, wait_ms, why, sizeof why);

	if (k > 0)
		return 0;
	n->warm_fetch = false;
	if (k < 0 || load(n, why, sizeof why) != 0)
		return load_failed(n, why, err, errlen);
	return 0;
}

int dr_node_tick(dr_node *n, int wait_ms, char *err, size_t errlen)
{
	dr_bl_event ev;
	char why[DR_ERRLEN];

	/* Rank 0 ends the job when a node is silent too long: say we are alive. */
	if (n->state != DR_NODE_STOPPED && dr_chan_size(n->chan) > 1 &&
	    dr_now() - n->last_sent >= DR_HEARTBEAT_S &&
	    send_simple(n, DR_MSG_HEARTBEAT, -1, NULL, err, errlen) != 0)
		return -1;
	if (n->state == DR_NODE_STOPPED) {
		dr_sleep_ms(wait_ms);
		return 0;
	}
	if (n->warm_fetch)
		return warm_fetch(n, wait_ms, err, errlen);
	if (n->frame < 0 && n->qlen > 0 && (!n->bl || n->state == DR_NODE_READY)) {
		if (!n->bl || !same_version(n) ||
		    !(dr_render_cfg_same_blender(&n->job.render, &n->loaded) || warm_merge(n))) {
			int k = fetch_scene(n, n->job.id, wait_ms, why, sizeof why);
			if (k > 0)
				return 0;
			if (k < 0 || load(n, why, sizeof why) != 0)
				return load_failed(n, why, err, errlen);
			return 0;
		}
		return start_next(n, err, errlen);
	}
	if (!n->bl || (n->state == DR_NODE_READY && n->frame < 0)) {
		if (n->qlen == 0 && !n->requested)
			return send_simple(n, DR_MSG_REQUEST, -1, NULL, err, errlen);
		dr_sleep_ms(wait_ms);
		return 0;
	}
	if (n->lister && n->frame < 0)
		return poll_lister(n, wait_ms, err, errlen);
	if (dr_blender_poll(n->bl, wait_ms, &ev) != 0) {
		if (n->frame >= 0)
			return fail_frame(n, ev.error, err, errlen);
		return 0;
	}
	switch (ev.kind) {
	case DR_BL_READY: {
		enum dr_node_state was = n->state;

		if (was == DR_NODE_READY)
			return 0;
		if (check_assets(n, n->bl, why, sizeof why) != 0) /* before any frame of it */
			return load_failed(n, why, err, errlen);
		snprintf(n->device, sizeof n->device, "%s", ev.device);
		set_state(n, DR_NODE_READY);
		n->idle_since = dr_now(); /* loading a scene is not waiting for work */
		if (was != DR_NODE_WARMING)
			return 0;
		return send_simple(n, DR_MSG_READY, -1, device_text(n, why, sizeof why), err,
		                   errlen);
	}
	case DR_BL_LOAD_FAILED:
		if (n->frame >= 0 && n->state == DR_NODE_READY)
			return fail_frame(n, ev.error, err, errlen); /* a restart failed mid-job */
		return load_failed(n, ev.error, err, errlen);
	case DR_BL_DONE:
		if (ev.peak_mb > n->peak_mb)
			n->peak_mb = ev.peak_mb;
		n->samples = ev.samples;
		if (n->frame >= 0 && ev.frame == n->frame)
			return finish_frame(n, ev.seconds, err, errlen);
		return 0;
	case DR_BL_FAILED:
		if (n->frame >= 0)
			return fail_frame(n, ev.error, err, errlen);
		return 0;
	case DR_BL_NONE:
		break;
	}
	if (n->frame >= 0 && n->cfg.stall > 0 && stalled(n)) {
		dr_blender_kill(n->bl);
		snprintf(why, sizeof why,
		         "made no progress for %.0f s (Blender used no CPU time: stuck, --stall); "
		         "Blender was killed",
		         n->cfg.stall);
		return fail_frame(n, why, err, errlen);
	}
	if (n->frame >= 0 && n->cfg.timeout > 0 && dr_now() - n->started > n->cfg.timeout) {
		dr_blender_kill(n->bl);
		snprintf(why, sizeof why, "timed out after %.0f s (--timeout); Blender was killed",
		         n->cfg.timeout);
		return fail_frame(n, why, err, errlen);
	}
	return 0;
}

void dr_node_abort(dr_node *n)
{
	if (n->lister)
		dr_blender_kill(n->lister); /* interrupted while it lists: no grace */
	if (n->bl && n->frame >= 0)
		dr_blender_kill(n->bl);
	if (n->frame >= 0 && n->tmp[0]) {
		drop_thumb(n);
		unlink(n->tmp);
	}
	n->frame = -1;
}

void dr_node_destroy(dr_node *n)
{
	if (n->frame >= 0)
		dr_node_abort(n);
	dr_blender_destroy(n->lister);
	n->lister = NULL;
	dr_blender_destroy(n->bl);
	n->bl = NULL;
}
