/* Orchestrator (rank 0): hands frames of its jobs to render nodes as they free up, tracks them,
 * shows progress and reports. */
#include "dr_orch.h"

#include "dr_util.h"

#include "dr_assets.h"
#include "dr_cache.h"
#include "dr_dispatch.h"
#include "dr_imgcheck.h"
#include "dr_log.h"
#include "dr_outdir.h"
#include "dr_video.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(DR_DISPATCH_FRAMES_MAX == DR_CHUNK_MAX, "a task's frames fit a decision");
_Static_assert(DR_DISPATCH_HIST_BUCKETS == DR_HIST_BUCKETS, "one set of histogram buckets");

struct dr_ojob {
	int num;                /* id in messages */
	char id[DR_JOB_ID_MAX]; /* public id */
	dr_node_job cfg;        /* what Blender needs, where frames go (cfg.id == num) */
	char cfg_json[8192];    /* cfg as the JOB message carries it */
	int priority;
	int settings;     /* jobs with the same value share Blender settings (no reload) */
	dr_frames frames; /* owned */
	dr_sched *sched;
	double t0;           /* added (monotonic) */
	double *dispatch;    /* per frame: seconds its render node waited for the task */
	double *finished_at; /* per frame: seconds after t0 it was done */
	bool started, ended, cancelled;
	bool published_end; /* its final state went to the job table */
	bool all_loadfail;  /* no render node could load its scene */
	size_t clamped;     /* frame times out of range (dr_report_clamp_seconds) */
	bool scanning;      /* looking for frames already on disk; not yet dispatched */
	size_t scan_next;   /* the next frame (index) to look for */
	size_t scan_found;  /* frames found so far */
	int lockfd;         /* a service's job: its output directory's lock until it ends, or -1 */
	char loaderr[4096]; /* room for a list of missing files (dr_assets) */
	/* Per-frame state for the job table (GET /jobs/<id>/frames), published by changes: the
	 * events that move a frame (a task, a result, a lost node) mark its cell, and a publish
	 * looks only at marked cells; every cell is looked at only when FRAMES_ALL is set (start,
	 * stranded frames, cancel, end) and every FRAMES_WALK_S as a safety net. */
	unsigned char *pub_state; /* per cell: the letter last published, 0 = never */
	int *pub_attempts;        /* per cell: the attempts last published */
	unsigned char *is_dirty;  /* per cell: in DIRTY */
	size_t *dirty, ndirty, capdirty;
	bool frames_all;    /* look at every cell at the next publish */
	bool frames_sent;   /* the table has the job's frame list */
	double frames_walk; /* dr_now() of the last look at every cell */
	/* A still split (see still_check): the ranges job hands its merge to a render node as a
	 * merge job of one frame; the ranges job is over only once the merge is. */
	enum { STILL_NONE, STILL_RANGES, STILL_MERGING, STILL_MADE, STILL_FAILED } still;
	bool still_premade;     /* ranges job: the still was on disk when it was added */
	struct dr_ojob *merge;  /* ranges job: its merge job while that runs */
	struct dr_ojob *parent; /* merge job: its ranges job (cleared when it ends) */
	char still_error[1024]; /* STILL_FAILED: why */
	int merged_by;          /* the rank that merged, -1 = none (yet) */
	char merged_host[256];  /* ... and its host */
	double merge_seconds;   /* the merge's time on that node */
	double merge_wall;      /* from the ranges' end to the merged still validated */
	double ranges_done_at;  /* dr_now() when the last range was done */
	int *range_samples;  /* ranges job: samples per range as the nodes reported, 0 = unknown */
	double samples_done; /* ... their sum */
	/* A service's video (render.video): encoded in the background once every frame is done
	 * (see video_check); the job is over only once the encode is. */
	bool want_video;
	enum { VIDEO_NONE, VIDEO_ENCODING, VIDEO_MADE, VIDEO_FAILED } video_state;
	dr_video_bg *video;
	double video_t0, video_fps;
	char video_error[512];
};

struct dr_orch {
	dr_orch_cfg opts;
	dr_chan *chan;
	int nslots;
	dr_dispatch *disp;         /* the dispatch policy and what each node holds */
	dr_dispatch_decision *dec; /* room for one round of decisions (nslots) */
	dr_report_node *info;      /* rank, host, threads per slot, for reports */
	dr_ojob **jobs;
	size_t njobs, capjobs;
	unsigned long seq; /* jobs added so far: the next job's number */
	double t0;
	double last_draw;
	int tty; /* live progress line on this terminal, or -1 */
	bool quiet;
	bool serve;    /* a service: nodes are never stopped for lack of work */
	bool recovery; /* mpirun keeps the job alive when a rank dies (--enable-recovery) */
	int silent;    /* without recovery: slot of a node silent past --node-timeout, or -1 */
	bool *hushed;  /* per slot: a lost node that spoke again was told to stop */
	dr_metrics metrics;
	const dr_jobspec_limits *lim; /* a service's roots, re-checked on adoption, or NULL */
	dr_jobs_cell *cells;          /* room for one publish's changed cells */
	size_t capcells;
	const char *blender; /* asked for a scene's frame rate (a video without "fps") */
	bool allow_autoexec;
};

/* Seconds between two looks at every cell of a job (a safety net: changes are marked). */
#ifndef FRAMES_WALK_S
#define FRAMES_WALK_S 30.0
#endif

/* Cell of FRAME in J may have changed: looked at by the next publish. */
static void mark(dr_ojob *j, int frame)
{
	long i = j->is_dirty ? dr_sched_index(j->sched, frame) : -1;

	if (i < 0 || j->is_dirty[i])
		return;
	if (dr_grow(&j->dirty, &j->capdirty, j->ndirty + 1, sizeof *j->dirty) != 0) {
		j->frames_all = true; /* out of memory: look at them all next time */
		return;
	}
	j->is_dirty[i] = 1;
	j->dirty[j->ndirty++] = (size_t)i;
}

static void still_added(dr_orch *r, dr_ojob *j);
static void video_check(dr_orch *r, dr_ojob *j);
static void status_extras(const dr_ojob *j, cJSON *o);
static void still_samples(dr_ojob *j, const dr_msg *m);
static void still_report(const dr_ojob *j, dr_report *rep);
static void still_check(dr_orch *r, dr_ojob *j);
static bool job_over(const dr_ojob *j);

static int slot_of(const dr_orch *r, int rank)
{
	int slot = r->chan->size == 1 ? rank : rank - 1;
	return slot >= 0 && slot < r->nslots ? slot : -1;
}

dr_orch *dr_orch_create(const dr_orch_cfg *o, dr_chan *chan, int tty, char *err, size_t errlen)
{
	dr_orch *r = calloc(1, sizeof *r);

	if (!r) {
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	r->opts = *o;
	bool serve = o->serve;
	r->recovery = dr_mpi_recovery();
	r->chan = chan;
	r->tty = serve ? -1 : tty;
	r->serve = serve;
	r->quiet = o->quiet;
	r->t0 = r->last_draw = dr_now();
	r->silent = -1;
	r->nslots = chan->size == 1 ? 1 : chan->size - 1;
	dr_dispatch_cfg dc = {
	        .nslots = r->nslots,
	        .serve = serve,
	        .node_timeout = chan->size > 1 ? r->opts.node_timeout : -1, /* alone: nobody */
	};
	r->info = calloc((size_t)r->nslots, sizeof *r->info);
	r->dec = calloc((size_t)r->nslots, sizeof *r->dec);
	r->hushed = calloc((size_t)r->nslots, sizeof *r->hushed);
	if (!r->info || !r->dec || !r->hushed) {
		dr_seterr(err, errlen, "out of memory");
		dr_orch_destroy(r);
		return NULL;
	}
	r->disp = dr_dispatch_create(&dc, r->t0, err, errlen);
	if (!r->disp) {
		dr_orch_destroy(r);
		return NULL;
	}
	for (int i = 0; i < r->nslots; i++)
		r->info[i].rank = chan->size == 1 ? 0 : i + 1;
	return r;
}

static void job_free(dr_ojob *j)
{
	if (!j)
		return;
	if (j->lockfd >= 0)
		close(j->lockfd);
	dr_sched_destroy(j->sched);
	dr_frames_free(&j->frames);
	free(j->dispatch);
	free(j->finished_at);
	free(j->pub_state);
	free(j->pub_attempts);
	free(j->is_dirty);
	free(j->dirty);
	free(j->range_samples);
	dr_video_bg_free(j->video);
	free(j);
}

void dr_orch_destroy(dr_orch *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->njobs; i++)
		job_free(r->jobs[i]);
	free(r->jobs);
	dr_dispatch_destroy(r->disp);
	free(r->dec);
	free(r->hushed);
	free(r->info);
	free(r->cells);
	free(r);
}

