/* Virtual-time render farm: simulated render nodes driving the real scheduler (dr_sched) through
 * the calls rank 0 makes, with no MPI, no processes and no sleeping. */
#ifndef DR_SIM_H
#define DR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sim_dist { SIM_LOGNORMAL, SIM_BIMODAL, SIM_HEAVY_END, SIM_UNIFORM };

typedef struct sim_cfg {
	int nodes;
	size_t frames;
	enum sim_dist dist;
	uint64_t seed;
	double mean;     /* mean frame cost in seconds on a node of speed 1 */
	double slow;     /* fraction of nodes 2-3x slower */
	double loss;     /* fraction of nodes lost during the job (half come back late) */
	double fail;     /* probability that an attempt fails */
	double straggle; /* probability that an attempt takes 4-8x its cost */
	double latency;  /* one-way message time, seconds */
	double node_timeout;
	int retries;
	bool tail_control;
} sim_cfg;

typedef struct sim_result {
	double makespan;       /* first task sent -> last frame done */
	double bound;          /* max(total cost / total speed, largest frame) */
	double bound_speed;    /* the same with each node's own speed */
	double efficiency;     /* bound_speed / makespan */
	double tail;           /* first idle node (nothing to give it) -> end */
	double largest;        /* largest frame cost */
	size_t done, failed;   /* frames */
	size_t copies, wasted; /* speculative copies made; those whose result was not used */
	size_t takebacks;
	size_t decisions; /* scheduler calls */
	double wall;      /* real seconds the run took */
	int lost;
	double largest_start; /* when the most expensive frame first started (a bound: it ends no
	                       * sooner than this plus its cost) */
	double drained;       /* when the last fresh frame was handed out */
	/* invariants broken (0 when all hold) */
	size_t done_twice, given_to_lost, copy_of_done, below_bound;
} sim_result;

/* Defaults: lognormal, 10 s mean, no faults, tail control on. */
void sim_defaults(sim_cfg *cfg);

/* Run CFG to the end. Returns 0, or -1 with ERR on bad configuration or out of memory. */
int sim_run(const sim_cfg *cfg, sim_result *res, char *err, size_t errlen);

const char *sim_dist_name(enum sim_dist d);
int sim_dist_parse(const char *s, enum sim_dist *d);

#endif
