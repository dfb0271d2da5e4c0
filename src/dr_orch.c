/* Orchestrator (rank 0): hands frames of its jobs to render nodes as they free up, tracks them,
 * shows progress and reports. */
#include "dr_orch.h"

#include "dr_util.h"

#include "dr_imgcheck.h"
#include "dr_log.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int slot_of(const dr_orch *r, int rank)
{
	int slot = r->chan->size == 1 ? rank : rank - 1;
	return slot >= 0 && slot < r->nslots ? slot : -1;
}

int dr_orch_init(dr_orch *r, const dr_opts *o, dr_chan *chan, int tty, bool serve, char *err,
                 size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->opts = o;
	r->chan = chan;
	r->tty = serve ? -1 : tty;
	r->serve = serve;
	r->quiet = o->verbosity < 0;
	r->t0 = r->last_draw = dr_now();
	r->silent = -1;
	r->nslots = chan->size == 1 ? 1 : chan->size - 1;
	r->nodes = calloc((size_t)r->nslots, sizeof *r->nodes);
	r->info = calloc((size_t)r->nslots, sizeof *r->info);
	if (!r->nodes || !r->info) {
		snprintf(err, errlen, "out of memory");
		dr_orch_destroy(r);
		return -1;
	}
	for (int i = 0; i < r->nslots; i++) {
		r->info[i].rank = chan->size == 1 ? 0 : i + 1;
		r->nodes[i].last_seen = r->t0;
		r->nodes[i].announced = r->nodes[i].job = r->nodes[i].revoking = -1;
	}
	return 0;
}

static void job_free(dr_ojob *j)
{
	if (!j)
		return;
	dr_sched_destroy(j->sched);
	dr_frames_free(&j->frames);
	free(j->dispatch);
	free(j->finished_at);
	free(j);
}

void dr_orch_destroy(dr_orch *r)
{
	for (size_t i = 0; i < r->njobs; i++)
		job_free(r->jobs[i]);
	free(r->jobs);
	free(r->nodes);
	free(r->info);
	memset(r, 0, sizeof *r);
}

dr_ojob *dr_orch_add(dr_orch *r, const char *id, const dr_render_cfg *render, int priority,
                     const dr_frames *frames, char *err, size_t errlen)
{
	dr_sched_cfg sc = {
	        .nslots = r->nslots,
	        .chunk = r->opts->chunk,
	        .retries = r->opts->retries,
	        .max_consec = 3,
	        .tail_control = !r->opts->no_speculate,
	};
	char path[DR_PATH_MAX], why[DR_PATH_MAX + 200];
	size_t existing = 0;
	dr_ojob *j = calloc(1, sizeof *j);

	if (j && r->njobs == r->capjobs) {
		size_t cap = r->capjobs ? 2 * r->capjobs : 8;
		dr_ojob **p = realloc(r->jobs, cap * sizeof *p);
		if (p) {
			r->jobs = p;
			r->capjobs = cap;
		}
	}
	if (!j || r->njobs == r->capjobs) {
		snprintf(err, errlen, "out of memory");
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
	if (!j->frames.v || !j->dispatch || !j->finished_at) {
		snprintf(err, errlen, "out of memory for %zu frames", frames->n);
		job_free(j);
		return NULL;
	}
	memcpy(j->frames.v, frames->v, frames->n * sizeof *frames->v);
	j->frames.n = frames->n;
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
	for (size_t i = 0; i < j->frames.n && !r->opts->overwrite; i++) {
		int f = j->frames.v[i];
		if (dr_outpath_frame(&j->cfg.out, f, path, sizeof path) != 0 ||
		    access(path, F_OK) != 0)
			continue;
		if (dr_imgcheck(path, j->cfg.render.format, why, sizeof why) == 0) {
			dr_sched_skip(j->sched, f);
			existing++;
		} else {
			dr_warn("%s; frame %d will be rendered again", why, f);
		}
	}
	r->metrics.frames_skipped += existing;
	if (existing)
		dr_info("%s%s%zu of %zu frames already exist and are skipped (--overwrite renders "
		        "them again)",
		        r->serve ? j->id : "", r->serve ? ": " : "", existing, j->frames.n);
	r->jobs[r->njobs++] = j;
	if (dr_sched_finished(j->sched))
		j->ended = true;
	return j;
}

static dr_ojob *job_of(const dr_orch *r, int num)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (r->jobs[i]->num == num)
			return r->jobs[i];
	return NULL;
}

