/* Unit tests for dr_dispatch: job order, settings preference, hold-ahead, take-back, copies,
 * stopping, cancelling, silence, and a randomized property test against simulated nodes. */
#include "dr_dispatch.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char err[512];

static dr_sched *mksched(int first, int n, int nslots, int chunk, bool tail)
{
	int fr[64];
	dr_sched_cfg cfg = {.nslots = nslots,
	                    .chunk = chunk,
	                    .retries = 1,
	                    .max_consec = 3,
	                    .tail_control = tail};
	for (int i = 0; i < n; i++)
		fr[i] = first + i;
	return dr_sched_create(fr, (size_t)n, &cfg, err, sizeof err);
}

static dr_dispatch *mk(int nslots, bool serve)
{
	dr_dispatch_cfg cfg = {.nslots = nslots, .serve = serve, .node_timeout = 10};
	dr_dispatch *d = dr_dispatch_create(&cfg, 0, err, sizeof err);
	if (!d)
		printf("# create failed: %s\n", err);
	return d;
}

static dr_dispatch_decision dec[16];

/* The one decision for SLOT in the last round, or NULL. */
static const dr_dispatch_decision *for_slot(int n, int slot)
{
	for (int i = 0; i < n; i++)
		if (dec[i].slot == slot)
			return &dec[i];
	return NULL;
}

static void test_create(void)
{
	dr_dispatch_cfg bad = {.nslots = 0};
	err[0] = '\0';
	ok(dr_dispatch_create(&bad, 0, err, sizeof err) == NULL && err[0],
	   "no nodes refused with a message");
	dr_dispatch *d = mk(2, false);
	ok(d != NULL, "created");
	const dr_dispatch_node *nd = dr_dispatch_node_get(d, 1);
	ok(nd && !nd->waiting && !nd->stopped && nd->job == -1 && nd->announced == -1 &&
	           nd->revoking == -1 && nd->nframes == 0,
	   "a fresh node holds nothing and has no settings");
	ok(dr_dispatch_node_get(d, 2) == NULL && dr_dispatch_node_get(d, -1) == NULL,
	   "node out of range is NULL");
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "nobody asked: no decisions");
	dr_sched *s = mksched(1, 2, 2, 1, false);
	is_int(dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err), 0, "job added");
	is_int(dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err), -1, "same number refused");
	dr_dispatch_destroy(d);
	dr_dispatch_destroy(NULL);
	dr_sched_destroy(s);
	ok(1, "destroy(NULL) is harmless");
}

static void test_first_task(void)
{
	dr_dispatch *d = mk(2, false);
	dr_sched *s = mksched(1, 10, 2, 2, false);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	dr_dispatch_ready(d, 0);
	int n = dr_dispatch_decide(d, 1, dec, 16);
	is_int(n, 1, "one waiting node, one decision");
	ok(dec[0].kind == DR_DISPATCH_TASK && dec[0].slot == 0 && dec[0].job == 0 &&
	           dec[0].announce && dec[0].nframes == 2 && dec[0].frames[0] == 1 &&
	           dec[0].frames[1] == 2,
	   "a task of one chunk, with the job's settings first");
	const dr_dispatch_node *nd = dr_dispatch_node_get(d, 0);
	ok(!nd->waiting && nd->job == 0 && nd->nframes == 2 && nd->announced == 0,
	   "the node holds the task and has the settings");
	is_int(dr_dispatch_decide(d, 1, dec, 16), 0, "answered: nothing more until it asks");
	/* it asks again while rendering frame 1: plenty pending, one task ahead */
	dr_dispatch_request(d, 0);
	n = dr_dispatch_decide(d, 2, dec, 16);
	ok(n == 1 && dec[0].kind == DR_DISPATCH_TASK && !dec[0].announce && dec[0].frames[0] == 3,
	   "a task ahead, without the settings again");
	is_int(dr_dispatch_busy(d), 1, "one node busy");
	is_int(dr_dispatch_result(d, 0, 0, 1, 1), 0, "a rendered frame is an ordinary result");
	is_int(dr_dispatch_node_get(d, 0)->frames[0], 2, "the next held frame moves up");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
}

