/* Scheduler: which frames go to which render node next, and what a failure means (retry policy). */
#include "dr_sched.h"

#include "dr_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every per-task decision is O(log n) in frames (or amortised O(1)), so that tail control stays on
 * for a million-frame job:
 * - sets of frame indices (pending, handed out, done, failed) are 64-ary bit trees: insert, erase,
 * next and previous member in a few word operations per level (4 levels for a million frames);
 * - the frames a slot failed are a short list per frame, not a frames x slots bit matrix;
 * - each slot's frames in flight are a list, so requeue and drop cost what the slot holds;
 * - running frames are a heap by start time (the oldest, and stragglers oldest first);
 * - tail control's choice is a set of lazy heaps: the gaps between frames handed out (while
 *   sampling) and, for each frame handed out, the cost estimate of the pending frames nearest to
 *   it (its cell). A heap entry is checked when it comes to the top: stale entries (the frame
 *   changed state since, or its cell has no pending frame left) are dropped there. */

#define NONE UINT32_MAX

typedef struct iset { /* a set of indices below n: a 64-ary tree of bit words */
	size_t n;
	int levels;
	uint64_t *lv[8];
	size_t nw[8];
} iset;

typedef struct hent {
	double key;
	uint32_t i, ver;
} hent;

typedef struct heap { /* binary heap of entries; dir > 0: largest key first, else smallest */
	hent *v;
	size_t n, cap;
	int dir;
} heap;

struct dr_sched {
	dr_sched_cfg cfg;
	size_t n;
	dr_fitem *items;
	uint32_t *ver;     /* per frame: bumped on every state change (heap entries name it) */
	uint32_t *fl_head; /* per frame: first of the slots that failed it in fl (index + 1), 0 none
	                    */
	struct {
		int slot;
		uint32_t next; /* index + 1, 0 = end */
	} * fl;
	size_t nfl, capfl;
	dr_slot_stats *slots;
	int nusable;
	uint32_t *lnext, *lprev; /* per copy (2 i: original, 2 i + 1: speculative): slot's list */
	uint32_t *lhead, *ltail; /* per slot */
	uint32_t *rheap;         /* running frames, a heap by start time (then index) */
	uint32_t *rpos;          /* per frame: its place in rheap, NONE if not running */
	size_t nrun;
	uint32_t *front; /* scratch: heap positions, for walking rheap in order */
	iset pending, touched, known, failed;
	dr_sched_counts counts;
	double known_sum; /* seconds of the done frames */
	heap gaps;        /* while sampling: gaps between frames handed out, by best score */
	heap costly, cheap,
	        since;        /* cells by cost estimate (largest, smallest), running by start */
	uint64_t change;      /* bumped on every state change */
	uint64_t calm_change; /* no straggler before calm_until while change == calm_change */
	double calm_until;
	bool calm;
	int *slow;    /* slots measured slow (see slot_factor), nslow of them */
	int *slowpos; /* per slot: its place in slow, -1 if not there */
	int nslow;
	double *lr_sum; /* per slot: sum of log(seconds / nearest done frame's seconds) */
	int *lr_n;      /* per slot: how many */
	double lr_all;  /* the same over all slots */
	size_t lr_nall;
};

/* A slot is slow when its frames took this many times what the nearest frame done before each
 * took, against the same ratio over all slots (geometric means: the cost of the frames a slot
 * happened to get cancels out), from SLOW_MIN_DONE of its own on. */
#define SLOW_FACTOR   1.6
#define SLOW_MIN_DONE 5

/* ---- index sets ---- */

static int iset_init(iset *s, size_t n)
{
	size_t bits = n;
	s->n = n;
	s->levels = 0;
	do {
		size_t w = (bits + 63) / 64;
		if (s->levels == 8)
			return -1;
		s->lv[s->levels] = calloc(w, sizeof(uint64_t));
		if (!s->lv[s->levels])
			return -1;
		s->nw[s->levels++] = w;
		bits = w;
	} while (bits > 1);
	return 0;
}

static void iset_free(iset *s)
{
	for (int l = 0; l < s->levels; l++)
		free(s->lv[l]);
}

static bool iset_has(const iset *s, size_t i)
{
	return s->lv[0][i >> 6] >> (i & 63) & 1;
}

static void iset_add(iset *s, size_t i)
{
	for (int l = 0; l < s->levels; l++, i >>= 6) {
		uint64_t *w = &s->lv[l][i >> 6];
		bool was = *w != 0;
		*w |= 1ULL << (i & 63);
		if (was)
			return;
	}
}

static void iset_del(iset *s, size_t i)
{
	for (int l = 0; l < s->levels; l++, i >>= 6) {
		uint64_t *w = &s->lv[l][i >> 6];
		*w &= ~(1ULL << (i & 63));
		if (*w)
			return;
	}
}