static void progress_line(const dr_orch *r, const dr_ojob *j, char *buf, size_t len)
{
	dr_sched_counts c = dr_sched_count(j->sched);
	double el = dr_now() - j->t0;
	size_t left = c.pending + c.running, todo = c.total - c.skipped;
	double fpm = el > 0 ? c.done * 60.0 / el : 0;
	char eta[32] = "--", elapsed[32], oldest[64] = "";
	const dr_fitem *old = dr_sched_oldest(j->sched);

	(void)r;
	dr_fmt_duration(el, elapsed, sizeof elapsed);
	if (c.done > 0)
		dr_fmt_duration(left * el / c.done, eta, sizeof eta);
	if (old) {
		char age[32];
		dr_fmt_duration(dr_now() - old->started, age, sizeof age);
		snprintf(oldest, sizeof oldest, ", oldest in flight: frame %d for %s", old->frame,
		         age);
	}
	snprintf(buf, len,
	         "[%zu/%zu] %3.0f%% | %.1f frames/min | elapsed %s | ETA %s | %zu failed%s",
	         c.done + c.failed, todo, todo ? 100.0 * (c.done + c.failed) / todo : 100.0, fpm,
	         elapsed, eta, c.failed, oldest);
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
	if (r->serve) {
		dr_sched_counts c = dr_sched_count(j->sched);
		dr_info("job %s %s: %zu rendered, %zu skipped, %zu failed", j->id,
		        c.failed ? "failed" : "done", c.done, c.skipped, c.failed);
	}
}

/* FRAME is no longer held by node ND (reported, dropped or taken back). */
static void held_remove(dr_orch_node *nd, int frame)
{
	for (int i = 0; i < nd->nframes; i++)
		if (nd->frames[i] == frame) {
			memmove(&nd->frames[i], &nd->frames[i + 1],
			        (size_t)(nd->nframes - i - 1) * sizeof nd->frames[0]);
			if (--nd->nframes == 0)
				nd->job = -1;
			return;
		}
}

/* Idle node SLOT found no fresh frame: take back one that waits behind another node's frame in
 * flight (held ahead), rather than let it wait there while SLOT idles. Returns 1 if one is
 * being taken back (SLOT gets it once the holder confirms), 0 if none, -1 on error. */
static int take_back(dr_orch *r, int slot, char *err, size_t errlen)
{
	for (int h = 0; h < r->nslots; h++) {
		dr_orch_node *nd = &r->nodes[h];
		dr_ojob *j = job_of(r, nd->job);
		if (h == slot || !j || j->ended)
			continue;
		if (nd->revoking >= 0)
			return 1; /* one under way: wait for it */
		const dr_slot_stats *st = dr_sched_slot(j->sched, slot);
		if (nd->nframes < 2 || st->excluded || st->gone)
			continue;
		nd->revoking = nd->frames[nd->nframes - 1];
		dr_debug("taking frame %d back from rank %d for idle rank %d", nd->revoking,
		         r->info[h].rank, r->info[slot].rank);
		dr_msg m = {.type = DR_MSG_CANCEL, .job = j->num, .frame = nd->revoking, .n = 1};
		return send_to(r, h, &m, err, errlen) ? -1 : 1;
	}
	return 0;
}

static void on_result(dr_orch *r, int slot, const dr_msg *m, char *err, size_t errlen)
{
	dr_ojob *j = job_of(r, m->job);
	char line[512];
	const dr_slot_stats *st;
	bool was_excluded;

	held_remove(&r->nodes[slot], m->frame);
	if (r->nodes[slot].revoking == m->frame) {
		r->nodes[slot].revoking = -1;
		if (j && !j->ended && m->ok < 0) { /* taken back for an idle node */
			dr_sched_return(j->sched, slot, m->frame);
			return;
		}
	}
	if (!j || j->ended || m->ok < 0)
		return; /* cancelled meanwhile, a copy that lost, or a dropped frame's receipt */
	st = dr_sched_slot(j->sched, slot);
	was_excluded = st->excluded;
	if (m->ok) {
		int other = dr_sched_other(j->sched, m->frame, slot);
		long idx = dr_sched_index(j->sched, m->frame);
		if (dr_sched_done(j->sched, slot, m->frame, m->seconds) != 0)
			return;
		if (other >= 0 &&
		    send_type(r, other, DR_MSG_CANCEL, j->num, m->frame, err, errlen) == 0)
			dr_debug("frame %d: the copy on rank %d won; rank %d drops its copy",
			         m->frame, r->info[slot].rank, r->info[other].rank);
		if (idx >= 0) {
			j->dispatch[idx] = m->wait;
			j->finished_at[idx] = dr_now() - j->t0;
		}
		r->metrics.frames_done++;
		r->metrics.seconds_sum += m->seconds;
		static const double bounds[DR_HIST_BUCKETS] = {0.1, 0.25, 0.5, 1,   2.5, 5,
		                                               10,  30,   60,  120, 300, 600};
		int b = 0;
		while (b < DR_HIST_BUCKETS && m->seconds > bounds[b])
			b++;
		r->metrics.hist[b]++;
		if (!r->quiet && (r->tty < 0 || r->serve)) {
			r->last_draw = dr_now();
			progress_line(r, j, line, sizeof line);
			dr_info("%s%sframe %d done by rank %d (%s) in %.2f s %s",
			        r->serve ? j->id : "", r->serve ? ": " : "", m->frame,
			        r->info[slot].rank, r->info[slot].host, m->seconds, line);
		}
		job_end_check(r, j);
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
		        r->opts->retries + 1, m->text);
	}
	if (!was_excluded && st->excluded)
		dr_warn("rank %d (%s) failed %d frames in a row and is taken out of rotation",
		        r->info[slot].rank, r->info[slot].host, st->consec_failed);
	job_end_check(r, j);
}

