/* Frames coming home: a render node without rank 0's output directory sends each frame to rank 0.
 */
#include "dr_collect.h"
#include "dr_blob.h"
#include "dr_imgcheck.h"
#include "dr_log.h"
#include "dr_outdir.h"
#include "dr_sendq.h"
#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUDGET 4 /* chunks rank 0 takes in per pump, from all senders together */

/* Every push message starts with this (id0: the job, id1: the frame); a header (idx -1) carries
 * the frame's size after it. */
typedef dr_wire_chunk hdr;

typedef struct ack {
	int32_t job, frame, ok;
	char why[512];
} ack;

typedef struct pending { /* node: a frame waiting to go home */
	dr_msg result;
	char path[DR_PATH_MAX];
} pending;

typedef struct incoming { /* rank 0: a frame on its way */
	int src, job, frame, fd;
	char format[32];
	int64_t size;
	dr_blob_in blob; /* into FD */
	dr_msg result;   /* the node's RESULT, delivered once the frame is in place */
	char tmp[DR_PATH_MAX], final[DR_PATH_MAX];
} incoming;

struct dr_collect {
	const dr_peers *peers; /* the channel's: rank 0 is peer 0, a sender a peer id */
	bool home;
	double timeout;
	dr_sendq s;
	/* node */
	dr_chan *chan;
	bool keep_copy;
	pending *q;
	size_t nq, capq;
	int fd;
	dr_blob_out out; /* the head of the queue, from FD */
	bool active;
	/* rank 0 */
	dr_collect_where where;
	void *where_ctx;
	bool per_frame;
	char tag[300];
	incoming *in;
	size_t nin, capin;
	struct slot { /* per source rank: one receive in flight (no head-of-line blocking) */
		char *buf;
		MPI_Request req;
		double since;
	} * slot;
	int nranks;
	int turn; /* the sender looked at first in this pump */
	size_t rcap;
	dr_report_home *stats;
	size_t nstats, capstats;
	uint64_t bytes;
	double seconds;
};

dr_collect *dr_collect_home(dr_chan *chan, dr_collect_where where, void *ctx, double timeout,
                            bool per_frame, char *err, size_t errlen)
{
	dr_collect *c = calloc(1, sizeof *c);
	char host[256];
	int n = 1;

	n = dr_chan_peers(chan)->n > 1 ? dr_chan_peers(chan)->n : 1;
	if (!c || !(c->slot = calloc((size_t)n, sizeof *c->slot))) {
		free(c);
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	c->nranks = n;
	for (int i = 0; i < n; i++)
		c->slot[i].req = MPI_REQUEST_NULL;
	c->peers = dr_chan_peers(chan);
	c->chan = chan;
	c->home = true;
	c->timeout = timeout > 0 ? timeout : 30;
	c->where = where;
	c->where_ctx = ctx;
	c->per_frame = per_frame;
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "unknown-host");
	host[sizeof host - 1] = '\0';
	dr_outdir_tag(host, c->tag, sizeof c->tag);
	c->rcap = sizeof(hdr) + DR_WIRE_CHUNK;
	c->fd = -1;
	return c;
}