static void test_order(void)
{
	dr_dispatch *d = mk(3, true);
	dr_sched *a = mksched(1, 5, 3, 1, false), *b = mksched(11, 5, 3, 1, false),
	         *c = mksched(21, 5, 3, 1, false);
	dr_dispatch_add_job(d, 0, 0, 100, a, err, sizeof err); /* low priority */
	dr_dispatch_add_job(d, 1, 5, 200, b, err, sizeof err); /* high priority */
	dr_dispatch_add_job(d, 2, 5, 100, c, err, sizeof err); /* high, same settings as job 0 */
	dr_dispatch_ready(d, 0);
	int n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].job == 1, "priority first, then submission");

	/* a node that has job 0's settings prefers job 2 (same settings, top priority) */
	dr_sched *z = mksched(31, 1, 3, 1, false);
	dr_dispatch_add_job(d, 3, 9, 100, z, err, sizeof err);
	dr_dispatch_ready(d, 1);
	n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].job == 3, "a higher priority still comes first");
	dr_dispatch_result(d, 1, 3, 31, 1);
	dr_sched_done(z, 1, 31, 1);
	dr_dispatch_end_job(d, 3);
	ok(dr_dispatch_job_ended(d, 3), "ended job reads as ended");
	dr_dispatch_request(d, 1);
	n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].job == 2 && dec[0].announce,
	   "node 1, with settings 100 loaded, prefers job 2 (settings 100) to the older job 1");
	dr_dispatch_destroy(d);
	dr_sched_destroy(a);
	dr_sched_destroy(b);
	dr_sched_destroy(c);
	dr_sched_destroy(z);
}

static void test_prefer_loaded(void)
{
	dr_dispatch *d = mk(1, true);
	dr_sched *lo = mksched(1, 3, 1, 1, false), *a = mksched(11, 3, 1, 1, false),
	         *b = mksched(21, 3, 1, 1, false);
	dr_dispatch_add_job(d, 0, -1, 7, lo, err, sizeof err); /* gives the node settings 7 */
	dr_dispatch_ready(d, 0);
	dr_dispatch_decide(d, 0, dec, 16);
	is_int(dec[0].job, 0, "the only job");
	dr_dispatch_add_job(d, 1, 3, 8, a, err, sizeof err);
	dr_dispatch_add_job(d, 2, 3, 7, b, err, sizeof err);
	dr_dispatch_result(d, 0, 0, 1, 1);
	dr_sched_done(lo, 0, 1, 1);
	dr_dispatch_request(d, 0);
	int n = dr_dispatch_decide(d, 1, dec, 16);
	ok(n == 1 && dec[0].job == 2 && dec[0].announce,
	   "among the top priority, the job whose settings the node has (no reload)");
	dr_dispatch_destroy(d);
	dr_sched_destroy(lo);
	dr_sched_destroy(a);
	dr_sched_destroy(b);
}

static void test_hold_ahead(void)
{
	dr_dispatch *d = mk(2, false);
	dr_sched *s = mksched(1, 5, 2, 1, false);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	dr_dispatch_ready(d, 0);
	dr_dispatch_ready(d, 1);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 2, "both get a frame (3 pending after)");
	dr_dispatch_request(d, 0); /* 3 pending > 2 nodes: one ahead */
	int n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].slot == 0 && dec[0].frames[0] == 3, "held ahead while pending > slots");
	dr_dispatch_request(d, 1); /* 2 pending, not > 2 */
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "no task ahead once pending <= slots");
	ok(dr_dispatch_node_get(d, 1)->waiting, "the node keeps waiting");
	/* a node still rendering never gets another job's frames */
	dr_sched *t = mksched(100, 9, 2, 1, false);
	dr_dispatch_add_job(d, 1, 9, 0, t, err, sizeof err);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "busy node 1: not another job ahead");
	dr_dispatch_result(d, 1, 0, 2, 1);
	dr_sched_done(s, 1, 2, 1);
	n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].slot == 1 && dec[0].job == 1, "once empty, it takes the other job");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
	dr_sched_destroy(t);
}

