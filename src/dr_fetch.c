/* Pulled scenes: under --serve a render node asks rank 0 for a job's scene before Blender opens it.
 */
#include "dr_fetch.h"
#include "dr_assets.h"
#include "dr_blob.h"
#include "dr_log.h"
#include "dr_outpath.h"
#include "dr_sendq.h"
#include "dr_stage.h"
#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef dr_wire_chunk hdr; /* id0: the request's seq */

/* ---- the pure parts ---- */

int dr_fetch_encode(const dr_fetch_msg *m, unsigned char *buf, size_t len)
{
	size_t head = offsetof(dr_fetch_msg, text);
	size_t tl = strnlen(m->text, sizeof m->text - 1);

	if (len < head + tl + 1)
		return -1;
	memcpy(buf, m, head);
	memcpy(buf + head, m->text, tl);
	buf[head + tl] = '\0';
	return (int)(head + tl + 1);
}

int dr_fetch_decode(const unsigned char *buf, size_t n, dr_fetch_msg *m, char *err, size_t errlen)
{
	size_t head = offsetof(dr_fetch_msg, text);
	dr_fetch_msg d;

	if (n <= head || n > sizeof d)
		return dr_seterr(err, errlen, "fetch message of %zu bytes", n);
	memset(&d, 0, sizeof d);
	memcpy(&d, buf, n);
	if (buf[n - 1] != '\0')
		return dr_seterr(err, errlen, "fetch message: unterminated text");
	if (d.kind < DR_FETCH_ASK || d.kind > DR_FETCH_FAIL)
		return dr_seterr(err, errlen, "fetch message of unknown kind %d", (int)d.kind);
	if ((d.kind == DR_FETCH_SCENE || d.kind == DR_FETCH_PACKED) &&
	    (memchr(d.hex, '\0', sizeof d.hex) == NULL || !dr_sha256_hex_valid(d.hex) ||
	     d.size < 0))
		return dr_seterr(err, errlen, "fetch answer with a bad hash or size");
	if (d.kind == DR_FETCH_PACKED && (d.have < 1 || d.have > (1 << 26)))
		return dr_seterr(err, errlen, "fetch answer with a bad chunk size");
	if (d.kind == DR_FETCH_SEND && d.have < 0)
		return dr_seterr(err, errlen, "fetch request from a negative chunk");
	*m = d;
	return 0;
}

bool dr_fetch_memo_get(const dr_fetch_memo *m, const char *path, uint64_t size, int64_t mtime_ns,
                       char hex[DR_SHA256_HEX])
{
	for (size_t i = 0; i < m->n; i++) {
		const struct dr_fetch_memo_ent *e = &m->e[i];
		if (e->size == size && e->mtime_ns == mtime_ns && strcmp(e->path, path) == 0) {
			memcpy(hex, e->hex, DR_SHA256_HEX);
			return true;
		}
	}
	return false;
}

void dr_fetch_memo_put(dr_fetch_memo *m, const char *path, uint64_t size, int64_t mtime_ns,
                       const char *hex)
{
	struct dr_fetch_memo_ent *e = NULL;

	if (strlen(path) >= sizeof m->e[0].path || strlen(hex) >= DR_SHA256_HEX)
		return;
	for (size_t i = 0; i < m->n && !e; i++)
		if (strcmp(m->e[i].path, path) == 0)
			e = &m->e[i];
	if (!e && m->n < DR_FETCH_MEMO_MAX)
		e = &m->e[m->n++];
	if (!e) { /* full: the oldest slot goes */
		e = &m->e[m->next];
		m->next = (m->next + 1) % DR_FETCH_MEMO_MAX;
	}
	snprintf(e->path, sizeof e->path, "%s", path);
	e->size = size;
	e->mtime_ns = mtime_ns;
	snprintf(e->hex, sizeof e->hex, "%s", hex);
}

