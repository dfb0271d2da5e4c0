/* Unit tests for dr_sched: hand-out order, chunks, skip/done/fail, retries, exclusion, drop, and a
 * randomized property test. */
#include "dr_sched.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>

static char err[512];

static bool mk_tail_control; /* property runs with tail control */

static dr_sched *mk(const int *frames, size_t n, int nslots, int chunk, int retries, int max_consec)
{
	dr_sched_cfg cfg = {.nslots = nslots,
	                    .chunk = chunk,
	                    .retries = retries,
	                    .max_consec = max_consec,
	                    .tail_control = mk_tail_control};
	err[0] = '\0';
	dr_sched *s = dr_sched_create(frames, n, &cfg, err, sizeof err);
	if (!s)
		printf("# create failed: %s\n", err);
	return s;
}

static const dr_fitem *item_of(const dr_sched *s, int frame)
{
	for (size_t i = 0; i < dr_sched_size(s); i++)
		if (dr_sched_item(s, i)->frame == frame)
			return dr_sched_item(s, i);
	return NULL;
}

/* Counts equal to P R D S F (pending, running, done, skipped, failed)? Prints them if not. */
static int counts_are(const dr_sched *s, size_t p, size_t r, size_t d, size_t sk, size_t f)
{
	dr_sched_counts c = dr_sched_count(s);
	int same = c.pending == p && c.running == r && c.done == d && c.skipped == sk &&
	           c.failed == f && c.total == dr_sched_size(s);
	if (!same)
		printf("#   counts: total %zu pending %zu running %zu done %zu skipped %zu failed "
		       "%zu\n",
		       c.total, c.pending, c.running, c.done, c.skipped, c.failed);
	return same;
}

static void test_create(void)
{
	static const int f[] = {1, 2, 3};
	dr_sched_cfg bad[] = {
	        {.nslots = 0, .chunk = 1, .retries = 0, .max_consec = 1},
	        {.nslots = 1, .chunk = 0, .retries = 0, .max_consec = 1},
	        {.nslots = 1, .chunk = 1, .retries = -1, .max_consec = 1},
	        {.nslots = 1, .chunk = 1, .retries = 0, .max_consec = 0},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		ok(dr_sched_create(f, 3, &bad[i], err, sizeof err) == NULL && err[0],
		   "bad configuration %zu refused with a message", i);
	}
	dr_sched_cfg good = {.nslots = 1, .chunk = 1, .retries = 0, .max_consec = 1};
	err[0] = '\0';
	ok(dr_sched_create(f, 0, &good, err, sizeof err) == NULL && err[0], "no frames refused");

	dr_sched *s = mk(f, 3, 2, 1, 0, 1);
	ok(s != NULL, "created");
	is_int(dr_sched_size(s), 3, "size");
	ok(counts_are(s, 3, 0, 0, 0, 0), "all pending at start");
	ok(!dr_sched_finished(s), "not finished at start");
	is_int(dr_sched_usable(s), 2, "both slots usable");
	ok(dr_sched_item(s, 3) == NULL, "item past the end is NULL");
	ok(dr_sched_slot(s, -1) == NULL && dr_sched_slot(s, 2) == NULL,
	   "slot out of range is NULL");
	ok(dr_sched_oldest(s) == NULL, "no oldest when nothing runs");
	const dr_fitem *it = dr_sched_item(s, 0);
	ok(it->frame == 1 && it->state == DR_F_PENDING && it->attempts == 0 && it->slot == -1 &&
	           it->last_error == NULL,
	   "fresh item: pending, no attempts, no slot, no error");
	dr_sched_destroy(s);
	dr_sched_destroy(NULL);
	ok(1, "destroy(NULL) is harmless");
}

static void test_order(void)
{
	static const int f[] = {10, 20, 30, 40};
	int out[8];
	dr_sched *s = mk(f, 4, 2, 1, 0, 1);

	is_int(dr_sched_next(s, 0, 1.0, out, 8), 1, "chunk 1: one frame");
	is_int(out[0], 10, "first frame first");
	is_int(dr_sched_next(s, 1, 2.0, out, 8), 1, "second slot gets one");
	is_int(out[0], 20, "then the second frame");
	const dr_fitem *it = item_of(s, 10);
	ok(it->state == DR_F_RUNNING && it->slot == 0 && it->attempts == 1 && it->started == 1.0,
	   "handed-out frame is running on its slot with one attempt and its start time");
	ok(counts_are(s, 2, 2, 0, 0, 0), "two pending, two running");
	is_int(dr_sched_next(s, -1, 3.0, out, 8), -1, "negative slot gets -1");
	is_int(dr_sched_next(s, 2, 3.0, out, 8), -1, "slot past the end gets -1");
	ok(counts_are(s, 2, 2, 0, 0, 0), "bad slots changed nothing");
	is_int(dr_sched_next(s, 0, 3.0, out, 0), 0, "max 0: nothing handed out");
	ok(counts_are(s, 2, 2, 0, 0, 0), "max 0 changed nothing");
	is_int(dr_sched_next(s, 0, 3.0, out, 8), 1, "slot 0 again");
	is_int(out[0], 30, "third frame");
	is_int(dr_sched_next(s, 0, 4.0, out, 8), 1, "slot 0 again");
	is_int(out[0], 40, "fourth frame");
	is_int(dr_sched_next(s, 0, 5.0, out, 8), 0, "nothing pending but some running: 0");
	is_int(dr_sched_oldest(s)->frame, 10, "oldest running is the first handed out");
	is_int(dr_sched_done(s, 0, 10, 1.5), 0, "frame 10 done");
	is_int(dr_sched_oldest(s)->frame, 20, "oldest is now frame 20");
	is_int(dr_sched_done(s, 1, 20, 1.0), 0, "20 done");
	is_int(dr_sched_done(s, 0, 30, 1.0), 0, "30 done");
	ok(!dr_sched_finished(s), "not finished while 40 runs");
	is_int(dr_sched_next(s, 1, 6.0, out, 8), 0, "still 0 while 40 runs");
	is_int(dr_sched_done(s, 0, 40, 1.0), 0, "40 done");
	ok(dr_sched_finished(s), "finished");
	ok(counts_are(s, 0, 0, 4, 0, 0), "all done");
	is_int(dr_sched_next(s, 0, 7.0, out, 8), -1, "finished: -1");
	is_int(dr_sched_next(s, 1, 7.0, out, 8), -1, "finished: -1 for every slot");
	ok(dr_sched_oldest(s) == NULL, "no oldest when finished");
	dr_sched_destroy(s);
}