/* Smallest member >= I, or -1. */
static long iset_next(const iset *s, long i)
{
	int l = 0;
	size_t pos;
	if (i < 0)
		i = 0;
	if ((size_t)i >= s->n)
		return -1;
	pos = (size_t)i;
	for (;;) {
		if (l == s->levels || (pos >> 6) >= s->nw[l])
			return -1;
		uint64_t m = s->lv[l][pos >> 6] & (~0ULL << (pos & 63));
		if (m) {
			pos = (pos & ~(size_t)63) + (size_t)__builtin_ctzll(m);
			break;
		}
		pos = (pos >> 6) + 1;
		l++;
	}
	while (l-- > 0)
		pos = (pos << 6) + (size_t)__builtin_ctzll(s->lv[l][pos]);
	return (long)pos;
}

/* Largest member <= I, or -1. */
static long iset_prev(const iset *s, long i)
{
	int l = 0;
	long pos;
	if (i < 0 || s->n == 0)
		return -1;
	if ((size_t)i >= s->n)
		i = (long)s->n - 1;
	pos = i;
	for (;;) {
		if (l == s->levels || pos < 0)
			return -1;
		uint64_t m = s->lv[l][pos >> 6] & (~0ULL >> (63 - (pos & 63)));
		if (m) {
			pos = (pos & ~63L) + 63 - __builtin_clzll(m);
			break;
		}
		pos = (pos >> 6) - 1;
		l++;
	}
	while (l-- > 0)
		pos = (pos << 6) + 63 - __builtin_clzll(s->lv[l][pos]);
	return pos;
}

/* ---- lazy heaps ---- */

static bool before(const heap *h, const hent *a, const hent *b)
{
	if (a->key != b->key)
		return h->dir > 0 ? a->key > b->key : a->key < b->key;
	return a->i < b->i;
}

/* Out of memory loses the entry: the choice then falls back to ascending order (see pick). */
static void heap_push(heap *h, double key, uint32_t i, uint32_t ver)
{
	if (dr_grow(&h->v, &h->cap, h->n + 1, sizeof *h->v) != 0)
		return;
	hent e = {key, i, ver};
	size_t k = h->n++;
	while (k > 0 && before(h, &e, &h->v[(k - 1) / 2])) {
		h->v[k] = h->v[(k - 1) / 2];
		k = (k - 1) / 2;
	}
	h->v[k] = e;
}

static void heap_pop(heap *h)
{
	hent e = h->v[--h->n];
	size_t k = 0;
	for (;;) {
		size_t c = 2 * k + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(h, &h->v[c + 1], &h->v[c]))
			c++;
		if (!before(h, &h->v[c], &e))
			break;
		h->v[k] = h->v[c];
		k = c;
	}
	if (h->n > 0)
		h->v[k] = e;
}

/* ---- running frames by start time (an indexed heap) ---- */

static bool run_before(const dr_sched *s, uint32_t a, uint32_t b)
{
	if (s->items[a].started != s->items[b].started)
		return s->items[a].started < s->items[b].started;
	return a < b;
}

static void run_place(dr_sched *s, size_t k, uint32_t i)
{
	s->rheap[k] = i;
	s->rpos[i] = (uint32_t)k;
}

static void run_sift(dr_sched *s, size_t k)
{
	uint32_t i = s->rheap[k];
	while (k > 0 && run_before(s, i, s->rheap[(k - 1) / 2])) {
		run_place(s, k, s->rheap[(k - 1) / 2]);
		k = (k - 1) / 2;
	}
	for (;;) {
		size_t c = 2 * k + 1;
		if (c >= s->nrun)
			break;
		if (c + 1 < s->nrun && run_before(s, s->rheap[c + 1], s->rheap[c]))
			c++;
		if (!run_before(s, s->rheap[c], i))
			break;
		run_place(s, k, s->rheap[c]);
		k = c;
	}
	run_place(s, k, i);
}

static void run_add(dr_sched *s, uint32_t i)
{
	run_place(s, s->nrun++, i);
	run_sift(s, s->nrun - 1);
}

static void run_del(dr_sched *s, uint32_t i)
{
	size_t k = s->rpos[i];
	uint32_t last = s->rheap[--s->nrun];
	s->rpos[i] = NONE;
	if (k == s->nrun)
		return;
	run_place(s, k, last);
	run_sift(s, k);
}

/* ---- each slot's copies in flight ---- */

static void copy_add(dr_sched *s, int slot, uint32_t e)
{
	s->lnext[e] = NONE;
	s->lprev[e] = s->ltail[slot];
	if (s->ltail[slot] != NONE)
		s->lnext[s->ltail[slot]] = e;
	else
		s->lhead[slot] = e;
	s->ltail[slot] = e;
}

static void copy_del(dr_sched *s, int slot, uint32_t e)
{
	if (s->lprev[e] != NONE)
		s->lnext[s->lprev[e]] = s->lnext[e];
	else
		s->lhead[slot] = s->lnext[e];
	if (s->lnext[e] != NONE)
		s->lprev[s->lnext[e]] = s->lprev[e];
	else
		s->ltail[slot] = s->lprev[e];
}

/* ---- create, destroy ---- */

