/* Rank 0's program: start-up checks, the job table and HTTP API, one poll loop over messages,
 * scheduling, job adoption and status publishing, and the exit code and report at the end. */
#include "dr_service.h"

#include "dr_blender.h"
#include "dr_collect.h"
#include "dr_fetch.h"
#include "dr_http.h"
#include "dr_jobs.h"
#include "dr_log.h"
#include "dr_loop.h"
#include "dr_node.h"
#include "dr_orch.h"
#include "dr_outdir.h"
#include "dr_outpath.h"
#include "dr_oview.h"
#include "dr_report.h"
#include "dr_scene.h"
#include "dr_status.h"
#include "dr_util.h"
#include "dr_video.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct dr_service {
	const dr_service_cfg *cfg;
	dr_chan *chan;
	dr_orch *orch;
	dr_node node; /* rank 0's own render node when it is alone */
	bool have_node;
	dr_jobs *table; /* the job table: every job, a batch's one included, is adopted from it */
	dr_http *http;
	double last_publish;
	dr_jobspec batch; /* the command line's job (a batch), as POST /render makes one */
	bool lost_nodes;  /* a render node was lost: no barrier over the world at the end */
	char real_blend_root[PATH_MAX], real_output_root[PATH_MAX], real_scene[PATH_MAX];
	dr_jobspec_limits lim; /* --serve: the roots, re-checked when a job starts */
	int lockfd;            /* a batch: its output directory's lock, or -1 */
	dr_collect *collect;   /* frames coming home from nodes without rank 0's disk, or NULL */

	dr_fetch_server *fetch; /* --serve: scenes pulled by render nodes that lack them, or NULL */
	char outdir[PATH_MAX];  /* rank 0's output directory, resolved once ("" = none) */
};