static void test_oldest_by_time(void)
{
	static const int f[] = {1, 2, 3};
	int out[4];
	dr_sched *s = mk(f, 3, 3, 1, 0, 1);
	dr_sched_next(s, 0, 50.0, out, 4);
	dr_sched_next(s, 1, 10.0, out, 4);
	dr_sched_next(s, 2, 30.0, out, 4);
	is_int(dr_sched_oldest(s)->frame, 2, "oldest by start time, not by frame");
	dr_sched_destroy(s);
}

static void test_chunks(void)
{
	int f[10];
	int out[16];
	for (int i = 0; i < 10; i++)
		f[i] = i + 1;
	dr_sched *s = mk(f, 10, 2, 4, 0, 1);

	is_int(dr_sched_next(s, 0, 0, out, 16), 4, "chunk 4: four frames");
	ok(out[0] == 1 && out[1] == 2 && out[2] == 3 && out[3] == 4, "frames 1-4 in order");
	is_int(dr_sched_next(s, 1, 0, out, 2), 2, "MAX below chunk caps the task");
	ok(out[0] == 5 && out[1] == 6, "frames 5-6");
	is_int(dr_sched_next(s, 1, 0, out, 16), 4, "next chunk");
	ok(out[0] == 7 && out[3] == 10, "frames 7-10");
	is_int(dr_sched_done(s, 0, 3, 1), 0, "a frame in the middle of a chunk can finish first");
	is_int(dr_sched_fail(s, 0, 2, "boom"), 0, "2 fails (no retries)");
	ok(counts_are(s, 0, 8, 1, 0, 1), "counts after one done and one failed");
	dr_sched_destroy(s);

	int g[] = {1, 2, 3};
	s = mk(g, 3, 1, 8, 0, 1);
	is_int(dr_sched_next(s, 0, 0, out, 16), 3, "last chunk is partial");
	is_int(dr_sched_next(s, 0, 0, out, 16), 0, "then 0 while they run");
	dr_sched_destroy(s);
}

static void test_skip(void)
{
	static const int f[] = {1, 2, 3, 4};
	int out[8];
	dr_sched *s = mk(f, 4, 1, 4, 0, 1);

	is_int(dr_sched_skip(s, 2), 0, "skip a pending frame");
	is_int(dr_sched_skip(s, 2), -1, "skip twice refused");
	is_int(dr_sched_skip(s, 99), -1, "skip unknown frame refused");
	is_int(dr_sched_skip(s, 0), -1, "skip frame below the first refused");
	ok(counts_are(s, 3, 0, 0, 1, 0), "one skipped");
	is_int(item_of(s, 2)->state, DR_F_SKIPPED, "state skipped");
	is_int(dr_sched_next(s, 0, 0, out, 8), 3, "skipped frame not handed out");
	ok(out[0] == 1 && out[1] == 3 && out[2] == 4, "frames 1, 3, 4");
	is_int(dr_sched_skip(s, 3), -1, "skip a running frame refused");
	for (int i = 0; i < 3; i++)
		dr_sched_done(s, 0, out[i], 1);
	is_int(dr_sched_skip(s, 1), -1, "skip a done frame refused");
	ok(dr_sched_finished(s), "finished with one skipped");
	ok(counts_are(s, 0, 0, 3, 1, 0), "three done, one skipped");
	dr_sched_destroy(s);

	s = mk(f, 4, 1, 1, 0, 1);
	for (int i = 0; i < 4; i++)
		dr_sched_skip(s, f[i]);
	ok(dr_sched_finished(s), "all skipped: finished before anything ran");
	is_int(dr_sched_next(s, 0, 0, out, 8), -1, "and next says -1");
	dr_sched_destroy(s);
}

static void test_done(void)
{
	static const int f[] = {1, 2};
	int out[4];
	dr_sched *s = mk(f, 2, 2, 1, 0, 1);

	is_int(dr_sched_done(s, 0, 1, 1), -1, "done on a pending frame refused");
	dr_sched_next(s, 0, 0, out, 4);
	is_int(dr_sched_done(s, 1, 1, 1), -1, "done from the wrong slot refused");
	is_int(dr_sched_done(s, 0, 7, 1), -1, "done on an unknown frame refused");
	is_int(dr_sched_done(s, 0, 1, 2.5), 0, "done from the right slot");
	is_int(dr_sched_done(s, 0, 1, 2.5), -1, "done twice refused");
	is_int(dr_sched_fail(s, 0, 1, "x"), -1, "fail after done refused");
	const dr_fitem *it = item_of(s, 1);
	ok(it->state == DR_F_DONE && it->seconds == 2.5 && it->slot == 0,
	   "item: done, seconds, slot");
	const dr_slot_stats *st = dr_sched_slot(s, 0);
	ok(st->done == 1 && st->busy == 2.5 && st->failed == 0, "slot stats count the frame");
	ok(counts_are(s, 1, 0, 1, 0, 0), "counts");
	dr_sched_destroy(s);
}

static void test_retries(void)
{
	static const int f[] = {5};
	int out[4];
	char msg[32];
	dr_sched *s = mk(f, 1, 1, 1, 2, 100);

	for (int a = 1; a <= 3; a++) {
		is_int(dr_sched_next(s, 0, a, out, 4), 1, "attempt %d handed out to the only slot",
		       a);
		is_int(item_of(s, 5)->attempts, a, "attempts = %d", a);
		snprintf(msg, sizeof msg, "error %d", a);
		is_int(dr_sched_fail(s, 0, 5, msg), 0, "attempt %d fails", a);
		if (a < 3)
			ok(item_of(s, 5)->state == DR_F_PENDING, "pending again after attempt %d",
			   a);
	}
	const dr_fitem *it = item_of(s, 5);
	is_int(it->state, DR_F_FAILED, "retries=2: failed after 3 attempts");
	is_int(it->attempts, 3, "three attempts in all");
	is_str(it->last_error, "error 3", "last error kept");
	ok(counts_are(s, 0, 0, 0, 0, 1), "one failed");
	ok(dr_sched_finished(s), "finished");
	is_int(dr_sched_slot(s, 0)->failed, 3, "slot counts three failed attempts");
	is_int(dr_sched_next(s, 0, 9, out, 4), -1, "next: -1");
	dr_sched_destroy(s);

	s = mk(f, 1, 1, 1, 0, 100);
	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_fail(s, 0, 5, NULL);
	is_int(item_of(s, 5)->state, DR_F_FAILED, "retries=0: failed after one attempt");
	ok(item_of(s, 5)->last_error && item_of(s, 5)->last_error[0], "NULL error gets a message");
	dr_sched_destroy(s);

	/* A retry succeeds: the error of the failed attempt stays as history, state is done. */
	s = mk(f, 1, 1, 1, 1, 100);
	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_fail(s, 0, 5, "first");
	is_int(dr_sched_next(s, 0, 0, out, 4), 1, "retry handed out");
	is_int(dr_sched_done(s, 0, 5, 1), 0, "retry succeeds");
	ok(item_of(s, 5)->state == DR_F_DONE && item_of(s, 5)->attempts == 2,
	   "done after 2 attempts");
	dr_sched_destroy(s);
}

