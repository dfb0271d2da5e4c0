/* Virtual-time render farm: an event queue of simulated render nodes that ask for work, render for
 * a drawn cost, fail, straggle, get lost and come back, driving rank 0's real dispatch policy
 * (dr_dispatch) and scheduler (dr_sched) through the calls src/dr_orch.c makes. */
#include "sim.h"

#include "dr_dispatch.h"
#include "dr_sched.h"
#include "dr_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOLD_MAX 8

enum ev_type {
	EV_AT_RANK0,
	EV_AT_NODE,
	EV_FRAME_END,
	EV_NODE_LOST,
	EV_DETECT,
	EV_COMEBACK,
	EV_TICK
};
enum msg_type { M_READY, M_REQUEST, M_RESULT, M_TASK, M_CANCEL };

#define TICK_S 0.5 /* rank 0 decides at least this often (its poll loop), in virtual time */

typedef struct ev {
	double t;
	uint64_t seq; /* ties in creation order */
	int type, node, msg, frame, ok, n;
	double seconds;
} ev;

typedef struct node {
	/* the render node's side */
	int queue[HOLD_MAX], nq; /* tasks received, not started */
	int cur;                 /* frame rendering, -1 none */
	uint64_t cur_seq;        /* its end event (to recognise an aborted one) */
	double cur_start;
	bool dead;    /* lost: renders nothing more, sends nothing until it comes back */
	double speed; /* 1 = nominal; 2-3 for a slow node (time multiplier) */
	bool lost;    /* rank 0 declared it lost */
} node;

typedef struct sim {
	const sim_cfg *cfg;
	sim_result *res;
	dr_sched *s;
	dr_dispatch *d;
	dr_dispatch_decision *dec; /* room for one round (nodes) */
	node *nodes;
	double *cost;
	int *frames;
	uint8_t *done_n;
	ev *q;
	size_t nq, capq;
	uint64_t seq, rng;
	double now, t_first_idle;
} sim;

/* ---- random numbers (xorshift64*: the same on every libc) ---- */

