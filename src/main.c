/* drender's entry point: wires options, MPI, the orchestrator (rank 0) and render nodes together.
 */
#include "dr_cpus.h"
#include "dr_log.h"
#include "dr_msg.h"
#include "dr_node.h"
#include "dr_opts.h"
#include "dr_orch.h"
#include "dr_outdir.h"
#include "dr_outpath.h"
#include "dr_report.h"
#include "dr_scene.h"

#include <fcntl.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	EXIT_ALL_DONE = 0,
	EXIT_FRAMES_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_RUNTIME = 3,
	EXIT_INTERRUPTED = 130
};

/* Set by SIGINT/SIGTERM/SIGHUP; the loops check it and clean up. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void sleep_ms(double ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
	nanosleep(&ts, NULL);
}

/* Wait for every rank without spinning (a blocking MPI_Barrier busy-polls a core), then finalize.
 */
static int finish(int code)
{
	MPI_Request req;
	int done = 0, size = 1;
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (size > 1 && MPI_Ibarrier(MPI_COMM_WORLD, &req) == MPI_SUCCESS) {
		while (!done && !interrupted) {
			if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
				break;
			if (!done)
				sleep_ms(2);
		}
		if (!done)
			return code; /* interrupted or broken: do not hang in MPI_Finalize */
	}
	MPI_Finalize();
	return code;
}

/* Rank 0's checks before anything starts. Returns 0 or EXIT_USAGE (message printed). */
static int validate(const dr_opts *o, const dr_outpath *out)
{
	char err[2048];
	if (dr_scene_check(o->scene, err, sizeof err) != 0 ||
	    dr_outdir_prepare(out, &o->frames, err, sizeof err) != 0) {
		dr_error("%s", err);
		return EXIT_USAGE;
	}
	return 0;
}