/* Frames coming home: a node whose only frame is rendered and on its way to rank 0 is free for
 * work at once, even near the end; the frame's RESULT comes later as an ordinary result. */
static void test_rendered(void)
{
	dr_dispatch *d = mk(2, false);
	dr_sched *s = mksched(1, 3, 2, 1, false);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	dr_dispatch_ready(d, 0);
	dr_dispatch_ready(d, 1);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 2, "both get a frame (1 pending after)");
	dr_dispatch_request(d, 0);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "near the end: no task ahead");
	dr_dispatch_rendered(d, 0, 1);
	int n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].slot == 0 && dec[0].frames[0] == 3,
	   "frame 1 rendered and on its way home: node 0 gets frame 3 meanwhile");
	is_int(dr_dispatch_result(d, 0, 0, 1, 1), 0, "frame 1's RESULT later: an ordinary result");
	ok(dr_dispatch_node_get(d, 0)->nframes == 1 && dr_dispatch_node_get(d, 0)->frames[0] == 3,
	   "and node 0 still holds frame 3");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
}

static void test_take_back(void)
{
	dr_dispatch *d = mk(2, false);
	dr_sched *s = mksched(1, 4, 2, 1, false);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	dr_dispatch_ready(d, 0);
	dr_dispatch_decide(d, 0, dec, 16); /* 1 on node 0; 3 pending > 2 */
	dr_dispatch_request(d, 0);
	dr_dispatch_decide(d, 0, dec, 16); /* 2 held ahead on node 0 */
	dr_dispatch_ready(d, 1);
	dr_dispatch_decide(d, 0, dec, 16); /* 3 on node 1 */
	dr_dispatch_request(d, 1);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "1 pending, not > 2: node 1 waits");
	dr_dispatch_result(d, 1, 0, 3, 1);
	dr_sched_done(s, 1, 3, 1);
	dr_dispatch_request(d, 1);
	int n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].slot == 1 && dec[0].frames[0] == 4, "node 1 takes the last fresh one");
	dr_dispatch_result(d, 1, 0, 4, 1);
	dr_sched_done(s, 1, 4, 1);
	dr_dispatch_request(d, 1);
	n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].kind == DR_DISPATCH_CANCEL && dec[0].slot == 0 &&
	           dec[0].for_slot == 1 && dec[0].nframes == 1 && dec[0].frames[0] == 2,
	   "idle node 1, nothing pending: frame 2 held on node 0 is taken back");
	is_int(dr_dispatch_node_get(d, 0)->revoking, 2, "revoking recorded");
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "one take-back at a time: wait for it");
	is_int(dr_dispatch_result(d, 0, 0, 2, -1), 1, "its receipt is consumed");
	is_int(dr_sched_count(s).pending, 1, "frame 2 is pending again");
	n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 1 && dec[0].kind == DR_DISPATCH_TASK && dec[0].slot == 1 && dec[0].frames[0] == 2,
	   "and goes to the idle node");

	/* a take-back that comes too late: the frame had started, its result is ordinary */
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
	d = mk(2, false);
	s = mksched(1, 3, 2, 1, false);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	dr_dispatch_ready(d, 0);
	dr_dispatch_decide(d, 0, dec, 16); /* 1; 2 pending, not > 2 */
	dr_dispatch_ready(d, 1);
	dr_dispatch_decide(d, 0, dec, 16); /* 2 on node 1 */
	dr_dispatch_request(d, 0);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "nothing ahead with 1 pending");
	dr_dispatch_result(d, 0, 0, 1, 1);
	dr_sched_done(s, 0, 1, 1);
	dr_dispatch_request(d, 0);
	dr_dispatch_decide(d, 0, dec, 16); /* 3 on node 0 */
	dr_dispatch_result(d, 1, 0, 2, 1);
	dr_sched_done(s, 1, 2, 1);
	dr_dispatch_request(d, 1);
	n = dr_dispatch_decide(d, 0, dec, 16);
	ok(n == 0 || dec[0].kind != DR_DISPATCH_CANCEL,
	   "a node holding one frame (in flight) is never asked to give it back");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
}

