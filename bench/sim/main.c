/* drender-sim: runs the virtual-time farm (sim.c) and prints one table row per run. */
#include "sim.h"

#include "dr_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
	fprintf(stderr,
	        "usage: drender-sim [--nodes N] [--frames N] [--dist lognormal|bimodal|heavy-end|"
	        "uniform]\n"
	        "                   [--seed N] [--mean S] [--slow F] [--loss F] [--fail P]\n"
	        "                   [--straggle P] [--latency S] [--no-tail] [--header]\n");
	return 2;
}

static int num(const char *s, double *v)
{
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	return errno || end == s || *end ? -1 : 0;
}

int main(int argc, char **argv)
{
	sim_cfg c;
	sim_result r;
	char err[DR_ERRLEN];
	bool header = false;

	sim_defaults(&c);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		double v = 0;
		if (strcmp(o, "--no-tail") == 0) {
			c.tail_control = false;
			continue;
		}
		if (strcmp(o, "--header") == 0) {
			header = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		const char *a = argv[++i];
		if (strcmp(o, "--dist") == 0) {
			if (sim_dist_parse(a, &c.dist))
				return usage();
			continue;
		}
		if (num(a, &v) || v < 0)
			return usage();
		if (strcmp(o, "--nodes") == 0 && v >= 1 && v <= 1e6)
			c.nodes = (int)v;
		else if (strcmp(o, "--frames") == 0 && v >= 1 && v <= 1e8)
			c.frames = (size_t)v;
		else if (strcmp(o, "--seed") == 0)
			c.seed = (uint64_t)v;
		else if (strcmp(o, "--mean") == 0 && v > 0)
			c.mean = v;
		else if (strcmp(o, "--slow") == 0 && v <= 1)
			c.slow = v;
		else if (strcmp(o, "--loss") == 0 && v <= 1)
			c.loss = v;
		else if (strcmp(o, "--fail") == 0 && v < 1)
			c.fail = v;
		else if (strcmp(o, "--straggle") == 0 && v <= 1)
			c.straggle = v;
		else if (strcmp(o, "--latency") == 0)
			c.latency = v;
		else
			return usage();
	}
	if (sim_run(&c, &r, err, sizeof err) != 0) {
		fprintf(stderr, "drender-sim: %s\n", err);
		return 1;
	}
	if (header)
		printf("%-9s %6s %8s %4s %5s %5s %10s %10s %6s %8s %7s %6s %6s %5s %9s %6s %4s\n",
		       "dist", "nodes", "frames", "tail", "slow", "loss", "makespan", "bound",
		       "eff", "tail_s", "tail/mx", "copies", "wasted", "lost", "dec/s", "wall",
		       "seed");
	printf("%-9s %6d %8zu %4s %5.2f %5.2f %10.1f %10.1f %6.4f %8.1f %7.2f %6zu %6zu %5d %9.0f "
	       "%6.2f %4llu\n",
	       sim_dist_name(c.dist), c.nodes, c.frames, c.tail_control ? "on" : "off", c.slow,
	       c.loss, r.makespan, r.bound_speed, r.efficiency, r.tail, r.tail / r.largest,
	       r.copies, r.wasted, r.lost, r.wall > 0 ? (double)r.decisions / r.wall : 0, r.wall,
	       (unsigned long long)c.seed);
	if (getenv("SIM_DEBUG"))
		fprintf(stderr, "largest %.1f started %.1f drained %.1f first idle %.1f\n",
		        r.largest, r.largest_start, r.drained, r.makespan - r.tail);
	if (r.done_twice || r.given_to_lost || r.copy_of_done || r.below_bound ||
	    r.done + r.failed != c.frames) {
		fprintf(stderr,
		        "drender-sim: invariant broken: %zu done twice, %zu given to lost nodes, "
		        "%zu "
		        "copies of done frames, %zu below the bound, %zu of %zu frames ended\n",
		        r.done_twice, r.given_to_lost, r.copy_of_done, r.below_bound,
		        r.done + r.failed, c.frames);
		return 1;
	}
	return 0;
}
