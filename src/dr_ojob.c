/* A job as rank 0's orchestrator runs it: its settings, scheduler, per-frame records and phases. */
#include "dr_ojob.h"
#include "dr_cache.h"

#include "dr_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

dr_ojob *dr_ojob_create(const dr_orch *r, int num, const char *id, const dr_render_cfg *render,
                        const dr_frames *frames, char *err, size_t errlen)
{
	dr_sched_cfg sc = {
	        .nslots = r->nslots,
	        .chunk = r->opts.chunk,
	        .retries = r->opts.retries,
	        .max_consec = 3,
	        /* a still's ranges go largest first, in order (the driver sizes them so): the
	         * cost-sampling order would start the smallest first and leave the largest last */
	        .tail_control = !r->opts.no_speculate && !(render->ranges > 0 && !render->merge),
	};
	dr_ojob *j = calloc(1, sizeof *j);
	char vwhy[256];

	if (!j) {
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	j->lockfd = -1;
	j->num = num;
	snprintf(j->id, sizeof j->id, "%s", id);
	j->cfg.render = *render;
	j->cfg.id = num;
	j->t0 = dr_now();
	j->frames_all = true;
	if (dr_render_cfg_outpath(render, &j->cfg.out, err, errlen) != 0) {
		free(j);
		return NULL;
	}
	/* nodes get the pattern as resolved here, whatever their working directory's defaults */
	snprintf(j->cfg.render.output, sizeof j->cfg.render.output, "%s", j->cfg.out.pattern);
	j->frames.v = malloc((frames->n ? frames->n : 1) * sizeof *frames->v);
	j->rec = calloc(frames->n ? frames->n : 1, sizeof *j->rec);
	if (!j->frames.v || !j->rec) {
		snprintf(err, errlen, "out of memory for %zu frames", frames->n);
		dr_ojob_destroy(j);
		return NULL;
	}
	memcpy(j->frames.v, frames->v, frames->n * sizeof *frames->v);
	j->frames.n = frames->n;
	/* the exact scene: a warm node loaded for another version reloads (dr_node) */
	if (dr_cache_version(j->cfg.render.scene, j->cfg.render.version,
	                     sizeof j->cfg.render.version, vwhy, sizeof vwhy) != 0)
		j->cfg.render.version[0] = '\0'; /* unreadable here: loading it will say why */
	if (dr_render_cfg_encode(&j->cfg.render, j->cfg_json, sizeof j->cfg_json) != 0) {
		snprintf(err, errlen, "job settings too long");
		dr_ojob_destroy(j);
		return NULL;
	}
	j->sched = dr_sched_create(j->frames.v, j->frames.n, &sc, err, errlen);
	if (!j->sched) {
		dr_ojob_destroy(j);
		return NULL;
	}
	return j;
}

void dr_ojob_destroy(dr_ojob *j)
{
	if (!j)
		return;
	if (j->lockfd >= 0)
		close(j->lockfd);
	for (int i = 0; i < j->nphases; i++)
		j->phase[i]->ops->destroy(j->phase[i]);
	dr_sched_destroy(j->sched);
	dr_frames_free(&j->frames);
	free(j->rec);
	free(j->dirty);
	free(j);
}

int dr_ojob_add_phase(dr_ojob *j, dr_phase *p)
{
	if (j->nphases >= DR_OJOB_PHASES) {
		p->ops->destroy(p);
		return -1;
	}
	j->phase[j->nphases++] = p;
	return 0;
}

void dr_ojob_mark(dr_ojob *j, int frame)
{
	long i = dr_sched_index(j->sched, frame);

	if (i < 0 || j->rec[i].dirty)
		return;
	if (dr_grow(&j->dirty, &j->capdirty, j->ndirty + 1, sizeof *j->dirty) != 0) {
		j->frames_all = true; /* out of memory: look at them all next time */
		return;
	}
	j->rec[i].dirty = true;
	j->dirty[j->ndirty++] = (size_t)i;
}

const char *dr_ojob_phase_failed(const dr_ojob *j)
{
	const char *why;

	for (int i = 0; i < j->nphases; i++)
		if (j->phase[i]->ops->failed && (why = j->phase[i]->ops->failed(j->phase[i])))
			return why;
	return NULL;
}

const char *dr_ojob_prefix(const dr_orch *r, const dr_ojob *j, char *buf, size_t len)
{
	if (!r->serve)
		return "";
	snprintf(buf, len, "%s: ", j->id);
	return buf;
}

bool dr_ojob_ended(const dr_ojob *j)
{
	if (!j->ended)
		return false;
	for (int i = 0; i < j->nphases; i++)
		if (!j->phase[i]->ops->done(j->phase[i]))
			return false;
	return true;
}