dr_sched *dr_sched_create(const int *frames, size_t n, const dr_sched_cfg *cfg, char *err,
                          size_t errlen)
{
	dr_sched *s;
	size_t ns;

	if (n == 0 || cfg->nslots < 1 || cfg->chunk < 1 || cfg->retries < 0 ||
	    cfg->max_consec < 1) {
		snprintf(err, errlen, "scheduler: bad configuration");
		return NULL;
	}
	if (n >= NONE / 2) {
		snprintf(err, errlen, "scheduler: too many frames (%zu)", n);
		return NULL;
	}
	ns = (size_t)cfg->nslots;
	s = calloc(1, sizeof *s);
	if (!s)
		goto oom;
	s->cfg = *cfg;
	s->n = n;
	s->items = calloc(n, sizeof *s->items);
	s->ver = calloc(n, sizeof *s->ver);
	s->fl_head = calloc(n, sizeof *s->fl_head);
	s->slots = calloc(ns, sizeof *s->slots);
	s->slow = malloc(ns * sizeof *s->slow);
	s->slowpos = malloc(ns * sizeof *s->slowpos);
	s->lr_sum = calloc(ns, sizeof *s->lr_sum);
	s->lr_n = calloc(ns, sizeof *s->lr_n);
	s->lnext = malloc(2 * n * sizeof *s->lnext);
	s->lprev = malloc(2 * n * sizeof *s->lprev);
	s->lhead = malloc(ns * sizeof *s->lhead);
	s->ltail = malloc(ns * sizeof *s->ltail);
	s->rheap = malloc(n * sizeof *s->rheap);
	s->rpos = malloc(n * sizeof *s->rpos);
	s->front = malloc(n * sizeof *s->front);
	if (!s->items || !s->ver || !s->fl_head || !s->slots || !s->slow || !s->slowpos ||
	    !s->lr_sum || !s->lr_n || !s->lnext || !s->lprev || !s->lhead || !s->ltail ||
	    !s->rheap || !s->rpos || !s->front || iset_init(&s->pending, n) ||
	    iset_init(&s->touched, n) || iset_init(&s->known, n) || iset_init(&s->failed, n))
		goto oom;
	memset(s->slowpos, 0xff, ns * sizeof *s->slowpos);
	memset(s->lhead, 0xff, ns * sizeof *s->lhead);
	memset(s->ltail, 0xff, ns * sizeof *s->ltail);
	memset(s->rpos, 0xff, n * sizeof *s->rpos);
	for (size_t i = 0; i < n; i++) {
		s->items[i].frame = frames[i];
		s->items[i].slot = -1;
		s->items[i].dup_slot = -1;
		iset_add(&s->pending, i);
	}
	s->gaps.dir = s->costly.dir = 1;
	s->cheap.dir = s->since.dir = -1;
	s->nusable = cfg->nslots;
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
	free(s->ver);
	free(s->fl_head);
	free(s->fl);
	free(s->slots);
	free(s->slow);
	free(s->slowpos);
	free(s->lr_sum);
	free(s->lr_n);
	free(s->lnext);
	free(s->lprev);
	free(s->lhead);
	free(s->ltail);
	free(s->rheap);
	free(s->rpos);
	free(s->front);
	iset_free(&s->pending);
	iset_free(&s->touched);
	iset_free(&s->known);
	iset_free(&s->failed);
	free(s->gaps.v);
	free(s->costly.v);
	free(s->cheap.v);
	free(s->since.v);
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

static void push_cell(dr_sched *s, size_t t);

/* The one place a frame changes state: counts, the pending, running and failed sets, and the
 * cost estimate of its cell. */
static void set_state(dr_sched *s, dr_fitem *it, enum dr_fstate st)
{
	size_t i = (size_t)(it - s->items);
	(*count_of(s, it->state))--;
	(*count_of(s, st))++;
	if (it->state == DR_F_PENDING)
		iset_del(&s->pending, i);
	if (it->state == DR_F_RUNNING)
		run_del(s, (uint32_t)i);
	if (it->state == DR_F_FAILED)
		iset_del(&s->failed, i);
	it->state = st;
	if (st == DR_F_PENDING)
		iset_add(&s->pending, i);
	if (st == DR_F_RUNNING)
		run_add(s, (uint32_t)i);
	if (st == DR_F_FAILED)
		iset_add(&s->failed, i);
	s->ver[i]++;
	s->change++;
	if (s->cfg.tail_control && iset_has(&s->touched, i))
		push_cell(s, i);
}

static bool usable(const dr_sched *s, int slot)
{
	return !s->slots[slot].excluded && !s->slots[slot].gone;
}

/* How many times longer than the mean done frame SLOT's frames took (1 until known). */
static double slot_factor(const dr_sched *s, int slot)
{
	if (s->lr_n[slot] < SLOW_MIN_DONE || s->lr_nall == 0)
		return 1;
	return exp(s->lr_sum[slot] / s->lr_n[slot] - s->lr_all / (double)s->lr_nall);
}

/* SLOT's frames took SLOW_FACTOR times the mean or more: it goes on the list of slow slots. */
static void slow_update(dr_sched *s, int slot)
{
	bool slow = slot_factor(s, slot) >= SLOW_FACTOR;
	if (slow == (s->slowpos[slot] >= 0))
		return;
	if (slow) {
		s->slowpos[slot] = s->nslow;
		s->slow[s->nslow++] = slot;
	} else {
		int last = s->slow[--s->nslow];
		s->slow[s->slowpos[slot]] = last;
		s->slowpos[last] = s->slowpos[slot];
		s->slowpos[slot] = -1;
	}
}

int dr_sched_usable(const dr_sched *s)
{
	return s->nusable;
}

static void unusable(dr_sched *s, int slot, bool gone)
{
	if (usable(s, slot))
		s->nusable--;
	if (gone)
		s->slots[slot].gone = true;
	else
		s->slots[slot].excluded = true;
	s->change++;
}

static bool failed_on(const dr_sched *s, size_t i, int slot)
{
	for (uint32_t k = s->fl_head[i]; k; k = s->fl[k - 1].next)
		if (s->fl[k - 1].slot == slot)
			return true;
	return false;
}

/* May SLOT take frame I? Not if it failed it before, unless every usable slot has. */
static bool eligible(const dr_sched *s, size_t i, int slot)
{
	int k = 0;
	if (!s->fl_head[i] || !failed_on(s, i, slot))
		return true;
	for (uint32_t f = s->fl_head[i]; f; f = s->fl[f - 1].next)
		k += usable(s, s->fl[f - 1].slot);
	return k >= s->nusable;
}

int dr_sched_skip(dr_sched *s, int frame)
{
	dr_fitem *it = find(s, frame);
	if (!it || it->state != DR_F_PENDING)
		return -1;
	set_state(s, it, DR_F_SKIPPED);
	return 0;
}

/* ---- tail control: estimates ---- */

/* Seconds of the done frame nearest to I (ties to the lower), 0 if none. */
static double known_near(const dr_sched *s, size_t i)
{
	long p = iset_prev(&s->known, (long)i), q = iset_next(&s->known, (long)i);
	if (p < 0 && q < 0)
		return 0;
	if (q < 0 || (p >= 0 && (size_t)q - i >= i - (size_t)p))
		return s->items[p].seconds;
	return s->items[q].seconds;
}

#define VER_MASK 0x3fffffffu
#define SIDE(v)  ((v) >> 30)

/* The cost estimate of the pending frames nearest to frame T (handed out), its cell: T's render
 * time when done; otherwise that of the done frame nearest to each of them (the cell's left part
 * nearer the done frame before T: SIDE 1, the right part: SIDE 2). A running T also makes its
 * whole cell cost at least how long it has been running (a lower bound that grows: a frame still
 * running long after its neighbours finished marks an expensive stretch before it ends). */
static void push_cell(dr_sched *s, size_t t)
{
	const dr_fitem *it = &s->items[t];
	uint32_t v = s->ver[t] & VER_MASK;
	if (it->state == DR_F_DONE) {
		heap_push(&s->costly, it->seconds, (uint32_t)t, v);
		heap_push(&s->cheap, it->seconds, (uint32_t)t, v);
		return;
	}
	long kp = iset_prev(&s->known, (long)t), kq = iset_next(&s->known, (long)t);
	double left = kp >= 0 ? s->items[kp].seconds : kq >= 0 ? s->items[kq].seconds : 0;
	double right = kq >= 0 ? s->items[kq].seconds : left;
	for (uint32_t side = 1; side <= 2; side++) {
		double key = side == 1 ? left : right;
		heap_push(&s->costly, key, (uint32_t)t, v | side << 30);
		heap_push(&s->cheap, key, (uint32_t)t, v | side << 30);
	}
	if (it->state == DR_F_RUNNING)
		heap_push(&s->since, it->started, (uint32_t)t, v);
}

/* A done frame D changes the estimate of the cells next to it: push them again. */
static void push_near(dr_sched *s, size_t d)
{
	long side[2] = {iset_prev(&s->touched, (long)d - 1), iset_next(&s->touched, (long)d + 1)};
	for (int k = 0; k < 2; k++)
		if (side[k] >= 0 && s->items[side[k]].state != DR_F_DONE)
			push_cell(s, (size_t)side[k]);
}

/* Entry E of a cell heap: the first pending frame SLOT may take in its part of the cell (the
 * pending frames whose nearest frame handed out is E's frame, ties to the lower), or -1; *ANY
 * says whether that part has a pending frame at all, *COST its estimate now. */
static long cell_first(const dr_sched *s, hent e, int slot, bool *any, double *cost)
{
	size_t t = e.i;
	long p = iset_prev(&s->touched, (long)t - 1), q = iset_next(&s->touched, (long)t + 1);
	long lo = p < 0 ? 0 : (p + (long)t) / 2 + 1;
	long hi = q < 0 ? (long)s->n - 1 : ((long)t + q) / 2;
	*any = false;
	*cost = e.key;
	if ((e.ver & VER_MASK) != (s->ver[t] & VER_MASK))
		return -1;
	if (SIDE(e.ver)) {
		long kp = iset_prev(&s->known, (long)t), kq = iset_next(&s->known, (long)t);
		long m = kp < 0 ? -1 : kq < 0 ? (long)s->n - 1 : (kp + kq) / 2;
		long k = SIDE(e.ver) == 1 ? (kp >= 0 ? kp : kq) : (kq >= 0 ? kq : kp);
		*cost = k >= 0 ? s->items[k].seconds : 0;
		if (SIDE(e.ver) == 1 && m < hi)
			hi = m;
		if (SIDE(e.ver) == 2 && m + 1 > lo)
			lo = m + 1;
	}
	for (long i = iset_next(&s->pending, lo); i >= 0 && i <= hi;
	     i = iset_next(&s->pending, i + 1)) {
		*any = true;
		if (eligible(s, (size_t)i, slot))
			return i;
	}
	return -1;
}

static long first_eligible(const dr_sched *s, int slot)
{
	for (long i = iset_next(&s->pending, 0); i >= 0; i = iset_next(&s->pending, i + 1))
		if (eligible(s, (size_t)i, slot))
			return i;
	return -1;
}

/* The top of H whose cell SLOT may take from: its candidate, or -1. Stale entries go (the frame
 * changed state since, or its part of the cell has no pending frame left); an entry whose estimate
 * changed goes back with the new one; those whose pending frames SLOT failed are set aside, up
 * to MAXSET in SET (*NSET of them). */
static long cell_top(dr_sched *s, heap *h, int slot, hent *set, size_t maxset, size_t *nset)
{
	while (h->n > 0) {
		hent e = h->v[0];
		bool any;
		double cost;
		long c = cell_first(s, e, slot, &any, &cost);
		if (any && h != &s->since && cost != e.key) {
			heap_pop(h);
			heap_push(h, cost, e.i, e.ver);
			continue;
		}
		if (c >= 0)
			return c;
		heap_pop(h);
		if (any) {
			if (*nset == maxset)
				return -1;
			set[(*nset)++] = e;
		}
	}
	return -1;
}

/* Tail control's choice once sampled: the pending frame of the highest estimate, ties to the
 * lower index; CHEAP (a task held behind an expensive frame): the lowest estimate instead. Falls
 * back to the first eligible pending frame. */
static long pick_cost(dr_sched *s, int slot, double now, bool cheap)
{
	hent set[2][32];
	size_t nset[2] = {0, 0};
	long best = cheap ? cell_top(s, &s->cheap, slot, set[0], 32, &nset[0])
	                  : cell_top(s, &s->costly, slot, set[0], 32, &nset[0]);
	if (!cheap) {
		long c = cell_top(s, &s->since, slot, set[1], 32, &nset[1]);
		if (c >= 0) {
			double ran = now - s->since.v[0].key;
			double est = best >= 0 ? s->costly.v[0].key : -1;
			if (best < 0 || ran > est || (ran == est && c < best))
				best = c;
		}
	}
	for (size_t k = 0; k < nset[0]; k++)
		heap_push(cheap ? &s->cheap : &s->costly, set[0][k].key, set[0][k].i,
		          set[0][k].ver);
	for (size_t k = 0; k < nset[1]; k++)
		heap_push(&s->since, set[1][k].key, set[1][k].i, set[1][k].ver);
	return best >= 0 ? best : first_eligible(s, slot);
}

/* ---- tail control: sampling ---- */

/* The pending frame in the gap between frames handed out A and B (-1 and n: the ends) farthest
 * from both, ties to the lower, in *C; returns its distance, 0 if the gap has none. */
static size_t gap_best(const dr_sched *s, long a, long b, long *c)
{
	long n = (long)s->n, c1 = -1, c2 = -1;
	size_t d1 = 0, d2 = 0;
	if (a < 0) {
		c1 = iset_next(&s->pending, 0);
		d1 = c1 >= 0 && c1 < b ? (size_t)(b - c1) : 0;
	} else if (b >= n) {
		c1 = iset_prev(&s->pending, n - 1);
		d1 = c1 > a ? (size_t)(c1 - a) : 0;
	} else {
		long mid = a + (b - a) / 2;
		c1 = iset_prev(&s->pending, mid);
		c2 = iset_next(&s->pending, mid + 1);
		d1 = c1 > a ? (size_t)(c1 - a < b - c1 ? c1 - a : b - c1) : 0;
		d2 = c2 >= 0 && c2 < b ? (size_t)(c2 - a < b - c2 ? c2 - a : b - c2) : 0;
	}
	*c = d2 > d1 ? c2 : c1;
	return d2 > d1 ? d2 : d1;
}

static void push_gap(dr_sched *s, long a, long b)
{
	long c;
	size_t d = gap_best(s, a, b, &c);
	if (d > 0)
		heap_push(&s->gaps, (double)d, (uint32_t)(a + 1), (uint32_t)b);
}

/* While sampling: the pending frame farthest from any frame handed out so far (ties to the
 * lower); the first frame first. Frames never handed out never failed: any slot may take them.
 */
static long pick_sample(dr_sched *s, int slot)
{
	if (iset_next(&s->touched, 0) < 0)
		return first_eligible(s, slot);
	while (s->gaps.n > 0) {
		hent e = s->gaps.v[0];
		long a = (long)e.i - 1, b = (long)e.ver, c;
		long after = iset_next(&s->touched, a + 1);
		if (after != (b >= (long)s->n ? -1 : b)) {
			heap_pop(&s->gaps); /* no longer a gap: split since */
			continue;
		}
		size_t d = gap_best(s, a, b, &c);
		if (d == (size_t)e.key)
			return c;
		heap_pop(&s->gaps); /* frames skipped since: fewer candidates, a smaller score */
		if (d > 0)
			heap_push(&s->gaps, (double)d, e.i, e.ver);
	}
	return first_eligible(s, slot); /* only frames handed out before are pending */
}

/* ---- tail control: stragglers ---- */

/* What the frames handed out next to frame I (one each side) took, or have run so far: the
 * larger. A frame is only slow for its place if it runs much longer than both; a stretch of
 * expensive frames is not a straggler. Falls back to the nearest finished frame. */
static double neighbours_cost(const dr_sched *s, size_t i, double now)
{
	long side[2] = {iset_prev(&s->touched, (long)i - 1), iset_next(&s->touched, (long)i + 1)};
	double cost = -1;

	for (int k = 0; k < 2; k++) {
		if (side[k] < 0)
			continue;
		const dr_fitem *t = &s->items[side[k]];
		double c = t->state == DR_F_DONE      ? t->seconds
		           : t->state == DR_F_RUNNING ? now - t->started
		                                      : -1;
		if (c > cost)
			cost = c;
	}
	return cost >= 0 ? cost : known_near(s, i);
}

static bool front_before(const dr_sched *s, uint32_t a, uint32_t b)
{
	return run_before(s, s->rheap[a], s->rheap[b]);
}

static void front_push(dr_sched *s, size_t *n, uint32_t pos)
{
	size_t k = (*n)++;
	while (k > 0 && front_before(s, pos, s->front[(k - 1) / 2])) {
		s->front[k] = s->front[(k - 1) / 2];
		k = (k - 1) / 2;
	}
	s->front[k] = pos;
}

static uint32_t front_pop(dr_sched *s, size_t *n)
{
	uint32_t top = s->front[0], e = s->front[--*n];
	size_t k = 0;
	for (;;) {
		size_t c = 2 * k + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && front_before(s, s->front[c + 1], s->front[c]))
			c++;
		if (!front_before(s, s->front[c], e))
			break;
		s->front[k] = s->front[c];
		k = c;
	}
	if (*n > 0)
		s->front[k] = e;
	return top;
}

