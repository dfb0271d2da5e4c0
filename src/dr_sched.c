/* Scheduler: which frames go to which render node next, and what a failure means (retry policy). */
#include "dr_sched.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dr_sched {
	dr_sched_cfg cfg;
	size_t n;
	dr_fitem *items;
	uint8_t *failed_on; /* n x nslots bits: slot failed this frame */
	size_t row;         /* bytes per frame in failed_on */
	dr_slot_stats *slots;
	size_t first_pending; /* no pending frame below this index */
	dr_sched_counts counts;
	size_t *touched; /* indices of frames handed out at least once, ascending */
	size_t ntouched;
	size_t *known; /* indices of done frames (their seconds are known), ascending */
	size_t nknown;
};

/* Above this many frames, tail control's O(frames) scan per task would cost too much: plain
 * ascending order is used. */
#define DR_SMART_MAX 50000

dr_sched *dr_sched_create(const int *frames, size_t n, const dr_sched_cfg *cfg, char *err,
                          size_t errlen)
{
	dr_sched *s;

	if (n == 0 || cfg->nslots < 1 || cfg->chunk < 1 || cfg->retries < 0 ||
	    cfg->max_consec < 1) {
		snprintf(err, errlen, "scheduler: bad configuration");
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		goto oom;
	s->cfg = *cfg;
	s->n = n;
	s->row = ((size_t)cfg->nslots + 7) / 8;
	s->items = calloc(n, sizeof *s->items);
	s->failed_on = calloc(n, s->row);
	s->slots = calloc((size_t)cfg->nslots, sizeof *s->slots);
	s->touched = calloc(n, sizeof *s->touched);
	s->known = calloc(n, sizeof *s->known);
	if (!s->items || !s->failed_on || !s->slots || !s->touched || !s->known)
		goto oom;
	if (n > DR_SMART_MAX)
		s->cfg.tail_control = false;
	for (size_t i = 0; i < n; i++) {
		s->items[i].frame = frames[i];
		s->items[i].slot = -1;
		s->items[i].dup_slot = -1;
	}
	s->counts.total = s->counts.pending = n;
	return s;
oom:
	dr_sched_destroy(s);
	snprintf(err, errlen, "scheduler: out of memory for %zu frames", n);
	return NULL;
}

void dr_sched_destroy(dr_sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->items && i < s->n; i++)
		free(s->items[i].last_error);
	free(s->items);
	free(s->touched);
	free(s->known);
	free(s->failed_on);
	free(s->slots);
	free(s);
}

static dr_fitem *find(const dr_sched *s, int frame)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->items[mid].frame < frame)
			lo = mid + 1;
		else if (s->items[mid].frame > frame)
			hi = mid;
		else
			return &s->items[mid];
	}
	return NULL;
}

static size_t *count_of(dr_sched *s, enum dr_fstate st)
{
	switch (st) {
	case DR_F_PENDING:
		return &s->counts.pending;
	case DR_F_RUNNING:
		return &s->counts.running;
	case DR_F_DONE:
		return &s->counts.done;
	case DR_F_SKIPPED:
		return &s->counts.skipped;
	default:
		return &s->counts.failed;
	}
}

static void set_state(dr_sched *s, dr_fitem *it, enum dr_fstate st)
{
	(*count_of(s, it->state))--;
	(*count_of(s, st))++;
	it->state = st;
	if (st == DR_F_PENDING) {
		size_t i = (size_t)(it - s->items);
		if (i < s->first_pending)
			s->first_pending = i;
	}
}

static bool usable(const dr_sched *s, int slot)
{
	return !s->slots[slot].excluded && !s->slots[slot].gone;
}

int dr_sched_usable(const dr_sched *s)
{
	int k = 0;
	for (int i = 0; i < s->cfg.nslots; i++)
		k += usable(s, i);
	return k;
}

static bool failed_on(const dr_sched *s, size_t i, int slot)
{
	return s->failed_on[i * s->row + (size_t)slot / 8] & (1u << (slot % 8));
}

/* May SLOT take frame I? Not if it failed it before, unless every usable slot has. */
static bool eligible(const dr_sched *s, size_t i, int slot)
{
	if (!failed_on(s, i, slot))
		return true;
	for (int k = 0; k < s->cfg.nslots; k++)
		if (usable(s, k) && !failed_on(s, i, k))
			return false;
	return true;
}