static int open_tty(const dr_opts *o)
{
	if (o->verbosity < 0)
		return -1;
	int fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 && !isatty(fd)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int run_rank0(const dr_opts *o, const dr_outpath *out, dr_chan *chan, int threads,
                     const cpu_set_t *cpus)
{
	dr_orch orch;
	dr_node node;
	dr_msg m;
	dr_report rep;
	char err[2048] = "", msg[2300] = "";
	const char *status = "done";
	int src, k, code = EXIT_ALL_DONE, tty = open_tty(o);
	bool local = chan->size == 1, have_node = false, failed = false;
	double idle_ms = 0.2;

	dr_log_set_tty(tty);
	if (dr_orch_init(&orch, o, out, chan, tty, err, sizeof err) != 0) {
		dr_error("%s", err);
		if (tty >= 0)
			close(tty);
		return EXIT_RUNTIME;
	}
	if (local) {
		if (dr_node_start(&node, o, out, chan, threads, cpus, err, sizeof err) != 0)
			failed = true;
		else
			have_node = true;
	}
	while (!failed && !dr_orch_finished(&orch) && !interrupted) {
		int got = 0;
		while ((k = dr_chan_poll(chan, &m, &src, err, sizeof err)) == 1) {
			got++;
			if (m.type == DR_MSG_TASK || m.type == DR_MSG_STOP) {
				if (have_node && dr_node_handle(&node, &m, err, sizeof err))
					failed = true;
			} else if (dr_orch_handle(&orch, &m, src, err, sizeof err)) {
				failed = true;
			}
		}
		if (k < 0 || failed || dr_orch_tick(&orch, err, sizeof err)) {
			failed = true;
			break;
		}
		if (orch.silent >= 0) {
			const dr_report_node *nd = &orch.info[orch.silent];
			snprintf(err, sizeof err,
			         "rank %d on host %s has not been heard from for %.0f s (stopped, hung "
			         "or cut off from the network); ending the job. Frames already done "
			         "are kept: run the same command again to render the rest",
			         nd->rank, nd->host[0] ? nd->host : "(unknown)", o->node_timeout);
			failed = true;
			break;
		}
		if (dr_sched_finished(orch.sched) && dr_orch_stop_all(&orch, err, sizeof err)) {
			failed = true;
			break;
		}
		if (have_node) {
			if (dr_node_tick(&node, got ? 0 : 20, err, sizeof err))
				failed = true;
		} else {
			idle_ms = got ? 0.2 : (idle_ms * 2 > 2 ? 2 : idle_ms * 2);
			sleep_ms(idle_ms);
		}
	}
	if (have_node) {
		if (interrupted)
			dr_node_abort(&node);
		dr_node_destroy(&node);
	}
	dr_sched_counts c = dr_sched_count(orch.sched);
	if (interrupted) {
		code = EXIT_INTERRUPTED;
		status = "interrupted";
		snprintf(msg, sizeof msg,
		         "Interrupted: frames already done are kept; run the same command again to "
		         "render the rest.");
	} else if (failed) {
		code = EXIT_RUNTIME;
		status = "error";
		snprintf(msg, sizeof msg, "Stopped by a runtime failure: %s", err);
		dr_error("%s", err);
	} else if (orch.all_loadfail) {
		code = EXIT_USAGE;
		status = "error";
		snprintf(msg, sizeof msg, "No render node could start Blender on the scene: %s",
		         orch.loaderr);
		dr_error("%s", msg);
	} else if (c.failed > 0) {
		code = EXIT_FRAMES_FAILED;
		status = "failed";
	}
	/* The JSON report first: on an interrupt, mpirun may kill us soon after its SIGTERM. */
	dr_orch_report(&orch, &rep, code, status, msg[0] ? msg : NULL);
	if (o->report && dr_report_write(&rep, o->report, err, sizeof err) != 0) {
		dr_error("%s", err);
		if (code == EXIT_ALL_DONE)
			code = EXIT_RUNTIME;
	}
	if (code != EXIT_USAGE)
		dr_report_print(&rep, stdout);
	if (!interrupted && !failed)
		dr_orch_stop_all(&orch, err, sizeof err);
	if (failed && chan->size > 1) {
		fflush(NULL);
		MPI_Abort(MPI_COMM_WORLD, EXIT_RUNTIME); /* the nodes cannot be told to stop */
	}
	dr_log_set_tty(-1);
	if (tty >= 0)
		close(tty);
	dr_orch_destroy(&orch);
	return code;
}

static int run_node(const dr_opts *o, const dr_outpath *out, dr_chan *chan, int threads,
                    const cpu_set_t *cpus)
{
	dr_node node;
	dr_msg m;
	char err[2048];
	int src, k, rc = EXIT_ALL_DONE;
	double idle_ms = 0.1;

	if (dr_node_start(&node, o, out, chan, threads, cpus, err, sizeof err) != 0) {
		dr_error("%s", err);
		return EXIT_RUNTIME;
	}
	while (!node.stopped && !interrupted) {
		int got = 0;
		while ((k = dr_chan_poll(chan, &m, &src, err, sizeof err)) == 1) {
			got++;
			if (dr_node_handle(&node, &m, err, sizeof err) != 0)
				k = -1;
		}
		if (k < 0 || dr_node_tick(&node, node.frame >= 0 || !node.ready ? 50 : 0, err,
		                          sizeof err) != 0) {
			dr_error("%s", err);
			rc = EXIT_RUNTIME;
			break;
		}
		if (node.ready && node.frame < 0 && node.qlen == 0) {
			idle_ms = got ? 0.1 : (idle_ms * 2 > 5 ? 5 : idle_ms * 2);
			sleep_ms(idle_ms);
		}
	}
	if (interrupted) {
		dr_node_abort(&node);
		rc = EXIT_INTERRUPTED;
	}
	dr_node_destroy(&node);
	return rc;
}

int main(int argc, char **argv)
{
	dr_opts o = {0};
	dr_outpath out;
	dr_chan chan;
	cpu_set_t cpus;
	char err[2048] = "";
	int provided, rank = 0, size = 1, verdict = 0, threads = 1, code;

	if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		fprintf(stderr, "drender: error: MPI could not start\n");
		return EXIT_RUNTIME;
	}
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	dr_log_init(rank, DR_LOG_INFO);
	install_signals();

	/* Every rank parses the same argv; only rank 0 speaks. */
	if (dr_opts_parse(argc, argv, getenv("DRENDER_BLENDER"), &o, err, sizeof err) != 0) {
		if (rank == 0)
			dr_error("%s", err);
		return finish(EXIT_USAGE);
	}
	if (o.help || o.version) {
		if (rank == 0 && o.help)
			dr_opts_usage(stdout);
		if (rank == 0 && o.version)
			printf("drender %s (Open MPI, cJSON, libmicrohttpd)\n", DR_VERSION);
		return finish(EXIT_ALL_DONE);
	}
	dr_log_init(rank, o.verbosity < 0   ? DR_LOG_WARN
	                  : o.verbosity > 0 ? DR_LOG_DEBUG
	                                    : DR_LOG_INFO);
	if (dr_outpath_init(&out, o.output, o.scene, o.format, err, sizeof err) != 0) {
		if (rank == 0)
			dr_error("%s", err);
		dr_opts_free(&o);
		return finish(EXIT_USAGE);
	}
	if (rank == 0)
		verdict = validate(&o, &out);
	if (size > 1 && MPI_Bcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
		verdict = EXIT_RUNTIME;
	if (verdict != 0) {
		dr_opts_free(&o);
		return finish(verdict);
	}
	if (dr_chan_init(&chan, MPI_COMM_WORLD, err, sizeof err) != 0 ||
	    dr_cpus_plan(MPI_COMM_WORLD, size == 1 || rank != 0, &cpus, &threads, err,
	                 sizeof err) != 0) {
		dr_error("%s", err);
		dr_opts_free(&o);
		return finish(EXIT_RUNTIME);
	}
	if (o.threads > 0)
		threads = o.threads;
	if (rank == 0)
		code = run_rank0(&o, &out, &chan, threads, &cpus);
	else
		code = run_node(&o, &out, &chan, threads, &cpus);
	dr_chan_destroy(&chan);
	dr_opts_free(&o);
	if (interrupted) {
		fflush(NULL);
		_exit(EXIT_INTERRUPTED); /* peers may be gone: do not wait for them in MPI */
	}
	return finish(code);
}
