/* A render node's program: the scene staged in, the transfers it registers (frames home, scenes
 * fetched), and the poll loop that drives its dr_node until rank 0 says stop. */
#ifndef DR_NODEPROG_H
#define DR_NODEPROG_H

#include "dr_msg.h"
#include "dr_run_cfg.h"

#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* What a render node's program takes from the command line (main.c fills it in). */
typedef struct dr_nodeprog_cfg {
	dr_node_cfg node;      /* the render node's settings, its GPU included */
	const char *scene;     /* the batch's scene, or --serve's default (NULL: none) */
	bool serve;            /* --serve: each job's scene is pulled from rank 0 (dr_fetch) */
	bool still;            /* --still: the ranges stay on this node's disk for the merge */
	bool collect;          /* --collect: frames come home even through shared storage */
	bool stage_always;     /* --stage always */
	bool stage_never;      /* --stage never */
	const char *cache_dir; /* --cache-dir, NULL = the default */
	uint64_t cache_max;    /* --cache-max in bytes, 0 = no bound */
	double timeout;        /* --node-timeout, resolved: a transfer this silent is lost */
	volatile sig_atomic_t *interrupted; /* set by a signal: give up */
} dr_nodeprog_cfg;

/* A render node's program (caller-owned; fill cfg, the rest is its own). */
typedef struct dr_nodeprog {
	dr_nodeprog_cfg cfg;
	char staged[4200]; /* the staged copy of the scene Blender opens, "" = the scene itself */
	bool shared;       /* this node sees rank 0's output directory */
} dr_nodeprog;

/* No shared storage: the node's end of rank 0's staging before any frame (dr_stage) over COMM. A
 * failure is not fatal (logged): a node without the scene reports that it cannot load it. */
void dr_nodeprog_stage(dr_nodeprog *p, MPI_Comm comm);

/* A render node's life on CHAN: tasks in, results out, until rank 0 says stop. THREADS and CPUS
 * are Blender's. Returns the exit code (DR_EXIT_*). */
int dr_nodeprog_run(dr_nodeprog *p, dr_chan *chan, int threads, const cpu_set_t *cpus);

#endif