static void test_copy_and_stop(void)
{
	dr_dispatch *d = mk(2, false);
	dr_sched *s = mksched(1, 3, 2, 1, true);
	int f0, f1, f2;
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	dr_dispatch_ready(d, 0);
	dr_dispatch_ready(d, 1);
	dr_dispatch_decide(d, 0, dec, 16);
	f0 = for_slot(2, 0)->frames[0];
	f1 = for_slot(2, 1)->frames[0];
	dr_dispatch_result(d, 0, 0, f0, 1);
	dr_sched_done(s, 0, f0, 1.0);
	dr_dispatch_request(d, 0);
	dr_dispatch_decide(d, 1, dec, 16);
	f2 = dec[0].frames[0];
	dr_dispatch_result(d, 0, 0, f2, 1);
	dr_sched_done(s, 0, f2, 1.0);
	dr_dispatch_request(d, 0);
	is_int(dr_dispatch_decide(d, 1.5, dec, 16), 0, "a young straggler is not copied yet");
	int n = dr_dispatch_decide(d, 6, dec, 16);
	ok(n == 1 && dec[0].kind == DR_DISPATCH_TASK && dec[0].slot == 0 && dec[0].frames[0] == f1,
	   "an idle node gets a speculative copy of the straggler");
	is_int(dr_sched_other(s, f1, 0), 1, "the original still runs on node 1");
	dr_dispatch_result(d, 0, 0, f1, 1);
	dr_sched_done(s, 0, f1, 2.0);
	dr_dispatch_end_job(d, 0);
	dr_dispatch_request(d, 0);
	n = dr_dispatch_decide(d, 7, dec, 16);
	ok(n == 1 && dec[0].kind == DR_DISPATCH_STOP && dec[0].slot == 0,
	   "a batch stops an empty node once no job has work for it");
	ok(!dr_dispatch_all_stopped(d), "node 1 still holds the losing copy");
	dr_dispatch_result(d, 1, 0, f1, -1);
	dr_dispatch_request(d, 1);
	n = dr_dispatch_decide(d, 7, dec, 16);
	ok(n == 1 && dec[0].kind == DR_DISPATCH_STOP && dec[0].slot == 1, "then node 1 stops");
	ok(dr_dispatch_all_stopped(d), "all stopped");
	dr_dispatch_request(d, 1);
	is_int(dr_dispatch_decide(d, 8, dec, 16), 0, "nothing is ever given to a stopped node");
	dr_dispatch_destroy(d);

	/* a service never stops nodes for lack of work */
	d = mk(1, true);
	dr_dispatch_ready(d, 0);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "service: no jobs, no STOP");
	is_int(dr_dispatch_stop_all(d, dec, 16), 1, "stop_all stops it");
	is_int(dr_dispatch_stop_all(d, dec, 16), 0, "only once");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
}

