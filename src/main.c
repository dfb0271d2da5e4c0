/* drender's entry point: wires options, MPI, the orchestrator (rank 0), render nodes and the HTTP
 * API together. */
#include "dr_cpus.h"
#include "dr_http.h"
#include "dr_jobs.h"
#include "dr_log.h"
#include "dr_msg.h"
#include "dr_node.h"
#include "dr_opts.h"
#include "dr_orch.h"
#include "dr_outdir.h"
#include "dr_outpath.h"
#include "dr_report.h"
#include "dr_scene.h"
#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
				dr_sleep_ms(2);
		}
		if (!done)
			return code; /* interrupted or broken: do not hang in MPI_Finalize */
	}
	MPI_Finalize();
	return code;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
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

/* Everything rank 0 runs: the orchestrator, its own render node when it is alone, and the job
 * table and HTTP server when there is an API. */
typedef struct rank0 {
	const dr_opts *o;
	dr_chan *chan;
	dr_orch orch;
	dr_node node;
	bool have_node;
	dr_jobs *table;
	dr_http *http;
	double last_publish;
	dr_render_cfg batch; /* the command line's job (a batch), checked by validate() */
	char real_blend_root[PATH_MAX], real_output_root[PATH_MAX], real_scene[PATH_MAX];
} rank0;

/* The settings of the command line's job (a batch), with the output pattern resolved, and its
 * frame naming. */
static int batch_cfg(const dr_opts *o, dr_render_cfg *cfg, dr_outpath *out, char *err,
                     size_t errlen)
{
	if (dr_render_cfg_init(cfg, o->scene, o->output, o->format, o->engine, o->samples, err,
	                       errlen) != 0 ||
	    dr_render_cfg_outpath(cfg, out, err, errlen) != 0)
		return -1;
	snprintf(cfg->output, sizeof cfg->output, "%s", out->pattern);
	return 0;
}

/* One round: messages, scheduling, and rendering (alone) or a short sleep. */
static int pump(rank0 *z, double *idle_ms, char *err, size_t errlen)
{
	dr_msg m;
	int src, k, got = 0;

	while ((k = dr_chan_poll(z->chan, &m, &src, err, errlen)) == 1) {
		got++;
		if (m.type == DR_MSG_TASK || m.type == DR_MSG_STOP || m.type == DR_MSG_JOB ||
		    m.type == DR_MSG_CANCEL) {
			if (z->have_node && dr_node_handle(&z->node, &m, err, errlen))
				return -1;
		} else if (dr_orch_handle(&z->orch, &m, src, err, errlen)) {
			return -1;
		}
	}
	if (k < 0 || dr_orch_tick(&z->orch, err, errlen))
		return -1;
	if (z->have_node)
		return dr_node_tick(&z->node,
		                    got                      ? 0
		                    : dr_node_idle(&z->node) ? 2
		                                             : 20,
		                    err, errlen);
	/* Back off from 0.2 ms right after a message to 2 ms when quiet: quick to answer a
	 * request, near 0% CPU while everyone renders. */
	*idle_ms = got ? 0.2 : (*idle_ms * 2 > 2 ? 2 : *idle_ms * 2);
	dr_sleep_ms(*idle_ms);
	return 0;
}

/* Service bookkeeping: adopt new jobs, honour cancels, publish status and metrics. */
static void serve_round(rank0 *z)
{
	char id[DR_JOB_ID_MAX], err[2048];
	dr_jobspec spec;
	double now = dr_now();
	int got;

	while (!z->o->http && (got = dr_jobs_take(z->table, id, sizeof id, &spec)) == 1) {
		dr_ojob *j = dr_orch_add(&z->orch, id, &spec.render, spec.priority, &spec.frames,
		                         err, sizeof err);
		if (!j) {
			char *st = NULL;
			cJSON *o = cJSON_CreateObject();
			if (o && cJSON_AddStringToObject(o, "error", err))
				st = cJSON_PrintUnformatted(o);
			cJSON_Delete(o);
			dr_jobs_publish(z->table, id, DR_JOB_FAILED, st);
			free(st);
			dr_error("job %s: %s", id, err);
		} else {
			dr_info("job %s: %s, %zu frames", id, spec.render.scene, spec.frames.n);
		}
		dr_jobspec_free(&spec);
	}
	if (now - z->last_publish < 0.25)
		return;
	z->last_publish = now;
	for (size_t i = 0; i < z->orch.njobs; i++) {
		dr_ojob *j = z->orch.jobs[i];
		if (j->published_end)
			continue;
		if (!j->ended && dr_jobs_cancel_requested(z->table, j->id) &&
		    dr_orch_cancel(&z->orch, j, err, sizeof err) != 0)
			dr_error("%s", err);
		char *st = dr_orch_status(&z->orch, j);
		dr_jobs_publish(z->table, j->id, dr_orch_state(j), st);
		free(st);
		j->published_end = j->ended;
	}
	dr_jobs_publish_metrics(z->table, &z->orch.metrics);
}

