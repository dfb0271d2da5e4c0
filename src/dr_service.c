/* Rank 0's program: start-up checks, the job table and HTTP API, one poll loop over messages,
 * scheduling, job adoption and status publishing, and the exit code and report at the end. */
#include "dr_service.h"

#include "dr_blender.h"
#include "dr_collect.h"
#include "dr_http.h"
#include "dr_jobs.h"
#include "dr_log.h"
#include "dr_node.h"
#include "dr_orch.h"
#include "dr_outdir.h"
#include "dr_outpath.h"
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
	dr_jobs *table; /* --http or --serve */
	dr_http *http;
	double last_publish;
	double idle_ms;      /* current nap between quiet rounds */
	dr_render_cfg batch; /* the command line's job (a batch) */
	bool lost_nodes;     /* a render node was lost: no barrier over the world at the end */
	char real_blend_root[PATH_MAX], real_output_root[PATH_MAX], real_scene[PATH_MAX];
	dr_jobspec_limits lim; /* --serve: the roots, re-checked when a job starts */
	int lockfd;            /* a batch: its output directory's lock, or -1 */
	dr_collect *collect;   /* frames coming home from nodes without rank 0's disk, or NULL */
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

/* The settings of the command line's job (a batch), with the output pattern resolved, and its
 * frame naming. */
static int batch_cfg(const dr_service_cfg *c, dr_render_cfg *cfg, dr_outpath *out, char *err,
                     size_t errlen)
{
	if (dr_render_cfg_init(cfg, c->scene, c->output, c->format, c->engine, c->samples, err,
	                       errlen) != 0 ||
	    dr_render_cfg_set_video(cfg, c->video, c->fps, err, errlen) != 0 ||
	    dr_render_cfg_outpath(cfg, out, err, errlen) != 0)
		return -1;
	snprintf(cfg->output, sizeof cfg->output, "%s", out->pattern);
	if (c->split > 0 && (dr_render_cfg_set_still(cfg, c->still, c->split, err, errlen) != 0 ||
	                     dr_render_cfg_outpath(cfg, out, err, errlen) != 0))
		return -1;
	return 0;
}

/* --serve's roots: the output root must exist and be writable; both are used as real paths, and
 * so is the default scene. Fills HC's limits. 0, or -1 with the message logged. */
static int check_roots(dr_service *s, dr_http_cfg *hc)
{
	const dr_service_cfg *c = s->cfg;
	const char *out = c->output_root ? c->output_root : "output";
	const char *blend = c->blend_root ? c->blend_root : ".";
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
	if (!realpath(blend, s->real_blend_root)) {
		dr_error("--blend-root %s: %s", blend, strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat(s->real_blend_root, &st) != 0 || !S_ISDIR(st.st_mode)) {
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
	hc->limits.blend_root = s->real_blend_root;
	hc->limits.output_root = s->real_output_root;
	hc->limits.default_scene = c->scene ? s->real_scene : NULL;
	hc->limits.max_frames = c->max_frames > 0 ? c->max_frames : DR_FRAMES_COUNT_MAX;
	hc->limits.auto_ranges = c->auto_split;
	s->lim = hc->limits;
	return 0;
}

/* Start the job table and HTTP server (before any render node starts). 0 or DR_EXIT_USAGE. */
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
	        .overwrite = c->orch.overwrite,
	};

	if (c->serve && check_roots(s, &hc) != 0)
		return DR_EXIT_USAGE;
	dr_jobs_cfg jc = c->jobs;
	jc.dir = c->serve ? s->real_output_root : NULL;
	jc.max_queued = c->max_queued;
	s->table = dr_jobs_create_with(&jc, err, sizeof err);
	if (!s->table) {
		dr_error("%s", err);
		return DR_EXIT_USAGE;
	}
	s->http = dr_http_start(&hc, s->table, err, sizeof err);
	if (!s->http) {
		dr_error("%s", err);
		return DR_EXIT_USAGE;
	}
	dr_info("HTTP API on %s, port %d%s%s", hc.listen, dr_http_port(s->http),
	        hc.tls_cert ? ", HTTPS" : "", c->serve ? " (POST /render to submit)" : "");
	return 0;
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
	s->idle_ms = 0.2;
	s->lockfd = -1;
	if (!cfg->serve &&
	    (dr_scene_check(cfg->scene, err, sizeof err) != 0 ||
	     batch_cfg(cfg, &s->batch, &op, err, sizeof err) != 0 ||
	     dr_outdir_prepare(&op, cfg->frames, err, sizeof err) != 0 ||
	     (cfg->report &&
	      dr_report_check_path(cfg->report, cfg->scene, &op, cfg->frames, err, sizeof err)) ||
	     lock_batch(s, &op, err, sizeof err) != 0 ||
	     dr_outdir_manifest_check_frames(&op, cfg->frames, &s->batch, true, cfg->orch.overwrite,
	                                     err, sizeof err) != 0)) {
		dr_error("%s", err);
		code = DR_EXIT_USAGE;
	} else if (cfg->serve || cfg->http) {
		code = start_api(s);
	}
	if (code != 0) {
		dr_service_close(s);
		return code;
	}
	*out = s;
	return 0;
}

