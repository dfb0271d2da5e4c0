/* The programs' settings from the parsed options, made once by main.c: rank 0's service, its
 * staging plan, and a render node's program; below this, no module sees dr_opts. */
#ifndef DR_PROGCFG_H
#define DR_PROGCFG_H

#include "dr_nodeprog.h"
#include "dr_opts.h"
#include "dr_service.h"
#include "dr_stageplan.h"

#include <signal.h>

/* Rank 0's service for a world of SIZE ranks. */
void dr_progcfg_service(const dr_opts *o, int size, dr_service_cfg *c);

/* A render node's program; NODE: its render node's settings (the GPU planned), INTERRUPTED: the
 * flag a signal sets. */
void dr_progcfg_node(const dr_opts *o, const dr_node_cfg *node, volatile sig_atomic_t *interrupted,
                     dr_nodeprog_cfg *c);

/* Rank 0's staging plan; OUTDIR: the output directory the service resolved (dr_service_outdir). */
void dr_progcfg_stage(const dr_opts *o, const char *outdir, volatile sig_atomic_t *interrupted,
                      dr_stageplan_cfg *c);

#endif
