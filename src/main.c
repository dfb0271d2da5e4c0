/* drender's entry point: wires MPI, options and signals to rank 0's service (dr_service) and the
 * render nodes (dr_node). */
#include "dr_assets.h"
#include "dr_cache.h"
#include "dr_collect.h"
#include "dr_cpus.h"
#include "dr_fetch.h"
#include "dr_gpu.h"
#include "dr_log.h"
#include "dr_msg.h"
#include "dr_node.h"
#include "dr_opts.h"
#include "dr_outdir.h"
#include "dr_report.h"
#include "dr_service.h"
#include "dr_stage.h"
#include "dr_status.h"
#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Seconds MPI_Finalize may take under --enable-recovery before the process leaves without it. */
#define FINALIZE_GRACE_S 10

static volatile int exit_code; /* for the finalize watchdog */

/* This process's rank once MPI has said it; -1 before. */
static int my_rank = -1;

/* Rank 0's last word: its exit status CODE, to the file named by DRENDER_STATUS_FILE (for
 * scripts/drender-mpirun, since mpirun --enable-recovery exits 0 whatever rank 0 returns).
 * Called on every exit path, just before MPI_Finalize or _exit. Returns CODE. */
static int tell_status(int code)
{
	char err[DR_ERRLEN];

	if (my_rank == 0 && dr_status_tell(code, err, sizeof err) != 0)
		dr_error("%s", err);
	return code;
}

static void *finalize_watchdog(void *arg)
{
	(void)arg;
	dr_sleep_ms(FINALIZE_GRACE_S * 1000.0);
	_exit(exit_code);
	return NULL;
}

/* Wait for every rank without spinning (a blocking MPI_Barrier busy-polls a core), then finalize.
 * Under mpirun --enable-recovery a rank may be dead: a barrier over the world would never
 * complete, and MPI_Finalize's own fence sometimes waits for the dead too (seen with Open MPI
 * 4.1: survivors sleeping in ompi_mpi_finalize for good after a rank was killed). There the
 * barrier is left out and a watchdog thread ends the process with CODE if MPI_Finalize has not
 * returned after FINALIZE_GRACE_S seconds. */
static int finish(int code)
{
	MPI_Request req;
	pthread_t watchdog;
	int done = 0, size = 1;
	bool recovery = dr_mpi_recovery();

	if (MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS)
		size = 1;
	if (size > 1 && !recovery && MPI_Ibarrier(MPI_COMM_WORLD, &req) == MPI_SUCCESS) {
		while (!done && !interrupted) {
			if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
				break;
			if (!done)
				dr_sleep_ms(2);
		}
		if (!done)
			return tell_status(code); /* interrupted or broken: no MPI_Finalize hang */
	}
	exit_code = code;
	tell_status(code);
	fflush(NULL);
	if (size > 1 && recovery && pthread_create(&watchdog, NULL, finalize_watchdog, NULL) == 0)
		pthread_detach(watchdog);
	MPI_Finalize();
	return code;
}

/* Rank 0's probe file in its output directory DIR: a node that reads TOKEN there shares the
 * directory; the others send their frames home (dr_collect). 0 with PATH, or -1 (no probe: every
 * node is taken to share it). */