dr_collect *dr_collect_node(dr_chan *chan, bool keep_copy, char *err, size_t errlen)
{
	dr_collect *c = calloc(1, sizeof *c);

	if (!c) {
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	c->peers = dr_chan_peers(chan);
	c->chan = chan;
	c->keep_copy = keep_copy;
	c->fd = -1;
	return c;
}

bool dr_collect_busy(const dr_collect *c)
{
	return c && (c->nq > 0 || c->active);
}

int dr_collect_push(void *collect, const dr_msg *result, const char *path, char *err, size_t errlen)
{
	dr_collect *c = collect;

	if (dr_grow(&c->q, &c->capq, c->nq + 1, sizeof *c->q) != 0)
		return dr_seterr(err, errlen, "out of memory");
	c->q[c->nq].result = *result;
	snprintf(c->q[c->nq].path, sizeof c->q[c->nq].path, "%s", path);
	c->nq++;
	return 0;
}

/* ---- a node ---------------------------------------------------------------------------------- */

/* A frame's thumbnail beside it ("<dir>/.thumbs/<name>.thumb", see dr_node.c) stays on the node:
 * it goes with the frame. */
static void drop_thumb(const char *path)
{
	const char *slash = strrchr(path, '/');
	char th[DR_PATH_MAX + 32];

	if (slash && snprintf(th, sizeof th, "%.*s/.thumbs/%s.thumb", (int)(slash - path), path,
	                      slash + 1) < (int)sizeof th)
		unlink(th);
}

/* The head of the queue is settled: rank 0 has it (OK: its RESULT went with the frame and rank 0
 * delivered it), or the node sends its RESULT failed with WHY; it is dropped. */
static int settle(dr_collect *c, bool ok, const char *why, char *err, size_t errlen)
{
	pending *p = &c->q[0];
	dr_msg m = p->result;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->active = false;
	if (!ok) {
		m.ok = 0;
		snprintf(m.text, sizeof m.text, "bringing the frame home failed: %s", why);
	}
	if (!ok || !c->keep_copy) { /* rank 0 has it now (or it failed): the copy goes */
		unlink(p->path);
		drop_thumb(p->path);
	}
	memmove(c->q, c->q + 1, (c->nq - 1) * sizeof *c->q);
	c->nq--;
	return ok ? 0 : dr_chan_send(c->chan, 0, &m, err, errlen);
}

static int node_pump(dr_collect *c, char *err, size_t errlen)
{
	int n = 0, rc;

	if (!c->active && c->nq > 0) {
		pending *p = &c->q[0];
		struct stat sb;
		hdr *h;

		c->fd = open(p->path, O_RDONLY | O_CLOEXEC);
		if (c->fd < 0 || fstat(c->fd, &sb) != 0) {
			char why[DR_PATH_MAX + 100];
			snprintf(why, sizeof why, "cannot read %s: %s", p->path, strerror(errno));
			return settle(c, false, why, err, errlen);
		}
		dr_blob_out_init(&c->out, c->fd, (uint64_t)sb.st_size, DR_WIRE_CHUNK,
		                 dr_peers_get(c->peers, 0), DR_TAG_PUSH, p->result.job,
		                 p->result.frame, 0);
		c->active = true;
		/* the header: the frame's size, then its RESULT (only the used part of its text) */
		size_t rlen = offsetof(dr_msg, text) +
		              strnlen(p->result.text, sizeof p->result.text - 1) + 1;
		h = malloc(sizeof *h + sizeof(int64_t) + rlen);
		if (!h)
			return dr_seterr(err, errlen, "out of memory");
		*h = (hdr){.id0 = p->result.job, .id1 = p->result.frame, .idx = -1};
		memcpy(h + 1, &(int64_t){(int64_t)sb.st_size}, sizeof(int64_t));
		memcpy((char *)(h + 1) + sizeof(int64_t), &p->result, rlen - 1);
		((char *)(h + 1))[sizeof(int64_t) + rlen - 1] = '\0';
		if (dr_sendq_add(&c->s, dr_peers_get(c->peers, 0), DR_TAG_PUSH, h,
		                 sizeof *h + sizeof(int64_t) + rlen, err, errlen) != 0)
			return -1;
	}
	if (c->active) {
		char why[DR_ERRLEN];
		int k = dr_blob_out_pump(&c->out, &c->s, c->out.nchunks, DR_WIRE_WINDOW, why,
		                         sizeof why);
		if (k == -2)
			return settle(c, false, "the frame's file shrank", err, errlen);
		if (k < 0)
			return dr_seterr(err, errlen, "%s", why);
	}
	if (dr_sendq_test(&c->s, err, errlen) < 0)
		return -1;
	ack a;
	memset(&a, 0, sizeof a);
	rc = dr_wire_recv_from(dr_peers_get(c->peers, 0), DR_TAG_ACK, &a, sizeof a, &n, err,
	                       errlen);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		a.why[sizeof a.why - 1] = '\0';
		if (c->active && a.job == c->q[0].result.job && a.frame == c->q[0].result.frame)
			return settle(c, a.ok != 0, a.why, err, errlen);
		dr_debug("an acknowledgement for frame %d arrived late; dropped", a.frame);
	}
	return 0;
}

