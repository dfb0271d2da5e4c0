/* A render node's program: the scene staged in, frames home, scenes fetched, and its poll loop. */
#include "dr_nodeprog.h"

#include "dr_collect.h"
#include "dr_fetch.h"
#include "dr_log.h"
#include "dr_loop.h"
#include "dr_node.h"
#include "dr_report.h"
#include "dr_stage.h"
#include "dr_util.h"

#include <stdlib.h>
#include <string.h>

/* The transfers a render node registers on its channel; NULL where the run has none. */
typedef struct transfers {
	dr_collect *home; /* frames home: the node does not see rank 0's output directory */
	dr_fetch_client
	        *fetch; /* a service's scenes, pulled from rank 0 when the node lacks them */
} transfers;

void dr_nodeprog_stage(dr_nodeprog *p, MPI_Comm comm)
{
	const dr_nodeprog_cfg *o = &p->cfg;
	char err[DR_ERRLEN];
	dr_stage_cfg c = {
	        .always = o->stage_always,
	        .never = o->stage_never,
	        .cache_dir = o->cache_dir,
	        .cache_max = o->cache_max,
	        .timeout = o->timeout,
	        .interrupted = o->interrupted,
	};

	p->staged[0] = '\0';
	p->shared = true;
	if (dr_stage_node(comm, &c, p->staged, sizeof p->staged, &p->shared, err, sizeof err) != 0)
		dr_warn("%s", err);
	if (o->serve || (o->scene && strcmp(p->staged, o->scene) == 0))
		p->staged[0] = '\0';
}

/* A service's scenes are pulled by the render nodes that lack them (dr_fetch): true when this
 * run does that (--serve, more than one rank, --stage other than never). */
static bool fetches(const dr_nodeprog_cfg *o, const dr_chan *chan)
{
	return o->serve && dr_chan_size(chan) > 1 && !o->stage_never;
}

static void close_transfers(dr_chan *chan, transfers *t)
{
	dr_chan_clear_sides(chan); /* their pumps must not run once they are gone */
	dr_collect_close(t->home);
	dr_fetch_client_close(t->fetch);
	*t = (transfers){0};
}

/* Register the node's transfers on CHAN and hook them into CFG. 0, or -1 with ERR. */
static int open_transfers(const dr_nodeprog *p, dr_chan *chan, dr_node_cfg *cfg, transfers *t,
                          char *err, size_t errlen)
{
	const dr_nodeprog_cfg *o = &p->cfg;

	*t = (transfers){0};
	/* a node that does not see rank 0's output directory (or --collect) sends frames home */
	if (!o->still && (o->collect || !p->shared)) {
		if (!(t->home = dr_collect_node(chan, p->shared, err, errlen)))
			return -1;
		cfg->push = dr_collect_push;
		cfg->push_ctx = t->home;
		dr_chan_add_side(chan, dr_collect_pump, t->home);
	}
	/* a service: the node pulls each job's scene from rank 0 when it lacks it */
	if (fetches(o, chan)) {
		dr_fetch_client_cfg fc = {.cache_dir = o->cache_dir,
		                          .cache_max = o->cache_max,
		                          .always = o->stage_always,
		                          .timeout = o->timeout};
		if (!(t->fetch = dr_fetch_client_create(dr_chan_peers(chan), &fc, err, errlen))) {
			close_transfers(chan, t);
			return -1;
		}
		cfg->fetch = dr_fetch_client_fetch;
		cfg->fetch_ctx = t->fetch;
		dr_chan_add_side(chan, dr_fetch_client_pump, t->fetch);
	}
	return 0;
}

/* Messages in and ticks until rank 0 says stop or a signal comes. Returns the exit code. */
static int loop(dr_node *node, dr_chan *chan, volatile sig_atomic_t *interrupted)
{
	char err[DR_ERRLEN];
	dr_msg m;
	int src, k;
	struct dr_loop *lp = dr_chan_loop(chan);

	/* a node answers its next task within 0.1 ms when work flows, and naps up to 5 ms idle */
	dr_loop_set_backoff(lp, 0.1, 5);

	while (!dr_node_stopped(node) && !*interrupted) {
		int got = 0;
		while ((k = dr_chan_poll(chan, &m, &src, err, sizeof err)) == 1) {
			got++;
			if (dr_node_handle(node, &m, err, sizeof err) != 0)
				k = -1;
		}
		int before = node->frame;
		if (k < 0 || dr_node_tick(node, dr_node_idle(node) ? 0 : 50, err, sizeof err)) {
			dr_error("%s", err);
			return DR_EXIT_RUNTIME;
		}
		/* a frame just ended: its successor may be waiting in MPI's queue, no nap */
		if (dr_node_idle(node) && !dr_node_stopped(node) && node->frame == before)
			dr_loop_wait(lp, got > 0);
	}
	return DR_EXIT_ALL_DONE;
}

int dr_nodeprog_run(dr_nodeprog *p, dr_chan *chan, int threads, const cpu_set_t *cpus)
{
	volatile sig_atomic_t *interrupted = p->cfg.interrupted;
	dr_node node;
	dr_node_cfg cfg = p->cfg.node;
	transfers t;
	char err[DR_ERRLEN];
	int rc;

	cfg.scene_local = p->staged[0] ? p->staged : NULL;
	if (open_transfers(p, chan, &cfg, &t, err, sizeof err) != 0) {
		dr_error("%s", err);
		return DR_EXIT_RUNTIME;
	}
	if (dr_node_start(&node, &cfg, chan, threads, cpus, err, sizeof err) != 0) {
		dr_error("%s", err);
		close_transfers(chan, &t);
		return DR_EXIT_RUNTIME;
	}
	rc = loop(&node, chan, interrupted);
	if (*interrupted) {
		dr_node_abort(&node);
		rc = DR_EXIT_INTERRUPTED;
	}
	dr_node_destroy(&node);
	close_transfers(chan, &t);
	if (*interrupted && dr_chan_size(chan) > 1)
		dr_sleep_ms(300); /* mpirun SIGKILLs rank 0 once the other ranks are gone: give it
		                   * time to write its report (our Blender is already dead) */
	return rc;
}