/* With nothing pending: the straggler SLOT should copy (a frame running more than 1.5 times as
 * long as its neighbours cost, and at least 1 s; the most overdue), or -1. Running frames are
 * walked oldest first, and the walk stops where no later frame could be more overdue. When no
 * frame qualifies, the earliest time one could (were its neighbours to stand still) is kept:
 * until then, or the next change, the answer is -1 at once.
 * Why a walk and not an index: the running frames are at most the slots' tasks (nodes x chunk,
 * not frames), and a frame's lead over its neighbours is no fixed key: it grows with NOW against
 * a finished neighbour, shrinks against a running one, which of the two counts changes with
 * time, the fallback estimate moves as frames finish, and the asking slot's exclusions (its own
 * frame, frames it failed, a copy already made) pass over any top. An O(log) index would need a
 * kinetic heap re-keyed on each of those events. */
static long pick_straggler(dr_sched *s, int slot, double now)
{
	long best = -1;
	double best_over = 0, until = 1e300;
	bool any = false;
	size_t nf = 0;

	if (s->counts.done == 0 || s->nrun == 0)
		return -1;
	if (s->calm && s->calm_change == s->change && now < s->calm_until)
		return -1;
	front_push(s, &nf, 0);
	while (nf > 0) {
		uint32_t pos = front_pop(s, &nf), i = s->rheap[pos];
		const dr_fitem *it = &s->items[i];
		double ran = now - it->started;
		if (ran < 1.0 || (best >= 0 && ran <= best_over)) {
			if (it->started + 1.0 < until)
				until = it->started + 1.0;
			break;
		}
		double expect = 1.5 * neighbours_cost(s, i, now);
		if (it->dup_slot >= 0) {
			/* never a third copy */
		} else if (ran > expect) {
			any = true;
			if (it->slot != slot && !failed_on(s, i, slot) &&
			    ran - expect > best_over) {
				best_over = ran - expect;
				best = (long)i;
			}
		} else if (it->started + expect < until) {
			until = it->started + expect;
		}
		for (size_t c = 2 * (size_t)pos + 1; c <= 2 * (size_t)pos + 2; c++)
			if (c < s->nrun)
				front_push(s, &nf, (uint32_t)c);
	}
	/* Before any straggler: a fast slot copies the frame of a slow slot that would end the
	 * latest beyond the copy's own estimate (its slot's factor times its estimate, less what it
	 * ran, against 1.2 times the estimate). A slow slot copies nothing of this kind and does
	 * not say calm. O(frames held by slow slots). */
	double best_gain = 0;
	long best_slow = -1;
	bool slow_asks = s->slowpos[slot] >= 0;
	for (int k = 0; !slow_asks && k < s->nslow; k++) {
		int w = s->slow[k];
		double f = slot_factor(s, w);
		for (uint32_t e = s->lhead[w]; e != NONE; e = s->lnext[e]) {
			size_t i = e / 2;
			const dr_fitem *it = &s->items[i];
			double est = known_near(s, i), ran = now - it->started;
			double gain = f * est - ran - 1.2 * est;
			if (e & 1 || it->dup_slot >= 0 || ran < 0 || gain < 1.0)
				continue;
			any = true;
			if (it->slot != slot && !failed_on(s, i, slot) && gain > best_gain) {
				best_gain = gain;
				best_slow = (long)i;
			}
		}
	}
	if (best_slow >= 0)
		best = best_slow; /* a sure gain comes before a guess */
	if (!any && !(slow_asks && s->nslow > 0)) {
		s->calm = true;
		s->calm_change = s->change;
		s->calm_until = until;
	}
	return best;
}