/* Seconds of file checks rank 0 does in one go, so that it keeps hearing its nodes. */
#define SCAN_SLICE_S 0.005

/* The job has been looked at: it becomes dispatchable (or ends, if every frame is there). */
static void scan_done(dr_orch *r, dr_ojob *j)
{
	char err[DR_ERRLEN];

	j->scanning = false;
	r->metrics.frames_skipped += j->scan_found;
	if (j->scan_found)
		dr_info("%s%s%zu of %zu frames already exist and are skipped (--overwrite renders "
		        "them again)",
		        r->serve ? j->id : "", r->serve ? ": " : "", j->scan_found, j->frames.n);
	if (dr_dispatch_add_job(r->disp, j->num, j->priority, j->settings, j->sched, err,
	                        sizeof err)) {
		snprintf(j->loaderr, sizeof j->loaderr, "%.4000s", err);
		dr_sched_fail_stranded(j->sched, err);
		j->ended = true;
		return;
	}
	if (dr_sched_finished(j->sched)) { /* every frame already there */
		j->ended = true;
		dr_dispatch_end_job(r->disp, j->num);
	}
}

/* Frames of J whose output already exists and is complete are skipped (resume after a crash).
 * Checking a million files takes seconds, so it goes in slices until DEADLINE (monotonic), and
 * rank 0's loop runs between them; the job is dispatched once every frame was looked at. */
static void scan_slice(dr_orch *r, dr_ojob *j, double deadline)
{
	char path[DR_PATH_MAX], why[DR_PATH_MAX + 200];

	for (; j->still_premade && j->scan_next < j->frames.n; j->scan_next++) {
		/* the ranges of a still already merged were removed: nothing to render */
		dr_sched_skip(j->sched, j->frames.v[j->scan_next]);
		mark(j, j->frames.v[j->scan_next]);
	}
	for (; j->scan_next < j->frames.n; j->scan_next++) {
		int f = j->frames.v[j->scan_next];
		if ((j->scan_next & 255) == 255 && dr_now() > deadline)
			return;
		if (dr_outpath_frame(&j->cfg.out, f, path, sizeof path) != 0 ||
		    access(path, F_OK) != 0)
			continue;
		if (dr_imgcheck(path, j->cfg.render.format, why, sizeof why) == 0) {
			dr_sched_skip(j->sched, f);
			mark(j, f);
			j->scan_found++;
		} else {
			dr_warn("%s; frame %d will be rendered again", why, f);
		}
	}
	scan_done(r, j);
}

/* One slice of the frame scan of jobs still being looked at. */
static void scan_jobs(dr_orch *r)
{
	double deadline = dr_now() + SCAN_SLICE_S;

	for (size_t i = 0; i < r->njobs && dr_now() < deadline; i++)
		if (r->jobs[i]->scanning && !r->jobs[i]->ended)
			scan_slice(r, r->jobs[i], deadline);
}

double dr_orch_node_timeout(const dr_orch *r)
{
	return r->opts.node_timeout;
}

dr_ojob *dr_orch_add(dr_orch *r, const char *id, const dr_render_cfg *render, int priority,
                     const dr_frames *frames, char *err, size_t errlen)
{
	dr_sched_cfg sc = {
	        .nslots = r->nslots,
	        .chunk = r->opts.chunk,
	        .retries = r->opts.retries,
	        .max_consec = 3,
	        /* a still's ranges go largest first, in order (the driver sizes them so): the
	         * cost-sampling order would start the smallest first and leave the largest last */
	        .tail_control = !r->opts.no_speculate && !(render->ranges > 0 && !render->merge),
	};
	dr_ojob *j = calloc(1, sizeof *j);
	char vwhy[256];

	if (j)
		j->lockfd = -1;
	if (!j || dr_grow(&r->jobs, &r->capjobs, r->njobs + 1, sizeof *r->jobs) != 0) {
		dr_seterr(err, errlen, "out of memory");
		free(j);
		return NULL;
	}
	j->num = (int)r->seq++; /* submission order; never reused: messages name jobs by it */
	snprintf(j->id, sizeof j->id, "%s", id);
	j->cfg.render = *render;
	j->cfg.id = j->num;
	if (dr_render_cfg_outpath(render, &j->cfg.out, err, errlen) != 0) {
		free(j);
		return NULL;
	}
	/* nodes get the pattern as resolved here, whatever their working directory's defaults */
	snprintf(j->cfg.render.output, sizeof j->cfg.render.output, "%s", j->cfg.out.pattern);
	j->priority = priority;
	j->t0 = dr_now();
	j->frames.v = malloc(frames->n * sizeof *frames->v);
	j->dispatch = calloc(frames->n, sizeof *j->dispatch);
	j->finished_at = calloc(frames->n, sizeof *j->finished_at);
	j->pub_state = calloc(frames->n ? frames->n : 1, 1);
	j->pub_attempts = calloc(frames->n ? frames->n : 1, sizeof *j->pub_attempts);
	j->is_dirty = calloc(frames->n ? frames->n : 1, 1);
	j->frames_all = true;
	if (!j->frames.v || !j->dispatch || !j->finished_at || !j->pub_state || !j->pub_attempts ||
	    !j->is_dirty) {
		snprintf(err, errlen, "out of memory for %zu frames", frames->n);
		job_free(j);
		return NULL;
	}
	memcpy(j->frames.v, frames->v, frames->n * sizeof *frames->v);
	j->frames.n = frames->n;
	/* the exact scene: a warm node loaded for another version reloads (dr_node) */
	if (dr_cache_version(j->cfg.render.scene, j->cfg.render.version,
	                     sizeof j->cfg.render.version, vwhy, sizeof vwhy) != 0)
		j->cfg.render.version[0] = '\0'; /* unreadable here: loading it will say why */
	if (dr_render_cfg_encode(&j->cfg.render, j->cfg_json, sizeof j->cfg_json) != 0) {
		snprintf(err, errlen, "job settings too long");
		job_free(j);
		return NULL;
	}
	j->sched = dr_sched_create(j->frames.v, j->frames.n, &sc, err, errlen);
	if (!j->sched) {
		job_free(j);
		return NULL;
	}
	/* jobs that one warm Blender can render without a reload share a settings class */
	j->settings = j->num;
	for (size_t i = 0; i < r->njobs; i++)
		if (dr_render_cfg_same_blender(&r->jobs[i]->cfg.render, &j->cfg.render)) {
			j->settings = r->jobs[i]->settings;
			break;
		}
	r->jobs[r->njobs++] = j;
	still_added(r, j);
	j->want_video = r->serve && j->cfg.render.video[0];
	j->scanning = true;
	j->scan_next = r->opts.overwrite ? j->frames.n : 0; /* --overwrite: nothing to look for */
	scan_slice(r, j, dr_now() + SCAN_SLICE_S);
	return j;
}

static dr_ojob *job_of(const dr_orch *r, int num)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (r->jobs[i]->num == num)
			return r->jobs[i];
	return NULL;
}

const dr_node_job *dr_orch_job_cfg(const dr_orch *r, int num)
{
	const dr_ojob *j = r ? job_of(r, num) : NULL;

	return j ? &j->cfg : NULL;
}

static void progress_line(const dr_orch *r, const dr_ojob *j, char *buf, size_t len)
{
	dr_sched_counts c = dr_sched_count(j->sched);
	double el = dr_now() - j->t0;
	size_t left = c.pending + c.running, todo = c.total - c.skipped;
	double fpm = el > 0 ? c.done * 60.0 / el : 0;
	char eta[32] = "--", elapsed[32], oldest[64] = "", nodes[48] = "";
	const dr_fitem *old = dr_sched_oldest(j->sched);

	if (r->metrics.nodes_lost > 0) /* the live count matters once a node was lost */
		snprintf(nodes, sizeof nodes, " | %d of %d nodes live", dr_dispatch_live(r->disp),
		         r->nslots);
	dr_fmt_duration(el, elapsed, sizeof elapsed);
	if (c.done > 0)
		dr_fmt_duration(left * el / c.done, eta, sizeof eta);
	if (old) {
		char age[32];
		dr_fmt_duration(dr_now() - old->started, age, sizeof age);
		snprintf(oldest, sizeof oldest, ", oldest in flight: frame %d for %s", old->frame,
		         age);
	}
	if (j->cfg.render.merge) {
		snprintf(buf, len,
		         "still frame %d: merging %d ranges on a render node | elapsed %s%s",
		         j->cfg.render.still, j->cfg.render.ranges, elapsed, nodes);
		return;
	}
	if (j->still != STILL_NONE) {
		snprintf(buf, len,
		         "ranges %zu/%zu done, %.0f samples/s | elapsed %s | ETA %s | %zu "
		         "failed%s%s",
		         c.done + c.failed, todo, el > 0 ? j->samples_done / el : 0.0, elapsed, eta,
		         c.failed, nodes, oldest);
		return;
	}
	snprintf(buf, len,
	         "[%zu/%zu] %3.0f%% | %.1f frames/min | elapsed %s | ETA %s | %zu failed%s%s",
	         c.done + c.failed, todo, todo ? 100.0 * (c.done + c.failed) / todo : 100.0, fpm,
	         elapsed, eta, c.failed, nodes, oldest);
}