static void test_prefer_other_slot(void)
{
	static const int f[] = {1, 2, 3};
	int out[4];
	dr_sched *s = mk(f, 3, 2, 1, 5, 100);

	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_fail(s, 0, 1, "bad");
	is_int(dr_sched_next(s, 0, 0, out, 4), 1, "slot 0 asks again");
	is_int(out[0], 2, "it gets frame 2, not the frame it failed");
	is_int(dr_sched_next(s, 1, 0, out, 4), 1, "slot 1 asks");
	is_int(out[0], 1, "slot 1 gets the failed frame first");
	is_int(item_of(s, 1)->attempts, 2, "second attempt");
	dr_sched_destroy(s);

	/* Only the failed frame left: the slot that failed it waits while another can take it. */
	static const int one[] = {7};
	s = mk(one, 1, 3, 1, 5, 100);
	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_fail(s, 0, 7, "bad");
	is_int(dr_sched_next(s, 0, 0, out, 4), 0,
	       "slot 0 gets nothing while others have not tried");
	is_int(dr_sched_next(s, 1, 0, out, 4), 1, "slot 1 gets it");
	dr_sched_fail(s, 1, 7, "bad");
	is_int(dr_sched_next(s, 0, 0, out, 4), 0, "slot 0 still waits: slot 2 has not tried");
	is_int(dr_sched_next(s, 1, 0, out, 4), 0, "slot 1 waits too");
	dr_sched_drop(s, 2);
	is_int(dr_sched_next(s, 1, 0, out, 4), 1,
	       "slot 2 gone: every usable slot failed it, so a failed slot gets it again");
	is_int(out[0], 7, "frame 7");
	dr_sched_fail(s, 1, 7, "bad");
	is_int(dr_sched_next(s, 0, 0, out, 4), 1, "and slot 0 may retry it too");
	dr_sched_destroy(s);

	/* Same slot when it is the only usable one (other excluded). */
	s = mk(f, 3, 2, 1, 5, 1);
	dr_sched_next(s, 1, 0, out, 4); /* frame 1 on slot 1 */
	dr_sched_next(s, 0, 0, out, 4); /* frame 2 on slot 0 */
	dr_sched_fail(s, 0, 2, "bad");
	ok(dr_sched_slot(s, 0)->excluded, "slot 0 excluded (max_consec 1)");
	is_int(dr_sched_done(s, 1, 1, 1), 0, "slot 1 finishes frame 1");
	is_int(dr_sched_next(s, 1, 0, out, 4), 1, "slot 1 gets the next");
	is_int(out[0], 2, "the retried frame 2 comes first");
	dr_sched_fail(s, 1, 2, "bad");
	ok(dr_sched_slot(s, 1)->excluded, "slot 1 excluded too");
	is_int(dr_sched_next(s, 1, 0, out, 4), -1, "excluded: -1");
	dr_sched_destroy(s);

	/* More than 8 slots: the failure bits of slots beyond the first byte. */
	int many[4] = {1, 2, 3, 4};
	s = mk(many, 4, 20, 1, 5, 100);
	for (int k = 0; k < 17; k++)
		dr_sched_drop(s, k);
	is_int(dr_sched_usable(s), 3, "three of twenty usable");
	dr_sched_next(s, 17, 0, out, 4);
	dr_sched_fail(s, 17, 1, "bad");
	is_int(dr_sched_next(s, 17, 0, out, 4), 1, "slot 17 asks again");
	is_int(out[0], 2, "it does not get the frame it failed");
	is_int(dr_sched_next(s, 19, 0, out, 4), 1, "slot 19 asks");
	is_int(out[0], 1, "it gets the failed frame");
	dr_sched_destroy(s);
}

static void test_exclusion(void)
{
	int f[10];
	int out[4];
	for (int i = 0; i < 10; i++)
		f[i] = i;
	dr_sched *s = mk(f, 10, 2, 1, 10, 3);

	/* fail, fail, done, fail, fail: never three in a row. */
	const char plan[] = "ffdff";
	for (int i = 0; plan[i]; i++) {
		dr_sched_next(s, 0, 0, out, 4);
		if (plan[i] == 'f')
			dr_sched_fail(s, 0, out[0], "bad");
		else
			dr_sched_done(s, 0, out[0], 1);
	}
	ok(!dr_sched_slot(s, 0)->excluded, "a success resets the run of failures");
	is_int(dr_sched_slot(s, 0)->consec_failed, 2, "two in a row since the success");
	is_int(dr_sched_slot(s, 0)->failed, 4, "four failures in all");
	is_int(dr_sched_next(s, 0, 0, out, 4), 1, "still gets work");
	dr_sched_fail(s, 0, out[0], "bad");
	ok(dr_sched_slot(s, 0)->excluded, "third failure in a row excludes the slot");
	is_int(dr_sched_usable(s), 1, "one usable slot left");
	is_int(dr_sched_next(s, 0, 0, out, 4), -1, "excluded slot gets -1");
	is_int(dr_sched_fail_stranded(s, "x"), 0,
	       "fail_stranded does nothing while a slot is usable");
	is_int(dr_sched_next(s, 1, 0, out, 4), 1, "the other slot gets work");
	dr_sched_destroy(s);

	/* Chunks: a slot excluded mid-chunk may still report its other frames. */
	s = mk(f, 10, 2, 3, 10, 1);
	is_int(dr_sched_next(s, 0, 0, out, 4), 3, "chunk of 3");
	dr_sched_fail(s, 0, out[0], "bad");
	ok(dr_sched_slot(s, 0)->excluded, "excluded after one failure");
	is_int(dr_sched_done(s, 0, out[1], 1), 0,
	       "an excluded slot's running frame can still finish");
	is_int(dr_sched_fail(s, 0, out[2], "bad"), 0, "or fail");
	ok(counts_are(s, 9, 0, 1, 0, 0), "failed frames back to pending");
	dr_sched_destroy(s);
}