/* Is SLOT's frame in flight one of the expensive kind (its neighbours cost more than twice the
 * mean of the finished frames)? Then a task held behind it would wait long. */
static bool busy_long(const dr_sched *s, int slot, double now)
{
	uint32_t e = s->lhead[slot];
	if (s->counts.done == 0 || e == NONE)
		return false;
	return neighbours_cost(s, e / 2, now) > 2 * s->known_sum / (double)s->counts.done;
}

/* ---- handing out ---- */

static void start(dr_sched *s, size_t i, int slot, double now)
{
	dr_fitem *it = &s->items[i];
	it->slot = slot;
	it->attempts++;
	it->started = now;
	if (!iset_has(&s->touched, i)) {
		iset_add(&s->touched, i);
		if (s->cfg.tail_control && s->counts.done < (size_t)s->cfg.nslots) {
			long p = iset_prev(&s->touched, (long)i - 1);
			long q = iset_next(&s->touched, (long)i + 1);
			push_gap(s, p, (long)i);
			push_gap(s, (long)i, q < 0 ? (long)s->n : q);
		}
	}
	set_state(s, it, DR_F_RUNNING);
	copy_add(s, slot, 2 * (uint32_t)i);
}

static int next(dr_sched *s, int slot, double now, int *out, int max, bool ahead);

