/* Orchestrator (rank 0): hands frames to render nodes as they free up, tracks them, shows progress.
 */
#include "dr_orch.h"

#include "dr_imgcheck.h"
#include "dr_log.h"
#include "dr_node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int slot_of(const dr_orch *r, int rank)
{
	int slot = r->chan->size == 1 ? rank : rank - 1;
	return slot >= 0 && slot < r->nslots ? slot : -1;
}

int dr_orch_init(dr_orch *r, const dr_opts *o, const dr_outpath *out, dr_chan *chan, int tty,
                 char *err, size_t errlen)
{
	dr_sched_cfg cfg = {0};
	char path[DR_PATH_MAX], why[1200];
	size_t existing = 0;

	memset(r, 0, sizeof *r);
	r->opts = o;
	r->out = out;
	r->chan = chan;
	r->tty = tty;
	r->quiet = o->verbosity < 0;
	r->t0 = r->last_draw = dr_now();
	r->nslots = chan->size == 1 ? 1 : chan->size - 1;
	cfg.nslots = r->nslots;
	cfg.chunk = o->chunk;
	cfg.retries = o->retries;
	cfg.max_consec = 3;
	r->sched = dr_sched_create(o->frames.v, o->frames.n, &cfg, err, errlen);
	r->nodes = calloc((size_t)r->nslots, sizeof *r->nodes);
	r->info = calloc((size_t)r->nslots, sizeof *r->info);
	if (!r->sched || !r->nodes || !r->info) {
		if (r->sched)
			snprintf(err, errlen, "out of memory");
		dr_orch_destroy(r);
		return -1;
	}
	r->silent = -1;
	for (int i = 0; i < r->nslots; i++) {
		r->info[i].rank = chan->size == 1 ? 0 : i + 1;
		r->nodes[i].last_seen = r->t0;
	}
	for (size_t i = 0; i < o->frames.n && !o->overwrite; i++) {
		int f = o->frames.v[i];
		if (dr_outpath_frame(out, f, path, sizeof path) != 0)
			continue;
		if (access(path, F_OK) != 0)
			continue;
		if (dr_imgcheck(path, o->format, why, sizeof why) == 0) {
			dr_sched_skip(r->sched, f);
			existing++;
		} else {
			dr_warn("%s; frame %d will be rendered again", why, f);
		}
	}
	if (existing)
		dr_info("%zu of %zu frames already exist and are skipped (--overwrite renders them "
		        "again)",
		        existing, o->frames.n);
	return 0;
}

void dr_orch_destroy(dr_orch *r)
{
	dr_sched_destroy(r->sched);
	free(r->nodes);
	free(r->info);
	r->info = NULL;
	r->sched = NULL;
	r->nodes = NULL;
}

static void progress_line(const dr_orch *r, char *buf, size_t len)
{
	dr_sched_counts c = dr_sched_count(r->sched);
	double el = dr_now() - r->t0;
	size_t left = c.pending + c.running, todo = c.total - c.skipped;
	double fpm = el > 0 ? c.done * 60.0 / el : 0;
	char eta[32] = "--", elapsed[32], oldest[64] = "";
	const dr_fitem *old = dr_sched_oldest(r->sched);

	dr_fmt_duration(el, elapsed, sizeof elapsed);
	if (c.done > 0)
		dr_fmt_duration(left * el / c.done, eta, sizeof eta);
	if (old) {
		char age[32];
		dr_fmt_duration(dr_now() - old->started, age, sizeof age);
		snprintf(oldest, sizeof oldest, ", oldest in flight: frame %d for %s", old->frame,
		         age);
	}
	snprintf(buf, len,
	         "[%zu/%zu] %3.0f%% | %.1f frames/min | elapsed %s | ETA %s | %zu failed%s",
	         c.done + c.failed, todo, todo ? 100.0 * (c.done + c.failed) / todo : 100.0, fpm,
	         elapsed, eta, c.failed, oldest);
}

static void draw(dr_orch *r, bool force)
{
	char line[512];
	double now = dr_now();

	if (r->quiet)
		return;
	if (r->tty < 0) {
		/* No terminal: a line per finished frame, and one every 30 s when none finishes,
		 * so that a stuck frame shows. */
		if (now - r->last_draw < 30)
			return;
		r->last_draw = now;
		progress_line(r, line, sizeof line);
		dr_info("still rendering: %s", line);
		return;
	}
	if (!force && now - r->last_draw < 0.5)
		return;
	r->last_draw = now;
	progress_line(r, line, sizeof line);
	dprintf(r->tty, "\r\033[K%s", line);
}

static int send_type(dr_orch *r, int slot, int type, char *err, size_t errlen)
{
	dr_msg m = {.type = type};
	return dr_chan_send(r->chan, r->info[slot].rank, &m, err, errlen);
}