/* One frame that always fails must not take out a lone render node: its repeats on the same slot
 * happen only once every usable slot has failed it, and speak against the frame. */
static void test_bad_frame_lone_slot(void)
{
	static const int f[] = {1, 2, 3, 4, 5};
	int out[4], k, guard = 0;
	dr_sched *s = mk(f, 5, 1, 1, 3, 3);

	while ((k = dr_sched_next(s, 0, 0, out, 4)) > 0 && guard++ < 100) {
		if (out[0] == 1)
			dr_sched_fail(s, 0, 1, "bad frame");
		else
			dr_sched_done(s, 0, out[0], 1);
	}
	is_int(k, -1, "the loop ends with -1");
	ok(!dr_sched_slot(s, 0)->excluded, "the lone slot is not excluded for one bad frame");
	is_int(item_of(s, 1)->attempts, 4, "the bad frame got all 3 + 1 attempts");
	is_int(item_of(s, 1)->state, DR_F_FAILED, "and failed");
	ok(counts_are(s, 0, 0, 4, 0, 1), "the other four frames rendered");
	dr_sched_destroy(s);

	/* A lone node that fails everything is still taken out after max_consec different frames.
	 */
	s = mk(f, 5, 1, 1, 1, 3);
	guard = 0;
	while ((k = dr_sched_next(s, 0, 0, out, 4)) > 0 && guard++ < 100)
		dr_sched_fail(s, 0, out[0], "broken node");
	ok(dr_sched_slot(s, 0)->excluded, "a node failing every frame is excluded");
	is_int(dr_sched_slot(s, 0)->failed, 5, "after 3 frames x 2 attempts, less the last one");
	is_int(dr_sched_fail_stranded(s, "no node"), 3, "the rest (3 of them) are stranded");
	dr_sched_destroy(s);
}

static void test_drop_requeue(void)
{
	int f[6] = {1, 2, 3, 4, 5, 6};
	int out[8];
	dr_sched *s = mk(f, 6, 2, 3, 1, 100);

	is_int(dr_sched_next(s, 0, 0, out, 8), 3, "slot 0 takes 1-3");
	is_int(dr_sched_next(s, 1, 0, out, 8), 3, "slot 1 takes 4-6");
	dr_sched_done(s, 0, 1, 1);
	is_int(dr_sched_requeue(s, 0), 2, "requeue gives back the two unfinished frames");
	ok(counts_are(s, 2, 3, 1, 0, 0), "counts after requeue");
	ok(item_of(s, 2)->state == DR_F_PENDING && item_of(s, 2)->attempts == 0,
	   "requeued frame pending, attempt not counted");
	ok(dr_sched_usable(s) == 2 && !dr_sched_slot(s, 0)->gone, "requeue leaves the slot usable");
	is_int(dr_sched_slot(s, 0)->failed, 0, "requeue is not a failure");
	is_int(dr_sched_requeue(s, 0), 0, "requeue again: nothing");
	is_int(dr_sched_next(s, 0, 0, out, 8), 2, "slot 0 takes them again");
	ok(out[0] == 2 && out[1] == 3, "in order");
	is_int(item_of(s, 2)->attempts, 1, "one attempt");

	dr_sched_drop(s, 1);
	ok(dr_sched_slot(s, 1)->gone, "dropped slot is gone");
	is_int(dr_sched_usable(s), 1, "one usable");
	ok(counts_are(s, 3, 2, 1, 0, 0), "dropped slot's frames pending");
	ok(item_of(s, 4)->attempts == 0 && item_of(s, 4)->state == DR_F_PENDING,
	   "drop does not count an attempt");
	is_int(dr_sched_next(s, 1, 0, out, 8), -1, "gone slot gets -1");
	is_int(dr_sched_done(s, 1, 4, 1), -1, "gone slot cannot report a requeued frame");
	dr_sched_done(s, 0, 2, 1);
	dr_sched_done(s, 0, 3, 1);
	is_int(dr_sched_next(s, 0, 0, out, 8), 3, "slot 0 takes 4-6");
	ok(out[0] == 4 && out[2] == 6, "in order");
	for (int i = 0; i < 3; i++)
		dr_sched_done(s, 0, out[i], 1);
	ok(dr_sched_finished(s), "finished");
	ok(counts_are(s, 0, 0, 6, 0, 0), "all done");
	dr_sched_destroy(s);

	/* A retried frame requeued keeps its earlier attempts. */
	s = mk(f, 1, 2, 1, 3, 100);
	dr_sched_next(s, 0, 0, out, 8);
	dr_sched_fail(s, 0, 1, "bad");
	dr_sched_next(s, 1, 0, out, 8);
	is_int(item_of(s, 1)->attempts, 2, "two attempts");
	dr_sched_requeue(s, 1);
	is_int(item_of(s, 1)->attempts, 1, "requeue takes back only the current attempt");
	is_str(item_of(s, 1)->last_error, "bad", "last error kept through requeue");
	dr_sched_destroy(s);
}