int dr_sched_next(dr_sched *s, int slot, double now, int *out, int max)
{
	return next(s, slot, now, out, max, false);
}

bool dr_sched_ahead_ok(const dr_sched *s)
{
	if (!s->cfg.tail_control || s->counts.pending == 0)
		return true;
	return s->counts.done > 0 && s->known_sum < DR_SCHED_AHEAD_MAX_S * (double)s->counts.done;
}

int dr_sched_next_ahead(dr_sched *s, int slot, double now, int *out, int max)
{
	if (!dr_sched_ahead_ok(s))
		return 0;
	if (s->counts.pending == 0) /* no speculative copy for a busy slot */
		return dr_sched_finished(s) || slot < 0 || slot >= s->cfg.nslots || !usable(s, slot)
		               ? -1
		               : 0;
	return next(s, slot, now, out, max, true);
}

static int next(dr_sched *s, int slot, double now, int *out, int max, bool ahead)
{
	int k = 0;
	long i;

	if (slot < 0 || slot >= s->cfg.nslots || !usable(s, slot))
		return -1;
	if (max > s->cfg.chunk)
		max = s->cfg.chunk;
	if (s->counts.pending == 0) {
		if (dr_sched_finished(s))
			return -1;
		if (!s->cfg.tail_control || max < 1 || (i = pick_straggler(s, slot, now)) < 0)
			return 0;
		s->items[i].dup_slot = slot;
		s->items[i].attempts++;
		copy_add(s, slot, 2 * (uint32_t)i + 1);
		s->change++;
		out[0] = s->items[i].frame;
		return 1;
	}
	if (max < 1)
		return 0;
	/* A slow slot leaves the last frames to the others: frame k from the end starts on a
	 * fast slot after about k / (fast slots) frames' time, and ends sooner than on this one
	 * while k < (factor - 1) x (fast slots). */
	if (s->cfg.tail_control && s->slowpos[slot] >= 0 &&
	    (double)s->counts.pending <
	            (slot_factor(s, slot) - 1) * (double)(s->nusable - s->nslow))
		return 0;
	if (!s->cfg.tail_control)
		i = first_eligible(s, slot);
	else if (ahead && busy_long(s, slot, now))
		i = pick_cost(s, slot, now, true);
	else if (s->counts.done < (size_t)s->cfg.nslots)
		i = pick_sample(s, slot);
	else
		i = pick_cost(s, slot, now, false);
	/* The chosen frame and the eligible pending frames after it, up to MAX. */
	for (; i >= 0 && k < max; i = iset_next(&s->pending, i + 1)) {
		if (!eligible(s, (size_t)i, slot))
			continue;
		start(s, (size_t)i, slot, now);
		out[k++] = s->items[i].frame;
	}
	return k;
}