/* The job a progress display is about: the oldest that has not ended (or the last one). */
static const dr_ojob *shown_job(const dr_orch *r)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (!r->jobs[i]->ended)
			return r->jobs[i];
	return r->njobs ? r->jobs[r->njobs - 1] : NULL;
}

static void draw(dr_orch *r, bool force)
{
	char line[512];
	double now = dr_now();
	const dr_ojob *j = shown_job(r);

	if (r->quiet || !j)
		return;
	if (r->tty < 0) {
		/* No terminal: a line per finished frame, and one every 30 s when none finishes,
		 * so that a stuck frame shows. */
		if (now - r->last_draw < 30 || j->ended)
			return;
		r->last_draw = now;
		progress_line(r, j, line, sizeof line);
		dr_info("still rendering%s%s: %s", r->serve ? " " : "", r->serve ? j->id : "",
		        line);
		return;
	}
	if (!force && now - r->last_draw < 0.5)
		return;
	r->last_draw = now;
	progress_line(r, j, line, sizeof line);
	dprintf(r->tty, "\r\033[K%s", line);
}

static int send_to(dr_orch *r, int slot, dr_msg *m, char *err, size_t errlen)
{
	return dr_chan_send(r->chan, r->info[slot].rank, m, err, errlen);
}

static int send_type(dr_orch *r, int slot, int type, int job, int frame, char *err, size_t errlen)
{
	dr_msg m = {.type = type, .job = job, .frame = frame};
	return send_to(r, slot, &m, err, errlen);
}

static void job_end_check(dr_orch *r, dr_ojob *j)
{
	if (j->ended || !dr_sched_finished(j->sched))
		return;
	j->ended = true;
	j->frames_all = true;
	dr_dispatch_end_job(r->disp, j->num);
	if (r->serve) {
		dr_sched_counts c = dr_sched_count(j->sched);
		dr_info("job %s %s: %zu rendered, %zu skipped, %zu failed", j->id,
		        c.failed ? "failed" : "done", c.done, c.skipped, c.failed);
	}
}

/* Frame M->frame of J, done by SLOT in SEC seconds (clamped), counts: timings, metrics, a log
 * line, the job's end. */
static void count_done(dr_orch *r, dr_ojob *j, int slot, const dr_msg *m, double sec,
                       const char *note)
{
	char line[512];
	long idx = dr_sched_index(j->sched, m->frame);

	if (idx >= 0) {
		j->dispatch[idx] = m->wait;
		j->finished_at[idx] = dr_now() - j->t0;
	}
	r->metrics.frames_done++;
	r->metrics.seconds_sum += sec;
	r->metrics.hist[dr_dispatch_hist_bucket(sec)]++;
	if (!r->quiet && (r->tty < 0 || r->serve)) {
		r->last_draw = dr_now();
		progress_line(r, j, line, sizeof line);
		dr_info("%s%s%s %d done by rank %d (%s) in %.2f s%s %s", r->serve ? j->id : "",
		        r->serve ? ": " : "",
		        j->cfg.render.merge      ? "merge of still frame"
		        : j->still != STILL_NONE ? "range"
		                                 : "frame",
		        m->frame, r->info[slot].rank, r->info[slot].host, sec, note, line);
	}
	job_end_check(r, j);
}

/* A result from SLOT after it was declared lost: a rendered frame that is not done yet and whose
 * file on disk checks out is accepted once (copies still running elsewhere are dropped);
 * anything else is discarded. */
static void on_late_result(dr_orch *r, int slot, const dr_msg *m, char *err, size_t errlen)
{
	dr_ojob *j = job_of(r, m->job);
	char path[DR_PATH_MAX], why[DR_ERRLEN];
	int others[2];
	bool clamped;
	double sec;

	if (j)
		mark(j, m->frame);
	if (!j || j->ended || m->ok <= 0)
		return;
	sec = dr_report_clamp_seconds(m->seconds, dr_now() - j->t0, &clamped);
	if (dr_outpath_frame(&j->cfg.out, m->frame, path, sizeof path) != 0 ||
	    dr_imgcheck(path, j->cfg.render.format, why, sizeof why) != 0 ||
	    dr_sched_done_late(j->sched, slot, m->frame, sec, others) != 0) {
		dr_info("frame %d from lost rank %d (%s) discarded: done already or not valid",
		        m->frame, r->info[slot].rank, r->info[slot].host);
		return;
	}
	for (int k = 0; k < 2; k++)
		if (others[k] >= 0 && !dr_dispatch_node_get(r->disp, others[k])->lost &&
		    send_type(r, others[k], DR_MSG_CANCEL, j->num, m->frame, err, errlen) == 0)
			dr_debug("frame %d: the late result won; rank %d drops its copy", m->frame,
			         r->info[others[k]].rank);
	count_done(r, j, slot, m, sec, " (late, from a node declared lost)");
}

/* What a render node says of its Blender (READY, a rendered frame's RESULT): its device and peak
 * memory, as JSON in TEXT; anything else is left as it was. */
static void note_device(dr_orch *r, int slot, const char *text)
{
	cJSON *o = text[0] == '{' ? cJSON_Parse(text) : NULL;
	const cJSON *dev = cJSON_GetObjectItemCaseSensitive(o, "device");
	const cJSON *peak = cJSON_GetObjectItemCaseSensitive(o, "peak_mb");

	if (cJSON_IsString(dev) && dev->valuestring[0])
		snprintf(r->info[slot].device, sizeof r->info[slot].device, "%s", dev->valuestring);
	if (cJSON_IsNumber(peak) && peak->valuedouble > r->info[slot].peak_mb)
		r->info[slot].peak_mb = peak->valuedouble;
	cJSON_Delete(o);
}

static void on_result(dr_orch *r, int slot, const dr_msg *m, char *err, size_t errlen)
{
	dr_ojob *j = job_of(r, m->job);
	const dr_slot_stats *st;
	bool was_excluded;

	if (j)
		mark(j, m->frame); /* whatever it was: a result, a copy's end, a frame given back */
	if (dr_dispatch_result(r->disp, slot, m->job, m->frame, m->ok))
		return; /* the receipt of a frame taken back for an idle node */
	if (!j || j->ended || m->ok < 0)
		return; /* cancelled meanwhile, a copy that lost, or a dropped frame's receipt */
	st = dr_sched_slot(j->sched, slot);
	was_excluded = st->excluded;
	if (m->ok) {
		int other = dr_sched_other(j->sched, m->frame, slot);
		note_device(r, slot, m->text);
		bool clamped;
		double sec = dr_report_clamp_seconds(m->seconds, dr_now() - j->t0, &clamped);
		if (dr_sched_done(j->sched, slot, m->frame, sec) != 0)
			return;
		if (clamped && j->clamped++ == 0)
			dr_warn("frame %d: rank %d reported an impossible render time (%g s); "
			        "clamped to %.2f s",
			        m->frame, r->info[slot].rank, m->seconds, sec);
		if (other >= 0 &&
		    send_type(r, other, DR_MSG_CANCEL, j->num, m->frame, err, errlen) == 0)
			dr_debug("frame %d: the copy on rank %d won; rank %d drops its copy",
			         m->frame, r->info[slot].rank, r->info[other].rank);
		still_samples(j, m);
		count_done(r, j, slot, m, sec, "");
		return;
	}
	if (dr_sched_fail(j->sched, slot, m->frame, m->text) != 0)
		return;
	r->metrics.attempts_failed++;
	long idx = dr_sched_index(j->sched, m->frame);
	const dr_fitem *it = idx >= 0 ? dr_sched_item(j->sched, (size_t)idx) : NULL;
	if (it && it->state == DR_F_FAILED) {
		r->metrics.frames_failed++;
		dr_error("frame %d failed on rank %d (%s), giving up after %d attempts: %s",
		         m->frame, r->info[slot].rank, r->info[slot].host, it->attempts, m->text);
	} else if (it) {
		dr_warn("frame %d failed on rank %d (%s), will retry (attempt %d of %d): %s",
		        m->frame, r->info[slot].rank, r->info[slot].host, it->attempts + 1,
		        r->opts.retries + 1, m->text);
	}
	if (!was_excluded && st->excluded)
		dr_warn("rank %d (%s) failed %d frames in a row and is taken out of rotation",
		        r->info[slot].rank, r->info[slot].host, st->consec_failed);
	job_end_check(r, j);
}