static void on_result(dr_orch *r, int slot, const dr_msg *m)
{
	const dr_slot_stats *st = dr_sched_slot(r->sched, slot);
	bool was_excluded = st->excluded;
	char line[512];

	if (m->ok) {
		if (dr_sched_done(r->sched, slot, m->frame, m->seconds) != 0)
			return;
		if (r->tty < 0 && !r->quiet) {
			r->last_draw = dr_now();
			progress_line(r, line, sizeof line);
			dr_info("frame %d done by rank %d (%s) in %.2f s %s", m->frame,
			        r->info[slot].rank, r->info[slot].host, m->seconds, line);
		}
		return;
	}
	if (dr_sched_fail(r->sched, slot, m->frame, m->text) != 0)
		return;
	for (size_t i = 0; i < dr_sched_size(r->sched); i++) {
		const dr_fitem *it = dr_sched_item(r->sched, i);
		if (it->frame != m->frame)
			continue;
		if (it->state == DR_F_FAILED)
			dr_error("frame %d failed on rank %d (%s), giving up after %d attempts: %s",
			         m->frame, r->info[slot].rank, r->info[slot].host, it->attempts,
			         m->text);
		else
			dr_warn("frame %d failed on rank %d (%s), will retry (attempt %d of %d): "
			        "%s",
			        m->frame, r->info[slot].rank, r->info[slot].host, it->attempts + 1,
			        r->opts->retries + 1, m->text);
		break;
	}
	if (!was_excluded && st->excluded)
		dr_warn("rank %d (%s) failed %d frames in a row and is taken out of rotation",
		        r->info[slot].rank, r->info[slot].host, st->consec_failed);
}

int dr_orch_handle(dr_orch *r, const dr_msg *m, int src, char *err, size_t errlen)
{
	int slot = slot_of(r, src);
	dr_orch_node *nd;

	if (slot < 0)
		return 0;
	nd = &r->nodes[slot];
	nd->last_seen = dr_now();
	switch (m->type) {
	case DR_MSG_HELLO:
		nd->hello = true;
		nd->pid = m->pid;
		r->info[slot].threads = m->threads;
		snprintf(r->info[slot].host, sizeof r->info[slot].host, "%s", m->host);
		dr_debug("rank %d on %s: %d Blender thread%s", r->info[slot].rank, m->host,
		         m->threads, m->threads == 1 ? "" : "s");
		break;
	case DR_MSG_READY:
		nd->ready = true;
		nd->waiting = true;
		break;
	case DR_MSG_REQUEST:
		nd->waiting = true;
		break;
	case DR_MSG_LOADFAIL:
		nd->loadfail = true;
		snprintf(nd->loaderr, sizeof nd->loaderr, "%s", m->text);
		if (!r->loaderr[0])
			snprintf(r->loaderr, sizeof r->loaderr, "%s", m->text);
		dr_sched_drop(r->sched, slot);
		if (dr_sched_usable(r->sched) > 0) /* else the run ends with this error */
			dr_warn("rank %d (%s) cannot render: %s", r->info[slot].rank,
			        r->info[slot].host, m->text);
		if (!nd->stopped && send_type(r, slot, DR_MSG_STOP, err, errlen))
			return -1;
		nd->stopped = true;
		break;
	case DR_MSG_RESULT:
		on_result(r, slot, m);
		break;
	default:
		break;
	}
	return 0;
}

int dr_orch_tick(dr_orch *r, char *err, size_t errlen)
{
	int frames[DR_CHUNK_MAX];
	double now = dr_now();

	for (int i = 0; i < r->nslots && r->chan->size > 1; i++) {
		if (!r->nodes[i].stopped && now - r->nodes[i].last_seen > r->opts->node_timeout) {
			r->silent = i;
			return 0;
		}
	}

	if (dr_sched_usable(r->sched) == 0 && !dr_sched_finished(r->sched)) {
		dr_sched_counts c = dr_sched_count(r->sched);
		bool none_loaded = true;
		for (int i = 0; i < r->nslots; i++)
			if (!r->nodes[i].loadfail)
				none_loaded = false;
		if (c.running == 0) {
			r->all_loadfail = none_loaded && c.done == 0;
			dr_sched_fail_stranded(
			        r->sched, none_loaded ? "no render node could load the scene"
			                              : "no render node left to try this frame");
		}
	}
	for (int i = 0; i < r->nslots; i++) {
		dr_orch_node *nd = &r->nodes[i];
		if (!nd->waiting || nd->stopped)
			continue;
		int k = dr_sched_next(r->sched, i, now, frames, DR_CHUNK_MAX);
		if (k == 0)
			continue;
		nd->waiting = false;
		if (k < 0) {
			nd->stopped = true;
			if (send_type(r, i, DR_MSG_STOP, err, errlen))
				return -1;
			continue;
		}
		dr_msg m = {.type = DR_MSG_TASK, .n = k};
		memcpy(m.frames, frames, (size_t)k * sizeof frames[0]);
		if (dr_chan_send(r->chan, r->info[i].rank, &m, err, errlen))
			return -1;
	}
	draw(r, false);
	return 0;
}

bool dr_orch_finished(const dr_orch *r)
{
	if (!dr_sched_finished(r->sched))
		return false;
	for (int i = 0; i < r->nslots; i++)
		if (!r->nodes[i].stopped)
			return false;
	return true;
}

int dr_orch_stop_all(dr_orch *r, char *err, size_t errlen)
{
	for (int i = 0; i < r->nslots; i++) {
		if (r->nodes[i].stopped)
			continue;
		r->nodes[i].stopped = true;
		if (send_type(r, i, DR_MSG_STOP, err, errlen))
			return -1;
	}
	if (r->tty >= 0 && !r->quiet) {
		draw(r, true);
		dprintf(r->tty, "\n");
	}
	return 0;
}

void dr_orch_report(const dr_orch *r, dr_report *rep, int exit_code, const char *status,
                    const char *message)
{
	memset(rep, 0, sizeof *rep);
	rep->scene = r->opts->scene;
	rep->sched = r->sched;
	rep->out = r->out;
	rep->nslots = r->nslots;
	rep->wall = dr_now() - r->t0;
	rep->exit_code = exit_code;
	rep->status = status;
	rep->message = message;
	rep->nodes = r->info;
}
