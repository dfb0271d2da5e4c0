/* Unit tests for dr_loop: the back-off, pumps and timers with handles, the wake-up fd. */
#include "dr_loop.h"
#include "dr_util.h"
#include "tap.h"

#include <pthread.h>
#include <string.h>

static void test_backoff(void)
{
	dr_backoff b = dr_backoff_make(0.2, 2);

	ok(dr_backoff_next(&b, false) == 0.4, "idle: doubles");
	ok(dr_backoff_next(&b, false) == 0.8 && dr_backoff_next(&b, false) == 1.6, "and again");
	ok(dr_backoff_next(&b, false) == 2 && dr_backoff_next(&b, false) == 2, "up to the most");
	ok(dr_backoff_next(&b, true) == 0.2, "busy: back to the least");
}

typedef struct counter {
	int calls, ret;
	dr_loop *l;
	dr_loop_id self, other;
} counter;

static int count(void *ctx, char *err, size_t errlen)
{
	counter *c = ctx;
	c->calls++;
	if (c->ret < 0)
		return dr_seterr(err, errlen, "failed on purpose");
	if (c->other) { /* remove another entry from inside a turn */
		dr_loop_remove(c->l, c->other);
		c->other = 0;
	}
	if (c->self && c->calls == 2)
		dr_loop_remove(c->l, c->self);
	return c->ret;
}

static void test_pumps(void)
{
	char err[DR_ERRLEN] = "";
	dr_loop *l = dr_loop_create(0.1, 1, err, sizeof err);
	counter a = {.l = l}, b = {.l = l, .ret = 1}, c = {.l = l};

	ok(l != NULL, "a loop");
	a.self = dr_loop_add_pump(l, count, &a);
	b.self = dr_loop_add_pump(l, count, &b);
	ok(a.self && b.self && a.self != b.self, "two handles");
	is_int(dr_loop_turn(l, err, sizeof err), 1, "a turn where one pump was busy");
	is_int(a.calls + b.calls, 2, "each ran once");
	is_int(dr_loop_turn(l, err, sizeof err), 1, "a second turn");
	is_int(dr_loop_turn(l, err, sizeof err), 0, "both removed themselves after two calls");
	is_int(a.calls + b.calls, 4, "and ran no more");
	c.other = dr_loop_add_pump(l, count, &a);
	c.self = dr_loop_add_pump(l, count, &c);
	a.calls = 0;
	dr_loop_turn(l, err, sizeof err);
	ok(a.calls == 1 && c.calls == 1, "removed by another in the same turn: ran before it");
	dr_loop_turn(l, err, sizeof err);
	ok(a.calls == 1 && c.calls == 2, "not after");
	counter f = {.ret = -1};
	dr_loop_id fid = dr_loop_add_pump(l, count, &f);
	is_int(dr_loop_turn(l, err, sizeof err), -1, "a failing pump fails the turn");
	ok(strcmp(err, "failed on purpose") == 0, "with its message");
	dr_loop_remove(l, fid);
	dr_loop_remove(l, 0);
	dr_loop_remove(l, 12345);
	is_int(dr_loop_turn(l, err, sizeof err), 0, "removed: nothing runs");
	ok(dr_loop_pump_max(l) >= 0, "the longest pump is measured");
	dr_loop_destroy(l);
}

static void test_timer(void)
{
	char err[DR_ERRLEN];
	dr_loop *l = dr_loop_create(0.1, 1, err, sizeof err);
	counter t = {.ret = 1};
	dr_loop_id id = dr_loop_add_timer(l, 0.3, count, &t);

	dr_loop_turn(l, err, sizeof err);
	is_int(t.calls, 0, "a timer is not due at once");
	dr_sleep_ms(350);
	dr_loop_turn(l, err, sizeof err);
	is_int(t.calls, 1, "once due, it runs");
	ok(dr_loop_add_timer(l, 0, count, &t) == 0, "no timer without a period");
	dr_loop_remove(l, id);
	dr_sleep_ms(350);
	dr_loop_turn(l, err, sizeof err);
	is_int(t.calls, 1, "removed: no more");
	dr_loop_destroy(l);
}

static void *poke(void *arg)
{
	dr_sleep_ms(20);
	dr_loop_wake(arg);
	return NULL;
}

static void test_wake(void)
{
	char err[DR_ERRLEN];
	dr_loop *l = dr_loop_create(0.1, 2000, err, sizeof err);
	pthread_t th;
	double t0;
	bool woke = false;

	ok(dr_loop_fd(l) >= 0, "a wake-up fd");
	pthread_create(&th, NULL, poke, l);
	t0 = dr_now();
	for (int i = 0; i < 20 && !woke; i++)
		woke = dr_loop_wait(l, false);
	pthread_join(th, NULL);
	ok(woke, "a poke from another thread ends the wait");
	ok(dr_now() - t0 < 1.5, "long before the back-off's most");
	dr_loop_wake(l);
	ok(dr_loop_wait(l, true), "a poke before the wait counts too");
	ok(!dr_loop_wait(l, true), "once");
	dr_loop_destroy(l);
}

int main(void)
{
	test_backoff();
	test_pumps();
	test_timer();
	test_wake();
	return done_testing();
}