/* ---- results ---- */

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

/* The copy of running IT on SLOT ends; if the other copy goes on, it becomes the original.
 * Returns whether a copy goes on. */
static bool end_copy(dr_sched *s, dr_fitem *it, int slot)
{
	uint32_t e = 2 * (uint32_t)(it - s->items);
	if (it->dup_slot < 0) {
		copy_del(s, slot, e);
		return false;
	}
	if (it->slot == slot) {
		copy_del(s, slot, e);
		copy_del(s, it->dup_slot, e + 1);
		copy_add(s, it->dup_slot, e);
		it->slot = it->dup_slot;
	} else {
		copy_del(s, slot, e + 1);
	}
	it->dup_slot = -1;
	s->change++;
	return true;
}

/* IT is done by SLOT in SECONDS: its time becomes known, and the slot's tally grows. */
static void record_done(dr_sched *s, dr_fitem *it, int slot, double seconds)
{
	size_t i = (size_t)(it - s->items);
	it->slot = slot;
	it->seconds = seconds;
	iset_add(&s->known, i);
	s->known_sum += seconds;
	set_state(s, it, DR_F_DONE);
	if (s->cfg.tail_control)
		push_near(s, i);
	s->slots[slot].done++;
	s->slots[slot].busy += seconds;
}

int dr_sched_done(dr_sched *s, int slot, int frame, double seconds)
{
	dr_fitem *it = running_on(s, slot, frame);
	size_t i;
	if (!it)
		return -1;
	i = (size_t)(it - s->items);
	if (it->dup_slot >= 0)
		end_copy(s, it, it->slot == slot ? it->dup_slot : it->slot);
	end_copy(s, it, slot);
	if (s->cfg.tail_control) {
		double near = known_near(s, i); /* before I is known: a neighbour's */
		if (near > 0 && seconds > 0) {
			double lr = log(seconds / near);
			s->lr_sum[slot] += lr;
			s->lr_n[slot]++;
			s->lr_all += lr;
			s->lr_nall++;
		}
	}
	record_done(s, it, slot, seconds); /* the copy that finished first wins */
	s->slots[slot].consec_failed = 0;
	if (s->cfg.tail_control)
		slow_update(s, slot);
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
	if (!again && dr_grow(&s->fl, &s->capfl, s->nfl + 1, sizeof *s->fl) == 0) {
		s->fl[s->nfl].slot = slot;
		s->fl[s->nfl].next = s->fl_head[i];
		s->fl_head[i] = (uint32_t)++s->nfl;
	}
	if (!end_copy(s, it, slot)) /* else the other copy goes on */
		set_state(s, it, it->attempts > s->cfg.retries ? DR_F_FAILED : DR_F_PENDING);
	st = &s->slots[slot];
	st->failed++;
	/* A frame fails again on a slot only once every usable slot has failed it: that speaks
	 * against the frame, not the slot (else one bad frame takes out a lone render node). */
	if (!again && ++st->consec_failed >= s->cfg.max_consec)
		unusable(s, slot, false);
	return 0;
}

