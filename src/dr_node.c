/* Render node: runs the tasks rank 0 hands it on one supervised Blender and reports each frame. */
#include "dr_node.h"

#include "dr_imgcheck.h"
#include "dr_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double dr_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int send_msg(dr_node *n, dr_msg *m, char *err, size_t errlen)
{
	n->last_sent = dr_now();
	return dr_chan_send(n->chan, 0, m, err, errlen);
}

static int send_simple(dr_node *n, int type, const char *text, char *err, size_t errlen)
{
	dr_msg m = {.type = type, .threads = n->threads, .pid = (int32_t)getpid()};
	snprintf(m.host, sizeof m.host, "%s", n->host);
	if (text)
		snprintf(m.text, sizeof m.text, "%.1023s", text);
	return send_msg(n, &m, err, errlen);
}

int dr_node_start(dr_node *n, const dr_opts *o, const dr_outpath *out, dr_chan *chan, int threads,
                  const cpu_set_t *cpus, char *err, size_t errlen)
{
	char berr[1024] = "";
	dr_blender_cfg cfg = {
	        .exe = o->blender,
	        .scene = o->scene,
	        .engine = o->engine,
	        .format = o->format,
	        .samples = o->samples,
	        .threads = threads,
	        .one_shot = o->one_shot,
	        .allow_autoexec = o->allow_autoexec,
	        .verbose = o->verbosity > 0,
	        .cpus = cpus,
	};

	memset(n, 0, sizeof *n);
	n->opts = o;
	n->out = out;
	n->chan = chan;
	n->threads = threads;
	n->frame = -1;
	if (gethostname(n->host, sizeof n->host - 1) != 0)
		snprintf(n->host, sizeof n->host, "unknown-host");
	dr_outdir_tag(n->host, n->tag, sizeof n->tag);
	dr_outdir_clean_stale(out, &o->frames, n->host);

	if (send_simple(n, DR_MSG_HELLO, NULL, err, errlen))
		return -1;
	if (dr_outdir_prepare(out, &o->frames, berr, sizeof berr) == 0)
		n->bl = dr_blender_create(&cfg, berr, sizeof berr);
	if (!n->bl) {
		n->stopped = false; /* wait for rank 0's STOP */
		return send_simple(n, DR_MSG_LOADFAIL, berr, err, errlen);
	}
	dr_debug("Blender started on %s with %d thread%s", n->host, threads,
	         threads == 1 ? "" : "s");
	return 0;
}

int dr_node_handle(dr_node *n, const dr_msg *m, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (m->type == DR_MSG_STOP) {
		n->stopped = true;
		return 0;
	}
	if (m->type != DR_MSG_TASK || m->n < 1 || m->n > DR_CHUNK_MAX)
		return 0;
	memcpy(n->queue, m->frames, (size_t)m->n * sizeof m->frames[0]);
	n->qhead = 0;
	n->qlen = m->n;
	n->requested = false;
	return 0;
}

static int report(dr_node *n, int ok, double seconds, const char *text, char *err, size_t errlen)
{
	dr_msg m = {.type = DR_MSG_RESULT, .frame = n->frame, .ok = ok, .seconds = seconds};
	if (text)
		snprintf(m.text, sizeof m.text, "%.1023s", text);
	n->frame = -1;
	return send_msg(n, &m, err, errlen);
}

/* Blender says FRAME is rendered: check the file, move it into place, report. */
static int finish_frame(dr_node *n, double seconds, char *err, size_t errlen)
{
	char final[DR_PATH_MAX], why[2 * DR_PATH_MAX + 100];

	if (dr_imgcheck(n->tmp, n->opts->format, why, sizeof why) != 0) {
		unlink(n->tmp);
		return report(n, 0, 0, why, err, errlen);
	}
	if (dr_outpath_frame(n->out, n->frame, final, sizeof final) != 0) {
		unlink(n->tmp);
		return report(n, 0, 0, "output path too long", err, errlen);
	}
	if (rename(n->tmp, final) != 0) {
		snprintf(why, sizeof why, "cannot move %s to %s: %s", n->tmp, final,
		         strerror(errno));
		unlink(n->tmp);
		return report(n, 0, 0, why, err, errlen);
	}
	return report(n, 1, seconds, NULL, err, errlen);
}