/* Node SLOT cannot load job J's scene (J NULL: the command line's scene at start-up). */
static int on_loadfail(dr_orch *r, int slot, dr_ojob *j, const char *text, char *err, size_t errlen)
{
	dr_dispatch_loadfail(r->disp, slot); /* a LOADFAIL also asks for work */
	if (!j && r->serve) {
		dr_warn("rank %d (%s) cannot load the default scene: %s", r->info[slot].rank,
		        r->info[slot].host, text);
		return 0;
	}
	if (!j)
		j = r->njobs ? r->jobs[0] : NULL; /* a batch: the command line's job */
	if (!j || j->ended)
		return 0;
	if (!j->loaderr[0])
		snprintf(j->loaderr, sizeof j->loaderr, "%.4000s", text);
	dr_sched_drop(j->sched, slot);
	j->frames_all = true;              /* its frames went back to the queue */
	if (dr_sched_usable(j->sched) > 0) /* else the job ends with this error */
		dr_warn("rank %d (%s) cannot render %s%s: %s", r->info[slot].rank,
		        r->info[slot].host, r->serve ? "job " : "the scene", r->serve ? j->id : "",
		        text);
	(void)err;
	(void)errlen;
	return 0;
}

/* Node SLOT is lost (WHY says how we know): the frames it held go back to the queue at once and
 * it is never given anything again (see dr_dispatch_lost). */
static void lose(dr_orch *r, int slot, const char *why)
{
	const dr_dispatch_node *dn = dr_dispatch_node_get(r->disp, slot);
	dr_report_node *in = &r->info[slot];
	char list[200] = "";
	size_t pos = 0;
	int back;

	if (dn->lost)
		return;
	in->nlost_frames = dn->nframes;
	if (dn->job >= 0) {
		dr_ojob *lj = job_of(r, dn->job);
		for (int i = 0; lj && i < dn->nframes; i++)
			mark(lj, dn->frames[i]);
	}
	for (int i = 0; i < dn->nframes; i++) {
		if (i < DR_LOST_FRAMES_MAX)
			in->lost_frames[i] = dn->frames[i];
		dr_append(list, sizeof list, &pos, "%s%d", i ? ", " : ": frame ", dn->frames[i]);
	}
	back = dr_dispatch_lost(r->disp, slot);
	in->lost = true;
	in->lost_at = dr_now() - r->t0;
	snprintf(in->lost_why, sizeof in->lost_why, "%s", why);
	dr_chan_forget(r->chan, in->rank);
	r->metrics.nodes_lost++;
	dr_warn("rank %d (%s) is lost: %s; %d frame%s back in the queue%s (%d of %d render nodes "
	        "left)",
	        in->rank, in->host[0] ? in->host : "unknown host", why, back, back == 1 ? "" : "s",
	        list, dr_dispatch_live(r->disp), r->nslots);
}

int dr_orch_handle(dr_orch *r, const dr_msg *m, int src, char *err, size_t errlen)
{
	int slot = slot_of(r, src);

	if (slot < 0)
		return 0;
	if (dr_dispatch_node_get(r->disp, slot)->lost) {
		/* It was silent, not dead (a stopped process, a link that came back): a frame it
		 * finished may still count once; then it is told to stop, and nothing else. */
		if (m->type == DR_MSG_RESULT)
			on_late_result(r, slot, m, err, errlen);
		if (r->hushed[slot])
			return 0;
		r->hushed[slot] = true;
		dr_warn("rank %d (%s), lost before, spoke again: it gets no more work and is told "
		        "to stop",
		        r->info[slot].rank, r->info[slot].host);
		return send_type(r, slot, DR_MSG_STOP, -1, -1, err, errlen);
	}
	dr_dispatch_heard(r->disp, slot, dr_now());
	switch (m->type) {
	case DR_MSG_HELLO:
		r->info[slot].threads = m->threads;
		snprintf(r->info[slot].host, sizeof r->info[slot].host, "%s", m->host);
		dr_debug("rank %d on %s (pid %d): %d Blender thread%s", r->info[slot].rank, m->host,
		         m->pid, m->threads, m->threads == 1 ? "" : "s");
		break;
	case DR_MSG_READY: /* the first request: the node holds nothing */
		note_device(r, slot, m->text);
		if (r->info[slot].device[0])
			dr_debug("rank %d (%s) renders on %s", r->info[slot].rank,
			         r->info[slot].host, r->info[slot].device);
		dr_dispatch_ready(r->disp, slot);
		break;
	case DR_MSG_REQUEST: /* may come while it renders its last frame: one task ahead */
		dr_dispatch_request(r->disp, slot);
		break;
	case DR_MSG_LOADFAIL:
		return on_loadfail(r, slot, m->job >= 0 ? job_of(r, m->job) : NULL, m->text, err,
		                   errlen);
	case DR_MSG_RENDERED: /* frames coming home: free for work while it travels */
		dr_dispatch_rendered(r->disp, slot, m->frame);
		break;
	case DR_MSG_RESULT:
		on_result(r, slot, m, err, errlen);
		break;
	default:
		break;
	}
	return 0;
}

/* A job that can no longer be rendered by any live node fails its remaining frames. (With no live
 * node at all the run ends instead, and they stay unfinished for a re-run.) */
static void strand_check(const dr_orch *r, dr_ojob *j)
{
	if (j->ended || dr_sched_usable(j->sched) > 0 || dr_sched_finished(j->sched) ||
	    dr_dispatch_live(r->disp) == 0)
		return;
	dr_sched_counts c = dr_sched_count(j->sched);
	if (c.running > 0)
		return;
	j->all_loadfail = j->loaderr[0] && c.done == 0;
	j->frames_all = true;
	dr_sched_fail_stranded(j->sched, j->all_loadfail ? "no render node could load the scene"
	                                                 : "no render node left to try this frame");
}

/* Carry out decision X (see dr_dispatch_decide). */
static int carry_out(dr_orch *r, const dr_dispatch_decision *x, char *err, size_t errlen)
{
	dr_ojob *j = job_of(r, x->job);
	dr_msg m = {.type = DR_MSG_STOP, .job = -1, .frame = -1};

	switch (x->kind) {
	case DR_DISPATCH_TASK:
		if (!j)
			return 0;
		if (x->announce) {
			dr_msg jm = {.type = DR_MSG_JOB, .job = j->num};
			snprintf(jm.text, sizeof jm.text, "%s", j->cfg_json);
			if (send_to(r, x->slot, &jm, err, errlen))
				return -1;
		}
		m = (dr_msg){.type = DR_MSG_TASK, .job = j->num, .n = x->nframes};
		memcpy(m.frames, x->frames, (size_t)x->nframes * sizeof x->frames[0]);
		for (int i = 0; i < x->nframes; i++)
			mark(j, x->frames[i]);
		j->started = true;
		break;
	case DR_DISPATCH_CANCEL:
		for (int i = 0; j && i < x->nframes; i++)
			mark(j, x->frames[i]);
		/* n = 1: give the frame back only if not started; n = 0, frame -1: drop the job */
		m = (dr_msg){.type = DR_MSG_CANCEL,
		             .job = x->job,
		             .frame = x->nframes ? x->frames[0] : -1,
		             .n = x->nframes ? 1 : 0};
		if (x->for_slot >= 0)
			dr_debug("taking frame %d back from rank %d for idle rank %d", m.frame,
			         r->info[x->slot].rank, r->info[x->for_slot].rank);
		break;
	case DR_DISPATCH_STOP:
		break;
	default:
		return 0;
	}
	return send_to(r, x->slot, &m, err, errlen);
}

/* Carry out the first N decisions in r->dec, in order. */
static int carry_out_all(dr_orch *r, int n, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++)
		if (carry_out(r, &r->dec[i], err, errlen))
			return -1;
	return 0;
}