/* Node SLOT cannot load job J's scene (J NULL: the command line's scene at start-up). */
static int on_loadfail(dr_orch *r, int slot, dr_ojob *j, const char *text, char *err, size_t errlen)
{
	dr_orch_node *nd = &r->nodes[slot];

	nd->waiting = true; /* a LOADFAIL also asks for work */
	nd->nframes = 0;
	nd->revoking = -1;
	nd->job = -1;
	nd->announced = -1;
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
		snprintf(j->loaderr, sizeof j->loaderr, "%.1000s", text);
	dr_sched_drop(j->sched, slot);
	if (dr_sched_usable(j->sched) > 0) /* else the job ends with this error */
		dr_warn("rank %d (%s) cannot render %s%s: %s", r->info[slot].rank,
		        r->info[slot].host, r->serve ? "job " : "the scene", r->serve ? j->id : "",
		        text);
	(void)err;
	(void)errlen;
	return 0;
}

int dr_orch_handle(dr_orch *r, const dr_msg *m, int src, char *err, size_t errlen)
{
	int slot = slot_of(r, src);
	dr_orch_node *nd;

	if (slot < 0)
		return 0;
	nd = &r->nodes[slot];
	nd->last_seen = dr_now();
	switch (m->type) {
	case DR_MSG_HELLO:
		r->info[slot].threads = m->threads;
		snprintf(r->info[slot].host, sizeof r->info[slot].host, "%s", m->host);
		dr_debug("rank %d on %s (pid %d): %d Blender thread%s", r->info[slot].rank, m->host,
		         m->pid, m->threads, m->threads == 1 ? "" : "s");
		break;
	case DR_MSG_READY: /* the first request: the node holds nothing */
		nd->waiting = true;
		nd->nframes = 0;
		nd->revoking = -1;
		nd->job = -1;
		break;
	case DR_MSG_REQUEST: /* may come while it renders its last frame: one task ahead */
		nd->waiting = true;
		break;
	case DR_MSG_LOADFAIL:
		return on_loadfail(r, slot, m->job >= 0 ? job_of(r, m->job) : NULL, m->text, err,
		                   errlen);
	case DR_MSG_RESULT:
		on_result(r, slot, m, err, errlen);
		break;
	default:
		break;
	}
	return 0;
}

/* A job that can no longer be rendered by anyone fails its remaining frames. */
static void strand_check(dr_ojob *j)
{
	if (j->ended || dr_sched_usable(j->sched) > 0 || dr_sched_finished(j->sched))
		return;
	dr_sched_counts c = dr_sched_count(j->sched);
	if (c.running > 0)
		return;
	j->all_loadfail = j->loaderr[0] && c.done == 0;
	dr_sched_fail_stranded(j->sched, j->all_loadfail ? "no render node could load the scene"
	                                                 : "no render node left to try this frame");
}

static int assign(dr_orch *r, int slot, dr_ojob *j, const int *frames, int k, char *err,
                  size_t errlen)
{
	dr_orch_node *nd = &r->nodes[slot];
	dr_msg m = {.type = DR_MSG_TASK, .job = j->num, .n = k};

	if (nd->announced != j->num) {
		dr_msg jm = {.type = DR_MSG_JOB, .job = j->num};
		snprintf(jm.text, sizeof jm.text, "%s", j->cfg_json);
		if (send_to(r, slot, &jm, err, errlen))
			return -1;
		nd->announced = j->num;
	}
	memcpy(m.frames, frames, (size_t)k * sizeof frames[0]);
	nd->waiting = false;
	for (int i = 0; i < k && nd->nframes < 2 * DR_CHUNK_MAX; i++)
		nd->frames[nd->nframes++] = frames[i];
	nd->job = j->num;
	j->started = true;
	return send_to(r, slot, &m, err, errlen);
}

