/* A job's video phase: once every frame is done, its video (render.video) is encoded in the
 * background, looked at every tick and never waited for; the job is over once the encode is. */
#include "dr_encode.h"

#include "dr_log.h"
#include "dr_util.h"
#include "dr_video.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct encode {
	dr_phase base;
	enum { WAITING, ENCODING, MADE, FAILED } state;
	dr_video_bg *video;
	double t0, fps;
	char error[512];
} encode;

static void failed(encode *e, const dr_orch *r, const dr_ojob *j, const char *why)
{
	char pre[DR_JOB_ID_MAX + 4];

	snprintf(e->error, sizeof e->error, "%.500s", why);
	e->state = FAILED;
	dr_error("%svideo %s not made (the frames are fine): %s",
	         dr_ojob_prefix(r, j, pre, sizeof pre), j->cfg.render.video, why);
}

/* Start J's encode (its frames are all done). */
static void start(encode *e, const dr_orch *r, const dr_ojob *j)
{
	char why[DR_ERRLEN], **paths = calloc(j->frames.n ? j->frames.n : 1, sizeof *paths);
	bool oom = !paths;

	for (size_t i = 0; !oom && i < j->frames.n; i++)
		oom = !(paths[i] = malloc(DR_PATH_MAX)) ||
		      dr_outpath_frame(&j->cfg.out, j->frames.v[i], paths[i], DR_PATH_MAX) != 0;
	dr_video_job vj = {.path = j->cfg.render.video,
	                   .frames = (const char *const *)paths,
	                   .n = j->frames.n,
	                   .fps = j->cfg.render.fps,
	                   .ffmpeg = "ffmpeg",
	                   .ffprobe = "ffprobe"};
	if (oom) {
		failed(e, r, j, "out of memory or a frame name too long");
	} else if (!(e->video = dr_video_bg_start(&vj, r->blender, j->cfg.render.scene,
	                                          r->allow_autoexec, why, sizeof why))) {
		failed(e, r, j, why);
	} else {
		e->state = ENCODING;
		e->t0 = dr_now();
		dr_info("%sencoding %zu frames into %s", dr_ojob_prefix(r, j, why, sizeof why),
		        j->frames.n, j->cfg.render.video);
	}
	for (size_t i = 0; paths && i < j->frames.n; i++)
		free(paths[i]);
	free(paths);
}

/* Every tick: the encode starts when the job's frames are done, and is looked at (never waited
 * for) while it runs. */
static void poll(dr_phase *p, dr_orch *r, dr_ojob *j)
{
	encode *e = (encode *)p;
	char why[DR_ERRLEN], pre[DR_ERRLEN];
	dr_sched_counts c;
	int rc;

	if (!j->ended || e->state == MADE || e->state == FAILED)
		return;
	if (e->state == WAITING) {
		c = dr_sched_count(j->sched);
		if (j->cancelled || c.failed > 0 || c.done + c.skipped < c.total)
			failed(e, r, j,
			       j->cancelled ? "the job was cancelled" : "some frames failed");
		else
			start(e, r, j);
		return;
	}
	if ((rc = dr_video_bg_poll(e->video, &e->fps, why, sizeof why)) == 1)
		return;
	if (dr_video_bg_note(e->video, pre, sizeof pre) && pre[0])
		dr_warn("the scene's frame rate is unknown (%s); the video is made at %g fps "
		        "(--fps sets it)",
		        pre, DR_VIDEO_FPS_DEFAULT);
	dr_video_bg_free(e->video);
	e->video = NULL;
	if (rc < 0) {
		failed(e, r, j, why);
		return;
	}
	e->state = MADE;
	dr_info("%svideo %s: %zu frames at %g fps, made in %.1f s",
	        dr_ojob_prefix(r, j, pre, sizeof pre), j->cfg.render.video, j->frames.n, e->fps,
	        dr_now() - e->t0);
}

static bool done(const dr_phase *p)
{
	const encode *e = (const encode *)p;

	return e->state == MADE || e->state == FAILED;
}

static void describe(const dr_phase *p, const dr_ojob *j, cJSON *o)
{
	static const char *const name[] = {"waiting", "encoding", "made", "failed"};
	const encode *e = (const encode *)p;
	cJSON *v = cJSON_AddObjectToObject(o, "video");

	if (!v)
		return;
	cJSON_AddStringToObject(v, "state", name[e->state]);
	cJSON_AddStringToObject(v, "path", j->cfg.render.video);
	if (e->state == MADE)
		cJSON_AddNumberToObject(v, "fps", e->fps);
	if (e->state == FAILED)
		cJSON_AddStringToObject(v, "error", e->error);
}

/* The report is about the render: its wall time ends where the encode began. */
static void report(const dr_phase *p, const dr_ojob *j, dr_report *rep)
{
	const encode *e = (const encode *)p;

	if (e->state != WAITING && e->t0 > 0)
		rep->wall = e->t0 - j->t0;
}

static void destroy(dr_phase *p)
{
	encode *e = (encode *)p;

	dr_video_bg_free(e->video);
	free(e);
}

static const dr_phase_ops ops = {
        .name = "video",
        .poll = poll,
        .done = done,
        .describe = describe,
        .report = report,
        .destroy = destroy,
};

int dr_encode_attach(dr_orch *r, dr_ojob *j, char *err, size_t errlen)
{
	(void)r;
	encode *e;

	if (!j->cfg.render.video[0])
		return 0;
	if (!(e = calloc(1, sizeof *e))) {
		dr_seterr(err, errlen, "out of memory");
		return -1;
	}
	e->base.ops = &ops;
	if (dr_ojob_add_phase(j, &e->base) != 0) {
		dr_seterr(err, errlen, "too many phases for job %s", j->id);
		return -1;
	}
	return 0;
}