/* Jobs in the order they are served (and shown): priority, then submission. */
static int job_order(const void *pa, const void *pb)
{
	const dr_ojob *a = *(dr_ojob *const *)pa, *b = *(dr_ojob *const *)pb;
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return a->num < b->num ? -1 : a->num > b->num;
}

int dr_orch_tick(dr_orch *r, char *err, size_t errlen)
{
	double now = dr_now();
	int busy, n = 0, s;

	while ((s = dr_dispatch_silent(r->disp, now)) >= 0) {
		char why[160];
		if (!r->recovery) { /* mpirun would end the world anyway: say so and stop */
			r->silent = s;
			return 0;
		}
		snprintf(why, sizeof why,
		         "not heard from for %.0f s (stopped, hung, dead or cut off from the "
		         "network)",
		         r->opts.node_timeout);
		lose(r, s, why);
	}
	scan_jobs(r);
	for (size_t i = 0; i < r->njobs; i++) {
		strand_check(r, r->jobs[i]);
		job_end_check(r, r->jobs[i]);
		still_check(r, r->jobs[i]);
		video_check(r, r->jobs[i]);
	}
	if (r->njobs > 1)
		qsort(r->jobs, r->njobs, sizeof *r->jobs, job_order);
	busy = dr_dispatch_busy(r->disp);
	/* A service below --min-nodes drains: frames in flight finish, nothing new starts, and
	 * then it exits (dr_orch_check_nodes) to be restarted at full size. */
	if (!(r->serve && dr_dispatch_live(r->disp) < r->opts.min_nodes))
		n = dr_dispatch_decide(r->disp, now, r->dec, r->nslots);
	if (carry_out_all(r, n, err, errlen))
		return -1;
	r->metrics.nodes_busy = busy;
	r->metrics.nodes_idle = dr_dispatch_live(r->disp) - busy;
	draw(r, false);
	return 0;
}

int dr_orch_cancel(dr_orch *r, dr_ojob *j, char *err, size_t errlen)
{
	if (j->merge) { /* the still's merge runs: it is cancelled, the ranges kept */
		j->cancelled = true;
		if (dr_orch_cancel(r, j->merge, err, errlen) != 0)
			return -1;
	}
	if (j->ended)
		return 0;
	j->cancelled = j->ended = true;
	j->frames_all = true;
	j->scanning = false; /* never dispatched: the cancel below finds nothing to take back */
	if (carry_out_all(r, dr_dispatch_cancel_job(r->disp, j->num, r->dec, r->nslots), err,
	                  errlen))
		return -1;
	dr_info("job %s cancelled", j->id);
	return 0;
}

bool dr_orch_finished(const dr_orch *r)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (!r->jobs[i]->ended)
			return false;
	return r->serve || dr_dispatch_all_stopped(r->disp);
}

int dr_orch_stop_all(dr_orch *r, char *err, size_t errlen)
{
	if (carry_out_all(r, dr_dispatch_stop_all(r->disp, r->dec, r->nslots), err, errlen))
		return -1;
	if (r->tty >= 0 && !r->quiet) {
		draw(r, true);
		dprintf(r->tty, "\n");
	}
	return 0;
}

dr_job_state dr_orch_state(const dr_ojob *j)
{
	if (j->cancelled)
		return DR_JOB_CANCELLED;
	if (j->ended && !job_over(j))
		return DR_JOB_RUNNING; /* a still's merge runs */
	if (j->ended && j->still == STILL_FAILED)
		return DR_JOB_FAILED;
	if (j->ended)
		return dr_sched_count(j->sched).failed ? DR_JOB_FAILED : DR_JOB_DONE;
	return j->started ? DR_JOB_RUNNING : DR_JOB_QUEUED;
}

/* J's "failedFrames", in frame order: the scheduler keeps the set of failed frames as they fail,
 * so this visits only them (O(failed x log frames)), never a walk of every frame. */
static cJSON *failed_frames(const dr_ojob *j)
{
	cJSON *a = cJSON_CreateArray(), *f;

	for (long i = dr_sched_next_failed(j->sched, 0); a && i >= 0;
	     i = dr_sched_next_failed(j->sched, i + 1)) {
		const dr_fitem *it = dr_sched_item(j->sched, (size_t)i);
		if (!(f = cJSON_CreateObject()))
			break;
		cJSON_AddNumberToObject(f, "frame", it->frame);
		cJSON_AddNumberToObject(f, "attempts", it->attempts);
		cJSON_AddStringToObject(f, "error", it->last_error ? it->last_error : "");
		cJSON_AddItemToArray(a, f);
	}
	return a;
}

cJSON *dr_orch_status(const dr_orch *r, dr_ojob *j)
{
	dr_sched_counts c = dr_sched_count(j->sched);
	double el = dr_now() - j->t0;
	size_t todo = c.total - c.skipped, fin = c.done + c.failed;
	cJSON *o = cJSON_CreateObject(), *fr, *nodes;

	if (!o)
		return NULL;
	fr = cJSON_AddObjectToObject(o, "frames");
	if (fr) {
		cJSON_AddNumberToObject(fr, "total", (double)c.total);
		cJSON_AddNumberToObject(fr, "done", (double)c.done);
		cJSON_AddNumberToObject(fr, "skipped", (double)c.skipped);
		cJSON_AddNumberToObject(fr, "failed", (double)c.failed);
		/* Running: frames a node has started (the first it holds); the frames held ahead
		 * behind them wait, as pending ones do, so they count as pending (and "held"). */
		size_t inflight = 0;
		for (int k = 0; k < r->nslots; k++) {
			const dr_dispatch_node *dn = dr_dispatch_node_get(r->disp, k);
			if (dn && !dn->lost && dn->job == j->num && dn->nframes > 0)
				inflight++;
		}
		if (inflight > c.running)
			inflight = c.running;
		cJSON_AddNumberToObject(fr, "running", (double)inflight);
		cJSON_AddNumberToObject(fr, "pending", (double)(c.pending + c.running - inflight));
		cJSON_AddNumberToObject(fr, "held", (double)(c.running - inflight));
	}
	cJSON_AddNumberToObject(o, "progress", todo ? (double)fin / (double)todo : 1.0);
	cJSON_AddNumberToObject(o, "elapsedSeconds", el);
	if (c.done > 0 && !j->ended)
		cJSON_AddNumberToObject(o, "etaSeconds",
		                        (double)(c.pending + c.running) * el / c.done);
	else if (j->ended)
		cJSON_AddNumberToObject(o, "etaSeconds", 0);
	else
		cJSON_AddNullToObject(o, "etaSeconds");
	cJSON_AddStringToObject(o, "blend", j->cfg.render.scene);
	cJSON_AddStringToObject(o, "output", j->cfg.out.pattern);
	cJSON_AddItemToObject(o, "failedFrames", failed_frames(j));
	if (j->all_loadfail) /* why no node could render it, e.g. the scene's missing files */
		cJSON_AddStringToObject(o, "error", j->loaderr);
	status_extras(j, o);
	nodes = cJSON_AddArrayToObject(o, "nodes");
	for (int s = 0; nodes && s < r->nslots; s++) {
		cJSON *n = cJSON_CreateObject();
		const dr_dispatch_node *dn = dr_dispatch_node_get(r->disp, s);
		const dr_slot_stats *st = dr_sched_slot(j->sched, s);
		if (!n)
			break;
		cJSON_AddNumberToObject(n, "rank", r->info[s].rank);
		cJSON_AddStringToObject(n, "host", r->info[s].host);
		/* frames[0] is the one in flight; the rest are held ahead */
		if (dn->job == j->num && dn->nframes > 0 && !dn->lost)
			cJSON_AddNumberToObject(n, "currentFrame", dn->frames[0]);
		else
			cJSON_AddNullToObject(n, "currentFrame");
		cJSON_AddNumberToObject(n, "framesDone", st->done);
		/* the share of the job's time it spent on frames that were done */
		cJSON_AddNumberToObject(n, "busyShare",
		                        el > 0 ? (st->busy < el ? st->busy / el : 1.0) : 0.0);
		cJSON_AddBoolToObject(n, "lost", dn->lost);
		cJSON_AddItemToArray(nodes, n);
	}
	return o;
}

void dr_orch_report(const dr_orch *r, const dr_ojob *j, dr_report *rep, int exit_code,
                    const char *status, const char *message)
{
	memset(rep, 0, sizeof *rep);
	rep->scene = j->cfg.render.scene;
	rep->sched = j->sched;
	rep->out = &j->cfg.out;
	rep->nodes = r->info;
	rep->nslots = r->nslots;
	rep->wall = dr_now() - j->t0;
	rep->exit_code = exit_code;
	rep->status = status;
	rep->message = message;
	rep->dispatch = j->dispatch;
	rep->finished_at = j->finished_at;
	rep->rank0_cpu = -1;
	rep->clamped = j->clamped;
	if (j->still != STILL_NONE)
		still_report(j, rep);
}