static double urand(sim *m)
{
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return (double)((m->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static double nrand(sim *m)
{
	double u = urand(m), v = urand(m);
	return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

const char *sim_dist_name(enum sim_dist d)
{
	static const char *names[] = {"lognormal", "bimodal", "heavy-end", "uniform"};
	return names[d];
}

int sim_dist_parse(const char *str, enum sim_dist *d)
{
	for (int k = 0; k <= SIM_UNIFORM; k++)
		if (strcmp(str, sim_dist_name((enum sim_dist)k)) == 0) {
			*d = (enum sim_dist)k;
			return 0;
		}
	return -1;
}

void sim_defaults(sim_cfg *c)
{
	memset(c, 0, sizeof *c);
	c->nodes = 64;
	c->frames = 5000;
	c->dist = SIM_LOGNORMAL;
	c->seed = 1;
	c->mean = 10;
	c->latency = 0.0005;
	c->node_timeout = 30;
	c->retries = 3;
	c->tail_control = true;
}

/* Frame costs: a smooth trend along the shot (neighbours cost alike, as in real shots) times
 * lognormal noise; bimodal: the middle fifth 8x; heavy-end: the last tenth 8x. Scaled to MEAN. */
static void draw_costs(sim *m)
{
	const sim_cfg *c = m->cfg;
	double sum = 0, walk = 0;
	for (size_t i = 0; i < c->frames; i++) {
		double x = (double)i / (double)c->frames, k = 1;
		walk = 0.995 * walk + 0.1 * nrand(m);
		if (c->dist == SIM_UNIFORM) {
			m->cost[i] = 1;
			continue;
		}
		if (c->dist == SIM_BIMODAL && x >= 0.4 && x < 0.6)
			k = 8;
		if (c->dist == SIM_HEAVY_END && x >= 0.9)
			k = 8;
		m->cost[i] = k * exp((c->dist == SIM_LOGNORMAL ? 0.5 : 0.25) * walk +
		                     (c->dist == SIM_LOGNORMAL ? 0.5 : 0.25) * nrand(m));
		sum += m->cost[i];
	}
	if (c->dist == SIM_UNIFORM)
		sum = (double)c->frames;
	for (size_t i = 0; i < c->frames; i++)
		m->cost[i] *= c->mean * (double)c->frames / sum;
}

/* ---- event queue ---- */

static bool ev_before(const ev *a, const ev *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int push(sim *m, ev e)
{
	if (dr_grow(&m->q, &m->capq, m->nq + 1, sizeof *m->q) != 0)
		return -1;
	e.seq = m->seq++;
	size_t k = m->nq++;
	while (k > 0 && ev_before(&e, &m->q[(k - 1) / 2])) {
		m->q[k] = m->q[(k - 1) / 2];
		k = (k - 1) / 2;
	}
	m->q[k] = e;
	return 0;
}

static ev pop(sim *m)
{
	ev top = m->q[0], e = m->q[--m->nq];
	size_t k = 0;
	for (;;) {
		size_t c = 2 * k + 1;
		if (c >= m->nq)
			break;
		if (c + 1 < m->nq && ev_before(&m->q[c + 1], &m->q[c]))
			c++;
		if (!ev_before(&m->q[c], &e))
			break;
		m->q[k] = m->q[c];
		k = c;
	}
	if (m->nq > 0)
		m->q[k] = e;
	return top;
}

static int send0(sim *m, int node, int msg, int frame, int ok, double seconds)
{
	ev e = {.t = m->now + m->cfg->latency,
	        .type = EV_AT_RANK0,
	        .node = node,
	        .msg = msg,
	        .frame = frame,
	        .ok = ok,
	        .seconds = seconds};
	return push(m, e);
}

static int send_node(sim *m, int node, int msg, int frame, int n)
{
	ev e = {.t = m->now + m->cfg->latency,
	        .type = EV_AT_NODE,
	        .node = node,
	        .msg = msg,
	        .frame = frame,
	        .n = n};
	return push(m, e);
}

/* ---- the render node ---- */

/* Start the next queued frame if idle; ask for more when the last queued one starts (one task
 * held ahead, as dr_node does). */
static int node_start(sim *m, int k)
{
	node *nd = &m->nodes[k];
	if (nd->dead || nd->cur >= 0 || nd->nq == 0)
		return 0;
	int f = nd->queue[0];
	memmove(nd->queue, nd->queue + 1, (size_t)--nd->nq * sizeof nd->queue[0]);
	double d = m->cost[f] * nd->speed;
	if (urand(m) < m->cfg->straggle)
		d *= 4 + 4 * urand(m);
	int ok = urand(m) < m->cfg->fail ? 0 : 1;
	if (!ok)
		d *= urand(m);
	nd->cur = f;
	nd->cur_start = m->now;
	if (m->cost[f] == m->res->largest && m->res->largest_start == 0)
		m->res->largest_start = m->now;
	ev e = {.t = m->now + d, .type = EV_FRAME_END, .node = k, .frame = f, .ok = ok};
	nd->cur_seq = m->seq;
	if (push(m, e))
		return -1;
	return nd->nq == 0 ? send0(m, k, M_REQUEST, -1, 0, 0) : 0;
}

static int node_recv(sim *m, const ev *e)
{
	node *nd = &m->nodes[e->node];
	if (nd->dead)
		return 0; /* lost in the network with it */
	if (e->msg == M_TASK) {
		if (nd->nq < HOLD_MAX)
			nd->queue[nd->nq++] = e->frame;
		return node_start(m, e->node);
	}
	/* CANCEL: a queued frame goes back (receipt: ok = -1); a running copy of a frame done
	 * elsewhere is dropped (n = 0); a take-back of a frame already started is ignored (n = 1).
	 */
	for (int i = 0; i < nd->nq; i++)
		if (nd->queue[i] == e->frame) {
			memmove(nd->queue + i, nd->queue + i + 1,
			        (size_t)(nd->nq - i - 1) * sizeof nd->queue[0]);
			nd->nq--;
			return send0(m, e->node, M_RESULT, e->frame, -1, 0) ||
			       (nd->nq == 0 && nd->cur < 0 ? send0(m, e->node, M_REQUEST, -1, 0, 0)
			                                   : 0);
		}
	if (nd->cur == e->frame && e->n == 0) {
		nd->cur = -1;
		nd->cur_seq = UINT64_MAX;
		if (send0(m, e->node, M_RESULT, e->frame, -1, 0))
			return -1;
		if (nd->nq == 0)
			return send0(m, e->node, M_REQUEST, -1, 0, 0);
		return node_start(m, e->node);
	}
	return 0;
}

static int node_frame_end(sim *m, const ev *e)
{
	node *nd = &m->nodes[e->node];
	if (nd->dead || nd->cur != e->frame || nd->cur_seq != e->seq)
		return 0; /* aborted, or the node died meanwhile */
	nd->cur = -1;
	if (send0(m, e->node, M_RESULT, e->frame, e->ok, m->now - nd->cur_start))
		return -1;
	return node_start(m, e->node);
}

/* ---- rank 0 (as dr_orch: on_result, carry_out, tick) ---- */

static int on_result(sim *m, int k, const ev *e)
{
	int f = e->frame;
	if (dr_dispatch_result(m->d, k, 0, f, e->ok))
		return 0; /* the receipt of a frame taken back for an idle node */
	if (e->ok < 0)
		return 0; /* a copy that lost, or a dropped frame's receipt */
	m->res->decisions++;
	if (e->ok) {
		int other = dr_sched_other(m->s, f, k);
		bool copy_lost = other >= 0 && dr_sched_item(m->s, (size_t)f)->slot == k;
		if (dr_sched_done(m->s, k, f, e->seconds) != 0)
			return 0;
		if (m->done_n[f]++)
			m->res->done_twice++;
		if (m->now > m->res->makespan)
			m->res->makespan = m->now;
		m->res->wasted += copy_lost; /* the original won: the copy was for nothing */
		if (other >= 0)
			return send_node(m, other, M_CANCEL, f, 0);
		return 0;
	}
	dr_sched_fail(m->s, k, f, "simulated failure");
	return 0;
}

/* Carry out decision X as dr_orch's carry_out does, checking the invariants. */
static int carry_out(sim *m, const dr_dispatch_decision *x)
{
	node *nd = &m->nodes[x->slot];
	if (nd->lost)
		m->res->given_to_lost++;
	switch (x->kind) {
	case DR_DISPATCH_TASK:
		for (int i = 0; i < x->nframes; i++) {
			long f = dr_sched_index(m->s, x->frames[i]);
			const dr_fitem *it = dr_sched_item(m->s, (size_t)f);
			if (m->done_n[f] || it->state != DR_F_RUNNING)
				m->res->copy_of_done++;
			if (it->dup_slot == x->slot)
				m->res->copies++;
			if (send_node(m, x->slot, M_TASK, (int)f, 0))
				return -1;
		}
		return 0;
	case DR_DISPATCH_CANCEL:
		m->res->takebacks += x->for_slot >= 0;
		return send_node(m, x->slot, M_CANCEL, x->nframes ? x->frames[0] : -1,
		                 x->nframes ? 1 : 0);
	default: /* STOP: the node quits when it gets it; nothing to simulate */
		return 0;
	}
}

/* Rank 0's tick: decide for the waiting nodes and carry the decisions out. */
static int tick(sim *m)
{
	if (dr_sched_usable(m->s) == 0 && dr_sched_count(m->s).running == 0)
		dr_sched_fail_stranded(m->s, "no render node left");
	m->res->decisions++;
	int n = dr_dispatch_decide(m->d, m->now, m->dec, m->cfg->nodes);
	for (int i = 0; i < n; i++)
		if (carry_out(m, &m->dec[i]))
			return -1;
	if (m->res->drained == 0 && dr_sched_count(m->s).pending == 0)
		m->res->drained = m->now;
	if (m->t_first_idle < 0 && dr_dispatch_busy(m->d) < m->cfg->nodes - m->res->lost &&
	    dr_sched_count(m->s).pending == 0 && !dr_sched_finished(m->s))
		m->t_first_idle = m->now;
	return 0;
}

static int at_rank0(sim *m, const ev *e)
{
	if (m->nodes[e->node].lost)
		return 0; /* a late message from a node declared lost: discarded */
	dr_dispatch_heard(m->d, e->node, m->now);
	if (e->msg == M_READY)
		dr_dispatch_ready(m->d, e->node);
	else if (e->msg == M_REQUEST)
		dr_dispatch_request(m->d, e->node);
	else
		return on_result(m, e->node, e);
	return 0;
}

static void on_lost(sim *m, int k)
{
	if (m->nodes[k].lost)
		return;
	m->nodes[k].lost = true;
	dr_dispatch_lost(m->d, k);
	m->res->lost++;
}

/* ---- the run ---- */

int sim_run(const sim_cfg *cfg, sim_result *res, char *err, size_t errlen)
{
	sim m = {.cfg = cfg, .res = res, .t_first_idle = -1};
	dr_sched_cfg sc = {.nslots = cfg->nodes,
	                   .chunk = 1,
	                   .retries = cfg->retries,
	                   .max_consec = 3,
	                   .tail_control = cfg->tail_control};
	double speed_sum = 0, t0 = dr_now(), total = 0;
	int rc = -1;

	memset(res, 0, sizeof *res);
	if (cfg->nodes < 1 || cfg->frames < 1)
		return dr_seterr(err, errlen, "sim: need at least one node and one frame");
	m.rng = cfg->seed * 0x9E3779B97F4A7C15ULL + 1;
	m.nodes = calloc((size_t)cfg->nodes, sizeof *m.nodes);
	m.dec = calloc((size_t)cfg->nodes, sizeof *m.dec);
	m.cost = calloc(cfg->frames, sizeof *m.cost);
	m.frames = calloc(cfg->frames, sizeof *m.frames);
	m.done_n = calloc(cfg->frames, 1);
	if (!m.nodes || !m.dec || !m.cost || !m.frames || !m.done_n) {
		dr_seterr(err, errlen, "sim: out of memory");
		goto out;
	}
	for (size_t i = 0; i < cfg->frames; i++)
		m.frames[i] = (int)i;
	draw_costs(&m);
	m.s = dr_sched_create(m.frames, cfg->frames, &sc, err, errlen);
	if (!m.s)
		goto out;
	dr_dispatch_cfg dc = {.nslots = cfg->nodes, .node_timeout = -1}; /* loss: EV_DETECT */
	m.d = dr_dispatch_create(&dc, 0, err, errlen);
	if (!m.d || dr_dispatch_add_job(m.d, 0, 0, 0, m.s, err, errlen))
		goto out;
	for (size_t i = 0; i < cfg->frames; i++) {
		total += m.cost[i];
		if (m.cost[i] > res->largest)
			res->largest = m.cost[i];
	}
	for (int k = 0; k < cfg->nodes; k++) {
		node *nd = &m.nodes[k];
		nd->cur = -1;
		nd->speed = urand(&m) < cfg->slow ? 2 + urand(&m) : 1;
		speed_sum += 1 / nd->speed;
		if (push(&m, (ev){.t = 0, .type = EV_AT_NODE, .node = k, .msg = -1}))
			goto oom;
		if (urand(&m) < cfg->loss) {
			/* lost somewhere in the first 80% of the ideal run; half come back late */
			double at = urand(&m) * 0.8 * total / cfg->nodes;
			if (push(&m, (ev){.t = at, .type = EV_NODE_LOST, .node = k}))
				goto oom;
		}
	}
	if (push(&m, (ev){.t = TICK_S, .type = EV_TICK}))
		goto oom;
	res->bound = fmax(total / cfg->nodes, res->largest);
	res->bound_speed = fmax(total / speed_sum, res->largest);
	while (m.nq > 0 && !dr_sched_finished(m.s)) {
		ev e = pop(&m);
		m.now = e.t;
		switch (e.type) {
		case EV_AT_NODE:
			if (e.msg < 0) /* start-up: the node's first request */
				rc = send0(&m, e.node, M_READY, -1, 0, 0);
			else
				rc = node_recv(&m, &e);
			break;
		case EV_FRAME_END:
			rc = node_frame_end(&m, &e);
			break;
		case EV_AT_RANK0:
			rc = at_rank0(&m, &e);
			break;
		case EV_NODE_LOST:
			m.nodes[e.node].dead = true;
			rc = push(&m, (ev){.t = m.now + cfg->node_timeout,
			                   .type = EV_DETECT,
			                   .node = e.node});
			if (!rc && urand(&m) < 0.5)
				rc = push(&m, (ev){.t = m.now + 2 * cfg->node_timeout,
				                   .type = EV_COMEBACK,
				                   .node = e.node});
			break;
		case EV_DETECT:
			on_lost(&m, e.node);
			break;
		case EV_TICK:
			rc = push(&m, (ev){.t = m.now + TICK_S, .type = EV_TICK});
			break;
		case EV_COMEBACK: { /* it sends the result it had when it stalled, and asks */
			node *nd = &m.nodes[e.node];
			nd->dead = false;
			rc = nd->cur >= 0 ? send0(&m, e.node, M_RESULT, nd->cur, 1,
			                          m.now - nd->cur_start)
			                  : 0;
			nd->cur = -1;
			nd->nq = 0;
			if (!rc)
				rc = send0(&m, e.node, M_REQUEST, -1, 0, 0);
			break;
		}
		}
		if (rc)
			goto oom;
		if ((e.type == EV_AT_RANK0 || e.type == EV_DETECT || e.type == EV_TICK) && tick(&m))
			goto oom;
	}
	dr_sched_counts c = dr_sched_count(m.s);
	res->done = c.done;
	res->failed = c.failed;
	res->tail = m.t_first_idle >= 0 ? res->makespan - m.t_first_idle : 0;
	res->efficiency = res->makespan > 0 ? res->bound_speed / res->makespan : 0;
	if (res->makespan < res->bound_speed * (1 - 1e-9) && c.failed == 0)
		res->below_bound++;
	res->wall = dr_now() - t0;
	rc = 0;
	goto out;
oom:
	rc = dr_seterr(err, errlen, "sim: out of memory");
out:
	dr_dispatch_destroy(m.d);
	dr_sched_destroy(m.s);
	free(m.nodes);
	free(m.dec);
	free(m.cost);
	free(m.frames);
	free(m.done_n);
	free(m.q);
	return rc;
}