/* ---- rank 0 ---------------------------------------------------------------------------------- */

static int send_ack(dr_collect *c, int dest, int job, int frame, bool ok, const char *why,
                    char *err, size_t errlen)
{
	ack *a = calloc(1, sizeof *a);

	if (!a)
		return dr_seterr(err, errlen, "out of memory");
	*a = (ack){.job = job, .frame = frame, .ok = ok};
	snprintf(a->why, sizeof a->why, "%s", why ? why : "");
	return dr_sendq_add(&c->s, dr_peers_get(c->peers, dest), DR_TAG_ACK, a, sizeof *a, err,
	                    errlen);
}

static void drop_incoming(dr_collect *c, size_t i)
{
	if (c->in[i].fd >= 0)
		close(c->in[i].fd);
	unlink(c->in[i].tmp);
	c->in[i] = c->in[--c->nin];
}

static incoming *find_src(dr_collect *c, int src)
{
	for (size_t i = 0; i < c->nin; i++)
		if (c->in[i].src == src)
			return &c->in[i];
	return NULL;
}

static int record(dr_collect *c, int frame, uint64_t bytes, double seconds)
{
	size_t i;

	c->bytes += bytes;
	c->seconds += seconds;
	if (!c->per_frame)
		return 0;
	if (dr_grow(&c->stats, &c->capstats, c->nstats + 1, sizeof *c->stats) != 0)
		return -1;
	for (i = c->nstats; i > 0 && c->stats[i - 1].frame > frame; i--)
		c->stats[i] = c->stats[i - 1];
	c->stats[i] = (dr_report_home){.frame = frame, .bytes = bytes, .seconds = seconds};
	c->nstats++;
	return 0;
}

/* Every byte of IN is there: check, rename into place, acknowledge. */
static int finish_incoming(dr_collect *c, incoming *in, char *err, size_t errlen)
{
	char why[2 * DR_PATH_MAX + 100] = "";
	bool ok = false;
	size_t i = (size_t)(in - c->in);
	int src = in->src, job = in->job, frame = in->frame;

	/* no fsync: as for a frame a node renders into place (rename after write), and an fsync
	 * would hold rank 0's loop up */
	if (dr_imgcheck(in->tmp, in->format, why, sizeof why) == 0) {
		if (rename(in->tmp, in->final) != 0)
			snprintf(why, sizeof why, "cannot move %s to %s: %s", in->tmp, in->final,
			         strerror(errno));
		else
			ok = true;
	}
	if (ok) {
		double secs = dr_now() - in->blob.started;
		/* the frame is on rank 0's disk: its RESULT is delivered as the node's, which then
		 * needs to say nothing more (one answer, the acknowledgement) */
		if (dr_chan_inject(c->chan, src, &in->result, err, errlen) != 0)
			return -1;
		in->tmp[0] = '\0'; /* renamed: nothing to remove */
		if (record(c, frame, (uint64_t)in->size, secs) != 0)
			return dr_seterr(err, errlen, "out of memory");
		dr_debug("frame %d came home from rank %d: %lld bytes in %.3f s", frame, src,
		         (long long)in->size, secs);
	} else {
		dr_warn("frame %d from rank %d not kept: %s", frame, src, why);
	}
	drop_incoming(c, i);
	return send_ack(c, src, job, frame, ok, why, err, errlen);
}

