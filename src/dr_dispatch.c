/* Dispatch policy (pure): decides which render node gets which job's frames next, hold-ahead,
 * take-back and stopping, from the nodes' state and the time passed in. */
#include "dr_dispatch.h"

#include "dr_util.h"

#include <stdlib.h>
#include <string.h>

/* Cost: every decision is O(1) in nodes (amortised) and O(jobs), so that rank 0 keeps up with
 * thousands of nodes:
 * - waiting nodes are queues, in the order they asked: the empty ones in one, those still
 *   rendering in one per job (walked only while that job has frames to hand out ahead);
 * - a decision round stops walking the empty nodes once one got nothing for a reason that holds
 *   for all of them (nothing pending, no straggler, no frame to take back), so an idle farm
 *   near the end costs one try per round, not one per node;
 * - the nodes holding a frame ahead (take-back candidates) are a list, and the nodes not
 *   stopped a list by when they were last heard (the least recent first), so that take-back,
 *   silence, busy and all-stopped are O(1). */

#define NOLIST (-2) /* in no queue */
#define EMPTYQ (-1) /* the queue of waiting empty nodes */

typedef struct dlist { /* a doubly linked list of slots threaded through per-slot arrays */
	int head, tail;
} dlist;

typedef struct djob {
	int num, priority, settings;
	bool ended;
	dr_sched *sched; /* borrowed */
	dlist holders;   /* its waiting nodes that still render a frame of it */
} djob;

struct dr_dispatch {
	dr_dispatch_cfg cfg;
	dr_dispatch_node *nodes;
	djob *jobs; /* kept in serving order: priority, then submission */
	size_t njobs, capjobs;
	int *wq; /* per slot: queue it waits in (EMPTYQ, a job number) or NOLIST */
	int *wprev, *wnext;
	dlist empties; /* waiting nodes that hold nothing */
	int *cprev, *cnext;
	bool *incand;
	dlist cand; /* nodes holding two frames or more (one may be taken back) */
	int *sprev, *snext;
	dlist seen; /* nodes not stopped, least recently heard first */
	int nlost;  /* nodes declared lost */
	int nbusy, nstopped, nrevoking;
};

static void dl_add(dlist *l, int *prev, int *next, int i)
{
	prev[i] = l->tail;
	next[i] = -1;
	if (l->tail >= 0)
		next[l->tail] = i;
	else
		l->head = i;
	l->tail = i;
}

static void dl_del(dlist *l, int *prev, int *next, int i)
{
	if (prev[i] >= 0)
		next[prev[i]] = next[i];
	else
		l->head = next[i];
	if (next[i] >= 0)
		prev[next[i]] = prev[i];
	else
		l->tail = prev[i];
}