bool dr_ojob_ended(const dr_ojob *j)
{
	return job_over(j);
}

void dr_orch_confine(dr_orch *r, const dr_jobspec_limits *lim)
{
	r->lim = lim;
}

/* A service's job owns its output directory until it ends: another job into it fails (409). */
static void lock_job(dr_ojob *j, dr_jobs *table, bool overwrite)
{
	char host[256] = "?", holder[400], err[DR_ERRLEN];

	gethostname(host, sizeof host - 1);
	snprintf(holder, sizeof holder, "host %s pid %ld job %s", host, (long)getpid(), j->id);
	j->lockfd = dr_outdir_lock_frames(&j->cfg.out, &j->frames, holder, err, sizeof err);
	/* Owned now: its frames must have been made from this job's scene and settings. */
	if (j->lockfd >= 0 &&
	    dr_outdir_manifest_check_frames(&j->cfg.out, &j->frames, &j->cfg.render, true,
	                                    overwrite, err, sizeof err) != 0) {
		close(j->lockfd);
		j->lockfd = -1;
	}
	if (j->lockfd >= 0)
		return;
	dr_error("job %s: %s", j->id, err);
	snprintf(j->loaderr, sizeof j->loaderr, "%.4000s", err);
	j->scanning = false;
	dr_sched_fail_stranded(j->sched, err);
	j->ended = true;
	j->published_end = true;
	cJSON *o = cJSON_CreateObject();
	if (o && !cJSON_AddStringToObject(o, "error", err)) {
		cJSON_Delete(o);
		o = NULL;
	}
	dr_jobs_publish_json(table, j->id, DR_JOB_FAILED, o);
}

void dr_orch_adopt(dr_orch *r, dr_jobs *table)
{
	char id[DR_JOB_ID_MAX], err[DR_ERRLEN];
	dr_jobspec spec;

	while (dr_jobs_take(table, id, sizeof id, &spec) == 1) {
		if ((r->lim && dr_jobspec_confined(&spec, r->lim, err, sizeof err) != 0) ||
		    !dr_orch_add(r, id, &spec.render, spec.priority, &spec.frames, err,
		                 sizeof err)) {
			cJSON *o = cJSON_CreateObject();
			if (o && !cJSON_AddStringToObject(o, "error", err)) {
				cJSON_Delete(o);
				o = NULL;
			}
			dr_jobs_publish_json(table, id, DR_JOB_FAILED, o);
			dr_error("job %s: %s", id, err);
		} else {
			dr_info("job %s: %s, %zu frames", id, spec.render.scene, spec.frames.n);
			if (r->lim)
				lock_job(r->jobs[r->njobs - 1], table, r->opts.overwrite);
		}
		dr_jobspec_free(&spec);
	}
}

/* Cell I of J as the job table shows it. */
static dr_jobs_cell cell_of(const dr_orch *r, const dr_ojob *j, size_t i)
{
	const dr_fitem *it = dr_sched_item(j->sched, i);
	static const char letter[] = {[DR_F_PENDING] = 'p',
	                              [DR_F_RUNNING] = 'r',
	                              [DR_F_DONE] = 'd',
	                              [DR_F_SKIPPED] = 's',
	                              [DR_F_FAILED] = 'f'};
	dr_jobs_cell c = {.index = i, .state = letter[it->state], .attempts = it->attempts};

	if (it->state == DR_F_RUNNING && it->dup_slot >= 0)
		c.state = 'c';
	if (it->slot >= 0 && it->slot < r->nslots)
		c.node = r->info[it->slot].rank;
	if (it->state == DR_F_RUNNING)
		c.started = it->started;
	if (it->state == DR_F_DONE)
		c.seconds = it->seconds;
	c.error = it->last_error;
	return c;
}

/* Cell I of J into r->cells[*K] if it differs from what was published. */
static void cell_changed(dr_orch *r, dr_ojob *j, size_t i, size_t *k)
{
	dr_jobs_cell c = cell_of(r, j, i);

	if (j->pub_state[i] == (unsigned char)c.state && j->pub_attempts[i] == c.attempts)
		return;
	j->pub_state[i] = (unsigned char)c.state;
	j->pub_attempts[i] = c.attempts;
	r->cells[(*k)++] = c;
}

/* {"rank": "host"} of the render nodes that said hello. */
static cJSON *hosts_json(const dr_orch *r)
{
	cJSON *h = cJSON_CreateObject();
	char num[16];

	for (int s = 0; h && s < r->nslots; s++) {
		if (!r->info[s].host[0])
			continue;
		snprintf(num, sizeof num, "%d", r->info[s].rank);
		cJSON_AddStringToObject(h, num, r->info[s].host);
	}
	return h;
}

/* Publish the cells of J that changed since the last publish (all of them the first time). */
static void publish_frames(dr_orch *r, dr_ojob *j, dr_jobs *table)
{
	size_t n = dr_sched_size(j->sched), k = 0;
	double now = dr_now();
	bool all = j->frames_all || !j->frames_sent || now - j->frames_walk >= FRAMES_WALK_S;
	int *frames = NULL;

	if (!j->pub_state ||
	    dr_grow(&r->cells, &r->capcells, all ? n + 1 : j->ndirty + 1, sizeof *r->cells) != 0)
		return; /* out of memory: the marks stay for the next try */
	if (!j->frames_sent) {
		frames = malloc((n ? n : 1) * sizeof *frames);
		if (!frames)
			return;
		for (size_t i = 0; i < n; i++)
			frames[i] = dr_sched_item(j->sched, i)->frame;
		memset(j->pub_state, 'p', n); /* the table starts with every cell pending */
		memset(j->pub_attempts, 0, n * sizeof *j->pub_attempts);
	}
	if (all) {
		for (size_t i = 0; i < n; i++)
			cell_changed(r, j, i, &k);
		j->frames_walk = now;
		j->frames_all = false;
	} else {
		for (size_t d = 0; d < j->ndirty; d++)
			cell_changed(r, j, j->dirty[d], &k);
	}
	for (size_t d = 0; d < j->ndirty; d++)
		j->is_dirty[j->dirty[d]] = 0;
	j->ndirty = 0;
	if (k || frames || j->ended) {
		if (dr_jobs_publish_frames(table, j->id, frames, n, r->cells, k,
		                           k || frames ? hosts_json(r) : NULL, j->ended) == 0) {
			j->frames_sent = true;
		} else { /* the table lost it: everything again next time */
			j->frames_sent = false;
			j->frames_all = true;
		}
	}
	free(frames);
}

/* Forget the job at index I (a service's job whose end is published) if no node holds a frame
 * of it: rank 0's memory and per-tick work stay bounded by the jobs alive. True if forgotten. */
static bool forget(dr_orch *r, size_t i)
{
	dr_ojob *j = r->jobs[i];

	if (dr_dispatch_forget_job(r->disp, j->num) != 0)
		return false;
	memmove(&r->jobs[i], &r->jobs[i + 1], (r->njobs - i - 1) * sizeof r->jobs[0]);
	r->njobs--;
	job_free(j);
	return true;
}

void dr_orch_publish(dr_orch *r, dr_jobs *table)
{
	char err[DR_ERRLEN];

	for (size_t i = 0; i < r->njobs;) {
		dr_ojob *j = r->jobs[i];
		if (j->cfg.render.merge) { /* published as part of its ranges job */
			if (!(r->serve && j->ended && !j->parent && forget(r, i)))
				i++;
			continue;
		}
		if (!j->published_end) {
			if (!job_over(j) && dr_jobs_cancel_requested(table, j->id) &&
			    dr_orch_cancel(r, j, err, sizeof err) != 0)
				dr_error("%s", err);
			if (!j->scanning || j->ended)
				publish_frames(r, j, table);
			dr_jobs_publish_json(table, j->id, dr_orch_state(j), dr_orch_status(r, j));
			j->published_end = job_over(j);
			if (j->published_end &&
			    j->lockfd >= 0) { /* the directory is free for the next job */
				close(j->lockfd);
				j->lockfd = -1;
			}
		}
		if (!(r->serve && j->published_end && forget(r, i)))
			i++;
	}
	dr_jobs_publish_metrics(table, &r->metrics);
}