/* Start the job table and HTTP server (rank 0, before any render node starts). 0 or EXIT_USAGE. */
static int start_api(rank0 *z)
{
	const dr_opts *o = z->o;
	char err[2048];
	dr_http_cfg hc = {
	        .listen = o->serve ? o->listen : o->http,
	        .token = o->token,
	        .read_only = !o->serve,
	        .rate_per_s = o->rate_limit,
	        .rate_burst = 2.0 * o->rate_limit,
	};

	if (o->serve) {
		const char *out = o->output_root ? o->output_root : "output";
		const char *blend = o->blend_root ? o->blend_root : ".";
		int frame0 = 0;
		dr_frames one = {&frame0, 1};
		dr_outpath probe;
		char pat[PATH_MAX + 16];

		/* the output root must exist and be writable; both roots are used as real paths */
		snprintf(pat, sizeof pat, "%s/x_#", out);
		if (dr_outpath_init(&probe, pat, "x.blend", "PNG", err, sizeof err) != 0 ||
		    dr_outdir_prepare(&probe, &one, err, sizeof err) != 0) {
			dr_error("--output-root: %s", err);
			return EXIT_USAGE;
		}
		if (!realpath(out, z->real_output_root) || !realpath(blend, z->real_blend_root)) {
			dr_error("%s: %s", z->real_output_root[0] ? blend : out, strerror(errno));
			return EXIT_USAGE;
		}
		if (o->scene && dr_scene_check(o->scene, err, sizeof err) != 0) {
			dr_error("--scene: %s", err);
			return EXIT_USAGE;
		}
		if (o->scene && !realpath(o->scene, z->real_scene)) {
			dr_error("--scene %s: %s", o->scene, strerror(errno));
			return EXIT_USAGE;
		}
		hc.limits.blend_root = z->real_blend_root;
		hc.limits.output_root = z->real_output_root;
		hc.limits.default_scene = o->scene ? z->real_scene : NULL;
		hc.limits.max_frames = DR_FRAMES_COUNT_MAX;
	}
	z->table = dr_jobs_create(o->serve ? z->real_output_root : NULL, (size_t)o->max_queued, err,
	                          sizeof err);
	if (!z->table) {
		dr_error("%s", err);
		return EXIT_USAGE;
	}
	z->http = dr_http_start(&hc, z->table, err, sizeof err);
	if (!z->http) {
		dr_error("%s", err);
		dr_jobs_destroy(z->table);
		z->table = NULL;
		return EXIT_USAGE;
	}
	dr_info("HTTP API on %s, port %d%s", hc.listen, dr_http_port(z->http),
	        o->serve ? " (POST /render to submit)" : "");
	return 0;
}

static void stop_api(rank0 *z)
{
	dr_http_stop(z->http);
	z->http = NULL;
	dr_jobs_destroy(z->table);
	z->table = NULL;
}

/* Rank 0's checks before anything starts. Returns 0 or EXIT_USAGE (message printed). */
static int validate(rank0 *z)
{
	const dr_opts *o = z->o;
	dr_outpath out;
	char err[2048];

	if (!o->serve && (dr_scene_check(o->scene, err, sizeof err) != 0 ||
	                  batch_cfg(o, &z->batch, &out, err, sizeof err) != 0 ||
	                  dr_outdir_prepare(&out, &o->frames, err, sizeof err) != 0)) {
		dr_error("%s", err);
		return EXIT_USAGE;
	}
	if (o->serve || o->http)
		return start_api(z);
	return 0;
}