dr_dispatch *dr_dispatch_create(const dr_dispatch_cfg *cfg, double now, char *err, size_t errlen)
{
	dr_dispatch *d;

	if (cfg->nslots < 1) {
		dr_seterr(err, errlen, "dispatch: need at least one render node");
		return NULL;
	}
	size_t n = (size_t)cfg->nslots;
	d = calloc(1, sizeof *d);
	if (d) {
		d->nodes = calloc(n, sizeof *d->nodes);
		d->wq = malloc(n * sizeof *d->wq);
		d->wprev = malloc(n * sizeof *d->wprev);
		d->wnext = malloc(n * sizeof *d->wnext);
		d->cprev = malloc(n * sizeof *d->cprev);
		d->cnext = malloc(n * sizeof *d->cnext);
		d->incand = calloc(n, sizeof *d->incand);
		d->sprev = malloc(n * sizeof *d->sprev);
		d->snext = malloc(n * sizeof *d->snext);
	}
	if (!d || !d->nodes || !d->wq || !d->wprev || !d->wnext || !d->cprev || !d->cnext ||
	    !d->incand || !d->sprev || !d->snext) {
		dr_dispatch_destroy(d);
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	d->cfg = *cfg;
	d->empties = d->cand = d->seen = (dlist){-1, -1};
	for (int i = 0; i < cfg->nslots; i++) {
		d->nodes[i].last_seen = now;
		d->nodes[i].announced = d->nodes[i].job = d->nodes[i].revoking = -1;
		d->wq[i] = NOLIST;
		dl_add(&d->seen, d->sprev, d->snext, i);
	}
	return d;
}

void dr_dispatch_destroy(dr_dispatch *d)
{
	if (!d)
		return;
	free(d->nodes);
	free(d->jobs);
	free(d->wq);
	free(d->wprev);
	free(d->wnext);
	free(d->cprev);
	free(d->cnext);
	free(d->incand);
	free(d->sprev);
	free(d->snext);
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
	                             .sched = sched,
	                             .holders = {-1, -1}};
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

int dr_dispatch_forget_job(dr_dispatch *d, int job)
{
	djob *j = job_of(d, job);
	size_t k;

	if (!j)
		return 0;
	if (!j->ended || j->holders.head >= 0)
		return -1;
	for (int i = 0; i < d->cfg.nslots; i++)
		if (d->nodes[i].job == job && d->nodes[i].nframes > 0)
			return -1; /* a frame of it is still out: its receipt will come */
	k = (size_t)(j - d->jobs);
	memmove(&d->jobs[k], &d->jobs[k + 1], (d->njobs - k - 1) * sizeof *d->jobs);
	d->njobs--;
	return 0;
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

static dlist *queue_of(dr_dispatch *d, int q)
{
	djob *j;
	if (q == EMPTYQ)
		return &d->empties;
	j = job_of(d, q);
	return j ? &j->holders : NULL;
}

/* Put SLOT in the queue and lists that fit its state now (after any change to it). A node that
 * stays in the same queue keeps its place. */
static void place(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = &d->nodes[slot];
	int q = !nd->waiting || nd->stopped ? NOLIST : nd->nframes == 0 ? EMPTYQ : nd->job;
	bool cand = !nd->stopped && nd->nframes >= 2;

	if (q != d->wq[slot]) {
		dlist *l;
		if (d->wq[slot] != NOLIST && (l = queue_of(d, d->wq[slot])))
			dl_del(l, d->wprev, d->wnext, slot);
		d->wq[slot] = NOLIST;
		if (q != NOLIST && (l = queue_of(d, q))) {
			dl_add(l, d->wprev, d->wnext, slot);
			d->wq[slot] = q;
		}
	}
	if (cand != d->incand[slot]) {
		if (cand)
			dl_add(&d->cand, d->cprev, d->cnext, slot);
		else
			dl_del(&d->cand, d->cprev, d->cnext, slot);
		d->incand[slot] = cand;
	}
}

/* Node ND's frames change from HAD to nd->nframes. */
static void count_busy(dr_dispatch *d, const dr_dispatch_node *nd, int had)
{
	d->nbusy += (nd->nframes > 0) - (had > 0);
}

static void set_revoking(dr_dispatch *d, dr_dispatch_node *nd, int frame)
{
	d->nrevoking += (frame >= 0) - (nd->revoking >= 0);
	nd->revoking = frame;
}

static void set_stopped(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = &d->nodes[slot];
	if (nd->stopped)
		return;
	nd->stopped = true;
	nd->waiting = false;
	d->nstopped++;
	dl_del(&d->seen, d->sprev, d->snext, slot);
	place(d, slot);
}

void dr_dispatch_heard(dr_dispatch *d, int slot, double now)
{
	dr_dispatch_node *nd = node(d, slot);
	if (!nd)
		return;
	nd->last_seen = now;
	if (!nd->stopped) { /* the most recently heard goes last */
		dl_del(&d->seen, d->sprev, d->snext, slot);
		dl_add(&d->seen, d->sprev, d->snext, slot);
	}
}

/* The node holds nothing (a fresh start, or it gave up on a job). */
static void empty(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = &d->nodes[slot];
	int had = nd->nframes;
	nd->waiting = true;
	nd->nframes = 0;
	set_revoking(d, nd, -1);
	nd->job = -1;
	count_busy(d, nd, had);
	place(d, slot);
}

void dr_dispatch_ready(dr_dispatch *d, int slot)
{
	if (node(d, slot))
		empty(d, slot);
}

void dr_dispatch_request(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = node(d, slot);
	if (nd) {
		nd->waiting = true;
		place(d, slot);
	}
}

void dr_dispatch_loadfail(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = node(d, slot);
	if (nd) {
		empty(d, slot); /* a LOADFAIL also asks for work */
		nd->announced = -1;
	}
}

int dr_dispatch_lost(dr_dispatch *d, int slot)
{
	dr_dispatch_node *nd = node(d, slot);
	size_t before = 0, after = 0;

	if (!nd || nd->lost)
		return 0;
	for (size_t i = 0; i < d->njobs; i++)
		if (!d->jobs[i].ended) {
			before += dr_sched_count(d->jobs[i].sched).pending;
			dr_sched_drop(d->jobs[i].sched, slot);
			after += dr_sched_count(d->jobs[i].sched).pending;
		}
	empty(d, slot);
	nd->announced = -1;
	nd->lost = true;
	d->nlost++;
	set_stopped(d, slot);
	return (int)(after - before);
}

/* FRAME is no longer held by node ND (reported, dropped or taken back). */
static void held_remove(dr_dispatch *d, int slot, int frame)
{
	dr_dispatch_node *nd = &d->nodes[slot];
	for (int i = 0; i < nd->nframes; i++)
		if (nd->frames[i] == frame) {
			memmove(&nd->frames[i], &nd->frames[i + 1],
			        (size_t)(nd->nframes - i - 1) * sizeof nd->frames[0]);
			if (--nd->nframes == 0)
				nd->job = -1;
			count_busy(d, nd, nd->nframes + 1);
			place(d, slot);
			return;
		}
}

void dr_dispatch_rendered(dr_dispatch *d, int slot, int frame)
{
	dr_dispatch_node *nd = node(d, slot);

	if (nd && nd->revoking != frame)
		held_remove(d, slot, frame);
}

int dr_dispatch_result(dr_dispatch *d, int slot, int job, int frame, int ok)
{
	dr_dispatch_node *nd = node(d, slot);
	djob *j = job_of(d, job);

	if (!nd)
		return 0;
	held_remove(d, slot, frame);
	if (nd->revoking != frame)
		return 0;
	set_revoking(d, nd, -1);
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
		set_stopped(d, i);
		out[n++] = (dr_dispatch_decision){
		        .kind = DR_DISPATCH_STOP, .slot = i, .job = -1, .for_slot = -1};
	}
	return n;
}

int dr_dispatch_live(const dr_dispatch *d)
{
	return d->cfg.nslots - d->nlost;
}

int dr_dispatch_silent(const dr_dispatch *d, double now)
{
	int i = d->seen.head;
	if (d->cfg.node_timeout < 0 || i < 0)
		return -1;
	return now - d->nodes[i].last_seen > d->cfg.node_timeout ? i : -1;
}

/* Idle node SLOT found no fresh frame: take back one that waits behind another node's frame in
 * flight (held ahead), rather than let it wait there while SLOT idles. Returns 2 with a CANCEL in
 * *OUT, 1 if one is already under way (wait for it), 0 if none. */
static int take_back(dr_dispatch *d, int slot, dr_dispatch_decision *out, bool *mine)
{
	*mine = false;
	if (d->nrevoking > 0)
		return 1;
	for (int h = d->cand.head; h >= 0; h = d->cnext[h]) {
		dr_dispatch_node *nd = &d->nodes[h];
		const djob *j = job_of(d, nd->job);
		if (h == slot || !j || j->ended)
			continue;
		const dr_slot_stats *st = dr_sched_slot(j->sched, slot);
		if (st->excluded || st->gone) {
			*mine = true; /* another idle node might take it */
			continue;
		}
		set_revoking(d, nd, nd->frames[nd->nframes - 1]);
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

static void assign(dr_dispatch *d, int slot, const djob *j, const int *frames, int k,
                   dr_dispatch_decision *out)
{
	dr_dispatch_node *nd = &d->nodes[slot];
	int had = nd->nframes;
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
	count_busy(d, nd, had);
	place(d, slot);
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
				assign(d, slot, j, frames, k, out);
				return 1;
			}
		}
	}
	return 0;
}