static int write_probe(const char *dir, char *path, size_t len, char *token, size_t toklen)
{
	char host[256], tag[300];
	unsigned char rnd[16];
	int fd, n;

	if (toklen < 2 * sizeof rnd + 1 || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return -1;
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "unknown-host");
	host[sizeof host - 1] = '\0';
	dr_outdir_tag(host, tag, sizeof tag);
	n = snprintf(path, len, "%s/.drender-probe-%s", dir, tag);
	if (n < 0 || (size_t)n >= len)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = (int)write(fd, token, strlen(token));
	close(fd);
	if (n != (int)strlen(token)) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* The directory rank 0's probe goes in: a batch's first frame's (made if missing), a service's
 * output root. 0 with DIR, or -1. */
static int probe_dir(const dr_opts *o, char *dir, size_t len)
{
	char why[DR_ERRLEN];
	dr_render_cfg rc;
	dr_outpath out;

	if (o->serve)
		return (size_t)snprintf(dir, len, "%s",
		                        o->output_root ? o->output_root : "output") < len
		               ? 0
		               : -1;
	if (o->has_still ||
	    dr_render_cfg_init(&rc, o->scene, o->output, o->format, o->engine, o->samples, why,
	                       sizeof why) != 0 ||
	    dr_render_cfg_outpath(&rc, &out, why, sizeof why) != 0 ||
	    dr_outdir_prepare(&out, &o->frames, why, sizeof why) != 0)
		return -1;
	return dr_outpath_dir(&out, o->frames.v[0], dir, len);
}

/* Seconds a silent node (or a transfer that makes no progress) is given: --node-timeout, else the
 * default for how mpirun was started. */
static double node_timeout(const dr_opts *o)
{
	return o->node_timeout > 0 ? o->node_timeout
	       : dr_mpi_recovery() ? DR_NODE_TIMEOUT_RECOVERY
	                           : DR_NODE_TIMEOUT;
}

/* No shared storage: before any frame, rank 0 sends the scene to the render nodes that do not
 * see the same file (dr_stage), and learns which nodes do not see its output directory. On a
 * node, LOCAL gets the copy Blender opens ("" = the scene itself) and *SHARED whether it shares
 * rank 0's output directory; on rank 0, *REP what staging did. A failure is not fatal: a node
 * without the scene reports that it cannot load it, as without staging. */
static void stage_scene(const dr_opts *o, int rank, char *local, size_t len, bool *shared,
                        dr_report_stage *rep)
{
	char err[DR_ERRLEN], dir[DR_PATH_MAX], probe[DR_PATH_MAX + 64], token[64];
	dr_stage_result r = {0};
	dr_stage_cfg c = {
	        .always = o->stage == DR_STAGE_ALWAYS,
	        .never = o->stage == DR_STAGE_NEVER,
	        .cache_dir = o->cache_dir,
	        .cache_max = o->cache_max,
	        .timeout = node_timeout(o),
	        .interrupted = &interrupted,
	};

	local[0] = '\0';
	*shared = true;
	if (rank != 0) {
		if (dr_stage_node(MPI_COMM_WORLD, &c, local, len, shared, err, sizeof err) != 0)
			dr_warn("%s", err);
		if (o->serve || (o->scene && strcmp(local, o->scene) == 0))
			local[0] = '\0';
		return;
	}
	double t0 = dr_now();
	int size = 1;
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	c.silent = calloc((size_t)size, 1); /* NULL: every node is asked every time */
	if (probe_dir(o, dir, sizeof dir) == 0 &&
	    write_probe(dir, probe, sizeof probe, token, sizeof token) == 0) {
		c.probe = probe;
		c.token = token;
	}
	/* A service's jobs name their own scenes (fetched as they come): only the probe is asked
	 * about (the offer names a file that exists; the nodes do not open it). */
	c.never = c.never || o->serve;
	/* The file sent is a packed copy of the scene (its textures, libraries and fonts inside,
	 * see dr_assets_pack), made only when some node lacks the scene: an ask round first, unless
	 * --stage always. Without a packed copy the scene itself goes, and a node's check of its
	 * external files says what it then lacks. */
	char packed[DR_PATH_MAX + 128] = "";
	int k = 0;
	if (!c.never && !c.always) {
		c.ask = c.more = true;
		k = dr_stage_source(MPI_COMM_WORLD, &c, o->scene, &r, err, sizeof err);
		c.ask = c.more = false;
	}
	if (k == 0 && !c.never && (c.always || r.need > 0)) {
		if (dr_stage_pack(o->blender, o->scene, o->cache_dir, NULL, packed, sizeof packed,
		                  err, sizeof err) != 0) {
			dr_warn("%s; staging the scene without them", err);
			packed[0] = '\0';
		}
		c.same_as = packed[0] ? o->scene : NULL;
		k = dr_stage_source(MPI_COMM_WORLD, &c, packed[0] ? packed : o->scene, &r, err,
		                    sizeof err);
	} else if (k == 0 && c.never) {
		k = dr_stage_source(MPI_COMM_WORLD, &c,
		                    !o->serve ? o->scene
		                    : c.probe ? probe
		                              : "/",
		                    &r, err, sizeof err);
	}
	if (k != 0)
		dr_warn("%s", err);
	free(c.silent);
	if (c.probe)
		unlink(c.probe);
	if (r.collect)
		dr_info("%d node%s cannot see the output directory: %s frames come home over MPI",
		        r.collect, r.collect == 1 ? "" : "s", r.collect == 1 ? "its" : "their");
	*rep = (dr_report_stage){.ran = !c.never,
	                         .size = r.size,
	                         .bytes = r.bytes,
	                         /* the whole of it: the ask round and the packing too */
	                         .seconds = c.never ? 0 : dr_now() - t0,
	                         .same = r.same,
	                         .cached = r.cached,
	                         .staged = r.staged,
	                         .failed = r.failed};
}

/* A service's scenes are pulled by the render nodes that lack them (dr_fetch): true when this
 * run does that (--serve, more than one rank, --stage other than never). */
static bool fetches(const dr_opts *o, const dr_chan *chan)
{
	return o->serve && chan->size > 1 && o->stage != DR_STAGE_NEVER;
}

/* Rank 0's end of dr_fetch, pumped from every dr_chan_poll; NULL when the run has none (or it
 * cannot start: then nodes open scenes as named, as before). */
static dr_fetch_server *fetch_server(const dr_opts *o, dr_chan *chan, dr_service *svc)
{
	char err[DR_ERRLEN];
	dr_fetch_server_cfg c = {
	        .blender = o->blender,
	        .cache_dir = o->cache_dir,
	        .timeout = node_timeout(o),
	        .scene_of = dr_service_scene_of,
	        .scene_ctx = svc,
	};
	dr_fetch_server *s;

	if (!fetches(o, chan))
		return NULL;
	if (!(s = dr_fetch_server_create(dr_chan_peers(chan), &c, err, sizeof err))) {
		dr_warn("scenes cannot be staged: %s", err);
		return NULL;
	}
	dr_chan_add_side(chan, dr_fetch_server_pump, s);
	dr_chan_on_forget(chan, dr_fetch_server_forget, s);
	return s;
}

/* A render node's life: tasks in, results out, until rank 0 says stop. */
static int run_node(const dr_opts *o, dr_chan *chan, int threads, const cpu_set_t *cpus, int gpu,
                    const char *gpu_why, const char *staged, bool shared)
{
	dr_collect *home = NULL;
	dr_fetch_client *fetch = NULL;
	dr_node node;
	dr_node_cfg cfg;
	dr_msg m;
	char err[DR_ERRLEN];
	int src, k, rc = DR_EXIT_ALL_DONE;
	double idle_ms = 0.1;

	dr_opts_node_cfg(o, &cfg);
	cfg.gpu = gpu;
	cfg.gpu_why = gpu_why[0] ? gpu_why : NULL;
	cfg.scene_local = staged[0] ? staged : NULL;
	/* a node that does not see rank 0's output directory (or --collect) sends frames home */
	if (!o->has_still && (o->collect || !shared)) {
		home = dr_collect_node(chan, shared, err, sizeof err);
		if (!home) {
			dr_error("%s", err);
			return DR_EXIT_RUNTIME;
		}
		cfg.push = dr_collect_push;
		cfg.push_ctx = home;
		dr_chan_add_side(chan, dr_collect_pump, home);
	}
	/* a service: the node pulls each job's scene from rank 0 when it lacks it */
	if (fetches(o, chan)) {
		dr_fetch_client_cfg fc = {.cache_dir = o->cache_dir,
		                          .cache_max = o->cache_max,
		                          .always = o->stage == DR_STAGE_ALWAYS,
		                          .timeout = node_timeout(o)};
		fetch = dr_fetch_client_create(dr_chan_peers(chan), &fc, err, sizeof err);
		if (!fetch) {
			dr_error("%s", err);
			dr_chan_clear_sides(chan);
			dr_collect_close(home);
			return DR_EXIT_RUNTIME;
		}
		cfg.fetch = dr_fetch_client_fetch;
		cfg.fetch_ctx = fetch;
		dr_chan_add_side(chan, dr_fetch_client_pump, fetch);
	}
	if (dr_node_start(&node, &cfg, chan, threads, cpus, err, sizeof err) != 0) {
		dr_error("%s", err);
		return DR_EXIT_RUNTIME;
	}
	while (!dr_node_stopped(&node) && !interrupted) {
		int got = 0;
		while ((k = dr_chan_poll(chan, &m, &src, err, sizeof err)) == 1) {
			got++;
			if (dr_node_handle(&node, &m, err, sizeof err) != 0)
				k = -1;
		}
		int before = node.frame;
		if (k < 0 || dr_node_tick(&node, dr_node_idle(&node) ? 0 : 50, err, sizeof err)) {
			dr_error("%s", err);
			rc = DR_EXIT_RUNTIME;
			break;
		}
		/* a frame just ended: its successor may be waiting in MPI's queue, no nap */
		if (dr_node_idle(&node) && !dr_node_stopped(&node) && node.frame == before) {
			idle_ms = got ? 0.1 : (idle_ms * 2 > 5 ? 5 : idle_ms * 2);
			dr_sleep_ms(idle_ms);
		}
	}
	if (interrupted) {
		dr_node_abort(&node);
		rc = DR_EXIT_INTERRUPTED;
	}
	dr_node_destroy(&node);
	dr_chan_clear_sides(chan);
	dr_collect_close(home);
	dr_fetch_client_close(fetch);
	if (interrupted && chan->size > 1)
		dr_sleep_ms(300); /* mpirun SIGKILLs rank 0 once the other ranks are gone: give it
		                   * time to write its report (our Blender is already dead) */
	return rc;
}

/* What rank 0's service needs from the options. */
static void service_cfg(const dr_opts *o, dr_service_cfg *c)
{
	*c = (dr_service_cfg){
	        .serve = o->serve,
	        .http = o->http,
	        .listen = o->listen,
	        .token = o->token,
	        .tls_cert = o->tls_cert,
	        .tls_key = o->tls_key,
	        .rate_limit = o->rate_limit,
	        .max_queued = (size_t)o->max_queued,
	        .max_frames = (size_t)o->max_frames,
	        .scene = o->scene,
	        .blend_root = o->blend_root,
	        .output_root = o->output_root,
	        .output = o->output,
	        .format = o->format,
	        .engine = o->engine,
	        .samples = o->samples,
	        .video = o->video,
	        .fps = o->fps,
	        .still = o->still,
	        .split = o->has_still ? o->split : 0,
	        .frames = &o->frames,
	        .report = o->report,
	        .quiet = o->verbosity < 0,
	};
	dr_opts_orch_cfg(o, &c->orch);
	dr_opts_node_cfg(o, &c->node);
	dr_opts_jobs_cfg(o, &c->jobs);
}

int main(int argc, char **argv)
{
	dr_opts o = {0};
	dr_chan chan;
	cpu_set_t cpus;
	dr_service_cfg scfg;
	dr_service *svc = NULL;
	char err[DR_ERRLEN] = "", gpu_why[256] = "", staged[4200] = "";
	bool shared = true;
	dr_fetch_server *fetch = NULL;
	dr_fetch_stats fst;
	int provided, rank = 0, size = 1, verdict = 0, threads = 1, code, gpu = -1;
	bool lost_peers = false;

	if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		fprintf(stderr, "drender: error: MPI could not start\n");
		return DR_EXIT_RUNTIME;
	}
	if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
	    MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS ||
	    MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS) {
		fprintf(stderr, "drender: error: MPI could not start\n");
		return finish(DR_EXIT_RUNTIME);
	}
	my_rank = rank;
	dr_log_init(rank, DR_LOG_INFO);
	install_signals();

	/* Every rank parses the same argv; only rank 0 speaks. */
	if (dr_opts_parse(argc, argv, getenv("DRENDER_BLENDER"), &o, err, sizeof err) != 0) {
		if (rank == 0)
			dr_error("%s", err);
		return finish(DR_EXIT_USAGE);
	}
	if (o.help || o.version) {
		if (rank == 0 && o.help)
			dr_opts_usage(stdout);
		if (rank == 0 && o.version)
			printf("drender %s (Open MPI, cJSON, libmicrohttpd)\n", DR_VERSION);
		return finish(DR_EXIT_ALL_DONE);
	}
	if (!o.token && getenv("DRENDER_TOKEN") && *getenv("DRENDER_TOKEN"))
		o.token = getenv("DRENDER_TOKEN");
	dr_log_init(rank, o.verbosity < 0   ? DR_LOG_WARN
	                  : o.verbosity > 0 ? DR_LOG_DEBUG
	                                    : DR_LOG_INFO);
	if (dr_opts_still_frames(&o, size - 1, err, sizeof err) != 0) {
		if (rank == 0)
			dr_error("%s", err);
		dr_opts_free(&o);
		return finish(DR_EXIT_USAGE);
	}
	service_cfg(&o, &scfg);
	scfg.auto_split = size < 2                         ? 2
	                  : 2 * (size - 1) > DR_RANGES_MAX ? DR_RANGES_MAX
	                                                   : 2 * (size - 1);
	if (rank == 0)
		verdict = dr_service_open(&svc, &scfg);
	if (size > 1 && MPI_Bcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
		verdict = DR_EXIT_RUNTIME;
	if (verdict != 0) {
		dr_service_close(svc);
		dr_opts_free(&o);
		return finish(verdict);
	}
	if (dr_chan_init(&chan, MPI_COMM_WORLD, err, sizeof err) != 0 ||
	    dr_cpus_plan(MPI_COMM_WORLD, size == 1 || rank != 0, &cpus, &threads, err,
	                 sizeof err) != 0) {
		dr_error("%s", err);
		dr_service_close(svc);
		dr_opts_free(&o);
		return finish(DR_EXIT_RUNTIME);
	}
	/* GPUs by local rank; a GPU asked for on the command line that some node cannot have is
	 * bad input (exit 2), found before anything renders */
	if (dr_gpu_plan(MPI_COMM_WORLD, size == 1 || rank != 0, o.gpus_per_node,
	                dr_device_is_gpu(o.device), &gpu, gpu_why, sizeof gpu_why, err,
	                sizeof err) != 0) {
		if (rank == 0)
			dr_error("%s", err);
		dr_service_close(svc);
		dr_opts_free(&o);
		return finish(DR_EXIT_USAGE);
	}
	scfg.node.gpu = gpu;
	scfg.node.gpu_why = gpu_why[0] ? gpu_why : NULL;
	if (o.threads > 0)
		threads = o.threads;
	if (size > 1 && (o.serve || o.scene))
		stage_scene(&o, rank, staged, sizeof staged, &shared, &scfg.stage);
	if (interrupted) {
		dr_service_close(svc);
		dr_opts_free(&o);
		fflush(NULL);
		_exit(DR_EXIT_INTERRUPTED);
	}
	if (rank == 0)
		fetch = fetch_server(&o, &chan, svc);
	if (rank == 0)
		code = dr_service_run(svc, &chan, threads, &cpus, &interrupted);
	else
		code = run_node(&o, &chan, threads, &cpus, gpu, gpu_why, staged, shared);
	lost_peers = rank == 0 && dr_service_lost_nodes(svc);
	dr_service_close(svc);
	dr_chan_clear_sides(&chan);
	if (fetch) {
		dr_fetch_server_stats(fetch, &fst);
		dr_info("scenes fetched by render nodes: %d staged (%llu bytes, %.2f s), %d from "
		        "cache, %d at the same path, %d failed",
		        fst.staged, (unsigned long long)fst.bytes, fst.seconds, fst.cached,
		        fst.same, fst.failed);
	}
	dr_fetch_server_close(fetch);
	dr_chan_destroy(&chan, interrupted || lost_peers ? 0 : 5.0);
	dr_opts_free(&o);
	if (interrupted) {
		tell_status(DR_EXIT_INTERRUPTED);
		fflush(NULL);
		_exit(DR_EXIT_INTERRUPTED); /* peers may be gone: do not wait for them in MPI */
	}
	return finish(code);
}