static void test_cancel_silence_hist(void)
{
	dr_dispatch *d = mk(3, true);
	dr_sched *s = mksched(1, 9, 3, 2, false);
	dr_dispatch_add_job(d, 4, 0, 0, s, err, sizeof err);
	dr_dispatch_ready(d, 0);
	dr_dispatch_ready(d, 2);
	dr_dispatch_decide(d, 0, dec, 16);
	int n = dr_dispatch_cancel_job(d, 4, dec, 16);
	ok(n == 2 && dec[0].kind == DR_DISPATCH_CANCEL && dec[0].slot == 0 && dec[0].nframes == 0 &&
	           dec[1].slot == 2,
	   "cancel: every node holding its frames is told");
	ok(dr_dispatch_job_ended(d, 4) && dr_sched_count(s).running == 0,
	   "cancel: the job ends, its frames go back");
	is_int(dr_dispatch_cancel_job(d, 4, dec, 16), 0, "cancel twice: nothing more");
	dr_dispatch_ready(d, 1);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 0, "a cancelled job gives no work");

	is_int(dr_dispatch_silent(d, 10), -1, "nobody silent at the timeout");
	dr_dispatch_heard(d, 0, 5);
	dr_dispatch_heard(d, 2, 5);
	is_int(dr_dispatch_silent(d, 10.5), 1, "node 1 silent past the timeout");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);

	dr_dispatch_cfg one = {.nslots = 1, .node_timeout = -1};
	d = dr_dispatch_create(&one, 0, err, sizeof err);
	is_int(dr_dispatch_silent(d, 1e9), -1, "a negative timeout: never silent");
	dr_dispatch_destroy(d);

	is_int(dr_dispatch_hist_bucket(0.05), 0, "bucket: 0.05 s");
	is_int(dr_dispatch_hist_bucket(0.1), 0, "bucket: bounds are inclusive");
	is_int(dr_dispatch_hist_bucket(3), 5, "bucket: 3 s");
	is_int(dr_dispatch_hist_bucket(601), DR_DISPATCH_HIST_BUCKETS, "bucket: above 600 s");
}

/* A lost node: its frames go back, it counts as stopped, it gets nothing more. */
static void test_lost(void)
{
	dr_dispatch *d = mk(3, false);
	dr_sched *s = mksched(1, 12, 3, 1, false);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	for (int i = 0; i < 3; i++)
		dr_dispatch_ready(d, i);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 3, "three tasks");
	dr_dispatch_request(d, 1);
	is_int(dr_dispatch_decide(d, 0, dec, 16), 1, "node 1 holds one ahead");
	is_int(dr_dispatch_busy(d), 3, "three busy");
	dr_dispatch_lost(d, 1);
	const dr_dispatch_node *nd = dr_dispatch_node_get(d, 1);
	ok(nd->lost && nd->stopped && nd->nframes == 0 && !nd->waiting, "lost: holds nothing");
	is_int(dr_sched_count(s).running, 2, "its two frames went back");
	ok(dr_sched_slot(s, 1)->gone, "and the scheduler gives it no more");
	is_int(dr_dispatch_busy(d), 2, "two busy");
	dr_dispatch_lost(d, 1);
	is_int(dr_sched_count(s).pending, 10, "lost twice: harmless");
	dr_dispatch_request(d, 1); /* a caller that forgot: still nothing for it */
	dr_dispatch_request(d, 0);
	dr_dispatch_request(d, 2);
	int n = dr_dispatch_decide(d, 1, dec, 16);
	ok(n == 2 && !for_slot(n, 1), "decisions for the others only");
	is_int(dr_dispatch_silent(d, 100), 0, "silence: the lost node is not watched");
	is_int(dr_dispatch_stop_all(d, dec, 16), 2, "stop_all: no STOP to the lost node");
	ok(dr_dispatch_all_stopped(d), "all count as stopped");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
}

/* Many idle nodes: rounds with nothing to give stay cheap and right; the longest waiting node
 * gets what comes free; the least recently heard node is the silent one. */