bool dr_fetch_use_own(bool always, const char *local_hex, uint64_t local_size, const char *hex,
                      uint64_t size)
{
	return !always && local_hex && local_size == size && strcmp(local_hex, hex) == 0;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int send_msg(dr_sendq *q, dr_peer to, int tag, const dr_fetch_msg *m, char *err,
                    size_t errlen)
{
	unsigned char *buf = malloc(DR_FETCH_MSG_MAX);
	int n;

	if (!buf)
		return dr_seterr(err, errlen, "out of memory");
	n = dr_fetch_encode(m, buf, DR_FETCH_MSG_MAX);
	return dr_sendq_add(q, to, tag, buf, (size_t)n, err, errlen);
}

/* ---- rank 0 ---- */

/* One scene file as rank 0 knows it (path, size and mtime), with its hash and packed copy, made
 * by a worker thread. The fields under "results" are written by the worker under the server's
 * mutex; the rest only by the main thread. */
typedef struct scene {
	char path[DR_PATH_MAX];
	uint64_t size;
	int64_t mtime_ns;
	pthread_t th;
	bool th_live; /* a worker was started and not joined yet */
	/* results */
	int hstate, pstate; /* 0 not asked, 1 running, 2 done, -1 failed */
	char hex[DR_SHA256_HEX];
	char packed[DR_PATH_MAX + 128];
	uint64_t psize;
	char phex[DR_SHA256_HEX];
	char err[DR_ERRLEN];
	struct dr_fetch_server *srv;
} scene;

typedef struct pending { /* a question waiting for a worker */
	int src, seq, job, kind;
	scene *sc;
} pending;

typedef struct xfer { /* a packed copy on its way to a node */
	int src, fd;
	dr_blob_out out;
	char path[DR_PATH_MAX + 128];
} xfer;

struct dr_fetch_server {
	const dr_peers *peers; /* the channel's: a request's sender is a peer id */
	dr_fetch_server_cfg cfg;
	char *blender, *cache_dir;
	pthread_mutex_t mu;
	dr_sendq q;
	scene **sc;
	size_t nsc, capsc;
	pending *p;
	size_t np, capp;
	xfer *x;
	size_t nx, capx;
	dr_fetch_stats st;
	unsigned char *rbuf;
};

/* SC's hash and, when asked (pstate 1), its packed copy (dr_stage_pack), off rank 0's loop. */
static void *worker(void *arg)
{
	scene *sc = arg;
	dr_fetch_server *s = sc->srv;
	char err[DR_ERRLEN] = "", hex[DR_SHA256_HEX] = "", out[DR_PATH_MAX + 128] = "";
	char phex[DR_SHA256_HEX] = "";
	uint64_t size = 0, psize = 0;
	int hs, ps;

	pthread_mutex_lock(&s->mu);
	hs = sc->hstate;
	ps = sc->pstate;
	if (hs == 2)
		memcpy(hex, sc->hex, sizeof hex);
	pthread_mutex_unlock(&s->mu);
	if (hs == 1) {
		int rc = dr_sha256_file(sc->path, hex, &size, err, sizeof err);
		if (rc == 0 && size != sc->size)
			rc = dr_seterr(err, sizeof err, "%s changed while it was read", sc->path);
		pthread_mutex_lock(&s->mu);
		sc->hstate = rc == 0 ? 2 : -1;
		if (rc == 0)
			memcpy(sc->hex, hex, sizeof hex);
		else
			memcpy(sc->err, err, sizeof err);
		pthread_mutex_unlock(&s->mu);
		if (rc != 0) {
			hs = -1;
			if (ps == 1) {
				pthread_mutex_lock(&s->mu);
				sc->pstate = -1;
				pthread_mutex_unlock(&s->mu);
			}
			return NULL;
		}
	}
	if (ps != 1)
		return NULL;
	/* the packed copy; without one (packing failed) the scene itself goes, and the node's
	 * check of the scene's external files says what it then lacks */
	if (dr_stage_pack(s->blender, sc->path, s->cache_dir, hex, out, sizeof out, err,
	                  sizeof err) != 0) {
		dr_warn("%s; staging the scene without them", err);
		snprintf(out, sizeof out, "%s", sc->path);
	}
	int rc = dr_sha256_file(out, phex, &psize, err, sizeof err);
	pthread_mutex_lock(&s->mu);
	sc->pstate = rc == 0 ? 2 : -1;
	if (rc == 0) {
		memcpy(sc->packed, out, sizeof sc->packed);
		memcpy(sc->phex, phex, sizeof phex);
		sc->psize = psize;
	} else {
		memcpy(sc->err, err, sizeof err);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

dr_fetch_server *dr_fetch_server_create(const dr_peers *peers, const dr_fetch_server_cfg *c,
                                        char *err, size_t errlen)
{
	dr_fetch_server *s = calloc(1, sizeof *s);
	bool oom = false;

	if (!s || pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	s->peers = peers;
	s->cfg = *c;
	if (s->cfg.timeout <= 0)
		s->cfg.timeout = 30;
	s->blender = dr_strdup_or_null(c->blender ? c->blender : "blender", &oom);
	s->cache_dir = dr_strdup_or_null(c->cache_dir, &oom);
	s->rbuf = malloc(DR_FETCH_MSG_MAX);
	if (oom || !s->rbuf || !c->scene_of) {
		dr_fetch_server_close(s);
		dr_seterr(err, errlen, c->scene_of ? "out of memory" : "no job table to ask");
		return NULL;
	}
	return s;
}

/* The scene record for PATH as it is now on disk, made if new. NULL with ERR. */
static scene *scene_now(dr_fetch_server *s, const char *path, char *err, size_t errlen)
{
	struct stat st;
	scene *sc;

	if (stat(path, &st) != 0)
		return dr_seterr(err, errlen, "%s: %s", path, strerror(errno)), NULL;
	if (!S_ISREG(st.st_mode))
		return dr_seterr(err, errlen, "%s: not a regular file", path), NULL;
	for (size_t i = 0; i < s->nsc; i++) {
		sc = s->sc[i];
		if (sc->size == (uint64_t)st.st_size && sc->mtime_ns == mtime_ns(&st) &&
		    strcmp(sc->path, path) == 0)
			return sc;
	}
	if (dr_grow(&s->sc, &s->capsc, s->nsc + 1, sizeof *s->sc) != 0 ||
	    !(sc = calloc(1, sizeof *sc)))
		return dr_seterr(err, errlen, "out of memory"), NULL;
	snprintf(sc->path, sizeof sc->path, "%s", path);
	sc->size = (uint64_t)st.st_size;
	sc->mtime_ns = mtime_ns(&st);
	sc->srv = s;
	s->sc[s->nsc++] = sc;
	return sc;
}

/* Start SC's worker for what is asked and not yet there (PACK: the packed copy too). */
static void start_worker(dr_fetch_server *s, scene *sc, bool pack)
{
	bool go = false;

	if (sc->th_live)
		return; /* one at a time: the pump asks again once it is joined */
	pthread_mutex_lock(&s->mu);
	if (sc->hstate == 0) {
		sc->hstate = 1;
		go = true;
	}
	if (pack && sc->pstate == 0 && sc->hstate != -1) {
		sc->pstate = 1;
		go = true;
	}
	pthread_mutex_unlock(&s->mu);
	if (!go)
		return;
	if (pthread_create(&sc->th, NULL, worker, sc) != 0) {
		pthread_mutex_lock(&s->mu);
		if (sc->hstate == 1)
			sc->hstate = -1;
		if (sc->pstate == 1)
			sc->pstate = -1;
		snprintf(sc->err, sizeof sc->err, "cannot start a worker thread");
		pthread_mutex_unlock(&s->mu);
		return;
	}
	sc->th_live = true;
}

static void join_idle(dr_fetch_server *s)
{
	for (size_t i = 0; i < s->nsc; i++) {
		scene *sc = s->sc[i];
		bool running;

		if (!sc->th_live)
			continue;
		pthread_mutex_lock(&s->mu);
		running = sc->hstate == 1 || sc->pstate == 1;
		pthread_mutex_unlock(&s->mu);
		if (!running) {
			pthread_join(sc->th, NULL);
			sc->th_live = false;
		}
	}
}

static int answer_fail(dr_fetch_server *s, int dest, int seq, int job, const char *why, char *err,
                       size_t errlen)
{
	dr_fetch_msg a = {.kind = DR_FETCH_FAIL, .job = job, .seq = seq};

	snprintf(a.text, sizeof a.text, "%s", why);
	return send_msg(&s->q, dr_peers_get(s->peers, dest), DR_TAG_FETCH_ANS, &a, err, errlen);
}

static void drop_xfer(dr_fetch_server *s, size_t i)
{
	if (s->x[i].fd >= 0)
		close(s->x[i].fd);
	s->x[i] = s->x[--s->nx];
}

/* A request from SRC. 0, or -1 with ERR on an MPI failure. */
static int handle(dr_fetch_server *s, int src, const dr_fetch_msg *m, char *err, size_t errlen)
{
	char path[DR_PATH_MAX], why[DR_PATH_MAX + 300], what[64];
	scene *sc;

	for (size_t i = 0; i < s->nx && (m->kind == DR_FETCH_CANCEL || m->kind == DR_FETCH_SEND);
	     i++)
		if (s->x[i].src == src) {
			drop_xfer(s, i);
			break;
		}
	if (m->kind == DR_FETCH_CANCEL)
		return 0;
	if (m->kind == DR_FETCH_DONE) {
		const char *how = m->outcome == DR_FETCH_SAME     ? "had it at the same path"
		                  : m->outcome == DR_FETCH_CACHED ? "had it in its cache"
		                  : m->outcome == DR_FETCH_STAGED ? "staged"
		                                                  : "could not get it";
		if (m->job < 0)
			snprintf(what, sizeof what, "the default scene");
		else
			snprintf(what, sizeof what, "job %d's scene", (int)m->job);
		if (m->outcome == DR_FETCH_SAME)
			s->st.same++;
		else if (m->outcome == DR_FETCH_CACHED)
			s->st.cached++;
		else if (m->outcome == DR_FETCH_STAGED)
			s->st.staged++;
		else
			s->st.failed++;
		if (m->outcome == DR_FETCH_STAGED) {
			s->st.bytes += (uint64_t)m->size;
			s->st.seconds += m->seconds;
			dr_info("node %s (rank %d): %s staged (%lld bytes, %.2f s)", m->text, src,
			        what, (long long)m->size, m->seconds);
		} else {
			dr_debug("node %s (rank %d): %s: %s (0 bytes staged)", m->text, src, what,
			         how);
		}
		return 0;
	}
	/* only the scene of a job the service knows: the node names a job, never a path */
	if (s->cfg.scene_of(s->cfg.scene_ctx, m->job, path, sizeof path) != 0) {
		snprintf(why, sizeof why, "rank 0 knows no job %d to fetch a scene for", m->job);
		return answer_fail(s, src, m->seq, m->job, why, err, errlen);
	}
	if (!(sc = scene_now(s, path, why, sizeof why)))
		return answer_fail(s, src, m->seq, m->job, why, err, errlen);
	if (m->kind == DR_FETCH_SEND) {
		xfer x = {.src = src, .fd = -1};
		uint64_t size;
		int ps;

		pthread_mutex_lock(&s->mu);
		ps = sc->pstate;
		snprintf(x.path, sizeof x.path, "%s", sc->packed);
		size = sc->psize;
		pthread_mutex_unlock(&s->mu);
		if (ps != 2)
			return answer_fail(s, src, m->seq, m->job,
			                   "the packed copy is not ready (ask first)", err, errlen);
		x.fd = open(x.path, O_RDONLY | O_CLOEXEC);
		if (x.fd < 0) {
			snprintf(why, sizeof why, "%s: %s", x.path, strerror(errno));
			return answer_fail(s, src, m->seq, m->job, why, err, errlen);
		}
		dr_blob_out_init(&x.out, x.fd, size, DR_WIRE_CHUNK, dr_peers_get(s->peers, src),
		                 DR_TAG_FETCH_DATA, m->seq, 0, m->have);
		if (dr_grow(&s->x, &s->capx, s->nx + 1, sizeof *s->x) != 0) {
			close(x.fd);
			return answer_fail(s, src, m->seq, m->job, "rank 0 is out of memory", err,
			                   errlen);
		}
		dr_debug("rank %d: sending %s from chunk %lld of %lld", src, x.path,
		         (long long)x.out.next, (long long)x.out.nchunks);
		s->x[s->nx++] = x;
		return 0;
	}
	/* ASK or WANT: answered once the worker has the hash (or the packed copy) */
	for (size_t i = 0; i < s->np; i++)
		if (s->p[i].src == src) /* a node has one question at a time: the newest */
			s->p[i] = s->p[--s->np];
	if (dr_grow(&s->p, &s->capp, s->np + 1, sizeof *s->p) != 0)
		return answer_fail(s, src, m->seq, m->job, "rank 0 is out of memory", err, errlen);
	s->p[s->np++] =
	        (pending){.src = src, .seq = m->seq, .job = m->job, .kind = m->kind, .sc = sc};
	/* a packed copy made before a file packed into it changed (a texture edited since) is made
	 * again: the .blend alone has not changed, so SC is the same record */
	pthread_mutex_lock(&s->mu);
	if (m->kind == DR_FETCH_WANT && !sc->th_live && sc->pstate == 2 &&
	    strcmp(sc->packed, sc->path) != 0 && !dr_assets_pack_fresh(sc->packed))
		sc->pstate = 0;
	pthread_mutex_unlock(&s->mu);
	start_worker(s, sc, m->kind == DR_FETCH_WANT);
	return 0;
}

/* Answer the questions whose answers the workers have made. */
static int answer(dr_fetch_server *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < s->np;) {
		pending p = s->p[i];
		dr_fetch_msg a = {.job = p.job, .seq = p.seq};
		int hs, ps;

		pthread_mutex_lock(&s->mu);
		hs = p.sc->hstate;
		ps = p.sc->pstate;
		if (hs == -1 || (p.kind == DR_FETCH_WANT && ps == -1)) {
			a.kind = DR_FETCH_FAIL;
			snprintf(a.text, sizeof a.text, "rank 0: %s", p.sc->err);
		} else if (p.kind == DR_FETCH_ASK && hs == 2) {
			a.kind = DR_FETCH_SCENE;
			a.size = (int64_t)p.sc->size;
			memcpy(a.hex, p.sc->hex, sizeof a.hex);
			snprintf(a.text, sizeof a.text, "%s", p.sc->path);
		} else if (p.kind == DR_FETCH_WANT && ps == 2) {
			a.kind = DR_FETCH_PACKED;
			a.size = (int64_t)p.sc->psize;
			a.have = DR_WIRE_CHUNK;
			memcpy(a.hex, p.sc->phex, sizeof a.hex);
			snprintf(a.text, sizeof a.text, "%s", dr_cache_ext(p.sc->packed));
		}
		pthread_mutex_unlock(&s->mu);
		if (!a.kind) {
			start_worker(s, p.sc, p.kind == DR_FETCH_WANT); /* after a join */
			i++;
			continue;
		}
		s->p[i] = s->p[--s->np];
		if (send_msg(&s->q, dr_peers_get(s->peers, p.src), DR_TAG_FETCH_ANS, &a, err,
		             errlen) != 0)
			return -1;
	}
	return 0;
}

/* Keep each transfer's window full; drop those done or stalled. */
static int feed(dr_fetch_server *s, char *err, size_t errlen)
{
	double now = dr_now();
	char why[DR_ERRLEN];

	for (size_t i = 0; i < s->nx;) {
		xfer *x = &s->x[i];
		int k = dr_blob_out_pump(&x->out, &s->q, x->out.nchunks, DR_WIRE_WINDOW, why,
		                         sizeof why);

		if (k == -1)
			return dr_seterr(err, errlen, "%s", why);
		if (k == -2) {
			dr_warn("rank %d: cannot read %s for it: %s", x->src, x->path, why);
			x->out.next = x->out.nchunks + 1; /* the node times out and says so */
		}
		if (dr_blob_out_sent(&x->out) && dr_blob_out_inflight(&x->out, &s->q) == 0) {
			drop_xfer(s, i); /* all sent: the node's DONE says how it went */
			continue;
		}
		if (now - x->out.last > s->cfg.timeout) {
			dr_warn("rank %d took no part of %s for %.0f s: that transfer is dropped",
			        x->src, x->path, now - x->out.last);
			dr_sendq_abandon(&s->q, x->out.to);
			drop_xfer(s, i);
			continue;
		}
		i++;
	}
	return 0;
}

int dr_fetch_server_pump(void *srv, char *err, size_t errlen)
{
	dr_fetch_server *s = srv;
	char why[256];
	int rc, n, from;

	if (dr_sendq_test(&s->q, err, errlen) < 0)
		return -1;
	join_idle(s);
	for (int k = 0; k < 64; k++) {
		rc = dr_wire_recv_any(s->peers, DR_TAG_FETCH_REQ, s->rbuf, DR_FETCH_MSG_MAX, &n,
		                      &from, err, errlen);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		if (rc == 2) {
			dr_warn("rank %d sent a fetch request of %d bytes: ignored", from, n);
			continue;
		}
		dr_fetch_msg m;
		if (dr_fetch_decode(s->rbuf, (size_t)n, &m, why, sizeof why) != 0) {
			dr_warn("rank %d: %s", from, why);
			continue;
		}
		if (handle(s, from, &m, err, errlen) != 0)
			return -1;
	}
	if (answer(s, err, errlen) != 0)
		return -1;
	return feed(s, err, errlen);
}

void dr_fetch_server_lost(dr_fetch_server *s, int rank)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->np;)
		if (s->p[i].src == rank)
			s->p[i] = s->p[--s->np];
		else
			i++;
	for (size_t i = 0; i < s->nx;)
		if (s->x[i].src == rank) {
			dr_info("rank %d is lost: its copy of %s is abandoned (%lld of %lld chunks "
			        "sent)",
			        rank, s->x[i].path, (long long)s->x[i].out.next,
			        (long long)s->x[i].out.nchunks);
			drop_xfer(s, i);
		} else {
			i++;
		}
	dr_sendq_abandon(&s->q, dr_peers_get(s->peers, rank));
}

void dr_fetch_server_forget(void *srv, int rank)
{
	dr_fetch_server_lost(srv, rank);
}

void dr_fetch_server_stats(const dr_fetch_server *s, dr_fetch_stats *st)
{
	*st = s ? s->st : (dr_fetch_stats){0};
}

void dr_fetch_server_close(dr_fetch_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nsc; i++) {
		if (s->sc[i]->th_live)
			pthread_join(s->sc[i]->th, NULL); /* a packing Blender ends in seconds */
		free(s->sc[i]);
	}
	while (s->nx > 0)
		drop_xfer(s, s->nx - 1);
	dr_sendq_free(&s->q);
	pthread_mutex_destroy(&s->mu);
	free(s->sc);
	free(s->p);
	free(s->x);
	free(s->rbuf);
	free(s->blender);
	free(s->cache_dir);
	free(s);
}

