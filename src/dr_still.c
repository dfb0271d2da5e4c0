/* A still split's last phase: once every sample range is on disk, a render node merges them into
 * the still (a merge job of one frame), and rank 0 checks it and removes the ranges. */
#include "dr_still.h"

#include "dr_imgcheck.h"
#include "dr_log.h"
#include "dr_util.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ranges job hands its merge to a render node as a merge job of one frame, which the
 * scheduler hands out like any other (a lost node's merge is retried elsewhere); the node runs
 * Blender's merge into a temporary file and renames it into place when it validates. */
typedef struct still {
	dr_phase base;
	enum { RANGES = 1, MERGING, MADE, FAILED } state;
	bool premade;          /* the still was on disk when the job was added */
	char error[1024];      /* FAILED: why */
	int merged_by;         /* the rank that merged, -1 = none (yet) */
	char merged_host[256]; /* ... and its host */
	double merge_seconds;  /* the merge's time on that node */
	double merge_wall;     /* from the ranges' end to the merged still validated */
	double ranges_done_at; /* dr_now() when the last range was done */
	int *range_samples;    /* samples per range as the nodes reported, 0 = unknown */
	double samples_done;   /* ... their sum */
} still;

/* "<range 0's path> ... <the last range's path>" of ranges job J, for messages. */
static void ranges_named(const dr_ojob *j, char *buf, size_t len)
{
	char a[DR_PATH_MAX] = "?", b[DR_PATH_MAX] = "?";

	dr_outpath_frame(&j->cfg.out, 0, a, sizeof a);
	dr_outpath_frame(&j->cfg.out, j->cfg.render.ranges - 1, b, sizeof b);
	snprintf(buf, len, "%s ... %s", a, b);
}

static void failed(still *s, const dr_ojob *j, const char *why)
{
	char ranges[2 * DR_PATH_MAX + 8];

	ranges_named(j, ranges, sizeof ranges);
	snprintf(s->error, sizeof s->error,
	         "still frame %d not made: %.400s; the ranges are kept: %.500s",
	         j->cfg.render.still, why, ranges);
	s->state = FAILED;
	dr_error("%s", s->error);
}

/* Why merge job M did not make a good still at PATH, into WHY; 0 when it did. */
static int merge_check(const dr_ojob *m, const dr_fitem *it, char *path, char *why, size_t len)
{
	if (m->cancelled)
		return snprintf(why, len, "the job was cancelled during the merge"), -1;
	if (!it || (it->state != DR_F_DONE && it->state != DR_F_SKIPPED))
		return snprintf(why, len, "the merge failed: %.400s",
		                it && it->last_error ? it->last_error
		                                     : "no render node could merge"),
		       -1;
	if (dr_outpath_frame(&m->cfg.out, m->cfg.render.still, path, DR_PATH_MAX) != 0)
		return snprintf(why, len, "the still's path is too long"), -1;
	return dr_imgcheck(path, m->cfg.render.format, why, len) != 0 ? -1 : 0;
}

/* J's merge job ended: validate the still, remove the ranges (or keep them, named). */
static void merge_over(still *s, dr_orch *r, dr_ojob *j)
{
	dr_ojob *m = j->child;
	const dr_fitem *it = dr_sched_size(m->sched) ? dr_sched_item(m->sched, 0) : NULL;
	char path[DR_PATH_MAX], why[DR_ERRLEN], range[DR_PATH_MAX], pre[DR_JOB_ID_MAX + 4];
	const char *p = dr_ojob_prefix(r, j, pre, sizeof pre);

	m->parent = NULL;
	j->child = NULL;
	s->merge_wall = dr_now() - s->ranges_done_at;
	if (it && it->slot >= 0 && it->slot < r->nslots) {
		s->merged_by = r->info[it->slot].rank;
		snprintf(s->merged_host, sizeof s->merged_host, "%s", r->info[it->slot].host);
		s->merge_seconds = it->seconds;
	}
	if (merge_check(m, it, path, why, sizeof why) != 0) {
		failed(s, j, why);
		return;
	}
	for (int k = 0; k < j->cfg.render.ranges; k++)
		if (dr_outpath_frame(&j->cfg.out, k, range, sizeof range) == 0 &&
		    unlink(range) != 0 && errno != ENOENT)
			dr_warn("cannot remove %s: %s", range, strerror(errno));
	s->state = MADE;
	if (it->state == DR_F_SKIPPED)
		dr_info("%sstill frame %d was already merged: %s", p, m->cfg.render.still, path);
	else
		dr_info("%sstill frame %d: %d ranges merged by rank %d (%s) in %.1f s "
		        "(%.1f s after the last range): %s",
		        p, m->cfg.render.still, j->cfg.render.ranges, s->merged_by, s->merged_host,
		        s->merge_seconds, s->merge_wall, path);
}

/* Every range of J ended: the merge job goes to a render node (or J's still was made before). */
static void merge_start(still *s, dr_orch *r, dr_ojob *j)
{
	char why[DR_ERRLEN], id[DR_JOB_ID_MAX], pre[DR_JOB_ID_MAX + 4];
	const char *p = dr_ojob_prefix(r, j, pre, sizeof pre);
	dr_sched_counts c = dr_sched_count(j->sched);
	dr_render_cfg mc = j->cfg.render;

	if (c.failed > 0 || c.done + c.skipped < c.total) {
		snprintf(why, sizeof why, "%zu of %zu sample ranges failed",
		         c.total - c.done - c.skipped, c.total);
		failed(s, j, why);
		return;
	}
	if (s->premade) {
		char e[DR_ERRLEN];
		dr_render_cfg_still_path(&j->cfg.render, why, sizeof why, e, sizeof e);
		dr_info("%sstill frame %d is already made: %s (nothing rendered; --overwrite "
		        "renders it again)",
		        p, j->cfg.render.still, why);
		s->state = MADE;
		return;
	}
	snprintf(id, sizeof id, "%.*s.merge", (int)sizeof id - 7, j->id);
	if (dr_render_cfg_set_merge(&mc, why, sizeof why) != 0) {
		failed(s, j, why);
		return;
	}
	int frame = mc.still;
	dr_frames one = {&frame, 1};
	dr_ojob *m = dr_orch_add(r, id, &mc, j->priority, &one, why, sizeof why);
	if (!m) {
		failed(s, j, why);
		return;
	}
	m->parent = j;
	j->child = m;
	s->state = MERGING;
	if (!r->quiet)
		dr_info("%sstill frame %d: %d sample ranges done, the merge goes to a render node",
		        p, frame, j->cfg.render.ranges);
}

/* Every tick, before dispatch (so that nodes are not stopped for lack of work between the last
 * range and the merge): a ranges job that just ended gets its merge job; a merge job that ended
 * is looked at (merge_over). */
static void poll(dr_phase *p, dr_orch *r, dr_ojob *j)
{
	still *s = (still *)p;

	if (s->state == MERGING && j->child && j->child->ended) {
		merge_over(s, r, j);
		return;
	}
	if (s->state != RANGES || !j->ended)
		return;
	s->ranges_done_at = dr_now();
	if (j->cancelled)
		failed(s, j, "the job was cancelled");
	else
		merge_start(s, r, j);
}

static bool done(const dr_phase *p)
{
	const still *s = (const still *)p;

	return s->state == MADE || s->state == FAILED;
}

static void describe(const dr_phase *p, const dr_ojob *j, cJSON *o)
{
	static const char *const name[] = {"", "rendering", "merging", "made", "failed"};
	const still *s = (const still *)p;
	cJSON *v = cJSON_AddObjectToObject(o, "still");

	if (!v)
		return;
	cJSON_AddNumberToObject(v, "frame", j->cfg.render.still);
	cJSON_AddStringToObject(v, "state", name[s->state]);
	cJSON_AddNumberToObject(v, "ranges", j->cfg.render.ranges);
	cJSON_AddNumberToObject(v, "samples", s->samples_done);
	if (s->merged_by >= 0)
		cJSON_AddNumberToObject(v, "mergedBy", s->merged_by);
	if (s->state == FAILED)
		cJSON_AddStringToObject(v, "error", s->error);
}

static const char *why_failed(const dr_phase *p)
{
	const still *s = (const still *)p;

	return s->state == FAILED ? s->error : NULL;
}

/* A range is done (M, its RESULT): its samples count ("samples" in M's text). */
static void result(dr_phase *p, const dr_ojob *j, const dr_msg *m)
{
	still *s = (still *)p;
	cJSON *o;
	const cJSON *n;

	if (s->state != RANGES || !s->range_samples || m->frame < 0 ||
	    m->frame >= j->cfg.render.ranges || m->text[0] != '{' || !(o = cJSON_Parse(m->text)))
		return;
	n = cJSON_GetObjectItemCaseSensitive(o, "samples");
	if (cJSON_IsNumber(n) && n->valuedouble >= 1 && !s->range_samples[m->frame]) {
		s->range_samples[m->frame] = (int)n->valuedouble;
		s->samples_done += n->valuedouble;
	}
	cJSON_Delete(o);
}

/* The report's "still". */
static void report(const dr_phase *p, const dr_ojob *j, dr_report *rep)
{
	const still *s = (const still *)p;
	dr_report_still *st = &rep->still;
	char e[DR_ERRLEN];
	double ranges_wall = (s->ranges_done_at > 0 ? s->ranges_done_at : dr_now()) - j->t0;

	rep->has_still = true;
	st->frame = j->cfg.render.still;
	st->ranges = j->cfg.render.ranges;
	st->range_samples = s->range_samples;
	st->samples = s->samples_done;
	st->samples_per_s = ranges_wall > 0 ? s->samples_done / ranges_wall : 0;
	if (dr_render_cfg_still_path(&j->cfg.render, st->path, sizeof st->path, e, sizeof e) != 0)
		st->path[0] = '\0';
	st->state = s->state == MADE ? "made" : s->state == FAILED ? "failed" : "not merged";
	st->merged_by = s->merged_by;
	st->merged_host = s->merged_host;
	st->merge_seconds = s->merge_seconds;
	st->merge_wall = s->merge_wall;
	st->error = s->state == FAILED ? s->error : NULL;
}

static bool line(const dr_phase *p, const dr_ojob *j, double el, char *buf, size_t len)
{
	const still *s = (const still *)p;
	dr_sched_counts c = dr_sched_count(j->sched);
	char eta[32] = "--", elapsed[32];

	dr_fmt_duration(el, elapsed, sizeof elapsed);
	if (c.done > 0)
		dr_fmt_duration((c.pending + c.running) * el / c.done, eta, sizeof eta);
	snprintf(buf, len, "ranges %zu/%zu done, %.0f samples/s | elapsed %s | ETA %s | %zu failed",
	         c.done + c.failed, c.total - c.skipped, el > 0 ? s->samples_done / el : 0.0,
	         elapsed, eta, c.failed);
	return true;
}

static void destroy(dr_phase *p)
{
	still *s = (still *)p;

	free(s->range_samples);
	free(s);
}

static const dr_phase_ops ops = {
        .name = "still",
        .poll = poll,
        .done = done,
        .describe = describe,
        .failed = why_failed,
        .result = result,
        .report = report,
        .line = line,
        .destroy = destroy,
};

int dr_still_attach(dr_orch *r, dr_ojob *j, char *err, size_t errlen)
{
	char path[DR_PATH_MAX], why[DR_ERRLEN];
	still *s;

	if (j->cfg.render.ranges <= 0 || j->cfg.render.merge)
		return 0;
	s = calloc(1, sizeof *s);
	if (!s || !(s->range_samples = calloc((size_t)j->cfg.render.ranges, sizeof(int)))) {
		free(s);
		dr_seterr(err, errlen, "out of memory");
		return -1;
	}
	s->base.ops = &ops;
	s->state = RANGES;
	s->merged_by = -1;
	if (!r->opts.overwrite &&
	    dr_render_cfg_still_path(&j->cfg.render, path, sizeof path, why, sizeof why) == 0 &&
	    access(path, F_OK) == 0 &&
	    dr_imgcheck(path, j->cfg.render.still_format, why, sizeof why) == 0)
		j->nothing_to_do = s->premade = true;
	if (dr_ojob_add_phase(j, &s->base) != 0) {
		dr_seterr(err, errlen, "too many phases for job %s", j->id);
		return -1;
	}
	return 0;
}