static void test_many_idle(void)
{
	enum { N = 3000 };
	static dr_dispatch_decision big[N];
	dr_dispatch_cfg cfg = {.nslots = N, .node_timeout = 10};
	dr_dispatch *d = dr_dispatch_create(&cfg, 0, err, sizeof err);
	dr_sched *s = mksched(1, 4, N, 1, true);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	for (int i = N - 1; i >= 0; i--) /* they ask from the last to the first */
		dr_dispatch_ready(d, i);
	int n = dr_dispatch_decide(d, 0, big, N), fr[4];
	ok(n == 4 && big[0].slot == N - 1 && big[3].slot == N - 4,
	   "four frames for the first four to ask");
	for (int i = 0; i < 4 && i < n; i++)
		fr[i] = big[i].frames[0];
	int rounds = 0;
	for (; rounds < 20000; rounds++)
		if (dr_dispatch_decide(d, rounds * 0.01, big, N) != 0)
			break;
	is_int(rounds, 20000, "20,000 rounds over %d idle nodes: nothing to give", N - 4);
	dr_dispatch_result(d, N - 1, 0, fr[0], 0);
	dr_sched_fail(s, N - 1, fr[0], "boom");
	dr_dispatch_request(d, N - 1);
	n = dr_dispatch_decide(d, 200, big, N);
	ok(n == 1 && big[0].slot == N - 5 && big[0].frames[0] == fr[0],
	   "a failed frame goes to the longest waiting node, not back to the one that failed");
	for (int i = 0; i < 4; i++) {
		int slot = i == 0 ? N - 5 : N - 1 - i;
		dr_dispatch_result(d, slot, 0, fr[i], 1);
		dr_sched_done(s, slot, fr[i], 1);
		dr_dispatch_request(d, slot);
	}
	dr_dispatch_end_job(d, 0);
	n = dr_dispatch_decide(d, 201, big, N);
	is_int(n, N, "the job ended: every node is told to stop in one round");
	ok(dr_dispatch_all_stopped(d) && dr_dispatch_busy(d) == 0, "all stopped, none busy");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);

	cfg.nslots = 3;
	d = dr_dispatch_create(&cfg, 0, err, sizeof err);
	dr_dispatch_heard(d, 1, 1);
	dr_dispatch_heard(d, 0, 2);
	dr_dispatch_heard(d, 2, 3);
	is_int(dr_dispatch_silent(d, 11.5), 1, "silence: the least recently heard node");
	dr_dispatch_heard(d, 1, 4);
	is_int(dr_dispatch_silent(d, 11.5), -1, "heard again: nobody silent");
	is_int(dr_dispatch_silent(d, 12.5), 0, "then the next least recent");
	dr_dispatch_destroy(d);
}

/* ---- randomized property test: the dispatcher drives simulated render nodes ---- */

static uint64_t rng;
static int n_takebacks, n_copies, n_stops; /* over all runs: the paths were exercised */
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

#define PMAX_SLOTS 5
#define PMAX_JOBS  3

typedef struct simnode {
	int job, q[2 * DR_DISPATCH_FRAMES_MAX], qlen;
	double ends;  /* when q[0] finishes */
	int settings; /* job whose settings it has */
	bool asked, stopped;
} simnode;

typedef struct sim {
	dr_dispatch *d;
	dr_sched *s[PMAX_JOBS];
	int njobs, nslots, bad, done_count[PMAX_JOBS][64];
	bool ended[PMAX_JOBS];
	simnode n[PMAX_SLOTS];
	double now;
} sim;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			if (z->bad++ < 3) {                                                        \
				printf("#   ");                                                    \
				printf(__VA_ARGS__);                                               \
				printf("\n");                                                      \
			}                                                                          \
		}                                                                                  \
	} while (0)

static void sim_end_check(sim *z, int j)
{
	dr_sched *s = z->s[j];
	dr_sched_counts c = dr_sched_count(s);
	if (z->ended[j])
		return;
	if (dr_sched_usable(s) == 0 && !dr_sched_finished(s) && c.running == 0)
		dr_sched_fail_stranded(s, "stranded");
	if (dr_sched_finished(s)) {
		z->ended[j] = true;
		dr_dispatch_end_job(z->d, j);
	}
}

static void sim_drop(sim *z, int slot, int i)
{
	simnode *nd = &z->n[slot];
	memmove(&nd->q[i], &nd->q[i + 1], (size_t)(nd->qlen - i - 1) * sizeof nd->q[0]);
	if (--nd->qlen == 0)
		nd->job = -1;
}