static void test_stranded(void)
{
	static const int f[] = {1, 2, 3, 4};
	int out[4];
	dr_sched *s = mk(f, 4, 2, 1, 3, 1);

	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_fail(s, 0, 1, "crashed");
	dr_sched_next(s, 1, 0, out, 4); /* frame 1 again, on slot 1 */
	is_int(out[0], 1, "slot 1 retries frame 1");
	is_int(dr_sched_fail_stranded(s, "nobody left"), 0, "slot 1 usable: nothing stranded");
	dr_sched_drop(s, 1);
	is_int(dr_sched_usable(s), 0, "no usable slot");
	ok(!dr_sched_finished(s), "not finished: frames pending");
	is_int(dr_sched_next(s, 0, 0, out, 4), -1, "excluded slot: -1");
	is_int(dr_sched_fail_stranded(s, "nobody left"), 4, "all four pending frames fail");
	ok(counts_are(s, 0, 0, 0, 0, 4), "four failed");
	ok(dr_sched_finished(s), "finished");
	is_str(item_of(s, 1)->last_error, "crashed", "a frame's own last error is kept");
	is_str(item_of(s, 3)->last_error, "nobody left", "untried frames get WHY");
	is_int(item_of(s, 3)->attempts, 0, "no attempt counted for stranded frames");
	is_int(dr_sched_fail_stranded(s, "again"), 0, "second call: nothing left");
	dr_sched_destroy(s);

	/* Running frames are left alone (an excluded slot may still finish them). */
	s = mk(f, 4, 1, 2, 3, 1);
	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_fail(s, 0, 1, "bad");
	is_int(dr_sched_fail_stranded(s, "gone"), 3, "pending frames fail");
	ok(counts_are(s, 0, 1, 0, 0, 3), "the running frame still runs");
	ok(!dr_sched_finished(s), "not finished until it reports");
	dr_sched_done(s, 0, 2, 1);
	ok(dr_sched_finished(s), "finished");
	dr_sched_destroy(s);
}

/* dr_sched_next_failed visits the failed frames, in frame order, and only them. */
static void test_next_failed(void)
{
	static const int f[] = {1, 2, 3, 4, 5, 6};
	int out[6], seen[8], n = 0;
	dr_sched *s = mk(f, 6, 2, 1, 0, 10);

	is_int(dr_sched_next_failed(s, 0), -1, "next_failed: none at first");
	dr_sched_next(s, 0, 0, out, 6);     /* 1 */
	dr_sched_next(s, 1, 0, out + 1, 6); /* 2 */
	dr_sched_fail(s, 1, out[1], "second first");
	dr_sched_done(s, 0, out[0], 1);
	dr_sched_next(s, 0, 0, out, 6); /* 3 */
	dr_sched_skip(s, 5);
	dr_sched_fail(s, 0, out[0], "then the third");
	dr_sched_drop(s, 0);
	dr_sched_drop(s, 1);
	dr_sched_fail_stranded(s, "nobody left"); /* 4 and 6 */
	for (long i = dr_sched_next_failed(s, 0); i >= 0 && n < 8;
	     i = dr_sched_next_failed(s, i + 1)) {
		const dr_fitem *it = dr_sched_item(s, (size_t)i);
		seen[n++] = it->state == DR_F_FAILED ? it->frame : -it->frame;
	}
	ok(n == 4 && seen[0] == 2 && seen[1] == 3 && seen[2] == 4 && seen[3] == 6,
	   "next_failed: frames 2 3 4 6 (not the done 1 or the skipped 5), in frame order");
	is_str(dr_sched_item(s, (size_t)dr_sched_next_failed(s, 0))->last_error, "second first",
	       "next_failed: with their errors");
	is_int(dr_sched_next_failed(s, 6), -1, "next_failed: -1 past the end");
	dr_sched_destroy(s);
}

/* xorshift64*: the same sequence on every libc. */
static uint64_t rng_state;
static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (unsigned)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

#define P_SLOTS  6
#define P_FRAMES 300