static double cpu_seconds(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int open_tty(bool quiet)
{
	if (quiet)
		return -1;
	int fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 && !isatty(fd)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The command line's job (a batch) as a job spec, the same as POST /render makes: its settings
 * with the output pattern resolved, its frames (copied), and the naming of its frames in OUT. */
static int batch_spec(const dr_service_cfg *c, dr_jobspec *spec, dr_outpath *out, char *err,
                      size_t errlen)
{
	dr_render_args a = {.scene = c->scene,
	                    .output = c->output,
	                    .format = c->format,
	                    .engine = c->engine,
	                    .samples = c->samples,
	                    .video = c->video,
	                    .fps = c->fps,
	                    .still = c->still,
	                    .ranges = c->split,
	                    .resolve = true};

	memset(spec, 0, sizeof *spec);
	if (dr_render_cfg_build(&spec->render, &a, err, errlen) != 0 ||
	    dr_render_cfg_outpath(&spec->render, out, err, errlen) != 0)
		return -1;
	spec->frames.v = malloc((c->frames->n ? c->frames->n : 1) * sizeof *spec->frames.v);
	if (!spec->frames.v)
		return dr_seterr(err, errlen, "out of memory");
	memcpy(spec->frames.v, c->frames->v, c->frames->n * sizeof *spec->frames.v);
	spec->frames.n = c->frames->n;
	return 0;
}

/* --serve's roots: the output root must exist and be writable; both are used as real paths, and
 * so is the default scene. Fills HC's limits. 0, or -1 with the message logged. */
static int check_roots(dr_service *s, dr_http_cfg *hc)
{
	const dr_service_cfg *c = s->cfg;
	const char *out = c->output_root ? c->output_root : "output";
	const char *blend = c->blend_root; /* NULL: requests cannot name scenes (dr_opts) */
	int frame0 = 0;
	dr_frames one = {&frame0, 1};
	dr_outpath probe;
	char pat[PATH_MAX + 16], err[DR_ERRLEN];

	snprintf(pat, sizeof pat, "%s/x_#", out);
	if (dr_outpath_init(&probe, pat, "x.blend", "PNG", err, sizeof err) != 0 ||
	    dr_outdir_prepare(&probe, &one, err, sizeof err) != 0) {
		dr_error("--output-root: %s", err);
		return -1;
	}
	if (!realpath(out, s->real_output_root)) {
		dr_error("--output-root %s: %s", out, strerror(errno));
		return -1;
	}
	if (!blend)
		dr_warn("%s (--blend-root DIR offers the .blend files under DIR)",
		        c->scene ? "no --blend-root (--scene's directory is /, never a default): "
		                   "requests can only use --scene"
		                 : "no --blend-root or --scene: requests cannot name a scene, so "
		                   "nothing can be rendered");
	else if (!realpath(blend, s->real_blend_root)) {
		dr_error("--blend-root %s: %s", blend, strerror(errno));
		return -1;
	}
	struct stat st;
	if (blend && (stat(s->real_blend_root, &st) != 0 || !S_ISDIR(st.st_mode))) {
		dr_error("--blend-root %s: is not a directory", blend);
		return -1;
	}
	if (c->scene && dr_scene_check(c->scene, err, sizeof err) != 0) {
		dr_error("--scene: %s", err);
		return -1;
	}
	if (c->scene && !realpath(c->scene, s->real_scene)) {
		dr_error("--scene %s: %s", c->scene, strerror(errno));
		return -1;
	}
	snprintf(s->outdir, sizeof s->outdir, "%s", s->real_output_root);
	hc->limits.blend_root = blend ? s->real_blend_root : NULL;
	hc->limits.output_root = s->real_output_root;
	hc->limits.default_scene = c->scene ? s->real_scene : NULL;
	hc->limits.max_frames = c->max_frames > 0 ? c->max_frames : DR_FRAMES_COUNT_MAX;
	hc->limits.auto_ranges = c->auto_split;
	s->lim = hc->limits;
	return 0;
}

/* Start the job table, and the HTTP server for --http or --serve (before any render node
 * starts). 0 or DR_EXIT_USAGE. */
static int start_api(dr_service *s)
{
	const dr_service_cfg *c = s->cfg;
	char err[DR_ERRLEN];
	dr_http_cfg hc = {
	        .listen = c->serve ? c->listen : c->http,
	        .token = c->token,
	        .read_only = !c->serve,
	        .rate_per_s = c->rate_limit,
	        .rate_burst = 2.0 * c->rate_limit,
	        .tls_cert = c->tls_cert,
	        .tls_key = c->tls_key,
	        .allow_hosts = c->allow_host,
	        .overwrite = c->orch.overwrite,
	};

	if (c->serve && check_roots(s, &hc) != 0)
		return DR_EXIT_USAGE;
	dr_jobs_cfg jc = c->jobs;
	jc.dir = c->serve ? s->real_output_root : NULL;
	jc.max_queued = c->max_queued;
	if (!c->serve) /* a batch's one job is not held back by a queue's limits */
		jc.max_queued = jc.max_frames = 0;
	s->table = dr_jobs_create_with(&jc, err, sizeof err);
	if (!s->table) {
		dr_error("%s", err);
		return DR_EXIT_USAGE;
	}
	if (!c->serve && !c->http) /* nobody listens: the table alone */
		return 0;
	s->http = dr_http_start(&hc, s->table, err, sizeof err);
	if (!s->http) {
		dr_error("%s", err);
		return DR_EXIT_USAGE;
	}
	dr_info("HTTP API on %s, port %d%s%s", hc.listen, dr_http_port(s->http),
	        hc.tls_cert ? ", HTTPS" : "", c->serve ? " (POST /render to submit)" : "");
	return 0;
}

const char *dr_service_outdir(const dr_service *s)
{
	return s && s->outdir[0] ? s->outdir : NULL;
}

bool dr_service_lost_nodes(const dr_service *s)
{
	return s && s->lost_nodes;
}

int dr_service_scene_of(void *svc, int job, char *path, size_t len)
{
	const dr_service *s = svc;

	if (s && job < 0 && s->cfg->serve && s->real_scene[0]) /* the default scene (warm-up) */
		return (size_t)snprintf(path, len, "%s", s->real_scene) < len ? 0 : -1;
	const dr_node_job *j = s ? dr_orch_job_cfg(s->orch, job) : NULL;

	return j && (size_t)snprintf(path, len, "%s", j->render.scene) < len ? 0 : -1;
}

void dr_service_close(dr_service *s)
{
	if (!s)
		return;
	dr_http_stop(s->http);
	dr_jobs_destroy(s->table);
	dr_jobspec_free(&s->batch);
	if (s->lockfd >= 0)
		close(s->lockfd);
	free(s);
}

/* A batch owns its output directory for the run (a second run into it refuses, naming us). */
static int lock_batch(dr_service *s, const dr_outpath *op, char *err, size_t errlen)
{
	char host[256] = "?", holder[400];

	gethostname(host, sizeof host - 1);
	snprintf(holder, sizeof holder, "host %s pid %ld (a drender batch)", host, (long)getpid());
	s->lockfd = dr_outdir_lock_frames(op, s->cfg->frames, holder, err, errlen);
	return s->lockfd < 0 ? -1 : 0;
}

int dr_service_open(dr_service **out, const dr_service_cfg *cfg)
{
	dr_service *s = calloc(1, sizeof *s);
	dr_outpath op;
	char err[DR_ERRLEN];
	int code = 0;

	*out = NULL;
	if (!s) {
		dr_error("out of memory");
		return DR_EXIT_RUNTIME;
	}
	s->cfg = cfg;
	s->lockfd = -1;
	if (!cfg->serve &&
	    (dr_scene_check(cfg->scene, err, sizeof err) != 0 ||
	     batch_spec(cfg, &s->batch, &op, err, sizeof err) != 0 ||
	     dr_outdir_prepare(&op, cfg->frames, err, sizeof err) != 0 ||
	     (cfg->report &&
	      dr_report_check_path(cfg->report, cfg->scene, &op, cfg->frames, err, sizeof err)) ||
	     lock_batch(s, &op, err, sizeof err) != 0 ||
	     dr_outdir_manifest_check_frames(&op, cfg->frames, &s->batch.render, true,
	                                     cfg->orch.overwrite, err, sizeof err) != 0)) {
		dr_error("%s", err);
		code = DR_EXIT_USAGE;
	} else {
		code = start_api(s);
	}
	/* a batch's frames go in its first frame's directory (a still's ranges never come home) */
	if (code == 0 && !cfg->serve && cfg->split == 0 && cfg->frames->n > 0 &&
	    dr_outpath_dir(&op, cfg->frames->v[0], s->outdir, sizeof s->outdir) != 0)
		s->outdir[0] = '\0';
	if (code != 0) {
		dr_service_close(s);
		return code;
	}
	*out = s;
	return 0;
}

/* A batch: its job goes into the job table as a POST /render would (the table takes its frames
 * over), and is adopted from there like any request. Returns the job, or NULL with the error
 * logged. */
static dr_ojob *submit_batch(dr_service *s)
{
	char id[DR_JOB_ID_MAX], err[DR_ERRLEN];
	dr_ojob *j;

	if (dr_jobs_submit(s->table, &s->batch, NULL, id, sizeof id, err, sizeof err) != 0) {
		dr_error("%s", err);
		return NULL;
	}
	dr_orch_adopt(s->orch, s->table);
	if (!(j = dr_orch_find(s->orch, id)))
		dr_error("the job of this run could not start");
	return j;
}

/* Job-table bookkeeping: new jobs are adopted; for the HTTP API, every 0.25 s cancel requests
 * are honoured and status and metrics published. */
static void table_round(dr_service *s)
{
	double now = dr_now();

	if (!s->table)
		return;
	dr_orch_adopt(s->orch, s->table);
	if (!s->http || now - s->last_publish < 0.25)
		return;
	s->last_publish = now;
	dr_orch_publish(s->orch, s->table);
}

/* One round: messages (routed to the orchestrator, or to rank 0's own render node), scheduling,
 * and rendering (alone) or a short nap. */
static int pump(dr_service *s, char *err, size_t errlen)
{
	dr_msg m;
	int src, k, got = 0;

	while ((k = dr_chan_poll(s->chan, &m, &src, err, errlen)) == 1) {
		got++;
		if (m.type == DR_MSG_TASK || m.type == DR_MSG_STOP || m.type == DR_MSG_JOB ||
		    m.type == DR_MSG_CANCEL) {
			if (s->have_node && dr_node_handle(&s->node, &m, err, errlen))
				return -1;
		} else if (dr_orch_handle(s->orch, &m, src, err, errlen)) {
			return -1;
		}
	}
	if (k < 0 || dr_orch_tick(s->orch, err, errlen))
		return -1;
	if (s->have_node)
		return dr_node_tick(&s->node,
		                    got                      ? 0
		                    : dr_node_idle(&s->node) ? 2
		                                             : 20,
		                    err, errlen);
	/* The channel's loop backs off from 0.2 ms right after a message to 2 ms when quiet: quick
	 * to answer a request, near 0% CPU while everyone renders; a submit wakes it at once. */
	dr_loop_wait(dr_chan_loop(s->chan), got > 0);
	return 0;
}

/* The one loop: until JOB (a batch's) is over and its nodes were stopped, or until interrupted
 * (a service, JOB NULL, runs until then). Returns 0; -1 with ERR on a runtime failure; or an exit
 * code with ERR when the render nodes left cannot go on (see dr_orch_check_nodes). */
static int loop(dr_service *s, dr_ojob *job, volatile sig_atomic_t *interrupted, char *err,
                size_t errlen)
{
	int code;

	while (!*interrupted && (!job || !dr_orch_finished(s->orch))) {
		if (pump(s, err, errlen) != 0)
			return -1;
		table_round(s);
		if ((code = dr_orch_check_nodes(s->orch, err, errlen)) != 0)
			return code;
		if (job && dr_ojob_ended(job) && dr_orch_stop_all(s->orch, err, errlen))
			return -1;
	}
	return 0;
}

/* A batch's end: exit code, JSON report, summary. */
static int batch_outcome(dr_service *s, dr_ojob *job, bool interrupted, bool failed,
                         const char *error)
{
	dr_report rep;
	const char *status;
	char msg[DR_ERRLEN + 300], err[DR_ERRLEN];
	int code =
	        dr_orch_outcome(s->orch, job, interrupted, failed, error, &status, msg, sizeof msg);

	if (failed)
		dr_error("%s", error);
	else if (code == DR_EXIT_USAGE)
		dr_error("%s", msg);
	/* The JSON report first: on an interrupt, mpirun may kill us soon after its SIGTERM. */
	dr_oview_report(s->orch, job, &rep, code, status, msg[0] ? msg : NULL);
	rep.rank0_cpu = cpu_seconds();
	rep.stage = s->cfg->stage;
	if (s->collect) {
		uint64_t bytes = 0;
		dr_collect_stats(s->collect, &rep.home, &rep.nhome, &bytes, &rep.home_seconds);
		rep.home_bytes = bytes;
		rep.home_max_turn = dr_chan_side_max(s->chan);
	}
	if (s->cfg->report && dr_report_write(&rep, s->cfg->report, err, sizeof err) != 0) {
		dr_error("%s", err);
		if (code == DR_EXIT_ALL_DONE)
			code = DR_EXIT_RUNTIME;
	}
	if (code != DR_EXIT_USAGE)
		dr_report_print(&rep, stdout);
	return code;
}

/* Where a frame that comes home goes (dr_collect_where): its job's naming and format. */
static int home_of(void *ctx, int job, dr_outpath *out, char *format, size_t flen)
{
	dr_service *s = ctx;
	const dr_node_job *j = dr_orch_job_cfg(s->orch, job);

	if (!j)
		return -1;
	*out = j->out;
	snprintf(format, flen, "%s", j->render.format);
	return 0;
}

/* Rank 0's end of frames coming home (dr_collect), pumped from every dr_chan_poll: any render
 * node that does not see rank 0's output directory (or runs with --collect) sends its frames.
 * Not for a still's ranges: the node that merges them needs them on its own disk. */
static void open_collect(dr_service *s, dr_chan *chan)
{
	char err[DR_ERRLEN];

	if (dr_chan_size(chan) < 2 || s->cfg->split > 0)
		return;
	s->collect = dr_collect_home(chan, home_of, s, dr_orch_node_timeout(s->orch),
	                             !s->cfg->serve, err, sizeof err);
	if (!s->collect)
		dr_warn("frames cannot come home: %s", err);
	else if (dr_chan_add_side(chan, dr_collect_pump, s->collect) != 0)
		dr_warn("frames cannot come home: no room for another side pump");
}

/* Rank 0's end of dr_fetch, pumped from every dr_chan_poll: a service's render nodes pull each
 * job's scene when they lack it (not with --stage never). When it cannot start, nodes open scenes
 * as named, as before. */
static void open_fetch(dr_service *s, dr_chan *chan)
{
	char err[DR_ERRLEN];
	dr_fetch_server_cfg c = {
	        .blender = s->cfg->node.blender,
	        .cache_dir = s->cfg->cache_dir,
	        .timeout = dr_orch_node_timeout(s->orch),
	        .scene_of = dr_service_scene_of,
	        .scene_ctx = s,
	};

	if (!s->cfg->serve || dr_chan_size(chan) < 2 || !s->cfg->fetch)
		return;
	if (!(s->fetch = dr_fetch_server_create(dr_chan_peers(chan), &c, err, sizeof err))) {
		dr_warn("scenes cannot be staged: %s", err);
		return;
	}
	dr_chan_add_side(chan, dr_fetch_server_pump, s->fetch);
	dr_chan_on_forget(chan, dr_fetch_server_forget, s->fetch);
}

/* Rank 0's transfers end: their pumps must not run once they are gone. */
static void close_transfers(dr_service *s, dr_chan *chan)
{
	dr_fetch_stats fst;

	if (s->collect || s->fetch)
		dr_chan_clear_sides(chan);
	dr_collect_close(s->collect);
	s->collect = NULL;
	if (s->fetch) {
		dr_fetch_server_stats(s->fetch, &fst);
		dr_info("scenes fetched by render nodes: %d staged (%llu bytes, %.2f s), %d from "
		        "cache, %d at the same path, %d failed",
		        fst.staged, (unsigned long long)fst.bytes, fst.seconds, fst.cached,
		        fst.same, fst.failed);
	}
	dr_fetch_server_close(s->fetch);
	s->fetch = NULL;
}

/* The job table's notify hook (dr_jobs_set_notify): a submit or a cancel from the HTTP thread
 * ends rank 0's wait at once. */
static void wake_loop(void *loop)
{
	dr_loop_wake(loop);
}

int dr_service_run(dr_service *s, dr_chan *chan, int threads, const cpu_set_t *cpus,
                   volatile sig_atomic_t *interrupted)
{
	const dr_service_cfg *c = s->cfg;
	dr_ojob *job = NULL;
	char err[DR_ERRLEN] = "";
	/* a service logs a line per frame: no progress line */
	int code = DR_EXIT_ALL_DONE, tty = open_tty(c->quiet || c->serve), ended = 0;
	bool failed = false;

	s->chan = chan;
	if (s->table)
		dr_jobs_set_notify(s->table, wake_loop, dr_chan_loop(chan));
	dr_log_set_tty(tty);
	s->orch = dr_orch_create(&c->orch, chan, tty, err, sizeof err);
	if (!s->orch) {
		dr_error("%s", err);
		code = DR_EXIT_RUNTIME;
		goto out;
	}
	open_collect(s, chan);
	open_fetch(s, chan);
	if (dr_chan_size(chan) > 1 && !dr_orch_recovery(s->orch))
		dr_warn("mpirun was started without --enable-recovery: a lost render node will end "
		        "this %s (add --enable-recovery to mpirun to go on without it)",
		        c->serve ? "service" : "job");
	dr_orch_video_tools(s->orch, c->node.blender, c->node.allow_autoexec);
	if (c->serve)
		dr_orch_confine(s->orch, &s->lim);
	else if (!(job = submit_batch(s))) {
		code = DR_EXIT_RUNTIME;
		goto out;
	}
	if (dr_chan_size(chan) == 1) {
		if (dr_node_start(&s->node, &c->node, chan, threads, cpus, err, sizeof err) != 0)
			failed = true;
		else
			s->have_node = true;
	}
	if (!failed && (ended = loop(s, job, interrupted, err, sizeof err)) != 0) {
		/* Nodes lost: with recovery the survivors are stopped cleanly (an MPI_Abort would
		 * not end them); without it, a silent node ends the world as a runtime failure. */
		failed = ended < 0 || !dr_orch_recovery(s->orch);
	}
	s->lost_nodes = dr_orch_lost_any(s->orch);
	if (s->have_node) {
		if (*interrupted)
			dr_node_abort(&s->node);
		dr_node_destroy(&s->node);
		s->have_node = false;
	}
	if (!job) {
		if (failed || ended > 0)
			dr_error("%s", err);
		else
			dr_info("stopping the service; unfinished jobs resume when it starts "
			        "again");
		code = failed ? DR_EXIT_RUNTIME : ended > 0 ? ended : DR_EXIT_ALL_DONE;
	} else {
		code = batch_outcome(s, job, *interrupted, failed || ended > 0, err);
	}
	table_round(s);
	if (!*interrupted && !failed)
		dr_orch_stop_all(s->orch, err, sizeof err);
	dr_log_set_tty(-1);
	if (tty >= 0)
		close(tty);
	tty = -1;
	if (failed && dr_chan_size(chan) > 1) {
		if (dr_status_tell(DR_EXIT_RUNTIME, err, sizeof err) != 0)
			dr_error("%s", err); /* for drender-mpirun: MPI_Abort's code is lost */
		fflush(NULL);
		MPI_Abort(MPI_COMM_WORLD, DR_EXIT_RUNTIME); /* the nodes cannot be told to stop */
	}
	if (c->serve && *interrupted) {
		/* A service asked to stop has done its job: its status now (drender-mpirun reads
		 * it even if mpirun kills us while the nodes are stopped), then a clean leave. */
		if (dr_status_tell(code, err, sizeof err) != 0)
			dr_error("%s", err);
		*interrupted = 0;
		if (dr_chan_size(chan) > 1)
			dr_orch_stop_all(s->orch, err, sizeof err);
	}
out:
	if (s->table)
		dr_jobs_set_notify(s->table, NULL, NULL); /* the loop goes with the channel */
	dr_log_set_tty(-1);
	if (tty >= 0)
		close(tty);
	close_transfers(s, chan);
	dr_orch_destroy(s->orch);
	s->orch = NULL;
	return code;
}