/* ---- a render node ---- */

enum cstate { C_IDLE = 0, C_ASKED, C_HASHING, C_WANTED, C_RECV, C_READY, C_FAILED };

/* A node hashes its own file in a thread of its own (no MPI there): a big scene takes seconds to
 * read, and the node must keep heartbeating meanwhile. */
typedef struct own_hash {
	pthread_t th;
	bool live;          /* started, not joined yet */
	pthread_mutex_t mu; /* guards done, rc, hex */
	bool done;
	int rc;
	char path[DR_PATH_MAX];
	uint64_t size; /* what stat said */
	int64_t mtime_ns;
	char hex[DR_SHA256_HEX];
	char want[DR_SHA256_HEX]; /* rank 0's hash */
	int seq;                  /* of the question it answers */
} own_hash;

struct dr_fetch_client {
	dr_peer home; /* rank 0 */
	dr_fetch_client_cfg cfg;
	dr_cache cache;
	bool cache_ok;
	char cache_err[DR_ERRLEN];
	char host[256];
	dr_sendq q;
	enum cstate state;
	int seq, job;
	char scene[DR_PATH_MAX];
	char local[DR_PATH_MAX + 200];
	char why[4400];
	dr_cache_wr w;
	bool writing;
	dr_blob_in in; /* into W */
	unsigned char *rbuf, *abuf;
	dr_fetch_memo memo;
	own_hash oh;
};

