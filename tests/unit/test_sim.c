/* The virtual-time farm (bench/sim) on small jobs: invariants of the real scheduler under failures,
 * stragglers, slow and lost nodes; not speed. */
#include "sim.h"
#include "tap.h"

#include "dr_util.h"

static void check(const char *what, sim_cfg *c)
{
	sim_result r;
	char err[DR_ERRLEN];
	int rc = sim_run(c, &r, err, sizeof err);
	is_int(rc, 0, "%s: runs", what);
	if (rc != 0) {
		printf("#   %s\n", err);
		return;
	}
	is_int(r.done + r.failed, c->frames, "%s: every frame ends", what);
	is_int(r.done_twice, 0, "%s: no frame done twice", what);
	is_int(r.given_to_lost, 0, "%s: no decision for a node after it is lost", what);
	is_int(r.copy_of_done, 0, "%s: no copy of a frame already done", what);
	ok(r.makespan >= r.bound_speed, "%s: makespan %.1f >= lower bound %.1f", what, r.makespan,
	   r.bound_speed);
	printf("# %s: efficiency %.3f, tail %.1f s, %zu copies (%zu wasted), %d lost, %zu failed\n",
	       what, r.efficiency, r.tail, r.copies, r.wasted, r.lost, r.failed);
}

int main(void)
{
	sim_cfg c;
	static const enum sim_dist dists[] = {SIM_LOGNORMAL, SIM_BIMODAL, SIM_HEAVY_END};
	char what[64];

	for (int d = 0; d < 3; d++) {
		sim_defaults(&c);
		c.dist = dists[d];
		c.slow = 0.05;
		c.loss = 0.05;
		c.fail = 0.01;
		c.straggle = 0.01;
		c.seed = (uint64_t)d + 7;
		snprintf(what, sizeof what, "%s, 64 nodes, 5,000 frames, faults",
		         sim_dist_name(c.dist));
		check(what, &c);
	}
	sim_defaults(&c);
	c.tail_control = false;
	c.loss = 0.05;
	c.fail = 0.01;
	check("no tail control, faults", &c);

	sim_defaults(&c);
	c.nodes = 16;
	c.frames = 2000;
	c.fail = 0.02;
	c.retries = 0;
	sim_result r;
	char err[DR_ERRLEN];
	sim_run(&c, &r, err, sizeof err);
	ok(r.failed > 0 && r.done + r.failed == c.frames && r.done_twice == 0,
	   "no retries: some frames fail (%zu), the rest are done once", r.failed);

	sim_defaults(&c);
	c.nodes = 64;
	c.frames = 5000;
	c.dist = SIM_UNIFORM;
	c.latency = 0;
	sim_run(&c, &r, err, sizeof err);
	ok(r.makespan <= 79 * 10 + 1e-6,
	   "equal frames, no latency: makespan %.1f is 79 frames' worth (5,000 on 64 nodes)",
	   r.makespan);
	return done_testing();
}