/* List the batch job in the job table (for --http); its table id goes to ID ("batch" if that
 * fails: the API then just does not know the job). */
static void list_batch(rank0 *z, char *id, size_t idlen)
{
	const dr_opts *o = z->o;
	dr_jobspec spec = {.render = z->batch};
	char err[2048];

	spec.frames.v = malloc(o->frames.n * sizeof *o->frames.v);
	if (!spec.frames.v)
		return;
	memcpy(spec.frames.v, o->frames.v, o->frames.n * sizeof *o->frames.v);
	spec.frames.n = o->frames.n;
	if (dr_jobs_submit(z->table, &spec, NULL, id, idlen, err, sizeof err) != 0) {
		dr_jobspec_free(&spec);
		dr_warn("the HTTP API will not list this run: %s", err);
		return;
	}
	if (dr_jobs_take(z->table, id, idlen, &spec) == 1)
		dr_jobspec_free(&spec);
}

static int run_rank0(rank0 *z, int threads, const cpu_set_t *cpus)
{
	const dr_opts *o = z->o;
	dr_report rep;
	dr_ojob *job = NULL;
	char err[2048] = "", msg[2300] = "", id[DR_JOB_ID_MAX] = "batch";
	const char *status = "done";
	int code = EXIT_ALL_DONE, tty = open_tty(o);
	bool failed = false;
	double idle_ms = 0.2;

	dr_log_set_tty(o->serve ? -1 : tty);
	if (dr_orch_init(&z->orch, o, z->chan, tty, o->serve, err, sizeof err) != 0) {
		dr_error("%s", err);
		return EXIT_RUNTIME;
	}
	if (!o->serve) {
		if (z->table) /* --http: the batch job is listed in the table too */
			list_batch(z, id, sizeof id);
		if (!(job = dr_orch_add(&z->orch, id, &z->batch, 0, &o->frames, err, sizeof err))) {
			dr_error("%s", err);
			dr_orch_destroy(&z->orch);
			return EXIT_RUNTIME;
		}
	}
	if (z->chan->size == 1) {
		if (dr_node_start(&z->node, o, z->chan, threads, cpus, err, sizeof err) != 0)
			failed = true;
		else
			z->have_node = true;
	}
	while (!failed && !interrupted && (o->serve || !dr_orch_finished(&z->orch))) {
		if (pump(z, &idle_ms, err, sizeof err) != 0) {
			failed = true;
			break;
		}
		if (z->table)
			serve_round(z);
		if (z->orch.silent >= 0) {
			const dr_report_node *nd = &z->orch.info[z->orch.silent];
			snprintf(
			        err, sizeof err,
			        "rank %d on host %s has not been heard from for %.0f s (stopped, "
			        "hung "
			        "or cut off from the network); ending the job. Frames already done "
			        "are kept: run the same command again to render the rest",
			        nd->rank, nd->host[0] ? nd->host : "(unknown)", o->node_timeout);
			failed = true;
			break;
		}
		if (!o->serve && job->ended && dr_orch_stop_all(&z->orch, err, sizeof err)) {
			failed = true;
			break;
		}
	}
	if (z->have_node) {
		if (interrupted)
			dr_node_abort(&z->node);
		dr_node_destroy(&z->node);
	}
	if (o->serve) {
		if (failed)
			dr_error("%s", err);
		else
			dr_info("stopping the service; unfinished jobs resume when it starts "
			        "again");
		if (z->table)
			serve_round(z);
		code = failed ? EXIT_RUNTIME : EXIT_ALL_DONE;
		goto out;
	}
	dr_sched_counts c = dr_sched_count(job->sched);
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
	} else if (job->all_loadfail) {
		code = EXIT_USAGE;
		status = "error";
		snprintf(msg, sizeof msg, "No render node could start Blender on the scene: %s",
		         job->loaderr);
		dr_error("%s", msg);
	} else if (c.failed > 0) {
		code = EXIT_FRAMES_FAILED;
		status = "failed";
	}
	/* The JSON report first: on an interrupt, mpirun may kill us soon after its SIGTERM. */
	dr_orch_report(&z->orch, job, &rep, code, status, msg[0] ? msg : NULL);
	rep.rank0_cpu = cpu_seconds();
	if (o->report && dr_report_write(&rep, o->report, err, sizeof err) != 0) {
		dr_error("%s", err);
		if (code == EXIT_ALL_DONE)
			code = EXIT_RUNTIME;
	}
	if (code != EXIT_USAGE)
		dr_report_print(&rep, stdout);
	if (z->table)
		serve_round(z);