/* Random done/fail/drop/requeue against a model; returns the number of broken invariants. */
static int property_run(uint64_t seed, int *steps_out)
{
	int frames[P_FRAMES];
	int holder[P_FRAMES]; /* model: slot running the frame, -1 none */
	int copy[P_FRAMES];   /* model: slot running a speculative copy of it, -1 none */
	int copies[P_FRAMES]; /* model: copies made of it (each counts as an attempt) */
	int dones[P_FRAMES];
	int out[8], bad = 0, steps = 0;
	int chunk = 1 + (int)(seed % 4), retries = (int)(seed % 3),
	    max_consec = 2 + (int)(seed % 3);

	rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	for (int i = 0; i < P_FRAMES; i++) {
		frames[i] = 3 * i + 1;
		holder[i] = copy[i] = -1;
		dones[i] = copies[i] = 0;
	}
	dr_sched *s = mk(frames, P_FRAMES, P_SLOTS, chunk, retries, max_consec);
	if (!s)
		return 1;
	for (int i = 0; i < P_FRAMES; i++)
		if (rnd(10) == 0 && dr_sched_skip(s, frames[i]) != 0)
			bad++;

	while (!dr_sched_finished(s) && steps < 20000) {
		int slot = (int)rnd(P_SLOTS);
		int held[P_FRAMES], nh = 0;
		steps++;
		for (int i = 0; i < P_FRAMES; i++)
			if (holder[i] == slot || copy[i] == slot)
				held[nh++] = i;
		unsigned r = rnd(1000);
		if (r < 3) {
			size_t k = (r == 0) ? (dr_sched_drop(s, slot), (size_t)nh)
			                    : dr_sched_requeue(s, slot);
			if (k != (size_t)nh) {
				printf("#   seed %llu: requeue gave %zu, model %d\n",
				       (unsigned long long)seed, k, nh);
				bad++;
			}
			for (int j = 0; j < nh; j++) {
				int i = held[j];
				if (holder[i] == slot)
					holder[i] = copy[i], copy[i] = -1;
				else
					copy[i] = -1;
			}
		} else if (nh > 0) {
			int i = held[rnd((unsigned)nh)];
			int wrong = (int)rnd(P_SLOTS);
			if (wrong != holder[i] && wrong != copy[i] &&
			    dr_sched_done(s, wrong, frames[i], 1) != -1) {
				printf("#   seed %llu: done from a wrong slot accepted\n",
				       (unsigned long long)seed);
				bad++;
			}
			if (rnd(100) < 80) {
				if (dr_sched_done(s, slot, frames[i], 1.0) != 0)
					bad++;
				dones[i]++;
				holder[i] = copy[i] = -1;
			} else {
				if (dr_sched_fail(s, slot, frames[i], "random failure") != 0)
					bad++;
				if (holder[i] == slot)
					holder[i] = copy[i], copy[i] = -1;
				else
					copy[i] = -1;
			}
		} else {
			int k = dr_sched_next(s, slot, steps, out, 8);
			const dr_slot_stats *st = dr_sched_slot(s, slot);
			if (k < 0 && !st->excluded && !st->gone && !dr_sched_finished(s))
				bad++, printf("#   seed %llu: -1 for a usable slot\n",
				              (unsigned long long)seed);
			if (k > chunk)
				bad++;
			for (int j = 0; j < k; j++) {
				const dr_fitem *it = item_of(s, out[j]);
				int i = (out[j] - 1) / 3;
				if (holder[i] >= 0 && k == 1 && copy[i] < 0 && holder[i] != slot &&
				    dr_sched_count(s).pending == 0) {
					copy[i] = slot; /* a speculative copy of a straggler */
					copies[i]++;
					continue;
				}
				if (!it || holder[i] != -1 || dones[i]) {
					printf("#   seed %llu: frame %d handed out while held or "
					       "done\n",
					       (unsigned long long)seed, out[j]);
					bad++;
				}
				if (j > 0 && out[j] <= out[j - 1])
					bad++;
				holder[i] = slot;
			}
		}
		if (dr_sched_usable(s) == 0 && dr_sched_count(s).running == 0)
			dr_sched_fail_stranded(s, "no slot left");

		/* Invariants. */
		dr_sched_counts c = dr_sched_count(s);
		size_t n[5] = {0};
		if (c.pending + c.running + c.done + c.skipped + c.failed != c.total ||
		    c.total != P_FRAMES) {
			printf("#   seed %llu step %d: counts do not sum\n",
			       (unsigned long long)seed, steps);
			bad++;
		}
		for (int i = 0; i < P_FRAMES; i++) {
			const dr_fitem *it = dr_sched_item(s, (size_t)i);
			n[it->state]++;
			int running = it->state == DR_F_RUNNING;
			if (running != (holder[i] >= 0) || (running && it->slot != holder[i]) ||
			    (running && it->dup_slot != copy[i])) {
				printf("#   seed %llu step %d: frame %d running on %d, model %d\n",
				       (unsigned long long)seed, steps, it->frame, it->slot,
				       holder[i]);
				bad++;
			}
			if (dones[i] > 1 || (dones[i] == 1) != (it->state == DR_F_DONE))
				bad++;
			if (it->attempts > retries + 1 + copies[i] || it->attempts < 0)
				bad++;
		}
		size_t nf = 0;
		for (long i = dr_sched_next_failed(s, 0); i >= 0;
		     i = dr_sched_next_failed(s, i + 1))
			if (dr_sched_item(s, (size_t)i)->state != DR_F_FAILED || nf++ > c.failed)
				bad++;
		if (nf != c.failed) {
			printf("#   seed %llu step %d: next_failed visits %zu, %zu failed\n",
			       (unsigned long long)seed, steps, nf, c.failed);
			bad++;
		}
		if (n[DR_F_PENDING] != c.pending || n[DR_F_RUNNING] != c.running ||
		    n[DR_F_DONE] != c.done || n[DR_F_SKIPPED] != c.skipped ||
		    n[DR_F_FAILED] != c.failed) {
			printf("#   seed %llu step %d: counts differ from the items\n",
			       (unsigned long long)seed, steps);
			bad++;
		}
		if (bad)
			break;
	}
	if (!dr_sched_finished(s)) {
		printf("#   seed %llu: not finished after %d steps\n", (unsigned long long)seed,
		       steps);
		bad++;
	}
	for (int i = 0; i < P_FRAMES; i++) {
		const dr_fitem *it = dr_sched_item(s, (size_t)i);
		if (it->state != DR_F_DONE && it->state != DR_F_SKIPPED && it->state != DR_F_FAILED)
			bad++;
		if (it->state == DR_F_FAILED && !it->last_error)
			bad++;
		if (it->state == DR_F_DONE && dones[i] != 1)
			bad++;
	}
	dr_sched_counts c = dr_sched_count(s);
	int excl = 0, gone = 0;
	for (int k = 0; k < P_SLOTS; k++) {
		excl += dr_sched_slot(s, k)->excluded;
		gone += dr_sched_slot(s, k)->gone;
	}
	printf("# seed %llu: %zu done, %zu skipped, %zu failed; %d slots excluded, %d gone\n",
	       (unsigned long long)seed, c.done, c.skipped, c.failed, excl, gone);
	dr_sched_destroy(s);
	*steps_out = steps;
	return bad;
}

static void test_property(void)
{
	for (int tail = 0; tail <= 1; tail++) {
		int total_steps = 0;
		mk_tail_control = tail;
		for (uint64_t seed = 1; seed <= 24; seed++) {
			int steps = 0;
			int bad = property_run(seed, &steps);
			total_steps += steps;
			is_int(bad, 0, "random run%s, seed %llu (%d steps): invariants hold",
			       tail ? " with tail control" : "", (unsigned long long)seed, steps);
		}
		ok(total_steps > 5000, "property runs took %d steps in all", total_steps);
	}
	mk_tail_control = false;
}

static dr_sched *mk_tail(const int *frames, size_t n, int nslots)
{
	dr_sched_cfg cfg = {
	        .nslots = nslots, .chunk = 1, .retries = 3, .max_consec = 3, .tail_control = true};
	return dr_sched_create(frames, n, &cfg, err, sizeof err);
}