/* Node SLOT reports frame q[I] with OK, as rank 0 would process it. */
static void sim_result(sim *z, int slot, int i, int ok)
{
	simnode *nd = &z->n[slot];
	int job = nd->job, frame = nd->q[i];
	sim_drop(z, slot, i);
	if (dr_dispatch_result(z->d, slot, job, frame, ok))
		return;
	if (z->ended[job] || ok < 0)
		return;
	if (ok) {
		int other = dr_sched_other(z->s[job], frame, slot);
		if (dr_sched_done(z->s[job], slot, frame, 1) == 0) {
			z->done_count[job][frame]++;
			if (other >= 0) /* the losing copy is dropped and acknowledged */
				for (int k = 0; k < z->n[other].qlen; k++)
					if (z->n[other].job == job && z->n[other].q[k] == frame) {
						sim_result(z, other, k, -1);
						break;
					}
		}
	} else {
		dr_sched_fail(z->s[job], slot, frame, "boom");
	}
	sim_end_check(z, job);
}

static void sim_apply(sim *z, const dr_dispatch_decision *x)
{
	simnode *nd = &z->n[x->slot];
	CHECK(!nd->stopped, "decision %d for stopped node %d", x->kind, x->slot);
	if (x->kind == DR_DISPATCH_STOP) {
		CHECK(nd->qlen == 0, "STOP to node %d holding %d frames", x->slot, nd->qlen);
		nd->stopped = true;
		n_stops++;
		return;
	}
	if (x->kind == DR_DISPATCH_CANCEL) {
		CHECK(!z->ended[x->job] || x->nframes == 0, "take-back for an ended job");
		for (int k = nd->qlen - 1; k >= 0; k--) {
			if (nd->job != x->job || (x->nframes && nd->q[k] != x->frames[0]))
				continue;
			CHECK(x->nframes == 0 || k > 0,
			      "take-back of frame %d in flight on node %d", nd->q[k], x->slot);
			if (k == 0 && x->nframes)
				continue; /* started: the node keeps it */
			n_takebacks += x->nframes > 0;
			if (k == 0)
				nd->ends = z->now;
			sim_result(z, x->slot, k, -1);
		}
		return;
	}
	CHECK(x->kind == DR_DISPATCH_TASK, "unknown decision kind %d", x->kind);
	CHECK(nd->asked, "task for node %d that did not ask", x->slot);
	CHECK(nd->qlen == 0 || nd->job == x->job, "node %d holding job %d given job %d", x->slot,
	      nd->job, x->job);
	CHECK(x->announce == (nd->settings != x->job), "announce %d with settings of job %d",
	      x->announce, nd->settings);
	CHECK(!z->ended[x->job], "task of ended job %d", x->job);
	for (int i = 0; i < x->nframes; i++) {
		int f = x->frames[i];
		long idx = dr_sched_index(z->s[x->job], f);
		const dr_fitem *it = idx >= 0 ? dr_sched_item(z->s[x->job], (size_t)idx) : NULL;
		n_copies += it && it->dup_slot == x->slot;
		CHECK(it && it->state == DR_F_RUNNING &&
		              (it->slot == x->slot || it->dup_slot == x->slot),
		      "frame %d handed to node %d is not running there", f, x->slot);
		for (int o = 0; o < z->nslots; o++) {
			if (o == x->slot || z->n[o].job != x->job)
				continue;
			for (int k = 0; k < z->n[o].qlen; k++)
				CHECK(z->n[o].q[k] != f ||
				              (it && it->dup_slot == x->slot && it->slot == o),
				      "frame %d handed to nodes %d and %d, not as a copy", f, o,
				      x->slot);
		}
	}
	if (nd->qlen == 0)
		nd->ends = z->now + 0.25 + rnd(12) * 0.25;
	nd->settings = x->job;
	nd->job = x->job;
	memcpy(nd->q + nd->qlen, x->frames, (size_t)x->nframes * sizeof x->frames[0]);
	nd->qlen += x->nframes;
	nd->asked = false;
}

/* The dispatcher's view of each node equals what the node holds. */
static void sim_compare(sim *z)
{
	for (int i = 0; i < z->nslots; i++) {
		const dr_dispatch_node *dn = dr_dispatch_node_get(z->d, i);
		bool same =
		        dn->nframes == z->n[i].qlen && (dn->nframes == 0 || dn->job == z->n[i].job);
		for (int k = 0; same && k < dn->nframes; k++)
			same = dn->frames[k] == z->n[i].q[k];
		CHECK(same, "node %d: dispatcher thinks %d frames, node holds %d", i, dn->nframes,
		      z->n[i].qlen);
	}
}

