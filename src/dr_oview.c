/* What rank 0 shows of its jobs: the progress line (terminal or log), each job's status JSON and
 * per-frame cells for the job table, and a job's report. */
#include "dr_oview.h"

#include "dr_log.h"
#include "dr_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void dr_oview_line(const dr_orch *r, const dr_ojob *j, char *buf, size_t len)
{
	dr_sched_counts c = dr_sched_count(j->sched);
	double el = dr_now() - j->t0;
	size_t left = c.pending + c.running, todo = c.total - c.skipped, pos = 0;
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
	for (int i = 0; i < j->nphases; i++)
		if (j->phase[i]->ops->line &&
		    j->phase[i]->ops->line(j->phase[i], j, el, buf, len)) {
			pos = strnlen(buf, len);
			dr_append(buf, len, &pos, "%s%s", nodes, oldest);
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

void dr_oview_draw(dr_orch *r, bool force)
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
		dr_oview_line(r, j, line, sizeof line);
		dr_info("still rendering%s%s: %s", r->serve ? " " : "", r->serve ? j->id : "",
		        line);
		return;
	}
	if (!force && now - r->last_draw < 0.5)
		return;
	r->last_draw = now;
	dr_oview_line(r, j, line, sizeof line);
	dprintf(r->tty, "\r\033[K%s", line);
}

void dr_oview_done(dr_orch *r, const dr_ojob *j, int slot, int frame, double sec, const char *note)
{
	char line[512], pre[DR_JOB_ID_MAX + 4];

	if (r->quiet || !(r->tty < 0 || r->serve))
		return;
	r->last_draw = dr_now();
	dr_oview_line(r, j, line, sizeof line);
	dr_info("%s%s %d done by rank %d (%s) in %.2f s%s %s",
	        dr_ojob_prefix(r, j, pre, sizeof pre),
	        j->cfg.render.merge        ? "merge of still frame"
	        : j->cfg.render.ranges > 0 ? "range"
	                                   : "frame",
	        frame, r->info[slot].rank, r->info[slot].host, sec, note, line);
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

/* The status's "frames" counts of J. */
static void frame_counts(const dr_orch *r, const dr_ojob *j, cJSON *fr)
{
	dr_sched_counts c = dr_sched_count(j->sched);
	size_t inflight = 0;

	cJSON_AddNumberToObject(fr, "total", (double)c.total);
	cJSON_AddNumberToObject(fr, "done", (double)c.done);
	cJSON_AddNumberToObject(fr, "skipped", (double)c.skipped);
	cJSON_AddNumberToObject(fr, "failed", (double)c.failed);
	/* Running: frames a node has started (the first it holds); the frames held ahead behind
	 * them wait, as pending ones do, so they count as pending (and "held"). */
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

/* The status's "nodes" of J. */
static void nodes_json(const dr_orch *r, const dr_ojob *j, double el, cJSON *nodes)
{
	for (int s = 0; s < r->nslots; s++) {
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
}

cJSON *dr_oview_status(const dr_orch *r, const dr_ojob *j)
{
	dr_sched_counts c = dr_sched_count(j->sched);
	double el = dr_now() - j->t0;
	size_t todo = c.total - c.skipped, fin = c.done + c.failed;
	cJSON *o = cJSON_CreateObject(), *fr, *nodes;

	if (!o)
		return NULL;
	if ((fr = cJSON_AddObjectToObject(o, "frames")))
		frame_counts(r, j, fr);
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
	for (int i = 0; i < j->nphases; i++)
		if (j->phase[i]->ops->describe)
			j->phase[i]->ops->describe(j->phase[i], j, o);
	if ((nodes = cJSON_AddArrayToObject(o, "nodes")))
		nodes_json(r, j, el, nodes);
	return o;
}

void dr_oview_report(const dr_orch *r, const dr_ojob *j, dr_report *rep, int exit_code,
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
	rep->times = &j->rec[0].times;
	rep->times_stride = sizeof j->rec[0];
	rep->rank0_cpu = -1;
	rep->clamped = j->clamped;
	for (int i = 0; i < j->nphases; i++)
		if (j->phase[i]->ops->report)
			j->phase[i]->ops->report(j->phase[i], j, rep);
}

/* Frame I of J as the job table shows it. */
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

/* Frame I of J into r->cells[*K] if it differs from what was published. */
static void cell_changed(dr_orch *r, dr_ojob *j, size_t i, size_t *k)
{
	dr_jobs_cell c = cell_of(r, j, i);
	dr_oframe *f = &j->rec[i];

	if (f->pub_state == (unsigned char)c.state && f->pub_attempts == c.attempts)
		return;
	f->pub_state = (unsigned char)c.state;
	f->pub_attempts = c.attempts;
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

/* The frame list of J for the table's first publish (every record back to pending), or NULL. */
static int *frame_list(dr_ojob *j, size_t n)
{
	int *frames = malloc((n ? n : 1) * sizeof *frames);

	if (!frames)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		frames[i] = dr_sched_item(j->sched, i)->frame;
		j->rec[i].pub_state = 'p'; /* the table starts with every cell pending */
		j->rec[i].pub_attempts = 0;
	}
	return frames;
}

void dr_oview_publish_frames(dr_orch *r, dr_ojob *j, dr_jobs *table)
{
	size_t n = dr_sched_size(j->sched), k = 0;
	double now = dr_now();
	bool all = j->frames_all || !j->frames_sent || now - j->frames_walk >= DR_OJOB_WALK_S;
	int *frames = NULL;

	if (dr_grow(&r->cells, &r->capcells, all ? n + 1 : j->ndirty + 1, sizeof *r->cells) != 0)
		return; /* out of memory: the marks stay for the next try */
	if (!j->frames_sent && !(frames = frame_list(j, n)))
		return;
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
		j->rec[j->dirty[d]].dirty = false;
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