/* List the batch job in the job table (for --http); its table id goes to ID ("batch" if that
 * fails: the API then just does not know the job). */
static void list_batch(dr_service *s, char *id, size_t idlen)
{
	const dr_frames *fr = s->cfg->frames;
	dr_jobspec spec = {.render = s->batch};
	char err[DR_ERRLEN];

	spec.frames.v = malloc(fr->n * sizeof *fr->v);
	if (!spec.frames.v)
		return;
	memcpy(spec.frames.v, fr->v, fr->n * sizeof *fr->v);
	spec.frames.n = fr->n;
	if (dr_jobs_submit(s->table, &spec, NULL, id, idlen, err, sizeof err) != 0) {
		dr_jobspec_free(&spec);
		dr_warn("the HTTP API will not list this run: %s", err);
		return;
	}
	if (dr_jobs_take(s->table, id, idlen, &spec) == 1)
		dr_jobspec_free(&spec);
}

/* Job-table bookkeeping: a service adopts new jobs; every 0.25 s cancel requests are honoured
 * and status and metrics published. */
static void table_round(dr_service *s)
{
	double now = dr_now();

	if (!s->table)
		return;
	if (s->cfg->serve)
		dr_orch_adopt(s->orch, s->table);
	if (now - s->last_publish < 0.25)
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
	/* Back off from 0.2 ms right after a message to 2 ms when quiet: quick to answer a
	 * request, near 0% CPU while everyone renders. */
	s->idle_ms = got ? 0.2 : (s->idle_ms * 2 > 2 ? 2 : s->idle_ms * 2);
	dr_sleep_ms(s->idle_ms);
	return 0;
}

/* The one loop: until the batch job ended and its nodes were stopped, or a service is
 * interrupted. Returns 0; -1 with ERR on a runtime failure; or an exit code with ERR when the
 * render nodes left cannot go on (see dr_orch_check_nodes). */