int dr_sched_skip(dr_sched *s, int frame)
{
	dr_fitem *it = find(s, frame);
	if (!it || it->state != DR_F_PENDING)
		return -1;
	set_state(s, it, DR_F_SKIPPED);
	return 0;
}

/* Index of the first element of ascending A (N elements) that is >= I. */
static size_t lower_bound(const size_t *a, size_t n, size_t i)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int next(dr_sched *s, int slot, double now, int *out, int max, bool ahead);

/* Insert I into the ascending array A of N elements (if not there yet). */
static void insert_sorted(size_t *a, size_t *n, size_t i)
{
	size_t lo = lower_bound(a, *n, i);
	if (lo < *n && a[lo] == i)
		return;
	memmove(a + lo + 1, a + lo, (*n - lo) * sizeof *a);
	a[lo] = i;
	(*n)++;
}

/* Element of ascending A (N > 0) nearest to I (in index distance). */
static size_t nearest(const size_t *a, size_t n, size_t i)
{
	size_t lo = lower_bound(a, n, i);
	if (lo == n)
		return a[n - 1];
	if (lo == 0 || a[lo] - i < i - a[lo - 1])
		return a[lo];
	return a[lo - 1];
}

static size_t dist(size_t a, size_t b)
{
	return a > b ? a - b : b - a;
}

/* Estimated cost of frame I at NOW: that of the nearest frame handed out so far, which is its
 * render time when done, or how long it has been running (a lower bound that grows: a frame
 * still running long after its neighbours finished marks an expensive stretch before it ends);
 * otherwise that of the nearest finished frame. */
static double estimate(const dr_sched *s, size_t i, double now)
{
	const dr_fitem *t = &s->items[nearest(s->touched, s->ntouched, i)];
	if (t->state == DR_F_DONE)
		return t->seconds;
	double known = s->nknown ? s->items[nearest(s->known, s->nknown, i)].seconds : 0;
	if (t->state == DR_F_RUNNING && now - t->started > known)
		return now - t->started;
	return known;
}

/* Tail control's choice among eligible pending frames: the farthest from anything started while
 * sampling (fewer finished frames than slots), then the highest estimated cost (ties to the
 * lower index). CHEAP (a task held behind a long frame): the lowest estimated cost instead, so
 * that no expensive frame waits behind another. SIZE_MAX if none is eligible. */
static size_t pick_smart(const dr_sched *s, int slot, double now, bool cheap)
{
	size_t best = SIZE_MAX;
	double best_score = -1;
	bool sampling = !cheap && s->nknown < (size_t)s->cfg.nslots;

	for (size_t i = s->first_pending; i < s->n; i++) {
		const dr_fitem *it = &s->items[i];
		double score;
		if (it->state != DR_F_PENDING || !eligible(s, i, slot))
			continue;
		if (sampling)
			score = s->ntouched ? (double)dist(nearest(s->touched, s->ntouched, i), i)
			                    : (i == 0 ? 1 : 0);
		else
			score = estimate(s, i, now) * (cheap ? -1 : 1);
		if (best == SIZE_MAX || score > best_score) {
			best_score = score;
			best = i;
		}
	}
	return best;
}

/* What the frames handed out next to frame I (one each side) took, or have run so far: the
 * larger. A frame is only slow for its place if it runs much longer than both; a stretch of
 * expensive frames is not a straggler. Falls back to the nearest finished frame. */
static double neighbours_cost(const dr_sched *s, size_t i, double now)
{
	size_t p = lower_bound(s->touched, s->ntouched, i);
	size_t side[2] = {p > 0 ? s->touched[p - 1] : SIZE_MAX,
	                  p + 1 < s->ntouched ? s->touched[p + 1] : SIZE_MAX};
	double cost = -1;

	for (int k = 0; k < 2; k++) {
		if (side[k] == SIZE_MAX)
			continue;
		const dr_fitem *t = &s->items[side[k]];
		double c = t->state == DR_F_DONE      ? t->seconds
		           : t->state == DR_F_RUNNING ? now - t->started
		                                      : -1;
		if (c > cost)
			cost = c;
	}
	return cost >= 0 ? cost : s->items[nearest(s->known, s->nknown, i)].seconds;
}