/* Nothing for any empty node at NOW, whoever asks: no job has frames pending or a straggler to
 * copy (as far as its scheduler can tell at once). */
static bool dry(const dr_dispatch *d, double now)
{
	for (size_t i = 0; i < d->njobs; i++)
		if (!d->jobs[i].ended && !dr_sched_quiet(d->jobs[i].sched, now))
			return false;
	return true;
}

int dr_dispatch_decide(dr_dispatch *d, double now, dr_dispatch_decision *out, int max)
{
	int n = 0;
	bool pending = false;

	for (size_t i = 0; i < d->njobs; i++)
		pending |= !d->jobs[i].ended && dr_sched_count(d->jobs[i].sched).pending > 0;
	/* Empty nodes first, the longest waiting first. */
	for (int i = d->empties.head, next; i >= 0 && n < max; i = next) {
		bool never, mine = false;
		next = d->wnext[i];
		/* with nothing fresh left, a frame waiting behind another comes before a copy */
		if (!pending) {
			int tb = take_back(d, i, &out[n], &mine);
			n += tb == 2;
			if (tb == 1)
				break; /* one take-back at a time: every empty node waits for it */
			if (tb == 2)
				continue;
		}
		if (find_work(d, i, now, &never, &out[n])) {
			n++;
		} else if (never && !d->cfg.serve) {
			out[n++] = (dr_dispatch_decision){
			        .kind = DR_DISPATCH_STOP, .slot = i, .job = -1, .for_slot = -1};
			set_stopped(d, i);
		} else if (!pending && !mine && dry(d, now)) {
			break; /* what this node could not get, no other empty node can */
		}
	}
	/* Nodes still rendering: more of their own job, while it has more pending than nodes and
	 * its frames are short enough to be worth holding ahead (dr_sched_ahead_ok). */
	for (size_t j = 0; j < d->njobs && n < max; j++) {
		const djob *jb = &d->jobs[j];
		if (jb->ended || !dr_sched_ahead_ok(jb->sched))
			continue;
		for (int i = jb->holders.head, next; i >= 0 && n < max; i = next) {
			bool never;
			next = d->wnext[i];
			if (dr_sched_count(jb->sched).pending <= (size_t)d->cfg.nslots)
				break;
			n += find_work(d, i, now, &never, &out[n]);
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
	return d->nbusy;
}

bool dr_dispatch_all_stopped(const dr_dispatch *d)
{
	return d->nstopped == d->cfg.nslots;
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