dr_fetch_client *dr_fetch_client_create(const dr_peers *peers, const dr_fetch_client_cfg *c,
                                        char *err, size_t errlen)
{
	dr_fetch_client *f = calloc(1, sizeof *f);
	char dir[DR_PATH_MAX];

	if (!f || !(f->rbuf = malloc(sizeof(hdr) + DR_WIRE_CHUNK)) ||
	    !(f->abuf = malloc(DR_FETCH_MSG_MAX)) || pthread_mutex_init(&f->oh.mu, NULL) != 0) {
		if (f) {
			free(f->rbuf);
			free(f->abuf);
		}
		free(f);
		dr_seterr(err, errlen, "out of memory");
		return NULL;
	}
	f->home = dr_peers_get(peers, 0);
	f->cfg = *c;
	f->cfg.cache_dir = NULL; /* not kept: the cache has its own copy */
	if (f->cfg.timeout <= 0)
		f->cfg.timeout = 30;
	f->w.fd = -1;
	if (c->cache_dir)
		snprintf(dir, sizeof dir, "%s", c->cache_dir);
	else
		dr_stage_default_cache(dir, sizeof dir);
	/* a cache that cannot open is not fatal: a node that has the scene still renders */
	f->cache_ok =
	        dr_cache_open(&f->cache, dir, c->cache_max, f->cache_err, sizeof f->cache_err) == 0;
	if (f->cache_ok)
		dr_cache_clean_stale(&f->cache, DR_CACHE_STALE_S);
	if (gethostname(f->host, sizeof f->host - 1) != 0)
		snprintf(f->host, sizeof f->host, "unknown-host");
	return f;
}