int dr_orch_check_nodes(const dr_orch *r, char *err, size_t errlen)
{
	int live = dr_dispatch_live(r->disp);
	char lost[600] = "";
	size_t pos = 0;
	bool all_ended = true;

	if (r->silent >= 0) {
		const dr_report_node *nd = &r->info[r->silent];
		dr_seterr(
		        err, errlen,
		        "rank %d on host %s has not been heard from for %.0f s (stopped, hung or "
		        "cut off from the network); ending the job, as mpirun was started without "
		        "--enable-recovery. Frames already done are kept: run the same command "
		        "again to render the rest",
		        nd->rank, nd->host[0] ? nd->host : "(unknown)", r->opts.node_timeout);
		return DR_EXIT_RUNTIME;
	}
	for (size_t i = 0; i < r->njobs; i++)
		all_ended &= r->jobs[i]->ended;
	if (r->serve ? live >= r->opts.min_nodes || dr_dispatch_busy(r->disp) > 0
	             : live > 0 || all_ended)
		return 0;
	for (int i = 0; i < r->nslots; i++)
		if (r->info[i].lost)
			dr_append(lost, sizeof lost, &pos, "%srank %d on %s", pos ? ", " : "",
			          r->info[i].rank, r->info[i].host[0] ? r->info[i].host : "?");
	if (!r->serve) {
		dr_seterr(err, errlen,
		          "every render node was lost (%s). Frames already done are kept: run the "
		          "same command again to render the rest",
		          lost);
		return DR_EXIT_RUNTIME;
	}
	dr_seterr(err, errlen,
	          "%d of %d render nodes left (lost: %s), fewer than --min-nodes %d, and nothing "
	          "is running: exiting with status %d so that the service is restarted at full "
	          "size; the job table resumes the queue",
	          live, r->nslots, lost, r->opts.min_nodes, DR_EXIT_TOO_FEW_NODES);
	return DR_EXIT_TOO_FEW_NODES;
}

bool dr_orch_lost_any(const dr_orch *r)
{
	return r->metrics.nodes_lost > 0;
}

bool dr_orch_recovery(const dr_orch *r)
{
	return r->recovery;
}

int dr_orch_outcome(const dr_orch *r, const dr_ojob *j, bool interrupted, bool failed,
                    const char *error, const char **status, char *msg, size_t msglen)
{
	(void)r;
	msg[0] = '\0';
	*status = "done";
	if (interrupted) {
		*status = "interrupted";
		snprintf(msg, msglen,
		         "Interrupted: frames already done are kept; run the same command again to "
		         "render the rest.");
		return DR_EXIT_INTERRUPTED;
	}
	if (failed) {
		*status = "error";
		snprintf(msg, msglen, "Stopped by a runtime failure: %s", error);
		return DR_EXIT_RUNTIME;
	}
	if (j->all_loadfail) {
		*status = "error";
		snprintf(msg, msglen, "%s: %s",
		         dr_assets_missing_text(j->loaderr) ? "Nothing rendered"
		                                            : "No render node could start Blender "
		                                              "on the scene",
		         j->loaderr);
		return DR_EXIT_USAGE;
	}
	if (dr_sched_count(j->sched).failed > 0) {
		*status = "failed";
		if (j->still == STILL_FAILED)
			snprintf(msg, msglen, "%s", j->still_error);
		return DR_EXIT_FRAMES_FAILED;
	}
	if (j->still == STILL_FAILED) {
		*status = "failed";
		snprintf(msg, msglen, "%s", j->still_error);
		return DR_EXIT_FRAMES_FAILED;
	}
	return DR_EXIT_ALL_DONE;
}

/* ---- a still split: the merge on a render node ----
 *
 * A ranges job (render.ranges > 0) renders the sample ranges as its frames. When every range is
 * on disk, still_check adds the merge job: one frame (the still), which the scheduler hands to a
 * render node like any other, so a lost node's merge is retried elsewhere; the node runs
 * Blender's merge into a temporary file and renames it into place when it validates. Rank 0 then
 * validates the still once more and removes the ranges. The ranges job is over (job_over) only
 * once its merge is. */

static bool job_over(const dr_ojob *j)
{
	return j->ended && j->still != STILL_RANGES && j->still != STILL_MERGING &&
	       !(j->want_video && j->video_state != VIDEO_MADE && j->video_state != VIDEO_FAILED);
}

/* J was just added: a ranges job notes its ranges, and whether its still is already made (a
 * re-run after a good merge renders nothing). */
static void still_added(dr_orch *r, dr_ojob *j)
{
	char path[DR_PATH_MAX], why[DR_ERRLEN];

	j->merged_by = -1;
	if (j->cfg.render.ranges <= 0 || j->cfg.render.merge)
		return;
	j->still = STILL_RANGES;
	j->range_samples = calloc((size_t)j->cfg.render.ranges, sizeof *j->range_samples);
	if (!r->opts.overwrite &&
	    dr_render_cfg_still_path(&j->cfg.render, path, sizeof path, why, sizeof why) == 0 &&
	    access(path, F_OK) == 0 &&
	    dr_imgcheck(path, j->cfg.render.still_format, why, sizeof why) == 0)
		j->still_premade = true;
}

/* "<range 0's path> ... <the last range's path>" of ranges job J, for messages. */
static void ranges_named(const dr_ojob *j, char *buf, size_t len)
{
	char a[DR_PATH_MAX] = "?", b[DR_PATH_MAX] = "?";

	dr_outpath_frame(&j->cfg.out, 0, a, sizeof a);
	dr_outpath_frame(&j->cfg.out, j->cfg.render.ranges - 1, b, sizeof b);
	snprintf(buf, len, "%s ... %s", a, b);
}

static void still_failed(dr_ojob *j, const char *why)
{
	char ranges[2 * DR_PATH_MAX + 8];

	ranges_named(j, ranges, sizeof ranges);
	snprintf(j->still_error, sizeof j->still_error,
	         "still frame %d not made: %.400s; the ranges are kept: %.500s",
	         j->cfg.render.still, why, ranges);
	j->still = STILL_FAILED;
	dr_error("%s", j->still_error);
}

/* Merge job M ended: validate the still, remove the ranges (or keep them, named). */
static void merge_over(dr_orch *r, dr_ojob *m)
{
	dr_ojob *j = m->parent;
	const dr_fitem *it = dr_sched_size(m->sched) ? dr_sched_item(m->sched, 0) : NULL;
	char path[DR_PATH_MAX], why[DR_ERRLEN], range[DR_PATH_MAX];

	m->parent = NULL;
	j->merge = NULL;
	j->merge_wall = dr_now() - j->ranges_done_at;
	if (it && it->slot >= 0 && it->slot < r->nslots) {
		j->merged_by = r->info[it->slot].rank;
		snprintf(j->merged_host, sizeof j->merged_host, "%s", r->info[it->slot].host);
		j->merge_seconds = it->seconds;
	}
	if (m->cancelled) {
		still_failed(j, "the job was cancelled during the merge");
		return;
	}
	if (!it || (it->state != DR_F_DONE && it->state != DR_F_SKIPPED)) {
		snprintf(why, sizeof why, "the merge failed: %.400s",
		         it && it->last_error ? it->last_error : "no render node could merge");
		still_failed(j, why);
		return;
	}
	if (dr_outpath_frame(&m->cfg.out, m->cfg.render.still, path, sizeof path) != 0) {
		still_failed(j, "the still's path is too long");
		return;
	}
	if (dr_imgcheck(path, m->cfg.render.format, why, sizeof why) != 0) {
		still_failed(j, why);
		return;
	}
	for (int k = 0; k < j->cfg.render.ranges; k++)
		if (dr_outpath_frame(&j->cfg.out, k, range, sizeof range) == 0 &&
		    unlink(range) != 0 && errno != ENOENT)
			dr_warn("cannot remove %s: %s", range, strerror(errno));
	j->still = STILL_MADE;
	if (it->state == DR_F_SKIPPED)
		dr_info("%s%sstill frame %d was already merged: %s", r->serve ? j->id : "",
		        r->serve ? ": " : "", m->cfg.render.still, path);
	else
		dr_info("%s%sstill frame %d: %d ranges merged by rank %d (%s) in %.1f s "
		        "(%.1f s after the last range): %s",
		        r->serve ? j->id : "", r->serve ? ": " : "", m->cfg.render.still,
		        j->cfg.render.ranges, j->merged_by, j->merged_host, j->merge_seconds,
		        j->merge_wall, path);
}

/* Looked at every tick, before dispatch (so that nodes are not stopped for lack of work between
 * the last range and the merge): a ranges job that just ended gets its merge job; a merge job
 * that just ended is looked at (merge_over). */
