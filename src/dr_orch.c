/* Orchestrator (rank 0): hands frames of its jobs to render nodes as they free up, tracks them,
 * shows progress and reports. */
#include "dr_orch.h"

#include "dr_ojob.h"

#include "dr_util.h"

#include "dr_assets.h"
#include "dr_dispatch.h"
#include "dr_encode.h"
#include "dr_imgcheck.h"
#include "dr_log.h"
#include "dr_outdir.h"
#include "dr_oview.h"
#include "dr_still.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(DR_DISPATCH_FRAMES_MAX == DR_CHUNK_MAX, "a task's frames fit a decision");
_Static_assert(DR_DISPATCH_HIST_BUCKETS == DR_HIST_BUCKETS, "one set of histogram buckets");

static int slot_of(const dr_orch *r, int rank)
{
	int slot = dr_chan_size(r->chan) == 1 ? rank : rank - 1;
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
	r->recovery = dr_mpi_recovery();
	r->chan = chan;
	r->tty = tty;
	r->serve = o->serve;
	r->quiet = o->quiet;
	r->t0 = r->last_draw = dr_now();
	r->silent = -1;
	r->nslots = dr_chan_size(chan) == 1 ? 1 : dr_chan_size(chan) - 1;
	dr_dispatch_cfg dc = {
	        .nslots = r->nslots,
	        .serve = o->serve,
	        .node_timeout =
	                dr_chan_size(chan) > 1 ? r->opts.node_timeout : -1, /* alone: nobody */
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
		r->info[i].rank = dr_chan_size(chan) == 1 ? 0 : i + 1;
	return r;
}

void dr_orch_destroy(dr_orch *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->njobs; i++)
		dr_ojob_destroy(r->jobs[i]);
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
	char err[DR_ERRLEN], pre[DR_JOB_ID_MAX + 4];

	j->scanning = false;
	r->metrics.frames_skipped += j->scan_found;
	if (j->scan_found)
		dr_info("%s%zu of %zu frames already exist and are skipped (--overwrite renders "
		        "them again)",
		        dr_ojob_prefix(r, j, pre, sizeof pre), j->scan_found, j->frames.n);
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

	for (; j->nothing_to_do && j->scan_next < j->frames.n; j->scan_next++) {
		/* the ranges of a still already merged were removed: nothing to render */
		dr_sched_skip(j->sched, j->frames.v[j->scan_next]);
		dr_ojob_mark(j, j->frames.v[j->scan_next]);
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
			dr_ojob_mark(j, f);
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
	dr_ojob *j;

	if (dr_grow(&r->jobs, &r->capjobs, r->njobs + 1, sizeof *r->jobs) != 0) {
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	/* submission order; never reused: messages name jobs by it */
	j = dr_ojob_create(r, (int)r->seq, id, render, frames, err, errlen);
	if (!j || dr_encode_attach(r, j, err, errlen) != 0 ||
	    dr_still_attach(r, j, err, errlen) != 0) {
		dr_ojob_destroy(j);
		return NULL;
	}
	r->seq++;
	j->priority = priority;
	/* jobs that one warm Blender can render without a reload share a settings class */
	j->settings = j->num;
	for (size_t i = 0; i < r->njobs; i++)
		if (dr_render_cfg_same_blender(&r->jobs[i]->cfg.render, &j->cfg.render)) {
			j->settings = r->jobs[i]->settings;
			break;
		}
	r->jobs[r->njobs++] = j;
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
	long idx = dr_sched_index(j->sched, m->frame);

	if (idx >= 0) {
		j->rec[idx].times.dispatch = m->wait;
		j->rec[idx].times.finished_at = dr_now() - j->t0;
	}
	r->metrics.frames_done++;
	r->metrics.seconds_sum += sec;
	r->metrics.hist[dr_dispatch_hist_bucket(sec)]++;
	dr_oview_done(r, j, slot, m->frame, sec, note);
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
		dr_ojob_mark(j, m->frame);
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
		dr_ojob_mark(
		        j,
		        m->frame); /* whatever it was: a result, a copy's end, a frame given back */
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
		for (int i = 0; i < j->nphases; i++)
			if (j->phase[i]->ops->result)
				j->phase[i]->ops->result(j->phase[i], j, m);
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
			dr_ojob_mark(lj, dn->frames[i]);
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
			dr_ojob_mark(j, x->frames[i]);
		j->started = true;
		break;
	case DR_DISPATCH_CANCEL:
		for (int i = 0; j && i < x->nframes; i++)
			dr_ojob_mark(j, x->frames[i]);
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
	}
	/* then what follows the frames (a phase may add a job: it is looked at next tick) */
	for (size_t i = 0, n = r->njobs; i < n; i++)
		for (int k = 0; k < r->jobs[i]->nphases; k++)
			r->jobs[i]->phase[k]->ops->poll(r->jobs[i]->phase[k], r, r->jobs[i]);
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
	dr_oview_draw(r, false);
	return 0;
}

int dr_orch_cancel(dr_orch *r, dr_ojob *j, char *err, size_t errlen)
{
	if (j->child) { /* a phase's job runs (a still's merge): it is cancelled, ours kept */
		j->cancelled = true;
		if (dr_orch_cancel(r, j->child, err, errlen) != 0)
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

dr_ojob *dr_orch_find(const dr_orch *r, const char *id)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (strcmp(r->jobs[i]->id, id) == 0)
			return r->jobs[i];
	return NULL;
}

bool dr_orch_finished(const dr_orch *r)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (!dr_ojob_ended(r->jobs[i]))
			return false;
	return r->serve || dr_dispatch_all_stopped(r->disp);
}

int dr_orch_stop_all(dr_orch *r, char *err, size_t errlen)
{
	if (carry_out_all(r, dr_dispatch_stop_all(r->disp, r->dec, r->nslots), err, errlen))
		return -1;
	if (r->tty >= 0 && !r->quiet) {
		dr_oview_draw(r, true);
		dprintf(r->tty, "\n");
	}
	return 0;
}

dr_job_state dr_orch_state(const dr_ojob *j)
{
	if (j->cancelled)
		return DR_JOB_CANCELLED;
	if (j->ended && !dr_ojob_ended(j))
		return DR_JOB_RUNNING; /* a still's merge runs */
	if (j->ended && dr_ojob_phase_failed(j))
		return DR_JOB_FAILED;
	if (j->ended)
		return dr_sched_count(j->sched).failed ? DR_JOB_FAILED : DR_JOB_DONE;
	return j->started ? DR_JOB_RUNNING : DR_JOB_QUEUED;
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
		} else if (r->lim) { /* a service's job (a batch locked its directory itself) */
			dr_info("job %s: %s, %zu frames", id, spec.render.scene, spec.frames.n);
			lock_job(r->jobs[r->njobs - 1], table, r->opts.overwrite);
		}
		dr_jobspec_free(&spec);
	}
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
	dr_ojob_destroy(j);
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
			if (!dr_ojob_ended(j) && dr_jobs_cancel_requested(table, j->id) &&
			    dr_orch_cancel(r, j, err, sizeof err) != 0)
				dr_error("%s", err);
			if (!j->scanning || j->ended)
				dr_oview_publish_frames(r, j, table);
			dr_jobs_publish_json(table, j->id, dr_orch_state(j), dr_oview_status(r, j));
			j->published_end = dr_ojob_ended(j);
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
		if (dr_ojob_phase_failed(j))
			snprintf(msg, msglen, "%s", dr_ojob_phase_failed(j));
		return DR_EXIT_FRAMES_FAILED;
	}
	if (dr_ojob_phase_failed(j)) {
		*status = "failed";
		snprintf(msg, msglen, "%s", dr_ojob_phase_failed(j));
		return DR_EXIT_FRAMES_FAILED;
	}
	return DR_EXIT_ALL_DONE;
}

void dr_orch_video_tools(dr_orch *r, const char *blender, bool allow_autoexec)
{
	r->blender = blender;
	r->allow_autoexec = allow_autoexec;
}
