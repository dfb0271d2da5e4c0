/* Rank 0's staging plan before the first frame: the shared-storage probe in its output directory,
 * an ask round, a packed copy of the scene, and the scene sent to the render nodes lacking it. */
#ifndef DR_STAGEPLAN_H
#define DR_STAGEPLAN_H

#include "dr_report.h"

#include <mpi.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* What rank 0's staging takes from the command line and from rank 0's service (main.c fills it
 * in). */
typedef struct dr_stageplan_cfg {
	const char *blender;   /* packs the scene (dr_stage_pack) */
	const char *scene;     /* the batch's scene, or --serve's default (NULL: none) */
	const char *outdir;    /* rank 0's output directory as dr_service resolved it (the probe
	                        * goes there; NULL: no probe, every node is taken to share it) */
	bool serve;            /* --serve: jobs name their own scenes; only the probe is asked */
	bool always;           /* --stage always */
	bool never;            /* --stage never */
	const char *cache_dir; /* --cache-dir (the packed copy goes there), NULL = the default */
	uint64_t cache_max;    /* --cache-max in bytes, 0 = no bound */
	double timeout;        /* --node-timeout, resolved: a node this silent is lost */
	volatile sig_atomic_t *interrupted; /* set by a signal: give up */
} dr_stageplan_cfg;

/* No shared storage: before any frame, send the scene over COMM to the render nodes that do not
 * see the same file (dr_stage), and learn which nodes do not see rank 0's output directory (their
 * frames then come home). REP gets what staging did. A failure is not fatal (logged): a node
 * without the scene reports that it cannot load it, as without staging. */
void dr_stageplan_run(const dr_stageplan_cfg *c, MPI_Comm comm, dr_report_stage *rep);

#endif