static int loop(dr_service *s, dr_ojob *job, volatile sig_atomic_t *interrupted, char *err,
                size_t errlen)
{
	int code;

	while (!*interrupted && (s->cfg->serve || !dr_orch_finished(s->orch))) {
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
	dr_orch_report(s->orch, job, &rep, code, status, msg[0] ? msg : NULL);
	rep.rank0_cpu = cpu_seconds();
	rep.stage = s->cfg->stage;
	if (s->collect) {
		uint64_t bytes = 0;
		dr_collect_stats(s->collect, &rep.home, &rep.nhome, &bytes, &rep.home_seconds);
		rep.home_bytes = bytes;
		rep.home_max_turn = s->chan->side_max;
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

/* The batch's video, once every frame is on disk: frames in order, the frame rate from --fps, else
 * the scene's (asked of Blender), else DR_VIDEO_FPS_DEFAULT. A failure is logged; the frames'
 * outcome stays as it is. */
static void batch_video(dr_service *s, volatile sig_atomic_t *interrupted)
{
	const dr_service_cfg *c = s->cfg;
	const dr_frames *fr = c->frames;
	dr_outpath op;
	char **paths = calloc(fr->n ? fr->n : 1, sizeof *paths), err[DR_ERRLEN];
	dr_video_job j = {.path = s->batch.video,
	                  .frames = (const char *const *)paths,
	                  .n = fr->n,
	                  .fps = s->batch.fps,
	                  .ffmpeg = "ffmpeg",
	                  .ffprobe = "ffprobe",
	                  .interrupted = interrupted};
	double t0 = dr_now();
	size_t i;

	if (!paths || dr_render_cfg_outpath(&s->batch, &op, err, sizeof err) != 0) {
		dr_error("video %s not made: %s", j.path, paths ? err : "out of memory");
		goto out;
	}
	for (i = 0; i < fr->n; i++)
		if (!(paths[i] = malloc(DR_PATH_MAX)) ||
		    dr_outpath_frame(&op, fr->v[i], paths[i], DR_PATH_MAX) != 0) {
			dr_error("video %s not made: out of memory or a frame name too long",
			         j.path);
			goto out;
		}
	if (j.fps <= 0 && dr_video_scene_fps(c->node.blender, c->scene, c->node.allow_autoexec,
	                                     &j.fps, err, sizeof err) != 0) {
		dr_warn("the scene's frame rate is unknown (%s); the video is made at %g fps "
		        "(--fps sets it)",
		        err, DR_VIDEO_FPS_DEFAULT);
		j.fps = DR_VIDEO_FPS_DEFAULT;
	}
	if (!c->quiet)
		dr_info("encoding %zu frames at %g fps into %s", fr->n, j.fps, j.path);
	if (dr_video_encode(&j, err, sizeof err) != 0)
		dr_error("video %s not made (the frames are fine): %s", j.path, err);
	else if (!c->quiet)
		dr_info("video %s: %zu frames at %g fps, made in %.1f s", j.path, fr->n, j.fps,
		        dr_now() - t0);
out:
	for (i = 0; paths && i < fr->n; i++)
		free(paths[i]);
	free(paths);
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

	if (chan->size < 2 || s->cfg->split > 0)
		return;
	s->collect = dr_collect_home(chan, home_of, s, dr_orch_node_timeout(s->orch),
	                             !s->cfg->serve, err, sizeof err);
	if (!s->collect)
		dr_warn("frames cannot come home: %s", err);
	else if (dr_chan_add_side(chan, dr_collect_pump, s->collect) != 0)
		dr_warn("frames cannot come home: no room for another side pump");
}

int dr_service_run(dr_service *s, dr_chan *chan, int threads, const cpu_set_t *cpus,
                   volatile sig_atomic_t *interrupted)
{
	const dr_service_cfg *c = s->cfg;
	dr_ojob *job = NULL;
	char err[DR_ERRLEN] = "", id[DR_JOB_ID_MAX] = "batch";
	int code = DR_EXIT_ALL_DONE, tty = open_tty(c->quiet), ended = 0;
	bool failed = false;

	s->chan = chan;
	dr_log_set_tty(c->serve ? -1 : tty);
	s->orch = dr_orch_create(&c->orch, chan, tty, err, sizeof err);
	if (!s->orch) {
		dr_error("%s", err);
		code = DR_EXIT_RUNTIME;
		goto out;
	}
	open_collect(s, chan);
	if (chan->size > 1 && !dr_orch_recovery(s->orch))
		dr_warn("mpirun was started without --enable-recovery: a lost render node will end "
		        "this %s (add --enable-recovery to mpirun to go on without it)",
		        c->serve ? "service" : "job");
	if (c->serve) {
		dr_orch_confine(s->orch, &s->lim);
		dr_orch_video_tools(s->orch, c->node.blender, c->node.allow_autoexec);
	}
	if (!c->serve) {
		if (s->table) /* --http: the batch job is listed in the table too */
			list_batch(s, id, sizeof id);
		job = dr_orch_add(s->orch, id, &s->batch, 0, c->frames, err, sizeof err);
		if (!job) {
			dr_error("%s", err);
			code = DR_EXIT_RUNTIME;
			goto out;
		}
	}
	if (chan->size == 1) {
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
	if (c->serve) {
		if (failed || ended > 0)
			dr_error("%s", err);
		else
			dr_info("stopping the service; unfinished jobs resume when it starts "
			        "again");
		code = failed ? DR_EXIT_RUNTIME : ended > 0 ? ended : DR_EXIT_ALL_DONE;
	} else {
		code = batch_outcome(s, job, *interrupted, failed || ended > 0, err);
		if (code == DR_EXIT_ALL_DONE && s->batch.video[0] && !*interrupted)
			batch_video(s, interrupted);
	}
	table_round(s);
	if (!*interrupted && !failed)
		dr_orch_stop_all(s->orch, err, sizeof err);
	dr_log_set_tty(-1);
	if (tty >= 0)
		close(tty);
	tty = -1;
	if (failed && chan->size > 1) {
		if (dr_status_tell(DR_EXIT_RUNTIME, err, sizeof err) != 0)
			dr_error("%s", err); /* for drender-mpirun: MPI_Abort's code is lost */
		fflush(NULL);
		MPI_Abort(MPI_COMM_WORLD, DR_EXIT_RUNTIME); /* the nodes cannot be told to stop */
	}
	if (c->serve && *interrupted && chan->size > 1) {
		*interrupted = 0; /* a service stops its nodes and leaves cleanly */
		dr_orch_stop_all(s->orch, err, sizeof err);
	}
out:
	dr_log_set_tty(-1);
	if (tty >= 0)
		close(tty);
	if (s->collect) { /* its pump must not run once it is gone */
		dr_chan_clear_sides(chan);
		dr_collect_close(s->collect);
		s->collect = NULL;
	}
	dr_orch_destroy(s->orch);
	s->orch = NULL;
	return code;
}
