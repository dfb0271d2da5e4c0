/* Scheduler: which frames go to which render node next, and what a failure means (retry policy). */
#ifndef DR_SCHED_H
#define DR_SCHED_H

#include <stdbool.h>
#include <stddef.h>

enum dr_fstate { DR_F_PENDING = 0, DR_F_RUNNING, DR_F_DONE, DR_F_SKIPPED, DR_F_FAILED };

typedef struct dr_fitem {
	int frame;
	enum dr_fstate state;
	int attempts;     /* attempts started */
	int slot;         /* render node of the current or last attempt, -1 = none */
	int dup_slot;     /* render node of a speculative second copy in flight, -1 = none */
	double started;   /* when the current attempt started (caller's clock) */
	double seconds;   /* render seconds of the successful attempt */
	char *last_error; /* message of the last failed attempt, NULL if none */
} dr_fitem;

typedef struct dr_slot_stats {
	int done;          /* frames rendered */
	int failed;        /* failed attempts */
	int consec_failed; /* frames failed since its last success (repeats not counted) */
	double busy;       /* render seconds of successful frames */
	bool excluded;     /* taken out of rotation after too many failures in a row */
	bool gone;         /* released for good (lost, or could not load the scene) */
} dr_slot_stats;

typedef struct dr_sched_cfg {
	int nslots;        /* render nodes, numbered 0..nslots-1 */
	int chunk;         /* most frames per task, >= 1 */
	int retries;       /* extra attempts per frame after the first */
	int max_consec;    /* failures in a row that take a slot out of rotation, >= 1 */
	bool tail_control; /* cost-aware order and speculative copies of stragglers (see next) */
} dr_sched_cfg;

typedef struct dr_sched_counts {
	size_t total, pending, running, done, skipped, failed;
} dr_sched_counts;

typedef struct dr_sched dr_sched;

/* A scheduler for FRAMES (ascending, unique; copied). NULL with ERR on bad config or memory. */
dr_sched *dr_sched_create(const int *frames, size_t n, const dr_sched_cfg *cfg, char *err,
                          size_t errlen);
void dr_sched_destroy(dr_sched *s);

/* Mark FRAME as already present (before it was handed out). Returns 0, -1 if unknown/not pending.
 */
int dr_sched_skip(dr_sched *s, int frame);

/* Next task for SLOT at time NOW: up to cfg.chunk frames written to OUT (room for MAX), marked
 * running. A retried frame goes to a slot that has not failed it, unless every usable slot has.
 * Without tail control frames go out in ascending order. With it, the first frames handed out
 * are spread over the range (each the farthest from any frame started so far) to sample the
 * cost, then the frame whose nearest started neighbour took (or is taking) longest goes first,
 * so expensive stretches start early instead of ending the job; and once nothing is pending, an
 * idle slot
 * gets a speculative copy of a straggler (a frame running more than 1.5 times as long as either
 * neighbour handed out next to it took or has run, and at least 1 s): the first valid result
 * wins.
 * Returns the count (> 0); 0 if nothing for this slot now (ask again after the next change);
 * -1 if this slot will never get work again (job finished, or slot excluded or gone).
 * Cost: O(log frames) per frame handed out, for any job size (tail control included); a
 * speculative copy walks the running frames oldest first, at most once per change of state. */
int dr_sched_next(dr_sched *s, int slot, double now, int *out, int max);

/* The same for a slot that is still rendering (its next task, to start when it is done): nothing
 * unless dr_sched_ahead_ok, never a speculative copy, and with tail control, when the frame in
 * flight is an expensive one, the frames estimated cheapest rather than dearest (nothing expensive
 * waits behind it). */
int dr_sched_next_ahead(dr_sched *s, int slot, double now, int *out, int max);

/* Whether a slot still rendering may be given its next task now (dr_sched_next_ahead gives none
 * otherwise). Always without tail control. With it, only once frames are known to be short (the
 * done ones took under DR_SCHED_AHEAD_MAX_S on average): a task held ahead saves a round trip to
 * rank 0 per frame, which matters for short frames only, and it commits a frame before the slot
 * is free, when less is known about which frame should go next. O(1). */
#define DR_SCHED_AHEAD_MAX_S 2.0
bool dr_sched_ahead_ok(const dr_sched *s);

/* FRAME rendered by SLOT in SECONDS. Returns 0, or -1 if FRAME is not running on SLOT. A copy
 * of it still running elsewhere is abandoned: see dr_sched_other. */
int dr_sched_done(dr_sched *s, int slot, int frame, double seconds);

/* FRAME failed on SLOT with ERROR. The frame goes back to pending, or to failed when its attempts
 * are used up; the slot may be excluded. Returns 0, or -1 if FRAME is not running on SLOT. */
int dr_sched_fail(dr_sched *s, int slot, int frame, const char *error);

/* Frames handed to SLOT but not finished go back to pending without counting as an attempt of
 * theirs (the node is stopping, or was asked to give them back). Returns how many. */
size_t dr_sched_requeue(dr_sched *s, int slot);

/* FRAME, handed to SLOT but not started there, goes back the same way (taken back for an idle
 * slot). Returns 0, or -1 if FRAME is not running on SLOT. */
int dr_sched_return(dr_sched *s, int slot, int frame);

/* SLOT is gone for good (lost, or it cannot load the scene): its running frames go back to
 * pending, and it gets no more work. */
void dr_sched_drop(dr_sched *s, int slot);

/* A result from SLOT after it was dropped (a node declared lost that turned out alive): FRAME,
 * rendered in SECONDS, is accepted once if it is not done yet (pending, or running elsewhere),
 * else discarded. Slots still running a copy of it go to OTHERS (room for 2, -1 = none): their
 * copies are abandoned, as dr_sched_done does for a losing copy. Returns 0 if accepted, -1 if
 * discarded (already done, skipped, failed, or an unknown frame). */
int dr_sched_done_late(dr_sched *s, int slot, int frame, double seconds, int others[2]);

/* When no usable slot is left, every pending frame fails with WHY. Returns how many failed. */
size_t dr_sched_fail_stranded(dr_sched *s, const char *why);

/* The slot other than SLOT running a copy of FRAME, or -1. */
int dr_sched_other(const dr_sched *s, int frame, int slot);

/* Index of FRAME in frame order, or -1. */
long dr_sched_index(const dr_sched *s, int frame);

/* True when no frame is pending or running. */
bool dr_sched_finished(const dr_sched *s);

/* Number of slots neither excluded nor gone. */
int dr_sched_usable(const dr_sched *s);

dr_sched_counts dr_sched_count(const dr_sched *s);
size_t dr_sched_size(const dr_sched *s);
const dr_fitem *dr_sched_item(const dr_sched *s, size_t i); /* in frame order */
const dr_slot_stats *dr_sched_slot(const dr_sched *s, int slot);

/* The index (in frame order, for dr_sched_item) of the first failed frame at or after index I, or
 * -1: the failed frames one by one, without a walk of the others. O(log frames). */
long dr_sched_next_failed(const dr_sched *s, long i);

/* True when dr_sched_next would give no slot anything at NOW: nothing pending, and no frame to
 * copy (tail control off, or the last search for stragglers found none that could qualify
 * before a later time or change). False when unsure. O(1). */
bool dr_sched_quiet(const dr_sched *s, double now);

/* The running frame that started earliest, or NULL. */
const dr_fitem *dr_sched_oldest(const dr_sched *s);

#endif