static void still_check(dr_orch *r, dr_ojob *j)
{
	char why[DR_ERRLEN], id[DR_JOB_ID_MAX];
	dr_render_cfg mc;
	dr_sched_counts c;
	dr_ojob *m;

	if (j->parent && j->ended) {
		merge_over(r, j);
		return;
	}
	if (j->still != STILL_RANGES || !j->ended)
		return;
	j->ranges_done_at = dr_now();
	c = dr_sched_count(j->sched);
	if (j->cancelled) {
		still_failed(j, "the job was cancelled");
		return;
	}
	if (c.failed > 0 || c.done + c.skipped < c.total) {
		snprintf(why, sizeof why, "%zu of %zu sample ranges failed",
		         c.total - c.done - c.skipped, c.total);
		still_failed(j, why);
		return;
	}
	if (j->still_premade) {
		char e[DR_ERRLEN];
		dr_render_cfg_still_path(&j->cfg.render, why, sizeof why, e, sizeof e);
		dr_info("%s%sstill frame %d is already made: %s (nothing rendered; --overwrite "
		        "renders it again)",
		        r->serve ? j->id : "", r->serve ? ": " : "", j->cfg.render.still, why);
		j->still = STILL_MADE;
		return;
	}
	mc = j->cfg.render;
	snprintf(id, sizeof id, "%.*s.merge", (int)sizeof id - 7, j->id);
	if (dr_render_cfg_set_merge(&mc, why, sizeof why) != 0) {
		still_failed(j, why);
		return;
	}
	int frame = mc.still;
	dr_frames one = {&frame, 1};
	m = dr_orch_add(r, id, &mc, j->priority, &one, why, sizeof why);
	if (!m) {
		still_failed(j, why);
		return;
	}
	m->parent = j;
	j->merge = m;
	j->still = STILL_MERGING;
	if (!r->quiet)
		dr_info("%s%sstill frame %d: %d sample ranges done, the merge goes to a render "
		        "node",
		        r->serve ? j->id : "", r->serve ? ": " : "", frame, j->cfg.render.ranges);
}

/* A range of ranges job J is done (M, its RESULT): its samples count ("samples" in M's text). */
static void still_samples(dr_ojob *j, const dr_msg *m)
{
	cJSON *o;
	const cJSON *n;

	if (j->still != STILL_RANGES || !j->range_samples || m->frame < 0 ||
	    m->frame >= j->cfg.render.ranges || m->text[0] != '{' || !(o = cJSON_Parse(m->text)))
		return;
	n = cJSON_GetObjectItemCaseSensitive(o, "samples");
	if (cJSON_IsNumber(n) && n->valuedouble >= 1 && !j->range_samples[m->frame]) {
		j->range_samples[m->frame] = (int)n->valuedouble;
		j->samples_done += n->valuedouble;
	}
	cJSON_Delete(o);
}

/* The report's "still" of ranges job J. */
static void still_report(const dr_ojob *j, dr_report *rep)
{
	dr_report_still *st = &rep->still;
	char e[DR_ERRLEN];
	double ranges_wall = (j->ranges_done_at > 0 ? j->ranges_done_at : dr_now()) - j->t0;

	rep->has_still = true;
	st->frame = j->cfg.render.still;
	st->ranges = j->cfg.render.ranges;
	st->range_samples = j->range_samples;
	st->samples = j->samples_done;
	st->samples_per_s = ranges_wall > 0 ? j->samples_done / ranges_wall : 0;
	if (dr_render_cfg_still_path(&j->cfg.render, st->path, sizeof st->path, e, sizeof e) != 0)
		st->path[0] = '\0';
	st->state = j->still == STILL_MADE     ? "made"
	            : j->still == STILL_FAILED ? "failed"
	                                       : "not merged";
	st->merged_by = j->merged_by;
	st->merged_host = j->merged_host;
	st->merge_seconds = j->merge_seconds;
	st->merge_wall = j->merge_wall;
	st->error = j->still == STILL_FAILED ? j->still_error : NULL;
}

/* ---- a service's video: encoded in the background at the job's end ---- */

void dr_orch_video_tools(dr_orch *r, const char *blender, bool allow_autoexec)
{
	r->blender = blender;
	r->allow_autoexec = allow_autoexec;
}

static void video_failed(dr_ojob *j, const char *why)
{
	snprintf(j->video_error, sizeof j->video_error, "%.500s", why);
	j->video_state = VIDEO_FAILED;
	dr_error("%s: video %s not made (the frames are fine): %s", j->id, j->cfg.render.video,
	         why);
}

/* Start J's encode (its frames are all done). */
static void video_start(dr_orch *r, dr_ojob *j)
{
	char why[DR_ERRLEN], **paths = calloc(j->frames.n ? j->frames.n : 1, sizeof *paths);
	bool oom = !paths;

	for (size_t i = 0; !oom && i < j->frames.n; i++)
		oom = !(paths[i] = malloc(DR_PATH_MAX)) ||
		      dr_outpath_frame(&j->cfg.out, j->frames.v[i], paths[i], DR_PATH_MAX) != 0;
	dr_video_job vj = {.path = j->cfg.render.video,
	                   .frames = (const char *const *)paths,
	                   .n = j->frames.n,
	                   .fps = j->cfg.render.fps,
	                   .ffmpeg = "ffmpeg",
	                   .ffprobe = "ffprobe"};
	if (oom) {
		video_failed(j, "out of memory or a frame name too long");
	} else if (!(j->video = dr_video_bg_start(&vj, r->blender, j->cfg.render.scene,
	                                          r->allow_autoexec, why, sizeof why))) {
		video_failed(j, why);
	} else {
		j->video_state = VIDEO_ENCODING;
		j->video_t0 = dr_now();
		dr_info("%s: encoding %zu frames into %s", j->id, j->frames.n, j->cfg.render.video);
	}
	for (size_t i = 0; paths && i < j->frames.n; i++)
		free(paths[i]);
	free(paths);
}

/* Looked at every tick: a service's job with a video starts its encode when its frames are done,
 * and the encode is looked at (never waited for) while it runs. */
static void video_check(dr_orch *r, dr_ojob *j)
{
	char why[DR_ERRLEN];
	dr_sched_counts c;
	int rc;

	if (!j->want_video || !j->ended || j->video_state == VIDEO_MADE ||
	    j->video_state == VIDEO_FAILED)
		return;
	if (j->video_state == VIDEO_NONE) {
		c = dr_sched_count(j->sched);
		if (j->cancelled || c.failed > 0 || c.done + c.skipped < c.total)
			video_failed(j,
			             j->cancelled ? "the job was cancelled" : "some frames failed");
		else
			video_start(r, j);
		return;
	}
	if ((rc = dr_video_bg_poll(j->video, &j->video_fps, why, sizeof why)) == 1)
		return;
	dr_video_bg_free(j->video);
	j->video = NULL;
	if (rc < 0) {
		video_failed(j, why);
		return;
	}
	j->video_state = VIDEO_MADE;
	dr_info("%s: video %s: %zu frames at %g fps, made in %.1f s", j->id, j->cfg.render.video,
	        j->frames.n, j->video_fps, dr_now() - j->video_t0);
}

/* The status's "video" and "still" objects of J (when it has them). */
static void status_extras(const dr_ojob *j, cJSON *o)
{
	static const char *const vstate[] = {"waiting", "encoding", "made", "failed"};
	static const char *const sstate[] = {"", "rendering", "merging", "made", "failed"};
	cJSON *v;

	if (j->cfg.render.video[0] && (v = cJSON_AddObjectToObject(o, "video"))) {
		cJSON_AddStringToObject(v, "state", vstate[j->video_state]);
		cJSON_AddStringToObject(v, "path", j->cfg.render.video);
		if (j->video_state == VIDEO_MADE)
			cJSON_AddNumberToObject(v, "fps", j->video_fps);
		if (j->video_state == VIDEO_FAILED)
			cJSON_AddStringToObject(v, "error", j->video_error);
	}
	if (j->still != STILL_NONE && (v = cJSON_AddObjectToObject(o, "still"))) {
		cJSON_AddNumberToObject(v, "frame", j->cfg.render.still);
		cJSON_AddStringToObject(v, "state", sstate[j->still]);
		cJSON_AddNumberToObject(v, "ranges", j->cfg.render.ranges);
		cJSON_AddNumberToObject(v, "samples", j->samples_done);
		if (j->merged_by >= 0)
			cJSON_AddNumberToObject(v, "mergedBy", j->merged_by);
		if (j->still == STILL_FAILED)
			cJSON_AddStringToObject(v, "error", j->still_error);
	}
}