static int start_incoming(dr_collect *c, int src, const hdr *h, int64_t size, const dr_msg *result,
                          char *err, size_t errlen)
{
	incoming in = {.src = src,
	               .job = h->id0,
	               .frame = h->id1,
	               .fd = -1,
	               .size = size,
	               .result = *result};
	char why[DR_ERRLEN] = "";
	dr_frames one = {&in.frame, 1};
	incoming *old = find_src(c, src);
	dr_outpath out;

	if (old) /* the node started over: what it sent before is dropped */
		drop_incoming(c, (size_t)(old - c->in));
	for (size_t i = 0; i < c->nin; i++)
		if (c->in[i].job == h->id0 && c->in[i].frame == h->id1)
			return send_ack(c, src, h->id0, h->id1, false,
			                "another node is bringing this frame home", err, errlen);
	if (c->where(c->where_ctx, h->id0, &out, in.format, sizeof in.format) != 0)
		return send_ack(c, src, h->id0, h->id1, false, "the job is not known any more", err,
		                errlen);
	if (size < 0 || dr_outpath_frame(&out, h->id1, in.final, sizeof in.final) != 0 ||
	    dr_outpath_temp(&out, h->id1, c->tag, in.tmp, sizeof in.tmp) != 0)
		return send_ack(c, src, h->id0, h->id1, false, "bad frame or output path", err,
		                errlen);
	if (dr_outdir_prepare(&out, &one, why, sizeof why) != 0)
		return send_ack(c, src, h->id0, h->id1, false, why, err, errlen);
	in.fd = open(in.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (in.fd < 0) {
		snprintf(why, sizeof why, "cannot create %.1500s: %s", in.tmp, strerror(errno));
		return send_ack(c, src, h->id0, h->id1, false, why, err, errlen);
	}
	dr_blob_in_init(&in.blob, NULL, in.fd, (uint64_t)size, DR_WIRE_CHUNK);
	if (dr_grow(&c->in, &c->capin, c->nin + 1, sizeof *c->in) != 0) {
		close(in.fd);
		unlink(in.tmp);
		return dr_seterr(err, errlen, "out of memory");
	}
	c->in[c->nin++] = in;
	if (dr_blob_in_done(&in.blob))
		return finish_incoming(c, &c->in[c->nin - 1], err, errlen);
	return 0;
}

/* One push message of COUNT bytes from SRC is in BUF. */
static int handle_push(dr_collect *c, int src, const char *buf, int count, char *err, size_t errlen)
{
	char why[DR_ERRLEN];
	hdr h;
	incoming *in;
	size_t len;
	const char *data = buf + sizeof h;
	int k;

	if (dr_blob_header(buf, (size_t)count, &h) != 0)
		return 0;
	len = (size_t)count - sizeof h;
	if (h.idx < 0) { /* a header: the size, then the RESULT */
		int64_t size;
		dr_msg result;
		if (len <= sizeof size + offsetof(dr_msg, text) ||
		    len > sizeof size + sizeof result)
			return 0;
		memcpy(&size, data, sizeof size);
		memset(&result, 0, sizeof result);
		memcpy(&result, data + sizeof size, len - sizeof size);
		result.text[sizeof result.text - 1] = '\0';
		return start_incoming(c, src, &h, size, &result, err, errlen);
	}
	in = find_src(c, src);
	if (!in || in->frame != h.id1 || in->job != h.id0)
		return 0; /* the rest of a refused or dropped transfer */
	k = dr_blob_in_put(&in->blob, &h, buf, (size_t)count, why, sizeof why);
	if (k < 0) {
		char msg[DR_PATH_MAX + DR_ERRLEN + 100];
		int job = in->job, frame = in->frame;
		snprintf(msg, sizeof msg, "cannot write %s: %s", in->tmp, why);
		drop_incoming(c, (size_t)(in - c->in));
		return send_ack(c, src, job, frame, false, msg, err, errlen);
	}
	if (k == 1 && dr_blob_in_done(&in->blob))
		return finish_incoming(c, in, err, errlen);
	return 0;
}

/* SRC's transfer (if any) is given up: its temporary file goes, and the node hears so (a live
 * node then reports the frame failed, to be retried; a dead one never reads it). */
static int drop_src(dr_collect *c, int src, const char *why, char *err, size_t errlen)
{
	incoming *in = find_src(c, src);
	int job, frame;

	if (!in)
		return 0;
	job = in->job;
	frame = in->frame;
	dr_warn("frame %d from rank %d: %s; dropped", frame, src, why);
	drop_incoming(c, (size_t)(in - c->in));
	return send_ack(c, src, job, frame, false, why, err, errlen);
}

static int home_pump(dr_collect *c, char *err, size_t errlen)
{
	MPI_Status st;
	MPI_Message msg;
	int flag, done, count, rc;
	double now = dr_now();
	char why[128];

	/* At most BUDGET chunks per call, whatever the number of senders (taken in turn, from a
	 * different one each call): rank 0's loop comes back within a few milliseconds. */
	int budget = BUDGET;
	c->turn = c->turn % (c->nranks > 1 ? c->nranks - 1 : 1) + 1;
	for (int i = 0; i < c->nranks - 1; i++) {
		int src = 1 + (c->turn - 1 + i) % (c->nranks - 1);
		struct slot *sl = &c->slot[src];
		for (; budget > 0; budget--) {
			if (sl->req != MPI_REQUEST_NULL) {
				rc = MPI_Test(&sl->req, &done, &st);
				if (rc != MPI_SUCCESS)
					return dr_wire_fail(rc, "MPI_Test", err, errlen);
				if (!done)
					break;
				MPI_Get_count(&st, MPI_BYTE, &count);
				if (handle_push(c, src, sl->buf, count, err, errlen) != 0)
					return -1;
			}
			dr_peer from = dr_peers_get(c->peers, src);
			rc = MPI_Improbe(from.rank, DR_TAG_PUSH, from.comm, &flag, &msg, &st);
			if (rc != MPI_SUCCESS)
				return dr_wire_fail(rc, "MPI_Improbe", err, errlen);
			if (!flag)
				break;
			if (!sl->buf && !(sl->buf = malloc(c->rcap)))
				return dr_seterr(err, errlen, "out of memory");
			MPI_Get_count(&st, MPI_BYTE, &count);
			if (count < 0 || (size_t)count > c->rcap)
				count = (int)c->rcap; /* a bad sender: MPI reports the truncation */
			rc = MPI_Imrecv(sl->buf, count, MPI_BYTE, &msg, &sl->req);
			if (rc != MPI_SUCCESS)
				return dr_wire_fail(rc, "MPI_Imrecv", err, errlen);
			sl->since = now;
		}
		/* a receive from a node that died mid-message may never end: leave it (and its
		 * buffer) to MPI */
		if (sl->req != MPI_REQUEST_NULL && now - sl->since > c->timeout) {
			MPI_Request_free(&sl->req);
			sl->req = MPI_REQUEST_NULL;
			sl->buf = NULL;
			snprintf(why, sizeof why, "a chunk did not arrive within %.0f s",
			         c->timeout);
			if (drop_src(c, src, why, err, errlen) != 0)
				return -1;
		}
	}
	/* a transfer silent for the timeout: its node is gone (rank 0 requeues the frame) */
	for (size_t i = 0; i < c->nin;) {
		if (now - c->in[i].blob.last > c->timeout) {
			snprintf(why, sizeof why, "transfer silent for %.0f s", c->timeout);
			if (drop_src(c, c->in[i].src, why, err, errlen) != 0)
				return -1;
			continue;
		}
		i++;
	}
	return dr_sendq_test(&c->s, err, errlen) < 0 ? -1 : 0;
}

int dr_collect_pump(void *collect, char *err, size_t errlen)
{
	dr_collect *c = collect;

	return c->home ? home_pump(c, err, errlen) : node_pump(c, err, errlen);
}

void dr_collect_stats(const dr_collect *c, const dr_report_home **home, size_t *n, uint64_t *bytes,
                      double *seconds)
{
	*home = c ? c->stats : NULL;
	*n = c ? c->nstats : 0;
	*bytes = c ? c->bytes : 0;
	*seconds = c ? c->seconds : 0;
}

void dr_collect_close(dr_collect *c)
{
	if (!c)
		return;
	while (c->nin)
		drop_incoming(c, 0);
	for (int i = 0; c->slot && i < c->nranks; i++) {
		if (c->slot[i].req != MPI_REQUEST_NULL)
			MPI_Request_free(&c->slot[i].req); /* its buffer is left to MPI */
		else
			free(c->slot[i].buf);
	}
	free(c->slot);
	if (c->fd >= 0)
		close(c->fd);
	dr_sendq_settle(&c->s, c->home ? 0.5 : 0);
	free(c->in);
	free(c->q);
	free(c->stats);
	free(c);
}