out:
	if (!interrupted && !failed)
		dr_orch_stop_all(&z->orch, err, sizeof err);
	dr_log_set_tty(-1);
	if (tty >= 0)
		close(tty);
	if (failed && z->chan->size > 1) {
		fflush(NULL);
		MPI_Abort(MPI_COMM_WORLD, EXIT_RUNTIME); /* the nodes cannot be told to stop */
	}
	if (o->serve && !failed && !interrupted)
		dr_orch_stop_all(&z->orch, err, sizeof err);
	if (o->serve && interrupted && z->chan->size > 1) {
		interrupted = 0; /* a service stops its nodes and leaves cleanly */
		dr_orch_stop_all(&z->orch, err, sizeof err);
	}
	dr_orch_destroy(&z->orch);
	return code;
}

static int run_node(const dr_opts *o, dr_chan *chan, int threads, const cpu_set_t *cpus)
{
	dr_node node;
	dr_msg m;
	char err[2048];
	int src, k, rc = EXIT_ALL_DONE;
	double idle_ms = 0.1;

	if (dr_node_start(&node, o, chan, threads, cpus, err, sizeof err) != 0) {
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
		int before = node.frame;
		if (k < 0 || dr_node_tick(&node, dr_node_idle(&node) ? 0 : 50, err, sizeof err)) {
			dr_error("%s", err);
			rc = EXIT_RUNTIME;
			break;
		}
		/* a frame just ended: its successor may be waiting in MPI's queue, no nap */
		if (dr_node_idle(&node) && !node.stopped && node.frame == before) {
			idle_ms = got ? 0.1 : (idle_ms * 2 > 5 ? 5 : idle_ms * 2);
			dr_sleep_ms(idle_ms);
		}
	}
	if (interrupted) {
		dr_node_abort(&node);
		rc = EXIT_INTERRUPTED;
	}
	dr_node_destroy(&node);
	if (interrupted && chan->size > 1)
		dr_sleep_ms(300); /* mpirun SIGKILLs rank 0 once the other ranks are gone: give it
		                   * time to write its report (our Blender is already dead) */
	return rc;
}

int main(int argc, char **argv)
{
	dr_opts o = {0};
	dr_chan chan;
	cpu_set_t cpus;
	rank0 z;
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
	if (!o.token && getenv("DRENDER_TOKEN") && *getenv("DRENDER_TOKEN"))
		o.token = getenv("DRENDER_TOKEN");
	dr_log_init(rank, o.verbosity < 0   ? DR_LOG_WARN
	                  : o.verbosity > 0 ? DR_LOG_DEBUG
	                                    : DR_LOG_INFO);
	memset(&z, 0, sizeof z);
	z.o = &o;
	z.chan = &chan;
	if (rank == 0)
		verdict = validate(&z);
	if (size > 1 && MPI_Bcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
		verdict = EXIT_RUNTIME;
	if (verdict != 0) {
		stop_api(&z);
		dr_opts_free(&o);
		return finish(verdict);
	}
	if (dr_chan_init(&chan, MPI_COMM_WORLD, err, sizeof err) != 0 ||
	    dr_cpus_plan(MPI_COMM_WORLD, size == 1 || rank != 0, &cpus, &threads, err,
	                 sizeof err) != 0) {
		dr_error("%s", err);
		stop_api(&z);
		dr_opts_free(&o);
		return finish(EXIT_RUNTIME);
	}
	if (o.threads > 0)
		threads = o.threads;
	if (rank == 0)
		code = run_rank0(&z, threads, &cpus);
	else
		code = run_node(&o, &chan, threads, &cpus);
	stop_api(&z);
	dr_chan_destroy(&chan, interrupted ? 0 : 5.0);
	dr_opts_free(&o);
	if (interrupted) {
		fflush(NULL);
		_exit(EXIT_INTERRUPTED); /* peers may be gone: do not wait for them in MPI */
	}
	return finish(code);
}