static int client_send(dr_fetch_client *f, int kind, int64_t have, char *err, size_t errlen)
{
	dr_fetch_msg m = {.kind = kind, .job = f->job, .seq = f->seq, .have = have};
	return send_msg(&f->q, f->home, DR_TAG_FETCH_REQ, &m, err, errlen);
}

static int client_done(dr_fetch_client *f, int outcome, int64_t size, double secs, char *err,
                       size_t errlen)
{
	dr_fetch_msg m = {.kind = DR_FETCH_DONE,
	                  .job = f->job,
	                  .seq = f->seq,
	                  .outcome = outcome,
	                  .size = size,
	                  .seconds = secs};
	snprintf(m.text, sizeof m.text, "%s", f->host);
	return send_msg(&f->q, f->home, DR_TAG_FETCH_REQ, &m, err, errlen);
}

static int client_fail(dr_fetch_client *f, const char *why, char *err, size_t errlen)
{
	if (f->writing) {
		dr_cache_abort(&f->w);
		f->writing = false;
	}
	snprintf(f->why, sizeof f->why, "%s", why);
	f->state = C_FAILED;
	return client_done(f, DR_FETCH_FAILED, 0, 0, err, errlen);
}

static void ready(dr_fetch_client *f, const char *local)
{
	snprintf(f->local, sizeof f->local, "%s", local);
	f->state = C_READY;
}