/* With nothing pending: the straggler SLOT should copy, or SIZE_MAX. */
static size_t pick_straggler(const dr_sched *s, int slot, double now)
{
	size_t best = SIZE_MAX;
	double best_over = 0;

	if (s->nknown == 0)
		return SIZE_MAX;
	for (size_t i = 0; i < s->n; i++) {
		const dr_fitem *it = &s->items[i];
		if (it->state != DR_F_RUNNING || it->dup_slot >= 0 || it->slot == slot ||
		    failed_on(s, i, slot))
			continue;
		double ran = now - it->started;
		double expect = neighbours_cost(s, i, now);
		if (ran >= 1.0 && ran > 1.5 * expect && ran - 1.5 * expect > best_over) {
			best_over = ran - 1.5 * expect;
			best = i;
		}
	}
	return best;
}

/* Is SLOT's frame in flight one of the expensive kind (its neighbours cost more than twice the
 * mean of the finished frames)? Then a task held behind it would wait long. */
static bool busy_long(const dr_sched *s, int slot, double now)
{
	double mean = 0;
	if (s->nknown == 0)
		return false;
	for (size_t k = 0; k < s->nknown; k++)
		mean += s->items[s->known[k]].seconds;
	mean /= (double)s->nknown;
	for (size_t i = 0; i < s->n; i++) {
		const dr_fitem *it = &s->items[i];
		if (it->state == DR_F_RUNNING && (it->slot == slot || it->dup_slot == slot))
			return neighbours_cost(s, i, now) > 2 * mean;
	}
	return false;
}

static void start(dr_sched *s, size_t i, int slot, double now)
{
	dr_fitem *it = &s->items[i];
	set_state(s, it, DR_F_RUNNING);
	it->slot = slot;
	it->attempts++;
	it->started = now;
	insert_sorted(s->touched, &s->ntouched, i);
}

int dr_sched_next(dr_sched *s, int slot, double now, int *out, int max)
{
	return next(s, slot, now, out, max, false);
}

int dr_sched_next_ahead(dr_sched *s, int slot, double now, int *out, int max)
{
	if (s->counts.pending == 0) /* no speculative copy for a busy slot */
		return dr_sched_finished(s) || !usable(s, slot) ? -1 : 0;
	return next(s, slot, now, out, max, true);
}

static int next(dr_sched *s, int slot, double now, int *out, int max, bool ahead)
{
	int k = 0;
	size_t i;

	if (slot < 0 || slot >= s->cfg.nslots || !usable(s, slot))
		return -1;
	if (max > s->cfg.chunk)
		max = s->cfg.chunk;
	if (s->counts.pending == 0) {
		if (dr_sched_finished(s))
			return -1;
		if (!s->cfg.tail_control || max < 1 ||
		    (i = pick_straggler(s, slot, now)) == SIZE_MAX)
			return 0;
		s->items[i].dup_slot = slot;
		s->items[i].attempts++;
		out[0] = s->items[i].frame;
		return 1;
	}
	while (s->first_pending < s->n && s->items[s->first_pending].state != DR_F_PENDING)
		s->first_pending++;
	i = s->first_pending;
	if (s->cfg.tail_control) {
		i = pick_smart(s, slot, now, ahead && busy_long(s, slot, now));
		if (i == SIZE_MAX)
			return 0;
	}
	/* The chosen frame and the eligible pending frames after it, up to MAX. */
	for (; i < s->n && k < max; i++) {
		if (s->items[i].state != DR_F_PENDING || !eligible(s, i, slot))
			continue;
		start(s, i, slot, now);
		out[k++] = s->items[i].frame;
	}
	return k;
}

static dr_fitem *running_on(dr_sched *s, int slot, int frame)
{
	dr_fitem *it = find(s, frame);
	if (!it || it->state != DR_F_RUNNING || (it->slot != slot && it->dup_slot != slot))
		return NULL;
	return it;
}

int dr_sched_other(const dr_sched *s, int frame, int slot)
{
	const dr_fitem *it = find(s, frame);
	if (!it || it->state != DR_F_RUNNING)
		return -1;
	if (it->slot == slot)
		return it->dup_slot;
	if (it->dup_slot == slot)
		return it->slot;
	return -1;
}

long dr_sched_index(const dr_sched *s, int frame)
{
	const dr_fitem *it = find(s, frame);
	return it ? (long)(it - s->items) : -1;
}