static bool same_settings(const dr_ojob *a, const dr_ojob *b)
{
	return a && b && dr_render_cfg_same_blender(&a->cfg.render, &b->cfg.render);
}

/* Jobs in the order they are served: priority, then submission. */
static int job_order(const void *pa, const void *pb)
{
	const dr_ojob *a = *(dr_ojob *const *)pa, *b = *(dr_ojob *const *)pb;
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return a->num < b->num ? -1 : a->num > b->num;
}

/* Work for waiting node SLOT: the first job in order with pending frames, preferring, among
 * those of the top priority, one whose settings its Blender already has; then speculative
 * copies of stragglers. Returns 1 if it got work, 0 if none now, -1 on error. Sets *NEVER when
 * no job will ever have work for it. */
static int find_work(dr_orch *r, int slot, bool *never, char *err, size_t errlen)
{
	int frames[DR_CHUNK_MAX], k, top = 0;
	bool have_top = false;
	double now = dr_now();
	const dr_ojob *loaded = job_of(r, r->nodes[slot].announced);

	*never = true;
	for (size_t i = 0; i < r->njobs; i++) {
		dr_ojob *j = r->jobs[i];
		const dr_slot_stats *st = dr_sched_slot(j->sched, slot);
		if (j->ended)
			continue;
		if (!st->excluded && !st->gone)
			*never = false;
		if (dr_sched_count(j->sched).pending > 0 && (!have_top || j->priority > top)) {
			top = j->priority;
			have_top = true;
		}
	}
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < r->njobs; i++) {
			dr_ojob *j = r->jobs[i];
			bool pending = dr_sched_count(j->sched).pending > 0;
			if (j->ended)
				continue;
			/* A node still rendering gets its next task from the same job only, and
			 * only while plenty is pending: near the end a frame held behind a long one
			 * would wait while other nodes idle. Speculative copies are for idle nodes.
			 */
			if (r->nodes[slot].nframes > 0 &&
			    (j->num != r->nodes[slot].job || pass == 2 ||
			     dr_sched_count(j->sched).pending <= (size_t)r->nslots))
				continue;
			if (pass == 0 &&
			    (!pending || j->priority != top || !same_settings(j, loaded)))
				continue;
			if (pass == 1 && !pending)
				continue;
			if (pass == 2 && (pending || have_top))
				continue; /* copies of stragglers only when nothing is pending */
			k = r->nodes[slot].nframes > 0
			            ? dr_sched_next_ahead(j->sched, slot, now, frames, DR_CHUNK_MAX)
			            : dr_sched_next(j->sched, slot, now, frames, DR_CHUNK_MAX);
			if (k > 0)
				return assign(r, slot, j, frames, k, err, errlen) ? -1 : 1;
		}
	}
	return 0;
}

int dr_orch_tick(dr_orch *r, char *err, size_t errlen)
{
	double now = dr_now();

	for (int i = 0; i < r->nslots && r->chan->size > 1; i++) {
		if (!r->nodes[i].stopped && now - r->nodes[i].last_seen > r->opts->node_timeout) {
			r->silent = i;
			return 0;
		}
	}
	for (size_t i = 0; i < r->njobs; i++) {
		strand_check(r->jobs[i]);
		job_end_check(r, r->jobs[i]);
	}
	if (r->njobs > 1)
		qsort(r->jobs, r->njobs, sizeof *r->jobs, job_order);
	int busy = 0;
	bool pending = false;
	for (size_t i = 0; i < r->njobs; i++)
		pending |= !r->jobs[i]->ended && dr_sched_count(r->jobs[i]->sched).pending > 0;
	for (int i = 0; i < r->nslots; i++) {
		dr_orch_node *nd = &r->nodes[i];
		bool never;
		busy += nd->nframes > 0;
		if (!nd->waiting || nd->stopped)
			continue;
		/* with nothing fresh left, a frame waiting behind another comes before a copy */
		if (!pending && nd->nframes == 0) {
			int tb = take_back(r, i, err, errlen);
			if (tb < 0)
				return -1;
			if (tb > 0)
				continue;
		}
		int got = find_work(r, i, &never, err, errlen);
		if (got < 0)
			return -1;
		if (got == 0 && never && !r->serve && nd->nframes == 0) {
			nd->waiting = false;
			nd->stopped = true;
			if (send_type(r, i, DR_MSG_STOP, -1, -1, err, errlen))
				return -1;
		}
	}
	r->metrics.nodes_busy = busy;
	r->metrics.nodes_idle = r->nslots - busy;
	draw(r, false);
	return 0;
}

