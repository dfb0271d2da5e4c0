/* Dispatch policy (pure): decides which render node gets which job's frames next, hold-ahead,
 * take-back and stopping, from the nodes' state and the time passed in. */
#include "dr_dispatch.h"

#include "dr_util.h"

#include <stdlib.h>
#include <string.h>

typedef struct djob {
	int num, priority, settings;
	bool ended;
	dr_sched *sched; /* borrowed */
} djob;

struct dr_dispatch {
	dr_dispatch_cfg cfg;
	dr_dispatch_node *nodes;
	djob *jobs; /* kept in serving order: priority, then submission */
	size_t njobs, capjobs;
};

dr_dispatch *dr_dispatch_create(const dr_dispatch_cfg *cfg, double now, char *err, size_t errlen)
{
	dr_dispatch *d;

	if (cfg->nslots < 1) {
		dr_seterr(err, errlen, "dispatch: need at least one render node");
		return NULL;
	}
	d = calloc(1, sizeof *d);
	if (d)
		d->nodes = calloc((size_t)cfg->nslots, sizeof *d->nodes);
	if (!d || !d->nodes) {
		free(d);
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	d->cfg = *cfg;
	for (int i = 0; i < cfg->nslots; i++) {
		d->nodes[i].last_seen = now;
		d->nodes[i].announced = d->nodes[i].job = d->nodes[i].revoking = -1;
	}
	return d;
}

void dr_dispatch_destroy(dr_dispatch *d)
{
	if (!d)
		return;
	free(d->nodes);
	free(d->jobs);
	free(d);
}

static djob *job_of(const dr_dispatch *d, int num)
{
	for (size_t i = 0; i < d->njobs; i++)
		if (d->jobs[i].num == num)
			return &d->jobs[i];
	return NULL;
}

/* Jobs in the order they are served: priority, then submission. */
static int job_order(const void *pa, const void *pb)
{
	const djob *a = pa, *b = pb;
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return a->num < b->num ? -1 : a->num > b->num;
}

int dr_dispatch_add_job(dr_dispatch *d, int job, int priority, int settings, dr_sched *sched,
                        char *err, size_t errlen)
{
	if (job < 0 || job_of(d, job))
		return dr_seterr(err, errlen, "dispatch: job number %d is not new", job);
	if (dr_grow(&d->jobs, &d->capjobs, d->njobs + 1, sizeof *d->jobs) != 0)
		return dr_seterr(err, errlen, "out of memory");
	d->jobs[d->njobs++] = (djob){.num = job,
	                             .priority = priority,
	                             .settings = settings,
	                             .ended = dr_sched_finished(sched),
	                             .sched = sched};
	for (int i = 0; i < d->cfg.nslots; i++)
		if (d->nodes[i].lost) /* a job added later never counts on a lost node */
			dr_sched_drop(sched, i);
	qsort(d->jobs, d->njobs, sizeof *d->jobs, job_order);
	return 0;
}

void dr_dispatch_end_job(dr_dispatch *d, int job)
{
	djob *j = job_of(d, job);
	if (j)
		j->ended = true;
}

bool dr_dispatch_job_ended(const dr_dispatch *d, int job)
{
	const djob *j = job_of(d, job);
	return !j || j->ended;
}

int dr_dispatch_cancel_job(dr_dispatch *d, int job, dr_dispatch_decision *out, int max)
{
	djob *j = job_of(d, job);
	int n = 0;

	if (!j || j->ended)
		return 0;
	j->ended = true;
	for (int i = 0; i < d->cfg.nslots; i++) {
		dr_sched_requeue(j->sched, i);
		if (d->nodes[i].job == job && d->nodes[i].nframes > 0 && n < max)
			out[n++] = (dr_dispatch_decision){
			        .kind = DR_DISPATCH_CANCEL, .slot = i, .job = job, .for_slot = -1};
	}
	return n;
}

static dr_dispatch_node *node(dr_dispatch *d, int slot)
{
	return slot >= 0 && slot < d->cfg.nslots ? &d->nodes[slot] : NULL;
}

void dr_dispatch_heard(dr_dispatch *d, int slot, double now)
{
	dr_dispatch_node *nd = node(d, slot);
	if (nd)
		nd->last_seen = now;
}

/* The node holds nothing (a fresh start, or it gave up on a job). */
static void empty(dr_dispatch_node *nd)
{
	nd->waiting = true;
	nd->nframes = 0;
	nd->revoking = -1;
	nd->job = -1;
}

void dr_dispatch_ready(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = node(d, slot);
	if (nd)
		empty(nd);
}

void dr_dispatch_request(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = node(d, slot);
	if (nd)
		nd->waiting = true;
}

void dr_dispatch_loadfail(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = node(d, slot);
	if (nd) {
		empty(nd); /* a LOADFAIL also asks for work */
		nd->announced = -1;
	}
}

/* FRAME is no longer held by node ND (reported, dropped or taken back). */
static void held_remove(dr_dispatch_node *nd, int frame)
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

int dr_dispatch_result(dr_dispatch *d, int slot, int job, int frame, int ok)
{
	dr_dispatch_node *nd = node(d, slot);
	djob *j = job_of(d, job);

	if (!nd)
		return 0;
	held_remove(nd, frame);
	if (nd->revoking != frame)
		return 0;
	nd->revoking = -1;
	if (!j || j->ended || ok >= 0)
		return 0; /* it had started after all: an ordinary result */
	dr_sched_return(j->sched, slot, frame);
	return 1;
}

int dr_dispatch_stop_all(dr_dispatch *d, dr_dispatch_decision *out, int max)
{
	int n = 0;
	for (int i = 0; i < d->cfg.nslots && n < max; i++) {
		if (d->nodes[i].stopped)
			continue;
		d->nodes[i].stopped = true;
		out[n++] = (dr_dispatch_decision){
		        .kind = DR_DISPATCH_STOP, .slot = i, .job = -1, .for_slot = -1};
	}
	return n;
}

int dr_dispatch_lose(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = node(d, slot);
	size_t before = 0, after = 0;

	if (!nd || nd->lost)
		return 0;
	for (size_t i = 0; i < d->njobs; i++)
		before += dr_sched_count(d->jobs[i].sched).pending;
	for (size_t i = 0; i < d->njobs; i++)
		dr_sched_drop(d->jobs[i].sched, slot);
	for (size_t i = 0; i < d->njobs; i++)
		after += dr_sched_count(d->jobs[i].sched).pending;
	nd->lost = nd->stopped = true;
	nd->waiting = false;
	nd->nframes = 0;
	nd->revoking = -1;
	nd->job = -1;
	return (int)(after - before);
}

int dr_dispatch_live(const dr_dispatch *d)
{
	int n = 0;
	for (int i = 0; i < d->cfg.nslots; i++)
		n += !d->nodes[i].lost;
	return n;
}

int dr_dispatch_silent(const dr_dispatch *d, double now)
{
	if (d->cfg.node_timeout < 0)
		return -1;
	for (int i = 0; i < d->cfg.nslots; i++)
		if (!d->nodes[i].stopped && now - d->nodes[i].last_seen > d->cfg.node_timeout)
			return i;
	return -1;
}

/* Idle node SLOT found no fresh frame: take back one that waits behind another node's frame in
 * flight (held ahead), rather than let it wait there while SLOT idles. Returns 2 with a CANCEL in
 * *OUT, 1 if one is already under way (wait for it), 0 if none. */
static int take_back(dr_dispatch *d, int slot, dr_dispatch_decision *out)
{
	for (int h = 0; h < d->cfg.nslots; h++) {
		dr_dispatch_node *nd = &d->nodes[h];
		const djob *j = job_of(d, nd->job);
		if (h == slot || !j || j->ended)
			continue;
		if (nd->revoking >= 0)
			return 1;
		const dr_slot_stats *st = dr_sched_slot(j->sched, slot);
		if (nd->nframes < 2 || st->excluded || st->gone)
			continue;
		nd->revoking = nd->frames[nd->nframes - 1];
		*out = (dr_dispatch_decision){.kind = DR_DISPATCH_CANCEL,
		                              .slot = h,
		                              .job = j->num,
		                              .for_slot = slot,
		                              .nframes = 1,
		                              .frames = {nd->revoking}};
		return 2;
	}
	return 0;
}

static void assign(dr_dispatch_node *nd, int slot, const djob *j, const int *frames, int k,
                   dr_dispatch_decision *out)
{
	out->kind = DR_DISPATCH_TASK;
	out->slot = slot;
	out->job = j->num;
	out->for_slot = -1;
	out->announce = nd->announced != j->num;
	out->nframes = k;
	memcpy(out->frames, frames, (size_t)k * sizeof frames[0]);
	nd->announced = j->num;
	nd->waiting = false;
	for (int i = 0; i < k && nd->nframes < 2 * DR_DISPATCH_FRAMES_MAX; i++)
		nd->frames[nd->nframes++] = frames[i];
	nd->job = j->num;
}

/* Work for waiting node SLOT in three passes over the jobs in serving order: (0) pending frames of
 * a top-priority job whose settings its Blender already has, (1) pending frames of any job, (2)
 * when nothing is pending anywhere, a speculative copy of a straggler. Returns 1 with a TASK in
 * *OUT, or 0. Sets *NEVER when no job will ever have work for it. */
static int find_work(dr_dispatch *d, int slot, double now, bool *never, dr_dispatch_decision *out)
{
	dr_dispatch_node *nd = &d->nodes[slot];
	int frames[DR_DISPATCH_FRAMES_MAX], k, top = 0;
	bool have_top = false;
	const djob *loaded = job_of(d, nd->announced);

	*never = true;
	for (size_t i = 0; i < d->njobs; i++) {
		const djob *j = &d->jobs[i];
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
		for (size_t i = 0; i < d->njobs; i++) {
			const djob *j = &d->jobs[i];
			size_t npending = dr_sched_count(j->sched).pending;
			if (j->ended)
				continue;
			/* A node still rendering gets its next task from the same job only, and
			 * only while plenty is pending: near the end a frame held behind a long one
			 * would wait while other nodes idle. Speculative copies are for idle nodes.
			 */
			if (nd->nframes > 0 &&
			    (j->num != nd->job || pass == 2 || npending <= (size_t)d->cfg.nslots))
				continue;
			if (pass == 0 && (!npending || j->priority != top || !loaded ||
			                  loaded->settings != j->settings))
				continue;
			if (pass == 1 && !npending)
				continue;
			if (pass == 2 && (npending || have_top))
				continue; /* copies of stragglers only when nothing is pending */
			k = nd->nframes > 0 ? dr_sched_next_ahead(j->sched, slot, now, frames,
			                                          DR_DISPATCH_FRAMES_MAX)
			                    : dr_sched_next(j->sched, slot, now, frames,
			                                    DR_DISPATCH_FRAMES_MAX);
			if (k > 0) {
				assign(nd, slot, j, frames, k, out);
				return 1;
			}
		}
	}
	return 0;
}

int dr_dispatch_decide(dr_dispatch *d, double now, dr_dispatch_decision *out, int max)
{
	int n = 0;
	bool pending = false;

	for (size_t i = 0; i < d->njobs; i++)
		pending |= !d->jobs[i].ended && dr_sched_count(d->jobs[i].sched).pending > 0;
	for (int i = 0; i < d->cfg.nslots && n < max; i++) {
		dr_dispatch_node *nd = &d->nodes[i];
		bool never;
		if (!nd->waiting || nd->stopped)
			continue;
		/* with nothing fresh left, a frame waiting behind another comes before a copy */
		if (!pending && nd->nframes == 0) {
			int tb = take_back(d, i, &out[n]);
			n += tb == 2;
			if (tb)
				continue;
		}
		if (find_work(d, i, now, &never, &out[n])) {
			n++;
		} else if (never && !d->cfg.serve && nd->nframes == 0) {
			nd->waiting = false;
			nd->stopped = true;
			out[n++] = (dr_dispatch_decision){
			        .kind = DR_DISPATCH_STOP, .slot = i, .job = -1, .for_slot = -1};
		}
	}
	return n;
}

const dr_dispatch_node *dr_dispatch_node_get(const dr_dispatch *d, int slot)
{
	return slot >= 0 && slot < d->cfg.nslots ? &d->nodes[slot] : NULL;
}

int dr_dispatch_busy(const dr_dispatch *d)
{
	int busy = 0;
	for (int i = 0; i < d->cfg.nslots; i++)
		busy += d->nodes[i].nframes > 0;
	return busy;
}

bool dr_dispatch_all_stopped(const dr_dispatch *d)
{
	for (int i = 0; i < d->cfg.nslots; i++)
		if (!d->nodes[i].stopped)
			return false;
	return true;
}

int dr_dispatch_hist_bucket(double seconds)
{
	static const double bounds[DR_DISPATCH_HIST_BUCKETS] = {0.1, 0.25, 0.5, 1,   2.5, 5,
	                                                        10,  30,   60,  120, 300, 600};
	int b = 0;
	while (b < DR_DISPATCH_HIST_BUCKETS && seconds > bounds[b])
		b++;
	return b;
}
