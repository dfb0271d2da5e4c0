/* The reactor: pumps and timers a program registers, one back-off when idle, a wake-up fd. */
#include "dr_loop.h"
#include "dr_util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef struct entry {
	dr_loop_id id; /* 0: removed (freed after the turn) */
	dr_loop_fn fn;
	void *ctx;
	double every, due; /* a timer: period and next time; a pump: every = 0 */
} entry;

struct dr_loop {
	entry *e;
	size_t n, cap;
	dr_loop_id next_id;
	int efd;
	int running; /* inside dr_loop_turn: removal only marks */
	dr_backoff bo;
	double pump_max;
};

dr_backoff dr_backoff_make(double min_ms, double max_ms)
{
	return (dr_backoff){.min_ms = min_ms, .max_ms = max_ms, .ms = min_ms};
}

double dr_backoff_next(dr_backoff *b, bool busy)
{
	if (busy)
		b->ms = b->min_ms;
	else
		b->ms = b->ms * 2 > b->max_ms ? b->max_ms : b->ms * 2;
	return b->ms;
}

dr_loop *dr_loop_create(double min_ms, double max_ms, char *err, size_t errlen)
{
	dr_loop *l = calloc(1, sizeof *l);

	if (!l) {
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0) {
		dr_seterr(err, errlen, "eventfd: %s", strerror(errno));
		free(l);
		return NULL;
	}
	l->bo = dr_backoff_make(min_ms, max_ms);
	return l;
}

void dr_loop_destroy(dr_loop *l)
{
	if (!l)
		return;
	close(l->efd);
	free(l->e);
	free(l);
}

static dr_loop_id add(dr_loop *l, double every, dr_loop_fn fn, void *ctx)
{
	if (dr_grow(&l->e, &l->cap, l->n + 1, sizeof *l->e) != 0)
		return 0;
	l->e[l->n++] = (entry){.id = ++l->next_id,
	                       .fn = fn,
	                       .ctx = ctx,
	                       .every = every,
	                       .due = every > 0 ? dr_now() + every : 0};
	return l->next_id;
}

dr_loop_id dr_loop_add_pump(dr_loop *l, dr_loop_fn fn, void *ctx)
{
	return add(l, 0, fn, ctx);
}

dr_loop_id dr_loop_add_timer(dr_loop *l, double every_s, dr_loop_fn fn, void *ctx)
{
	return every_s > 0 ? add(l, every_s, fn, ctx) : 0;
}

/* Drop the entries marked removed, keeping the order of the rest. */
static void compact(dr_loop *l)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].id)
			l->e[k++] = l->e[i];
	l->n = k;
}

void dr_loop_remove(dr_loop *l, dr_loop_id id)
{
	for (size_t i = 0; id && i < l->n; i++)
		if (l->e[i].id == id)
			l->e[i].id = 0;
	if (!l->running)
		compact(l);
}

int dr_loop_turn(dr_loop *l, char *err, size_t errlen)
{
	int busy = 0, rc = 0;
	size_t n = l->n; /* what is added during the turn runs from the next one */

	l->running++;
	for (size_t i = 0; i < n && rc == 0; i++) {
		entry e = l->e[i]; /* a callback may add entries: l->e may move */
		double t0 = dr_now(), took;
		int k;

		if (!e.id || (e.every > 0 && t0 < e.due))
			continue;
		if (e.every > 0)
			l->e[i].due = t0 + e.every;
		k = e.fn(e.ctx, err, errlen);
		took = dr_now() - t0;
		if (e.every == 0 && took > l->pump_max)
			l->pump_max = took;
		if (k < 0)
			rc = -1;
		else if (k > 0)
			busy = 1;
	}
	if (--l->running == 0)
		compact(l);
	return rc < 0 ? -1 : busy;
}

void dr_loop_set_backoff(dr_loop *l, double min_ms, double max_ms)
{
	l->bo = dr_backoff_make(min_ms, max_ms);
}

bool dr_loop_wait(dr_loop *l, bool busy)
{
	double ms = dr_backoff_next(&l->bo, busy);
	struct pollfd p = {.fd = l->efd, .events = POLLIN};
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
	                      .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
	uint64_t v;

	if (ppoll(&p, 1, &ts, NULL) <= 0 || !(p.revents & POLLIN))
		return false;
	while (read(l->efd, &v, sizeof v) == (ssize_t)sizeof v)
		;
	dr_backoff_next(&l->bo, true);
	return true;
}

void dr_loop_wake(dr_loop *l)
{
	uint64_t one = 1;
	ssize_t k;

	do
		k = write(l->efd, &one, sizeof one);
	while (k < 0 && errno == EINTR);
}

int dr_loop_fd(const dr_loop *l)
{
	return l->efd;
}

double dr_loop_pump_max(const dr_loop *l)
{
	return l->pump_max;
}