static int property_run(uint64_t seed, int *steps)
{
	static sim z0;
	sim *z = &z0;
	bool serve = seed % 4 == 0;
	dr_dispatch_decision out[PMAX_SLOTS];

	memset(z, 0, sizeof *z);
	rng = seed * 0x9E3779B97F4A7C15ull;
	z->nslots = 1 + (int)rnd(PMAX_SLOTS);
	z->njobs = 1 + (int)rnd(PMAX_JOBS);
	dr_dispatch_cfg cfg = {.nslots = z->nslots, .serve = serve, .node_timeout = -1};
	z->d = dr_dispatch_create(&cfg, 0, err, sizeof err);
	for (int j = 0; j < z->njobs; j++) {
		z->s[j] = mksched(1, 1 + (int)rnd(40), z->nslots, 1 + (int)rnd(3), rnd(2));
		dr_dispatch_add_job(z->d, j, (int)rnd(3), (int)rnd(2), z->s[j], err, sizeof err);
	}
	for (int i = 0; i < z->nslots; i++) {
		z->n[i].job = z->n[i].settings = -1;
		z->n[i].asked = true;
		dr_dispatch_ready(z->d, i);
	}
	for (*steps = 0; *steps < 20000; ++*steps) {
		bool all = true;
		for (int j = 0; j < z->njobs; j++)
			all &= z->ended[j];
		if (all && (serve || dr_dispatch_all_stopped(z->d)))
			break;
		int n = dr_dispatch_decide(z->d, z->now, out, PMAX_SLOTS);
		for (int i = 0; i < n; i++)
			sim_apply(z, &out[i]);
		sim_compare(z);
		z->now += 0.25;
		for (int i = 0; i < z->nslots; i++) {
			simnode *nd = &z->n[i];
			if (nd->qlen > 0 && z->now >= nd->ends) {
				int ok = rnd(10) == 0 ? 0 : 1;
				sim_result(z, i, 0, ok);
				nd->ends = z->now + 0.25 + rnd(12) * 0.25;
			}
			if (!nd->stopped && !nd->asked && nd->qlen <= 1) {
				nd->asked = true;
				dr_dispatch_request(z->d, i);
			}
		}
		sim_compare(z);
	}
	for (int j = 0; j < z->njobs; j++) {
		CHECK(z->ended[j], "job %d never ended", j);
		for (size_t i = 0; i < dr_sched_size(z->s[j]); i++) {
			const dr_fitem *it = dr_sched_item(z->s[j], i);
			CHECK(it->state == DR_F_DONE || it->state == DR_F_FAILED,
			      "job %d frame %d left in state %d", j, it->frame, it->state);
			CHECK(z->done_count[j][it->frame] == (it->state == DR_F_DONE),
			      "job %d frame %d done %d times", j, it->frame,
			      z->done_count[j][it->frame]);
		}
		dr_sched_destroy(z->s[j]);
	}
	dr_dispatch_destroy(z->d);
	return z->bad;
}

static void test_property(void)
{
	int total_steps = 0;
	for (uint64_t seed = 1; seed <= 40; seed++) {
		int steps = 0;
		int bad = property_run(seed, &steps);
		total_steps += steps;
		is_int(bad, 0, "random run, seed %llu (%d steps): invariants hold",
		       (unsigned long long)seed, steps);
	}
	ok(total_steps > 1000, "property runs took %d steps in all", total_steps);
	ok(n_takebacks > 0 && n_copies > 0 && n_stops > 0,
	   "property runs took %d frames back, made %d copies, stopped %d nodes", n_takebacks,
	   n_copies, n_stops);
}

int main(void)
{
	test_create();
	test_first_task();
	test_order();
	test_prefer_loaded();
	test_hold_ahead();
	test_rendered();
	test_take_back();
	test_copy_and_stop();
	test_cancel_silence_hist();
	test_lost();
	test_many_idle();
	test_property();
	return done_testing();
}
