/* Unit tests for losing render nodes: dr_dispatch_lost (frames back at once, the node never chosen
 * again, jobs added later do not count on it) and dr_sched_done_late (a late result accepted once
 * or discarded, never counted twice). */
#include "dr_dispatch.h"
#include "tap.h"

#include <string.h>

static char err[512];
static dr_dispatch_decision dec[16];

static dr_sched *mksched(int n, int nslots)
{
	int fr[64];
	dr_sched_cfg cfg = {.nslots = nslots, .chunk = 1, .retries = 1, .max_consec = 3};
	for (int i = 0; i < n; i++)
		fr[i] = i + 1;
	return dr_sched_create(fr, (size_t)n, &cfg, err, sizeof err);
}

static dr_dispatch *mk(int nslots, bool serve)
{
	dr_dispatch_cfg cfg = {.nslots = nslots, .serve = serve, .node_timeout = 10};
	return dr_dispatch_create(&cfg, 0, err, sizeof err);
}

static int decide_for(dr_dispatch *d, int slot, double now)
{
	int n = dr_dispatch_decide(d, now, dec, 16), got = 0;
	for (int i = 0; i < n; i++)
		got += dec[i].slot == slot;
	return got;
}

static void test_lose(void)
{
	dr_dispatch *d = mk(3, false);
	dr_sched *s = mksched(12, 3);
	dr_dispatch_add_job(d, 0, 0, 0, s, err, sizeof err);
	for (int i = 0; i < 3; i++)
		dr_dispatch_ready(d, i);
	dr_dispatch_decide(d, 0, dec, 16);
	for (int i = 0; i < 3; i++)
		dr_dispatch_request(d, i); /* one task ahead each: 6 frames out */
	dr_dispatch_decide(d, 0, dec, 16);
	const dr_dispatch_node *n1 = dr_dispatch_node_get(d, 1);
	int held = n1->nframes;
	size_t pending = dr_sched_count(s).pending;
	ok(held == 2, "node 1 holds a frame in flight and one ahead (%d)", held);
	is_int(dr_dispatch_lost(d, 1), held, "losing node 1 returns its frames");
	is_int((int)dr_sched_count(s).pending, (int)pending + held, "they are pending again");
	ok(n1->lost && n1->stopped && n1->nframes == 0, "node 1 is lost and holds nothing");
	is_int(dr_dispatch_live(d), 2, "two nodes live");
	is_int(dr_dispatch_lost(d, 1), 0, "losing it again changes nothing");
	for (int i = 0; i < 12; i++) {
		dr_dispatch_request(d, 1);
		ok(decide_for(d, 1, 1 + i) == 0, "round %d: nothing for the lost node", i);
	}
	ok(dr_dispatch_silent(d, 100) != 1, "a lost node is never reported silent again");
	ok(dr_sched_slot(s, 1)->gone, "its slot is gone in the job's schedule");

	/* a job added afterwards never counts on the lost node */
	dr_sched *s2 = mksched(4, 3);
	dr_dispatch_add_job(d, 1, 5, 1, s2, err, sizeof err);
	ok(dr_sched_slot(s2, 1)->gone && dr_sched_usable(s2) == 2,
	   "a later job's schedule leaves the lost node out");
	dr_dispatch_lost(d, 0);
	dr_dispatch_lost(d, 2);
	is_int(dr_dispatch_live(d), 0, "all lost: none live");
	is_int(dr_sched_usable(s), 0, "and no slot is usable");
	dr_dispatch_destroy(d);
	dr_sched_destroy(s);
	dr_sched_destroy(s2);
}

static void test_late(void)
{
	dr_sched *s = mksched(4, 3);
	int f[4], others[2];

	/* slot 0 starts frame 1 and is dropped (lost); frame 1 is pending again */
	is_int(dr_sched_next(s, 0, 0, f, 1), 1, "slot 0 gets a frame");
	int fr = f[0];
	dr_sched_drop(s, 0);
	ok(dr_sched_item(s, (size_t)dr_sched_index(s, fr))->state == DR_F_PENDING,
	   "its frame is pending after the drop");
	is_int(dr_sched_done_late(s, 0, fr, 2.0, others), 0, "a late result for it is accepted");
	ok(others[0] == -1 && others[1] == -1, "nobody else was rendering it");
	const dr_fitem *it = dr_sched_item(s, (size_t)dr_sched_index(s, fr));
	ok(it->state == DR_F_DONE && it->slot == 0 && it->attempts == 1 && it->seconds == 2.0,
	   "done, credited to the lost slot, one attempt");
	is_int(dr_sched_done_late(s, 0, fr, 2.0, others), -1, "the same result again: discarded");
	is_int((int)dr_sched_count(s).done, 1, "counted once");

	/* the frame was handed to slot 1 meanwhile: the late result wins, slot 1 drops its copy */
	int g[4];
	is_int(dr_sched_next(s, 1, 1, g, 1), 1, "slot 1 gets another frame");
	is_int(dr_sched_done_late(s, 0, g[0], 1.0, others), 0, "a late result for it wins");
	ok(others[0] == 1 && others[1] == -1, "slot 1 is named to drop its copy");
	is_int(dr_sched_done(s, 1, g[0], 1.5), -1, "slot 1's own result later is not counted");
	is_int((int)dr_sched_count(s).done, 2, "two frames done, each once");
	is_int((int)dr_sched_count(s).running, 0, "nothing running");
	is_int(dr_sched_done_late(s, 0, 999, 1.0, others), -1, "an unknown frame is discarded");
	dr_sched_destroy(s);
}

int main(void)
{
	test_lose();
	test_late();
	return done_testing();
}
