/* The reactor: pumps and timers a program registers, one back-off when idle, a wake-up fd. */
#ifndef DR_LOOP_H
#define DR_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A program builds one loop. Each turn runs every registered pump (move transfers on, read
 * messages, tick a state machine) and every timer that is due; when a turn did nothing the loop
 * waits, per one back-off policy, on its wake-up fd (an eventfd): another thread (the HTTP
 * server after a submit) pokes it with dr_loop_wake and the wait ends at once. Registration
 * returns a handle its owner removes (also from inside a callback: it is not called again).
 * Nothing else in a program sleeps.
 */
typedef struct dr_loop dr_loop;

/* A handle: 0 is none. */
typedef uint64_t dr_loop_id;

/* A pump: 1 when it did something, 0 when there was nothing to do, -1 with ERR. */
typedef int (*dr_loop_fn)(void *ctx, char *err, size_t errlen);

/* The back-off: after a busy turn the next wait is MIN_MS; each idle turn doubles it up to MAX_MS.
 * Pure: a loop keeps one, and a loop of one's own (staging) uses it too. */
typedef struct dr_backoff {
	double min_ms, max_ms, ms;
} dr_backoff;

/* A back-off from MIN_MS to MAX_MS. */
dr_backoff dr_backoff_make(double min_ms, double max_ms);

/* The wait after a turn that was BUSY or not (milliseconds), and the state for the next. */
double dr_backoff_next(dr_backoff *b, bool busy);

/* A loop that backs off from MIN_MS to MAX_MS. NULL with ERR. */
dr_loop *dr_loop_create(double min_ms, double max_ms, char *err, size_t errlen);

/* L backs off from MIN_MS to MAX_MS from now on (a program whose waits differ from the loop's
 * creator's: a render node). */
void dr_loop_set_backoff(dr_loop *l, double min_ms, double max_ms);

/* Free L (NULL is fine). Callbacks are not called. */
void dr_loop_destroy(dr_loop *l);

/* Run FN(CTX) at every turn. A handle, or 0 when out of memory. */
dr_loop_id dr_loop_add_pump(dr_loop *l, dr_loop_fn fn, void *ctx);

/* Run FN(CTX) every EVERY_S seconds (first after EVERY_S). A handle, or 0. */
dr_loop_id dr_loop_add_timer(dr_loop *l, double every_s, dr_loop_fn fn, void *ctx);

/* Remove what ID names (0 or an unknown id: nothing). */
void dr_loop_remove(dr_loop *l, dr_loop_id id);

/* One turn: every pump, then every due timer. 1 when any did something, 0 if none, -1 with ERR
 * (the first failure: the rest of the turn is skipped). */
int dr_loop_turn(dr_loop *l, char *err, size_t errlen);

/* Wait after a turn that was BUSY or not: per the back-off, on the wake-up fd (a poke ends the
 * wait and resets the back-off). Returns true when it was poked. */
bool dr_loop_wait(dr_loop *l, bool busy);

/* Thread-safe (only a write to the eventfd): end the loop's wait now. */
void dr_loop_wake(dr_loop *l);

/* The wake-up fd, for a caller that polls it with others. */
int dr_loop_fd(const dr_loop *l);

/* The longest any one pump took (seconds): how long it held the loop up, at most. */
double dr_loop_pump_max(const dr_loop *l);

#endif