int dr_sched_done(dr_sched *s, int slot, int frame, double seconds)
{
	dr_fitem *it = running_on(s, slot, frame);
	if (!it)
		return -1;
	set_state(s, it, DR_F_DONE);
	it->slot = slot; /* the copy that finished first wins */
	it->dup_slot = -1;
	it->seconds = seconds;
	insert_sorted(s->known, &s->nknown, (size_t)(it - s->items));
	s->slots[slot].done++;
	s->slots[slot].busy += seconds;
	s->slots[slot].consec_failed = 0;
	return 0;
}

int dr_sched_fail(dr_sched *s, int slot, int frame, const char *error)
{
	dr_fitem *it = running_on(s, slot, frame);
	dr_slot_stats *st;
	char *msg;

	if (!it)
		return -1;
	msg = strdup(error ? error : "unknown error");
	if (msg) {
		free(it->last_error);
		it->last_error = msg;
	}
	size_t i = (size_t)(it - s->items);
	bool again = failed_on(s, i, slot);
	s->failed_on[i * s->row + (size_t)slot / 8] |= (uint8_t)(1u << (slot % 8));
	if (it->dup_slot >= 0) {
		/* the other copy goes on */
		if (it->slot == slot)
			it->slot = it->dup_slot;
		it->dup_slot = -1;
	} else {
		set_state(s, it, it->attempts > s->cfg.retries ? DR_F_FAILED : DR_F_PENDING);
	}
	st = &s->slots[slot];
	st->failed++;
	/* A frame fails again on a slot only once every usable slot has failed it: that speaks
	 * against the frame, not the slot (else one bad frame takes out a lone render node). */
	if (!again && ++st->consec_failed >= s->cfg.max_consec)
		st->excluded = true;
	return 0;
}

/* The copy of IT on SLOT goes back without counting as an attempt: the frame is pending again,
 * or goes on as its other copy. */
static void give_back(dr_sched *s, dr_fitem *it, int slot)
{
	it->attempts--;
	if (it->dup_slot < 0) {
		set_state(s, it, DR_F_PENDING);
		return;
	}
	if (it->slot == slot)
		it->slot = it->dup_slot;
	it->dup_slot = -1;
}

size_t dr_sched_requeue(dr_sched *s, int slot)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		dr_fitem *it = &s->items[i];
		if (it->state != DR_F_RUNNING || (it->slot != slot && it->dup_slot != slot))
			continue;
		give_back(s, it, slot);
		k++;
	}
	return k;
}

int dr_sched_return(dr_sched *s, int slot, int frame)
{
	dr_fitem *it = running_on(s, slot, frame);
	if (!it)
		return -1;
	give_back(s, it, slot);
	return 0;
}

void dr_sched_drop(dr_sched *s, int slot)
{
	dr_sched_requeue(s, slot);
	s->slots[slot].gone = true;
}

size_t dr_sched_fail_stranded(dr_sched *s, const char *why)
{
	size_t k = 0;
	if (dr_sched_usable(s) > 0)
		return 0;
	for (size_t i = 0; i < s->n; i++) {
		dr_fitem *it = &s->items[i];
		if (it->state != DR_F_PENDING)
			continue;
		if (!it->last_error)
			it->last_error = strdup(why);
		set_state(s, it, DR_F_FAILED);
		k++;
	}
	return k;
}

bool dr_sched_finished(const dr_sched *s)
{
	return s->counts.pending == 0 && s->counts.running == 0;
}

dr_sched_counts dr_sched_count(const dr_sched *s)
{
	return s->counts;
}

size_t dr_sched_size(const dr_sched *s)
{
	return s->n;
}

const dr_fitem *dr_sched_item(const dr_sched *s, size_t i)
{
	return i < s->n ? &s->items[i] : NULL;
}

const dr_slot_stats *dr_sched_slot(const dr_sched *s, int slot)
{
	return slot >= 0 && slot < s->cfg.nslots ? &s->slots[slot] : NULL;
}

const dr_fitem *dr_sched_oldest(const dr_sched *s)
{
	const dr_fitem *best = NULL;
	if (s->counts.running == 0)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		const dr_fitem *it = &s->items[i];
		if (it->state == DR_F_RUNNING && (!best || it->started < best->started))
			best = it;
	}
	return best;
}