static int fail_frame(dr_node *n, const char *why, char *err, size_t errlen)
{
	unlink(n->tmp);
	return report(n, 0, 0, why, err, errlen);
}

static int start_next(dr_node *n, char *err, size_t errlen)
{
	char why[1024] = "";
	int frame = n->queue[n->qhead++];

	n->qlen--;
	n->frame = frame;
	n->started = dr_now();
	if (dr_outpath_temp(n->out, frame, n->tag, n->tmp, sizeof n->tmp) != 0) {
		n->tmp[0] = '\0';
		return report(n, 0, 0, "temporary path too long", err, errlen);
	}
	if (dr_blender_render(n->bl, frame, n->tmp, why, sizeof why) != 0)
		return fail_frame(n, why, err, errlen);
	return 0;
}

int dr_node_tick(dr_node *n, int wait_ms, char *err, size_t errlen)
{
	dr_bl_event ev;

	/* Rank 0 ends the job when a node is silent too long: say we are alive. */
	if (!n->stopped && n->chan->size > 1 && dr_now() - n->last_sent >= DR_HEARTBEAT_S &&
	    send_simple(n, DR_MSG_HEARTBEAT, NULL, err, errlen) != 0)
		return -1;
	if (n->stopped || !n->bl) {
		struct timespec ts = {0, (long)wait_ms * 1000000L};
		nanosleep(&ts, NULL);
		return 0;
	}
	if (n->ready && n->frame < 0) {
		if (n->qlen > 0)
			return start_next(n, err, errlen);
		if (!n->requested) {
			n->requested = true;
			return send_simple(n, DR_MSG_REQUEST, NULL, err, errlen);
		}
		struct timespec ts = {0, (long)wait_ms * 1000000L};
		nanosleep(&ts, NULL);
		return 0;
	}
	if (dr_blender_poll(n->bl, wait_ms, &ev) != 0) {
		if (n->frame >= 0)
			return fail_frame(n, ev.error, err, errlen);
		return 0;
	}
	switch (ev.kind) {
	case DR_BL_READY:
		if (!n->ready) {
			n->ready = true;
			n->requested = true; /* READY doubles as the first request */
			return send_simple(n, DR_MSG_READY, NULL, err, errlen);
		}
		return 0;
	case DR_BL_LOAD_FAILED:
		if (n->frame >= 0)
			return fail_frame(n, ev.error, err, errlen);
		dr_blender_destroy(n->bl);
		n->bl = NULL;
		return send_simple(n, DR_MSG_LOADFAIL, ev.error, err, errlen);
	case DR_BL_DONE:
		if (n->frame >= 0 && ev.frame == n->frame)
			return finish_frame(n, ev.seconds, err, errlen);
		return 0;
	case DR_BL_FAILED:
		if (n->frame >= 0)
			return fail_frame(n, ev.error, err, errlen);
		return 0;
	case DR_BL_NONE:
		break;
	}
	if (n->frame >= 0 && n->opts->timeout > 0 && dr_now() - n->started > n->opts->timeout) {
		char why[256];
		dr_blender_kill(n->bl);
		snprintf(why, sizeof why, "timed out after %.0f s (--timeout); Blender was killed",
		         n->opts->timeout);
		return fail_frame(n, why, err, errlen);
	}
	return 0;
}

void dr_node_abort(dr_node *n)
{
	if (n->bl)
		dr_blender_kill(n->bl);
	if (n->frame >= 0 && n->tmp[0])
		unlink(n->tmp);
	n->frame = -1;
}

void dr_node_destroy(dr_node *n)
{
	if (n->frame >= 0)
		dr_node_abort(n);
	dr_blender_destroy(n->bl);
	n->bl = NULL;
}