int dr_orch_cancel(dr_orch *r, dr_ojob *j, char *err, size_t errlen)
{
	if (j->ended)
		return 0;
	j->cancelled = j->ended = true;
	for (int i = 0; i < r->nslots; i++) {
		dr_sched_requeue(j->sched, i);
		if (r->nodes[i].job == j->num && r->nodes[i].nframes > 0 &&
		    send_type(r, i, DR_MSG_CANCEL, j->num, -1, err, errlen))
			return -1;
	}
	dr_info("job %s cancelled", j->id);
	return 0;
}

bool dr_orch_finished(const dr_orch *r)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (!r->jobs[i]->ended)
			return false;
	if (r->serve)
		return true;
	for (int i = 0; i < r->nslots; i++)
		if (!r->nodes[i].stopped)
			return false;
	return true;
}

int dr_orch_stop_all(dr_orch *r, char *err, size_t errlen)
{
	for (int i = 0; i < r->nslots; i++) {
		if (r->nodes[i].stopped)
			continue;
		r->nodes[i].stopped = true;
		if (send_type(r, i, DR_MSG_STOP, -1, -1, err, errlen))
			return -1;
	}
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
	if (j->ended)
		return dr_sched_count(j->sched).failed ? DR_JOB_FAILED : DR_JOB_DONE;
	return j->started ? DR_JOB_RUNNING : DR_JOB_QUEUED;
}

char *dr_orch_status(const dr_orch *r, const dr_ojob *j)
{
	dr_sched_counts c = dr_sched_count(j->sched);
	double el = dr_now() - j->t0;
	size_t todo = c.total - c.skipped, fin = c.done + c.failed;
	cJSON *o = cJSON_CreateObject(), *fr, *failed, *nodes;
	char *text = NULL;

	if (!o)
		return NULL;
	fr = cJSON_AddObjectToObject(o, "frames");
	if (fr) {
		cJSON_AddNumberToObject(fr, "total", (double)c.total);
		cJSON_AddNumberToObject(fr, "done", (double)c.done);
		cJSON_AddNumberToObject(fr, "skipped", (double)c.skipped);
		cJSON_AddNumberToObject(fr, "failed", (double)c.failed);
		cJSON_AddNumberToObject(fr, "running", (double)c.running);
		cJSON_AddNumberToObject(fr, "pending", (double)c.pending);
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
	cJSON_AddStringToObject(o, "output", j->cfg.out.pattern);
	failed = cJSON_AddArrayToObject(o, "failedFrames");
	for (size_t i = 0; failed && c.failed && i < dr_sched_size(j->sched); i++) {
		const dr_fitem *it = dr_sched_item(j->sched, i);
		cJSON *f;
		if (it->state != DR_F_FAILED || !(f = cJSON_CreateObject()))
			continue;
		cJSON_AddNumberToObject(f, "frame", it->frame);
		cJSON_AddNumberToObject(f, "attempts", it->attempts);
		cJSON_AddStringToObject(f, "error", it->last_error ? it->last_error : "");
		cJSON_AddItemToArray(failed, f);
	}
	nodes = cJSON_AddArrayToObject(o, "nodes");
	for (int s = 0; nodes && s < r->nslots; s++) {
		cJSON *n = cJSON_CreateObject();
		int cur = -1;
		if (!n)
			break;
		if (r->nodes[s].job == j->num && r->nodes[s].nframes > 0)
			for (size_t i = 0; i < dr_sched_size(j->sched); i++) {
				const dr_fitem *it = dr_sched_item(j->sched, i);
				if (it->state == DR_F_RUNNING &&
				    (it->slot == s || it->dup_slot == s)) {
					cur = it->frame;
					break;
				}
			}
		cJSON_AddNumberToObject(n, "rank", r->info[s].rank);
		cJSON_AddStringToObject(n, "host", r->info[s].host);
		if (cur >= 0)
			cJSON_AddNumberToObject(n, "currentFrame", cur);
		else
			cJSON_AddNullToObject(n, "currentFrame");
		cJSON_AddNumberToObject(n, "framesDone", dr_sched_slot(j->sched, s)->done);
		cJSON_AddItemToArray(nodes, n);
	}
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
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
}