/* The copy of IT on SLOT goes back without counting as an attempt: the frame is pending again,
 * or goes on as its other copy. */
static void give_back(dr_sched *s, dr_fitem *it, int slot)
{
	it->attempts--;
	if (!end_copy(s, it, slot))
		set_state(s, it, DR_F_PENDING);
}

size_t dr_sched_requeue(dr_sched *s, int slot)
{
	size_t k = 0;
	if (slot < 0 || slot >= s->cfg.nslots)
		return 0;
	while (s->lhead[slot] != NONE) {
		give_back(s, &s->items[s->lhead[slot] / 2], slot);
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
	if (slot < 0 || slot >= s->cfg.nslots)
		return;
	dr_sched_requeue(s, slot);
	unusable(s, slot, true);
}

int dr_sched_done_late(dr_sched *s, int slot, int frame, double seconds, int others[2])
{
	dr_fitem *it = find(s, frame);

	others[0] = others[1] = -1;
	if (!it || slot < 0 || slot >= s->cfg.nslots ||
	    (it->state != DR_F_PENDING && it->state != DR_F_RUNNING))
		return -1;
	if (it->state == DR_F_RUNNING) {
		others[0] = it->slot;
		others[1] = it->dup_slot;
		if (it->dup_slot >= 0)
			end_copy(s, it, it->dup_slot);
		end_copy(s, it, it->slot);
	}
	if (it->attempts < 1)
		it->attempts = 1; /* its attempt was given back when the slot was dropped */
	it->dup_slot = -1;
	record_done(s, it, slot, seconds);
	return 0;
}

size_t dr_sched_fail_stranded(dr_sched *s, const char *why)
{
	size_t k = 0;
	long i;
	if (s->nusable > 0)
		return 0;
	while ((i = iset_next(&s->pending, 0)) >= 0) {
		dr_fitem *it = &s->items[i];
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

long dr_sched_next_failed(const dr_sched *s, long i)
{
	return iset_next(&s->failed, i);
}

const dr_slot_stats *dr_sched_slot(const dr_sched *s, int slot)
{
	return slot >= 0 && slot < s->cfg.nslots ? &s->slots[slot] : NULL;
}

bool dr_sched_quiet(const dr_sched *s, double now)
{
	if (s->counts.pending > 0)
		return false;
	return !s->cfg.tail_control || s->nrun == 0 || s->counts.done == 0 ||
	       (s->calm && s->calm_change == s->change && now < s->calm_until);
}

const dr_fitem *dr_sched_oldest(const dr_sched *s)
{
	return s->nrun ? &s->items[s->rheap[0]] : NULL;
}