/* Does the node's own file at PATH have SIZE bytes and hash HEX? Hashes are remembered by path,
 * size and mtime: a node does not hash its file again for every job. */
static void *hash_main(void *arg)
{
	own_hash *h = arg;
	char hex[DR_SHA256_HEX], why[256];
	uint64_t got = 0;
	int rc = dr_sha256_file(h->path, hex, &got, why, sizeof why);

	pthread_mutex_lock(&h->mu);
	h->rc = rc == 0 && got == h->size ? 0 : -1;
	memcpy(h->hex, hex, sizeof hex);
	h->done = true;
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* The node's own hash thread, once it is done: joined, its hash remembered. True when it was. */
static bool hash_reap(dr_fetch_client *f)
{
	own_hash *h = &f->oh;
	bool done;

	if (!h->live)
		return true;
	pthread_mutex_lock(&h->mu);
	done = h->done;
	pthread_mutex_unlock(&h->mu);
	if (!done)
		return false;
	pthread_join(h->th, NULL);
	h->live = false;
	if (h->rc == 0)
		dr_fetch_memo_put(&f->memo, h->path, h->size, h->mtime_ns, h->hex);
	return true;
}

/* Does the node's own file at PATH have SIZE bytes and hash HEX? 1 yes, 0 no, 2 not known yet
 * (a thread hashes it: the pump looks again). Hashes are remembered by path, size and mtime: a
 * node does not hash its file again for every job. */
static int own_matches(dr_fetch_client *f, const char *path, uint64_t size, const char *hex)
{
	char mine[DR_SHA256_HEX];
	struct stat st;
	own_hash *h = &f->oh;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return 0;
	if (dr_fetch_memo_get(&f->memo, path, size, mtime_ns(&st), mine))
		return dr_fetch_use_own(false, mine, size, hex, size) ? 1 : 0;
	if (h->live) { /* a hash for an abandoned question: let it end first (rare) */
		pthread_join(h->th, NULL);
		h->live = false;
	}
	snprintf(h->path, sizeof h->path, "%s", path);
	snprintf(h->want, sizeof h->want, "%s", hex);
	h->size = size;
	h->mtime_ns = mtime_ns(&st);
	h->seq = f->seq;
	h->done = false;
	if (pthread_create(&h->th, NULL, hash_main, h) != 0)
		return 0; /* the packed copy then */
	h->live = true;
	return 2;
}

/* The pump: the node's own hash is known now? Then open its file, or want rank 0's copy. */
static int own_hashed(dr_fetch_client *f, char *err, size_t errlen)
{
	own_hash *h = &f->oh;

	if (!hash_reap(f) || f->state != C_HASHING || h->seq != f->seq)
		return 0;
	if (h->rc == 0 && dr_fetch_use_own(false, h->hex, h->size, h->want, h->size)) {
		ready(f, f->scene);
		return client_done(f, DR_FETCH_SAME, 0, 0, err, errlen);
	}
	f->state = C_WANTED;
	return client_send(f, DR_FETCH_WANT, 0, err, errlen);
}

static int on_answer(dr_fetch_client *f, const dr_fetch_msg *a, char *err, size_t errlen)
{
	char why[DR_ERRLEN + 64];
	int k;

	if (a->seq != f->seq || (f->state != C_ASKED && f->state != C_WANTED))
		return 0; /* about a request given up */
	if (a->kind == DR_FETCH_FAIL)
		return client_fail(f, a->text, err, errlen);
	if (a->kind == DR_FETCH_SCENE && f->state == C_ASKED) {
		k = f->cfg.always ? 0 : own_matches(f, f->scene, (uint64_t)a->size, a->hex);
		if (k == 2) {
			f->state = C_HASHING;
			return 0;
		}
		if (k == 1) {
			ready(f, f->scene);
			return client_done(f, DR_FETCH_SAME, 0, 0, err, errlen);
		}
		f->state = C_WANTED;
		return client_send(f, DR_FETCH_WANT, 0, err, errlen);
	}
	if (a->kind != DR_FETCH_PACKED || f->state != C_WANTED)
		return 0;
	if (!f->cache_ok) {
		snprintf(why, sizeof why, "the scene cannot be staged: %s", f->cache_err);
		return client_fail(f, why, err, errlen);
	}
	k = dr_cache_lookup(&f->cache, a->hex, a->text, (uint64_t)a->size, f->local,
	                    sizeof f->local, why, sizeof why);
	if (k < 0)
		return client_fail(f, why, err, errlen);
	if (k == 1) {
		f->state = C_READY;
		return client_done(f, DR_FETCH_CACHED, 0, 0, err, errlen);
	}
	if (dr_cache_begin(&f->cache, a->hex, a->text, (uint64_t)a->size, &f->w, why, sizeof why) !=
	    0)
		return client_fail(f, why, err, errlen);
	f->writing = true;
	dr_blob_in_init(&f->in, &f->w, -1, (uint64_t)a->size, (uint32_t)a->have);
	if (dr_blob_in_done(&f->in)) { /* an empty file: nothing to send */
		f->writing = false;
		if (dr_cache_commit(&f->w, f->local, sizeof f->local, why, sizeof why) != 0)
			return client_fail(f, why, err, errlen);
		f->state = C_READY;
		return client_done(f, DR_FETCH_STAGED, 0, 0, err, errlen);
	}
	f->state = C_RECV;
	return client_send(f, DR_FETCH_SEND, 0, err, errlen);
}

static int on_chunk(dr_fetch_client *f, int n, char *err, size_t errlen)
{
	char why[DR_ERRLEN];
	hdr h;
	int k;

	if (dr_blob_header(f->rbuf, (size_t)n, &h) != 0)
		return 0;
	if (f->state != C_RECV || h.id0 != f->seq)
		return 0; /* of a transfer given up */
	k = dr_blob_in_put(&f->in, &h, f->rbuf, (size_t)n, why, sizeof why);
	if (k == 0) {
		snprintf(why, sizeof why, "chunk %lld of the scene came instead of %lld",
		         (long long)h.idx, (long long)f->in.got);
		return client_fail(f, why, err, errlen);
	}
	if (k < 0) {
		client_send(f, DR_FETCH_CANCEL, 0, err, errlen);
		return client_fail(f, why, err, errlen);
	}
	if (!dr_blob_in_done(&f->in))
		return 0;
	f->writing = false;
	if (dr_cache_commit(&f->w, f->local, sizeof f->local, why, sizeof why) != 0)
		return client_fail(f, why, err, errlen);
	f->state = C_READY;
	return client_done(f, DR_FETCH_STAGED, (int64_t)f->in.size, dr_now() - f->in.started, err,
	                   errlen);
}

int dr_fetch_client_pump(void *cli, char *err, size_t errlen)
{
	dr_fetch_client *f = cli;
	char why[DR_ERRLEN];
	int rc, n;

	if (dr_sendq_test(&f->q, err, errlen) < 0)
		return -1;
	for (;;) {
		rc = dr_wire_recv_from(f->home, DR_TAG_FETCH_ANS, f->abuf, DR_FETCH_MSG_MAX, &n,
		                       err, errlen);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		if (rc == 2)
			return dr_seterr(err, errlen, "a fetch answer of %d bytes", n);
		dr_fetch_msg a;
		if (dr_fetch_decode(f->abuf, (size_t)n, &a, why, sizeof why) != 0) {
			dr_warn("%s", why);
			continue;
		}
		if (on_answer(f, &a, err, errlen) != 0)
			return -1;
	}
	for (int k = 0; k < 2 * DR_WIRE_WINDOW; k++) {
		rc = dr_wire_recv_from(f->home, DR_TAG_FETCH_DATA, f->rbuf,
		                       sizeof(hdr) + DR_WIRE_CHUNK, &n, err, errlen);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		if (rc == 2)
			return dr_seterr(err, errlen, "a scene chunk of %d bytes", n);
		if (on_chunk(f, n, err, errlen) != 0)
			return -1;
	}
	if (own_hashed(f, err, errlen) != 0)
		return -1;
	if (f->state == C_RECV && dr_blob_in_stalled(&f->in, dr_now(), f->cfg.timeout)) {
		snprintf(why, sizeof why,
		         "the scene stopped coming from rank 0 (%lld of %lld bytes in %.0f s)",
		         (long long)(f->in.got * f->in.chunk), (long long)f->in.size,
		         dr_now() - f->in.started);
		if (client_send(f, DR_FETCH_CANCEL, 0, err, errlen) != 0)
			return -1;
		return client_fail(f, why, err, errlen);
	}
	return 0;
}

int dr_fetch_client_fetch(void *cli, int job, const char *scene, char *local, size_t len, char *why,
                          size_t whylen)
{
	dr_fetch_client *f = cli;
	char err[DR_ERRLEN];

	if (f->state != C_IDLE && strcmp(scene, f->scene) != 0) {
		/* another scene now (the job was cancelled meanwhile): give the old one up */
		if (f->state == C_RECV && client_send(f, DR_FETCH_CANCEL, 0, err, sizeof err) != 0)
			dr_warn("%s", err);
		if (f->writing) {
			dr_cache_abort(&f->w);
			f->writing = false;
		}
		f->state = C_IDLE;
	}
	switch (f->state) {
	case C_IDLE:
		if (strlen(scene) >= sizeof f->scene)
			return dr_seterr(why, whylen, "scene path too long");
		snprintf(f->scene, sizeof f->scene, "%s", scene);
		f->job = job;
		f->seq++;
		if (client_send(f, DR_FETCH_ASK, 0, err, sizeof err) != 0)
			return dr_seterr(why, whylen, "cannot ask rank 0 for the scene: %s", err);
		f->state = C_ASKED;
		return 1;
	case C_READY:
		f->state = C_IDLE;
		if ((size_t)snprintf(local, len, "%s", f->local) >= len)
			return dr_seterr(why, whylen, "staged scene path too long");
		return 0;
	case C_FAILED:
		f->state = C_IDLE;
		return dr_seterr(why, whylen, "%s", f->why);
	default:
		f->job = job;
		return 1;
	}
}

void dr_fetch_client_close(dr_fetch_client *f)
{
	if (!f)
		return;
	if (f->writing)
		dr_cache_abort(&f->w);
	if (f->oh.live)
		pthread_join(f->oh.th, NULL);
	pthread_mutex_destroy(&f->oh.mu);
	if (f->cache_ok)
		dr_cache_close(&f->cache);
	dr_sendq_settle(&f->q, 0.5);
	free(f->rbuf);
	free(f->abuf);
	free(f);
}