/* Tail control: sample the range first, then the most expensive stretch first. */
static void test_tail_order(void)
{
	int fr[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, out[4];
	dr_sched *s = mk_tail(fr, 10, 2);

	is_int(dr_sched_next(s, 0, 0, out, 4), 1, "tail: one frame per task");
	is_int(out[0], 1, "tail: the first frame goes first");
	dr_sched_next(s, 1, 0, out, 4);
	is_int(out[0], 10, "tail: then the farthest from it (the last)");
	dr_sched_done(s, 0, 1, 1.0);
	dr_sched_next(s, 0, 1, out, 4);
	is_int(out[0], 5, "tail: still sampling (1 known < 2 slots): the middle of the gap");
	dr_sched_done(s, 1, 10, 10.0);
	dr_sched_done(s, 0, 5, 1.0);
	dr_sched_next(s, 0, 2, out, 4);
	is_int(out[0], 8, "tail: then the stretch nearest the most expensive finished frame");
	dr_sched_next(s, 1, 2, out, 4);
	is_int(out[0], 9, "tail: and the next one of that stretch");
	dr_sched_next(s, 1, 2, out, 4);
	is_int(out[0], 2, "tail: then the cheap frames, in order");
	dr_sched_destroy(s);
}

/* Tail control: a straggler is copied to an idle slot once nothing is pending; first result wins.
 */
static void test_tail_speculate(void)
{
	int fr[3] = {1, 2, 3}, out[4];
	dr_sched *s = mk_tail(fr, 3, 2);

	dr_sched_next(s, 0, 0, out, 4); /* 1 on slot 0 */
	dr_sched_next(s, 1, 0, out, 4); /* 3 on slot 1 */
	dr_sched_done(s, 0, 1, 1.0);
	dr_sched_next(s, 0, 1, out, 4); /* 2 on slot 0 */
	is_int(out[0], 2, "spec: frame 2 on slot 0");
	dr_sched_done(s, 0, 2, 1.0);
	is_int(dr_sched_next(s, 0, 1.5, out, 4), 0, "spec: frame 3 is young: no copy yet");
	is_int(dr_sched_next(s, 0, 5.0, out, 4), 1, "spec: frame 3 ran 5 s (> 2 x 1 s): copy it");
	is_int(out[0], 3, "spec: the copy is frame 3");
	is_int(dr_sched_other(s, 3, 0), 1, "spec: the other copy runs on slot 1");
	is_int(dr_sched_next(s, 0, 9.0, out, 4), 0, "spec: never a third copy");
	ok(counts_are(s, 0, 1, 2, 0, 0), "spec: frame 3 counted running once");
	is_int(dr_sched_fail(s, 1, 3, "crash"), 0, "spec: the original fails");
	ok(counts_are(s, 0, 1, 2, 0, 0), "spec: the copy goes on, frame still running");
	is_int(dr_sched_other(s, 3, 0), -1, "spec: no other copy left");
	is_int(dr_sched_done(s, 0, 3, 2.0), 0, "spec: the copy finishes");
	ok(dr_sched_finished(s), "spec: job finished");
	is_int(item_of(s, 3)->slot, 0, "spec: the winner is recorded");
	dr_sched_destroy(s);

	/* losing the original's slot promotes the copy */
	s = mk_tail(fr, 3, 2);
	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_next(s, 1, 0, out, 4);
	dr_sched_done(s, 0, 1, 1.0);
	dr_sched_next(s, 0, 1, out, 4);
	dr_sched_done(s, 0, 2, 1.0);
	dr_sched_next(s, 0, 5.0, out, 4);
	is_int(dr_sched_requeue(s, 1), 1, "spec: requeue the original's slot");
	ok(counts_are(s, 0, 1, 2, 0, 0), "spec: frame 3 still running (the copy)");
	is_int(dr_sched_done(s, 0, 3, 2.0), 0, "spec: the copy's result counts");
	ok(dr_sched_finished(s), "spec: finished");
	dr_sched_destroy(s);
}

/* Tail control: a frame still running long after its neighbours finished marks its stretch as
 * expensive before it ends. */
static void test_tail_running_estimate(void)
{
	int fr[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, out[4];
	dr_sched *s = mk_tail(fr, 10, 2);

	dr_sched_next(s, 0, 0, out, 4); /* 1 */
	dr_sched_next(s, 1, 0, out, 4); /* 10, still running below */
	dr_sched_done(s, 0, 1, 1.0);
	dr_sched_next(s, 0, 1, out, 4);
	is_int(out[0], 5, "est: sampling picks the middle");
	dr_sched_done(s, 0, 5, 1.0);
	dr_sched_next(s, 0, 3, out, 4);
	is_int(out[0], 8,
	       "est: frame 10 running for 3 s (neighbours took 1 s): its stretch (8-9) first");
	dr_sched_destroy(s);
}

/* A million frames, a thousand slots, tail control on: every frame once, the range sampled
 * first, the expensive stretch (frames 400,000-499,999 cost 10 s, the rest 1 s) before the cheap
 * frames, and a straggler at the end copied. Slots report round-robin, one frame each. */
static void test_large(void)
{
	enum { N = 1000000, SLOTS = 1000 };
	int *fr = malloc(N * sizeof *fr), *hold = malloc(SLOTS * sizeof *hold);
	long *order = malloc(N * sizeof *order);
	int out[4], k, copies = 0;
	long handed = 0;
	double now = 0, pos_hi = 0, pos_lo = 0;
	int straggler = -1;
	bool spread;
	dr_sched *s;

	for (int i = 0; i < N; i++)
		fr[i] = i + 1;
	s = mk_tail(fr, N, SLOTS);
	ok(s != NULL, "large: a million-frame scheduler with tail control");
	for (int sl = 0; sl < SLOTS; sl++) {
		dr_sched_next(s, sl, now, out, 4);
		hold[sl] = out[0];
		order[out[0] - 1] = handed++;
	}
	spread = item_of(s, 1)->state == DR_F_RUNNING && item_of(s, N)->state == DR_F_RUNNING &&
	         item_of(s, N / 2)->state == DR_F_RUNNING;
	ok(spread, "large: tail control stays on: the first, last and middle frames go first");
	for (long step = 0; step < 4L * N; step++) {
		int sl = (int)(step % SLOTS), f = hold[sl];
		now += 1e-3;
		if (f > 0) {
			bool hi = f > 400000 && f <= 500000;
			if (f == N / 3 && sl == straggler) { /* never reports: the copy must win */
				if (dr_sched_item(s, (size_t)f - 1)->state != DR_F_DONE)
					continue;
			} else if (dr_sched_done(s, sl, f, hi ? 10 : 1) != 0) {
				break;
			}
			hold[sl] = 0;
		}
		k = dr_sched_next(s, sl, now, out, 4);
		if (k < 0)
			break;
		if (k == 1) {
			hold[sl] = out[0];
			if (out[0] == N / 3 && straggler < 0)
				straggler = sl;
			if (dr_sched_count(s).pending == 0 && dr_sched_other(s, out[0], sl) >= 0)
				copies++;
			else
				order[out[0] - 1] = handed++;
		}
		if (dr_sched_finished(s))
			break;
	}
	for (int i = 0; i < N; i++) {
		if (i >= 400000 && i < 500000)
			pos_hi += (double)order[i] / 100000;
		else
			pos_lo += (double)order[i] / 900000;
	}
	ok(dr_sched_finished(s) && dr_sched_count(s).done == N, "large: every frame done");
	is_int(handed, N, "large: each frame handed out once (copies aside)");
	ok(pos_hi < pos_lo / 2,
	   "large: the expensive stretch goes out first (mean place %.0f, cheap frames %.0f)",
	   pos_hi, pos_lo);
	ok(copies >= 1, "large: the straggler at the end was copied (%d copies)", copies);
	dr_sched_destroy(s);
	free(fr);
	free(hold);
	free(order);
}

/* Tail control is no longer switched off above 50,000 frames. */
static void test_tail_on_above_50000(void)
{
	enum { N = 60000 };
	int *fr = malloc(N * sizeof *fr), out[4];
	for (int i = 0; i < N; i++)
		fr[i] = i;
	dr_sched *s = mk_tail(fr, N, 4);
	dr_sched_next(s, 0, 0, out, 4);
	dr_sched_next(s, 1, 0, out, 4);
	is_int(out[0], N - 1, "60,000 frames: the second frame handed out is the last");
	dr_sched_next(s, 2, 0, out, 4);
	is_int(out[0], (N - 1) / 2, "and the third the middle");
	dr_sched_destroy(s);
	free(fr);
}

/* Holding a task ahead only for short frames; quiet when nothing could be handed out. */
static void test_ahead_and_quiet(void)
{
	int fr[16], out[4], a, b;
	for (int i = 0; i < 16; i++)
		fr[i] = i + 1;
	dr_sched_cfg cfg = {.nslots = 2, .chunk = 1, .retries = 1, .max_consec = 3};
	dr_sched *s = dr_sched_create(fr, 8, &cfg, err, sizeof err);
	ok(dr_sched_ahead_ok(s), "no tail control: always ahead");
	dr_sched_destroy(s);
	cfg.tail_control = true;
	s = dr_sched_create(fr, 16, &cfg, err, sizeof err);
	dr_sched_next(s, 0, 0, out, 4);
	a = out[0];
	ok(!dr_sched_ahead_ok(s) && dr_sched_next_ahead(s, 0, 0, out, 4) == 0,
	   "tail control, nothing known yet: no task ahead");
	dr_sched_done(s, 0, a, 10);
	dr_sched_next(s, 0, 10, out, 4);
	ok(!dr_sched_ahead_ok(s) && dr_sched_next_ahead(s, 0, 10, out, 4) == 0,
	   "frames of 10 s: no task ahead (the round trip saved is nothing)");
	b = out[0];
	dr_sched_done(s, 0, b, 0.1);
	dr_sched_next(s, 0, 10, out, 4);
	ok(dr_sched_ahead_ok(s) == (10.1 / 2 < DR_SCHED_AHEAD_MAX_S), "mean 5.05 s: still none");
	for (int i = 0; i < 5; i++) {
		dr_sched_done(s, 0, out[0], 0.1);
		if (dr_sched_next(s, 0, 10, out, 4) < 1)
			break;
	}
	ok(dr_sched_ahead_ok(s) && dr_sched_next_ahead(s, 0, 10, out + 1, 3) == 1,
	   "short frames (mean %.2f s): a task ahead", 10.6 / 7);
	ok(!dr_sched_quiet(s, 10), "frames pending: not quiet");
	dr_sched_destroy(s);

	s = dr_sched_create(fr, 2, &cfg, err, sizeof err);
	dr_sched_next(s, 0, 0, out, 1);
	a = out[0];
	dr_sched_next(s, 1, 0, out, 1);
	b = out[0];
	ok(dr_sched_quiet(s, 0), "nothing pending, nothing done: quiet (no straggler can be told)");
	dr_sched_done(s, 0, a, 1);
	ok(!dr_sched_quiet(s, 1), "a change since the last search: not sure, not quiet");
	is_int(dr_sched_next(s, 0, 1, out, 1), 0, "no straggler yet");
	ok(dr_sched_quiet(s, 1.2), "after a search that found none: quiet until it could be one");
	ok(!dr_sched_quiet(s, 100), "but not past that time");
	is_int(dr_sched_next(s, 0, 100, out, 1), 1, "then the straggler is copied");
	is_int(out[0], b, "frame %d", b);
	dr_sched_destroy(s);
}

/* A slot measured slow leaves the last frames to the others, and its frame in flight is copied
 * by an idle fast slot before any guess at a straggler. */
static void test_slow_slot(void)
{
	enum { NS = 4, NF = 60 };
	int fr[NF], out[1], cur[NS];
	double ends[NS], t = 0;
	bool late = false, copied = false;
	dr_sched_cfg cfg = {
	        .nslots = NS, .chunk = 1, .retries = 1, .max_consec = 3, .tail_control = true};
	for (int i = 0; i < NF; i++)
		fr[i] = i;
	dr_sched *s = dr_sched_create(fr, NF, &cfg, err, sizeof err);
	for (int k = 0; k < NS; k++)
		cur[k] = -1;
	for (int step = 0; step < 10000 && !dr_sched_finished(s); step++, t += 0.25) {
		for (int k = 0; k < NS; k++) {
			if (cur[k] >= 0 && t >= ends[k]) {
				dr_sched_done(s, k, cur[k], k == 3 ? 3.0 : 1.0);
				cur[k] = -1;
			}
			if (cur[k] >= 0 && dr_sched_item(s, (size_t)cur[k])->state == DR_F_DONE)
				cur[k] = -1; /* its copy won */
			if (cur[k] >= 0)
				continue;
			size_t before = dr_sched_count(s).pending;
			int n = dr_sched_next(s, k, t, out, 1);
			if (n == 1 && k == 3 && t > 8 && before > 0 && before < 4)
				late = true; /* a fresh frame 3 s long where the others do 3 a
				                second */
			if (n == 1) {
				copied |= k != 3 && dr_sched_other(s, out[0], k) == 3;
				cur[k] = out[0];
				ends[k] = t + (k == 3 ? 3.0 : 1.0);
			}
		}
	}
	ok(dr_sched_finished(s) && dr_sched_count(s).done == NF, "all %d frames done", NF);
	ok(!late, "once measured, the slow slot gets none of the last fresh frames");
	ok(copied, "a fast slot copied the slow slot's frame in flight");
	ok(t <= 18.5, "makespan %.2f s (60 frames on 3 fast slots and a 3x slower one: >= 16.4)",
	   t);
	dr_sched_destroy(s);
}

int main(void)
{
	test_create();
	test_order();
	test_oldest_by_time();
	test_chunks();
	test_skip();
	test_done();
	test_retries();
	test_prefer_other_slot();
	test_exclusion();
	test_bad_frame_lone_slot();
	test_drop_requeue();
	test_stranded();
	test_next_failed();
	test_property();
	test_tail_order();
	test_tail_speculate();
	test_tail_running_estimate();
	test_tail_on_above_50000();
	test_large();
	test_ahead_and_quiet();
	test_slow_slot();
	return done_testing();
}
