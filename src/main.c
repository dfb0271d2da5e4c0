/* drender's entry point: starts MPI, resolves the options once, and wires rank 0's program
 * (dr_service, after its staging plan: dr_stageplan) or a render node's (dr_nodeprog). */
#include "dr_cpus.h"
#include "dr_exit.h"
#include "dr_gpu.h"
#include "dr_log.h"
#include "dr_msg.h"
#include "dr_nodeprog.h"
#include "dr_opts.h"
#include "dr_progcfg.h"
#include "dr_report.h"
#include "dr_service.h"
#include "dr_stageplan.h"
#include "dr_util.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* This process: its options, and the programs' settings made from them once. */
typedef struct proc {
	int rank, size, threads, gpu;
	volatile sig_atomic_t *interrupted; /* set by a signal (dr_exit_init) */
	dr_opts o;
	dr_service_cfg scfg; /* rank 0's program */
	dr_nodeprog node;    /* a render node's program */
	cpu_set_t cpus;
	char gpu_why[256];
	bool bad_token; /* rank 0: dr_opts_load_token failed (said) */
} proc;

/* Every rank parses the same argv, and resolves the defaults once; only rank 0 speaks. -1 to go
 * on, else the exit code. */
static int options(int argc, char **argv, proc *p)
{
	char err[DR_ERRLEN];
	dr_opts *o = &p->o;

	if (dr_opts_parse(argc, argv, getenv("DRENDER_BLENDER"), o, err, sizeof err) != 0) {
		if (p->rank == 0)
			dr_error("%s", err);
		return DR_EXIT_USAGE;
	}
	if (o->help || o->version) {
		if (p->rank == 0 && o->help)
			dr_opts_usage(stdout);
		if (p->rank == 0 && o->version)
			printf("drender %s (Open MPI, cJSON, libmicrohttpd)\n", DR_VERSION);
		return DR_EXIT_ALL_DONE;
	}
	/* rank 0's alone (the HTTP service): its failure ends every rank after the broadcast */
	if (p->rank == 0 && dr_opts_load_token(o, getenv("DRENDER_TOKEN"), err, sizeof err) != 0) {
		dr_error("%s", err);
		p->bad_token = true;
	}
	dr_log_init(p->rank, o->verbosity < 0   ? DR_LOG_WARN
	                     : o->verbosity > 0 ? DR_LOG_DEBUG
	                                        : DR_LOG_INFO);
	if (dr_opts_resolve(o, p->size - 1, dr_mpi_recovery(), err, sizeof err) != 0) {
		if (p->rank == 0)
			dr_error("%s", err);
		dr_opts_free(o);
		return DR_EXIT_USAGE;
	}
	dr_progcfg_service(o, p->size, &p->scfg);
	return -1;
}

/* The channel, CPUs and GPUs of every rank. 0, or the exit code. A GPU asked for on the command
 * line that some node cannot have is bad input (exit 2), found before anything renders. */
static int plan(proc *p, dr_chan **chan)
{
	char err[DR_ERRLEN];
	bool renders = p->size == 1 || p->rank != 0;

	if ((*chan = dr_chan_create(MPI_COMM_WORLD, err, sizeof err)) == NULL ||
	    dr_cpus_plan(MPI_COMM_WORLD, renders, &p->cpus, &p->threads, err, sizeof err) != 0) {
		dr_error("%s", err);
		return DR_EXIT_RUNTIME;
	}
	if (dr_gpu_plan(MPI_COMM_WORLD, renders, p->o.gpus_per_node, dr_device_is_gpu(p->o.device),
	                &p->gpu, p->gpu_why, sizeof p->gpu_why, err, sizeof err) != 0) {
		if (p->rank == 0)
			dr_error("%s", err);
		return DR_EXIT_USAGE;
	}
	p->scfg.node.gpu = p->gpu;
	p->scfg.node.gpu_why = p->gpu_why[0] ? p->gpu_why : NULL;
	if (p->o.threads > 0)
		p->threads = p->o.threads;
	dr_progcfg_node(&p->o, &p->scfg.node, p->interrupted, &p->node.cfg);
	return 0;
}

/* No shared storage: the scene goes to the nodes lacking it before any frame (dr_stageplan),
 * with the probe in the output directory that rank 0's service resolved. */
static void stage(proc *p, const dr_service *svc)
{
	dr_stageplan_cfg c;

	if (p->size < 2 || !(p->o.serve || p->o.scene))
		return;
	dr_progcfg_stage(&p->o, dr_service_outdir(svc), p->interrupted, &c);
	if (p->rank == 0)
		dr_stageplan_run(&c, MPI_COMM_WORLD, &p->scfg.stage);
	else
		dr_nodeprog_stage(&p->node, MPI_COMM_WORLD);
}

/* After a program ran: release rank 0's service, the channel and the options, and leave. */
static int end(proc *p, dr_service *svc, dr_chan *chan, int code)
{
	bool lost_peers = p->rank == 0 && dr_service_lost_nodes(svc);

	dr_service_close(svc);
	dr_chan_clear_sides(chan);
	dr_chan_free(chan, *p->interrupted || lost_peers ? 0 : 5.0);
	dr_opts_free(&p->o);
	if (*p->interrupted) {
		dr_exit_status(DR_EXIT_INTERRUPTED);
		fflush(NULL);
		_exit(DR_EXIT_INTERRUPTED); /* peers may be gone: do not wait for them in MPI */
	}
	return dr_exit_finish(code);
}

int main(int argc, char **argv)
{
	proc p = {.threads = 1, .gpu = -1};
	dr_chan *chan = NULL;
	dr_service *svc = NULL;
	int provided, code;

	if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		fprintf(stderr, "drender: error: MPI could not start\n");
		return DR_EXIT_RUNTIME;
	}
	if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
	    MPI_Comm_rank(MPI_COMM_WORLD, &p.rank) != MPI_SUCCESS ||
	    MPI_Comm_size(MPI_COMM_WORLD, &p.size) != MPI_SUCCESS) {
		fprintf(stderr, "drender: error: MPI could not start\n");
		return dr_exit_finish(DR_EXIT_RUNTIME);
	}
	dr_log_init(p.rank, DR_LOG_INFO);
	p.interrupted = dr_exit_init(p.rank);
	if ((code = options(argc, argv, &p)) >= 0)
		return dr_exit_finish(code);
	code = p.rank != 0 ? 0 : p.bad_token ? DR_EXIT_USAGE : dr_service_open(&svc, &p.scfg);
	if (p.size > 1 && MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
		code = DR_EXIT_RUNTIME;
	if (code == 0 && (code = plan(&p, &chan)) == 0)
		stage(&p, svc);
	if (code != 0 || *p.interrupted) {
		dr_service_close(svc);
		dr_opts_free(&p.o);
		if (code != 0)
			return dr_exit_finish(code);
		fflush(NULL);
		_exit(DR_EXIT_INTERRUPTED);
	}
	if (p.rank == 0)
		code = dr_service_run(svc, chan, p.threads, &p.cpus, p.interrupted);
	else
		code = dr_nodeprog_run(&p.node, chan, p.threads, &p.cpus);
	return end(&p, svc, chan, code);
}
