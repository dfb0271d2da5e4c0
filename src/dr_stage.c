/* Staging: rank 0 sends the scene to the render nodes that lack it, over MPI, into their caches. */
#include "dr_stage.h"
#include "dr_cache.h"
#include "dr_log.h"
#include "dr_util.h"
#include "dr_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tags of their own: dr_msg's record uses 7. */
#define TAG_CTL  21
#define TAG_DATA 22

/* Seconds between a node's keep-alives while staging, and how long rank 0 waits for answers. */
#define KEEPALIVE_S    0.5
#define ANSWER_MIN_S   30.0
#define PROGRESS_EVERY 2.0
#define DRAIN_S        2.0
#define DATA_HDR       8 /* a chunk message: int64 index, then the bytes */

enum { CTL_OFFER = 1, CTL_ANSWER, CTL_FEED, CTL_UNFEED, CTL_PROGRESS, CTL_DONE, CTL_FINISH };
enum { ANS_SAME = 1, ANS_CACHED, ANS_NEED, ANS_FAIL };

/* A control message; only the used part of text travels. */
typedef struct ctl {
	int32_t type;
	int32_t status; /* ANSWER: ANS_*; DONE: 0 = ok, else failed (text says why) */
	int32_t rank;   /* FEED, UNFEED: the child */
	int32_t always; /* OFFER */
	uint32_t chunk; /* OFFER */
	int32_t pad;
	int64_t size;  /* OFFER */
	int64_t count; /* FEED: first chunk to send; PROGRESS: chunks received */
	char hex[DR_SHA256_HEX];
	char ext[DR_CACHE_EXT_MAX];
	char text[4096]; /* OFFER: rank 0's path; ANSWER, DONE: a message */
} ctl;

/* Sends in flight. A send to a lost rank is abandoned: MPI_Request_free, and its buffer is kept
 * for good (MPI may still read it; a few chunks per lost node at most). */
typedef struct sends {
	MPI_Request *req;
	void **buf;
	int *dest, *tag;
	size_t n, cap, capb, capd, capt;
} sends;

/* A child this rank forwards to, and the next chunk it will send it. */
typedef struct feed {
	int rank;
	int64_t sent;
	bool active;
} feed;

static int mpi_err(int rc, const char *what, char *err, size_t errlen)
{
	char buf[MPI_MAX_ERROR_STRING];
	int len = 0;

	if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS)
		snprintf(buf, sizeof buf, "code %d", rc);
	return dr_seterr(err, errlen, "staging: %s: %s", what, buf);
}

static int sends_add(sends *s, MPI_Comm comm, int dest, int tag, void *buf, size_t len, char *err,
                     size_t errlen)
{
	int rc;

	if (dr_grow(&s->req, &s->cap, s->n + 1, sizeof *s->req) != 0 ||
	    dr_grow(&s->buf, &s->capb, s->n + 1, sizeof *s->buf) != 0 ||
	    dr_grow(&s->dest, &s->capd, s->n + 1, sizeof *s->dest) != 0 ||
	    dr_grow(&s->tag, &s->capt, s->n + 1, sizeof *s->tag) != 0) {
		free(buf);
		return dr_seterr(err, errlen, "staging: out of memory");
	}
	rc = MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, comm, &s->req[s->n]);
	if (rc != MPI_SUCCESS) {
		free(buf);
		return mpi_err(rc, "MPI_Isend", err, errlen);
	}
	s->buf[s->n] = buf;
	s->dest[s->n] = dest;
	s->tag[s->n] = tag;
	s->n++;
	return 0;
}

static void sends_drop(sends *s, size_t i)
{
	s->n--;
	s->req[i] = s->req[s->n];
	s->buf[i] = s->buf[s->n];
	s->dest[i] = s->dest[s->n];
	s->tag[i] = s->tag[s->n];
}

/* Complete finished sends. Returns how many, or -1 with ERR. */
static int sends_test(sends *s, char *err, size_t errlen)
{
	int done, k = 0, rc;

	for (size_t i = 0; i < s->n;) {
		rc = MPI_Test(&s->req[i], &done, MPI_STATUS_IGNORE);
		if (rc != MPI_SUCCESS)
			return mpi_err(rc, "MPI_Test", err, errlen);
		if (!done) {
			i++;
			continue;
		}
		free(s->buf[i]);
		sends_drop(s, i);
		k++;
	}
	return k;
}

static int sends_inflight(const sends *s, int dest, int tag)
{
	int k = 0;

	for (size_t i = 0; i < s->n; i++)
		k += s->dest[i] == dest && s->tag[i] == tag;
	return k;
}

/* Never wait for sends to DEST (-1 = all) again. */
static void sends_abandon(sends *s, int dest)
{
	for (size_t i = 0; i < s->n;) {
		if (dest >= 0 && s->dest[i] != dest) {
			i++;
			continue;
		}
		MPI_Request_free(&s->req[i]); /* the buffer stays allocated: see struct sends */
		sends_drop(s, i);
	}
}

static void sends_free(sends *s)
{
	sends_abandon(s, -1);
	free(s->req);
	free(s->buf);
	free(s->dest);
	free(s->tag);
	memset(s, 0, sizeof *s);
}

/* Wait up to SECS (without spinning) for sends in flight, then abandon the rest. */
static void sends_settle(sends *s, double secs)
{
	char err[DR_ERRLEN];
	double end = dr_now() + secs;

	while (s->n && dr_now() < end && sends_test(s, err, sizeof err) >= 0)
		if (s->n)
			dr_sleep_ms(1);
	sends_free(s);
}

static int send_ctl(sends *s, MPI_Comm comm, int dest, const ctl *m, char *err, size_t errlen)
{
	size_t len = offsetof(ctl, text) + strnlen(m->text, sizeof m->text - 1) + 1;
	ctl *copy = malloc(sizeof *copy);

	if (!copy)
		return dr_seterr(err, errlen, "staging: out of memory");
	memcpy(copy, m, len);
	copy->text[len - offsetof(ctl, text) - 1] = '\0';
	return sends_add(s, comm, dest, TAG_CTL, copy, len, err, errlen);
}

/* One control message if one is waiting: 1 with M and *SRC, 0 if none, -1 with ERR. */
static int poll_ctl(MPI_Comm comm, ctl *m, int *src, char *err, size_t errlen)
{
	MPI_Status st;
	int flag = 0, count = 0, rc;

	rc = MPI_Iprobe(MPI_ANY_SOURCE, TAG_CTL, comm, &flag, &st);
	if (rc != MPI_SUCCESS)
		return mpi_err(rc, "MPI_Iprobe", err, errlen);
	if (!flag)
		return 0;
	MPI_Get_count(&st, MPI_BYTE, &count);
	memset(m, 0, sizeof *m);
	if (count < 0 || (size_t)count > sizeof *m)
		count = (int)sizeof *m; /* MPI reports the truncation below */
	rc = MPI_Recv(m, count, MPI_BYTE, st.MPI_SOURCE, TAG_CTL, comm, MPI_STATUS_IGNORE);
	if (rc != MPI_SUCCESS)
		return mpi_err(rc, "MPI_Recv", err, errlen);
	m->text[sizeof m->text - 1] = '\0';
	*src = st.MPI_SOURCE;
	return 1;
}

/* Send chunks this rank has (HAVE of NCHUNKS, read from FD) to its active children, up to WINDOW
 * in flight each. Returns how many went, or -1 with ERR. */
static int pump(MPI_Comm comm, int fd, uint64_t size, uint32_t chunk, int64_t nchunks, int64_t have,
                feed *f, int nf, sends *s, int window, char *err, size_t errlen)
{
	int64_t k;
	int went = 0;

	for (int i = 0; i < nf; i++) {
		if (!f[i].active)
			continue;
		while ((k = dr_xfer_next(nchunks, have, f[i].sent,
		                         sends_inflight(s, f[i].rank, TAG_DATA), window)) >= 0) {
			uint32_t len = dr_xfer_chunk_len(size, chunk, k);
			char *buf = malloc(DATA_HDR + (size_t)len);
			size_t off = 0;

			if (!buf)
				return dr_seterr(err, errlen, "staging: out of memory");
			memcpy(buf, &k, sizeof k);
			while (off < len) {
				ssize_t got = pread(fd, buf + DATA_HDR + off, len - off,
				                    (off_t)((uint64_t)k * chunk + off));
				if (got < 0 && errno == EINTR)
					continue;
				if (got <= 0) {
					free(buf);
					return dr_seterr(err, errlen,
					                 "staging: cannot read chunk %lld: %s",
					                 (long long)k,
					                 got < 0 ? strerror(errno) : "file shrank");
				}
				off += (size_t)got;
			}
			if (sends_add(s, comm, f[i].rank, TAG_DATA, buf, DATA_HDR + (size_t)len,
			              err, errlen) != 0)
				return -1;
			f[i].sent++;
			went++;
		}
	}
	return went;
}

/* Start (or restart from FROM) feeding RANK. */
static void feed_set(feed *f, int *nf, int rank, int64_t from)
{
	for (int i = 0; i < *nf; i++)
		if (f[i].rank == rank) {
			f[i].sent = from;
			f[i].active = true;
			return;
		}
	f[*nf] = (feed){.rank = rank, .sent = from, .active = true};
	(*nf)++;
}

static void feed_stop(feed *f, int nf, int rank)
{
	for (int i = 0; i < nf; i++)
		if (f[i].rank == rank)
			f[i].active = false;
}

void dr_stage_default_cache(char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, len, "%s/drender-cache", tmp && *tmp ? tmp : "/tmp");
}

/* Idle nap that grows from 0.2 to 2 ms: a waiting rank stays near 0% CPU. */
static void nap(double *ms, bool busy)
{
	if (busy) {
		*ms = 0.2;
		return;
	}
	dr_sleep_ms(*ms);
	*ms = *ms * 2 > 2 ? 2 : *ms * 2;
}

/* ---- rank 0 ---------------------------------------------------------------------------------- */

typedef struct source {
	MPI_Comm comm;
	const dr_stage_cfg *c;
	dr_xfer_plan plan;
	sends s;
	feed *f;
	int nf;
	double *heard;
	bool *done;
	int *answer; /* per rank: ANS_*, 0 = none yet */
	int size;
} source;

/* Member M is lost or failed: re-feed its orphans from its nearest live ancestor. */
static int lose(source *src, int m, const char *why, char *err, size_t errlen)
{
	int parent = src->plan.parent[m], adopter = 0, n, *orph;
	ctl msg = {0};

	orph = calloc((size_t)src->plan.n, sizeof *orph);
	if (!orph)
		return dr_seterr(err, errlen, "staging: out of memory");
	dr_warn("staging: rank %d %s; its part of the chain is re-fed", src->plan.rank[m], why);
	n = dr_xfer_lose(&src->plan, m, orph, &adopter);
	sends_abandon(&src->s, src->plan.rank[m]);
	if (parent == 0) {
		feed_stop(src->f, src->nf, src->plan.rank[m]);
	} else if (parent > 0 && !src->plan.lost[parent]) {
		msg.type = CTL_UNFEED;
		msg.rank = src->plan.rank[m];
		if (send_ctl(&src->s, src->comm, src->plan.rank[parent], &msg, err, errlen) != 0)
			goto fail;
	}
	for (int i = 0; i < n; i++) {
		int o = orph[i];
		if (adopter == 0) {
			feed_set(src->f, &src->nf, src->plan.rank[o], src->plan.have[o]);
			continue;
		}
		msg = (ctl){
		        .type = CTL_FEED, .rank = src->plan.rank[o], .count = src->plan.have[o]};
		if (send_ctl(&src->s, src->comm, src->plan.rank[adopter], &msg, err, errlen) != 0)
			goto fail;
	}
	free(orph);
	return 0;
fail:
	free(orph);
	return -1;
}

static void show_progress(const source *src, const char *path, uint64_t size)
{
	int64_t least = -1;
	int live = 0, done = 0;

	for (int m = 1; m < src->plan.n; m++) {
		if (src->plan.lost[m])
			continue;
		live++;
		done += src->done[m];
		if (least < 0 || src->plan.have[m] < least)
			least = src->plan.have[m];
	}
	dr_info("staging %s (%.1f MiB) to %d node%s: %d done, the slowest has %.0f%%", path,
	        size / 1048576.0, live, live == 1 ? "" : "s", done,
	        src->plan.nchunks ? 100.0 * (least < 0 ? 0 : least) / src->plan.nchunks : 100.0);
}

int dr_stage_source(MPI_Comm comm, const dr_stage_cfg *c, const char *path, dr_stage_result *r,
                    char *err, size_t errlen)
{
	source src = {.comm = comm, .c = c};
	dr_stage_result res = {0};
	uint32_t chunk = c->chunk ? c->chunk : DR_XFER_CHUNK;
	int window = c->window > 0 ? c->window : DR_XFER_WINDOW;
	double timeout = c->timeout > 0 ? c->timeout : 30, t0 = dr_now(), deadline, last_show,
	       ms = 0.2;
	int fd = -1, rc = -1, k, from, nanswers = 0, *members = NULL, nmembers = 1;
	ctl offer = {0}, m;
	uint64_t size;
	struct stat st;

	if (MPI_Comm_size(comm, &src.size) != MPI_SUCCESS)
		return dr_seterr(err, errlen, "staging: MPI_Comm_size failed");
	if (src.size < 2) {
		*r = res;
		return 0;
	}
	/* the one place rank 0's staged file is read: PATH, as chosen by the caller */
	if (dr_sha256_file(path, offer.hex, &size, err, errlen) != 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != size) {
		dr_seterr(err, errlen, "staging: %s changed while it was read", path);
		goto out;
	}
	res.size = size;
	offer.type = CTL_OFFER;
	offer.always = c->always;
	offer.chunk = chunk;
	offer.size = (int64_t)size;
	snprintf(offer.ext, sizeof offer.ext, "%s", dr_cache_ext(path));
	if ((size_t)snprintf(offer.text, sizeof offer.text, "%s", path) >= sizeof offer.text) {
		dr_seterr(err, errlen, "staging: scene path too long");
		goto out;
	}
	src.answer = calloc((size_t)src.size, sizeof *src.answer);
	members = calloc((size_t)src.size, sizeof *members);
	src.f = calloc((size_t)src.size, sizeof *src.f);
	src.heard = calloc((size_t)src.size, sizeof *src.heard);
	src.done = calloc((size_t)src.size, sizeof *src.done);
	if (!src.answer || !members || !src.f || !src.heard || !src.done) {
		dr_seterr(err, errlen, "staging: out of memory");
		goto out;
	}
	for (int i = 1; i < src.size; i++)
		if (send_ctl(&src.s, comm, i, &offer, err, errlen) != 0)
			goto out;

	/* answers: each node looks at its own disk */
	deadline = dr_now() + (timeout * 3 > ANSWER_MIN_S ? timeout * 3 : ANSWER_MIN_S);
	while (nanswers < src.size - 1 && dr_now() < deadline) {
		if (c->interrupted && *c->interrupted) {
			dr_seterr(err, errlen, "staging: interrupted");
			goto out;
		}
		k = poll_ctl(comm, &m, &from, err, errlen);
		if (k < 0 || sends_test(&src.s, err, errlen) < 0)
			goto out;
		if (k == 1 && m.type == CTL_ANSWER && from > 0 && !src.answer[from]) {
			src.answer[from] = m.status;
			nanswers++;
			switch (m.status) {
			case ANS_SAME:
				res.same++;
				break;
			case ANS_CACHED:
				res.cached++;
				break;
			case ANS_NEED:
				members[nmembers++] = from;
				break;
			default:
				res.failed++;
				dr_warn("staging: rank %d cannot take the scene: %s", from, m.text);
			}
			if (m.status != ANS_NEED) { /* nothing to receive: it may go on */
				ctl fin = {.type = CTL_FINISH};
				if (send_ctl(&src.s, comm, from, &fin, err, errlen) != 0)
					goto out;
			}
		}
		nap(&ms, k == 1);
	}
	if (nanswers < src.size - 1) {
		dr_warn("staging: %d node%s did not answer within %.0f s", src.size - 1 - nanswers,
		        src.size - 1 - nanswers == 1 ? "" : "s",
		        timeout * 3 > ANSWER_MIN_S ? timeout * 3 : ANSWER_MIN_S);
		res.failed += src.size - 1 - nanswers;
	}

	/* the transfer: a chain from rank 0 through every node that needs the file */
	members[0] = 0;
	if (nmembers > 1) {
		int64_t nchunks = dr_xfer_nchunks(size, chunk);
		if (dr_xfer_plan_init(&src.plan, members, nmembers, c->fanout > 0 ? c->fanout : 1,
		                      nchunks) != 0) {
			dr_seterr(err, errlen, "staging: out of memory");
			goto out;
		}
		dr_info("staging %s (%.1f MiB) to %d node%s", path, size / 1048576.0, nmembers - 1,
		        nmembers == 2 ? "" : "s");
		for (int i = 1; i < nmembers; i++) {
			int p = src.plan.parent[i];
			src.heard[i] = dr_now();
			if (p == 0) {
				feed_set(src.f, &src.nf, members[i], 0);
				continue;
			}
			ctl fm = {.type = CTL_FEED, .rank = members[i], .count = 0};
			if (send_ctl(&src.s, comm, members[p], &fm, err, errlen) != 0)
				goto out;
		}
		last_show = dr_now();
		for (;;) {
			bool busy = false, all = true;
			int went;

			if (c->interrupted && *c->interrupted) {
				dr_seterr(err, errlen, "staging: interrupted");
				goto out;
			}
			while ((k = poll_ctl(comm, &m, &from, err, errlen)) == 1) {
				int mb = dr_xfer_member(&src.plan, from);
				busy = true;
				if (mb < 1 || src.plan.lost[mb])
					continue;
				src.heard[mb] = dr_now();
				if (m.type == CTL_PROGRESS) {
					dr_xfer_progress(&src.plan, mb, m.count);
				} else if (m.type == CTL_DONE && m.status == 0) {
					src.done[mb] = true;
					dr_xfer_progress(&src.plan, mb, nchunks);
					res.staged++;
					res.bytes += size;
				} else if (m.type == CTL_DONE) {
					char why[300];
					snprintf(why, sizeof why, "failed: %.200s", m.text);
					if (lose(&src, mb, why, err, errlen) != 0)
						goto out;
					res.failed++;
				}
			}
			if (k < 0)
				goto out;
			for (int i = 1; i < nmembers; i++) {
				if (src.plan.lost[i] || src.done[i])
					continue;
				all = false;
				if (dr_now() - src.heard[i] > timeout) {
					if (lose(&src, i, "fell silent while staging", err,
					         errlen) != 0)
						goto out;
					res.failed++;
				}
			}
			if (all)
				break;
			went = pump(comm, fd, size, chunk, nchunks, nchunks, src.f, src.nf, &src.s,
			            window, err, errlen);
			k = sends_test(&src.s, err, errlen);
			if (went < 0 || k < 0)
				goto out;
			busy = busy || went > 0 || k > 0;
			if (dr_now() - last_show >= PROGRESS_EVERY) {
				show_progress(&src, path, size);
				last_show = dr_now();
			}
			nap(&ms, busy);
		}
	}
	/* everyone still waiting may go on: those that received it, and those that failed */
	for (int i = 1; i < src.size; i++) {
		if (src.answer[i] && src.answer[i] != ANS_NEED)
			continue; /* told already */
		ctl fin = {.type = CTL_FINISH};
		if (send_ctl(&src.s, comm, i, &fin, err, errlen) != 0)
			goto out;
	}
	res.seconds = dr_now() - t0;
	if (nmembers > 1)
		dr_info("staged %s to %d node%s in %.2f s (%d failed)", path, res.staged,
		        res.staged == 1 ? "" : "s", res.seconds, res.failed);
	*r = res;
	rc = 0;
out:
	if (rc != 0) { /* nodes still waiting go on without the file (best effort) */
		char e2[DR_ERRLEN];
		ctl fin = {.type = CTL_FINISH};
		for (int i = 1; i < src.size; i++)
			send_ctl(&src.s, comm, i, &fin, e2, sizeof e2);
		sends_settle(&src.s, 0.5);
	}
	/* late keep-alives are read and dropped while the last sends complete */
	for (double end = dr_now() + (rc == 0 ? DRAIN_S : 0); dr_now() < end;) {
		char e2[DR_ERRLEN];
		while (poll_ctl(comm, &m, &from, e2, sizeof e2) == 1)
			;
		if (sends_test(&src.s, e2, sizeof e2) < 0 || src.s.n == 0)
			break;
		dr_sleep_ms(1);
	}
	sends_settle(&src.s, 0);
	if (src.plan.n)
		dr_xfer_plan_free(&src.plan);
	free(src.answer);
	free(members);
	free(src.f);
	free(src.heard);
	free(src.done);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- a render node ----------------------------------------------------------------------------
 */

/* The node's answer to OFFER: ANS_SAME (LOCAL = the offered path), ANS_CACHED (LOCAL = the cached
 * copy), ANS_NEED (W is open), or ANS_FAIL with WHY. */
static int decide(const ctl *offer, dr_cache *cache, dr_cache_wr *w, char *local, size_t len,
                  char *why, size_t whylen)
{
	struct stat st;
	char hex[DR_SHA256_HEX];
	uint64_t size;
	int k;

	if (!offer->always && stat(offer->text, &st) == 0 && S_ISREG(st.st_mode) &&
	    (int64_t)st.st_size == offer->size &&
	    dr_sha256_file(offer->text, hex, &size, why, whylen) == 0 &&
	    strcmp(hex, offer->hex) == 0) {
		snprintf(local, len, "%s", offer->text);
		return ANS_SAME;
	}
	k = dr_cache_lookup(cache, offer->hex, offer->ext, (uint64_t)offer->size, local, len, why,
	                    whylen);
	if (k == 1)
		return ANS_CACHED;
	if (k < 0 || dr_cache_begin(cache, offer->hex, offer->ext, (uint64_t)offer->size, w, why,
	                            whylen) != 0)
		return ANS_FAIL;
	return ANS_NEED;
}

int dr_stage_node(MPI_Comm comm, const dr_stage_cfg *c, char *local, size_t len, char *err,
                  size_t errlen)
{
	dr_cache cache;
	dr_cache_wr w = {.fd = -1};
	char cdir[4096], why[DR_ERRLEN] = "";
	ctl offer = {0}, m, out;
	sends s = {0};
	feed *f = NULL;
	int nf = 0, size = 1, from, k, answer = 0, rfd = -1, rc = -1, window, got;
	bool have_cache = false, finish = false, receiving = false, failed = false;
	int64_t have = 0, reported = 0, nchunks = 0;
	uint32_t chunk = 0;
	char *rbuf = NULL;
	MPI_Request rreq = MPI_REQUEST_NULL;
	MPI_Status st;
	double last_sent, ms = 0.2;

	window = c->window > 0 ? c->window : DR_XFER_WINDOW;
	if (MPI_Comm_size(comm, &size) != MPI_SUCCESS)
		return dr_seterr(err, errlen, "staging: MPI_Comm_size failed");
	f = calloc((size_t)size, sizeof *f);
	if (!f)
		return dr_seterr(err, errlen, "staging: out of memory");
	/* the offer */
	while (!offer.type) {
		if (c->interrupted && *c->interrupted) {
			dr_seterr(err, errlen, "staging: interrupted");
			goto done;
		}
		k = poll_ctl(comm, &m, &from, err, errlen);
		if (k < 0)
			goto done;
		if (k == 1 && from == 0 && m.type == CTL_OFFER)
			offer = m;
		else if (k == 1 && m.type == CTL_FEED) /* a FEED may overtake the offer */
			feed_set(f, &nf, m.rank, m.count);
		nap(&ms, k == 1);
	}
	snprintf(local, len, "%s", offer.text);
	if (c->cache_dir)
		snprintf(cdir, sizeof cdir, "%s", c->cache_dir);
	else
		dr_stage_default_cache(cdir, sizeof cdir);
	if (dr_cache_open(&cache, cdir, c->cache_max, why, sizeof why) == 0) {
		have_cache = true;
		answer = decide(&offer, &cache, &w, local, len, why, sizeof why);
	} else {
		answer = ANS_FAIL;
	}
	if (answer == ANS_NEED) {
		chunk = offer.chunk ? offer.chunk : DR_XFER_CHUNK;
		nchunks = dr_xfer_nchunks((uint64_t)offer.size, chunk);
		rfd = open(w.tmp, O_RDONLY | O_CLOEXEC); /* what this node forwards */
		rbuf = malloc(DATA_HDR + (size_t)chunk);
		if (rfd < 0 || !rbuf) {
			snprintf(why, sizeof why, "cannot read back %.1500s: %s", w.tmp,
			         strerror(errno));
			dr_cache_abort(&w);
			answer = ANS_FAIL;
		}
	}
	out = (ctl){.type = CTL_ANSWER, .status = answer};
	snprintf(out.text, sizeof out.text, "%s", answer == ANS_FAIL ? why : "");
	if (send_ctl(&s, comm, 0, &out, err, errlen) != 0)
		goto done;
	last_sent = dr_now();
	if (answer == ANS_FAIL) {
		failed = true;
		snprintf(local, len, "%s", offer.text);
	}
	if (answer == ANS_NEED) {
		if (nchunks == 0) { /* an empty file: nothing to receive */
			k = dr_cache_commit(&w, local, len, why, sizeof why);
			out = (ctl){.type = CTL_DONE, .status = k != 0};
			snprintf(out.text, sizeof out.text, "%s", k ? why : "");
			failed = k != 0;
			if (send_ctl(&s, comm, 0, &out, err, errlen) != 0)
				goto done;
		} else {
			k = MPI_Irecv(rbuf, (int)(DATA_HDR + chunk), MPI_BYTE, MPI_ANY_SOURCE,
			              TAG_DATA, comm, &rreq);
			if (k != MPI_SUCCESS) {
				mpi_err(k, "MPI_Irecv", err, errlen);
				goto done;
			}
			receiving = true;
		}
	}
	while (!finish) {
		bool busy = false;
		int went;

		if (c->interrupted && *c->interrupted) {
			dr_seterr(err, errlen, "staging: interrupted");
			goto done;
		}
		while ((k = poll_ctl(comm, &m, &from, err, errlen)) == 1) {
			busy = true;
			if (from != 0)
				continue;
			if (m.type == CTL_FEED)
				feed_set(f, &nf, m.rank, m.count);
			else if (m.type == CTL_UNFEED) {
				feed_stop(f, nf, m.rank);
				sends_abandon(&s, m.rank);
			} else if (m.type == CTL_FINISH)
				finish = true;
		}
		if (k < 0)
			goto done;
		if (receiving) {
			k = MPI_Test(&rreq, &got, &st);
			if (k != MPI_SUCCESS) {
				mpi_err(k, "MPI_Test", err, errlen);
				goto done;
			}
			if (got) {
				int count = 0;
				int64_t idx;
				busy = true;
				MPI_Get_count(&st, MPI_BYTE, &count);
				memcpy(&idx, rbuf, sizeof idx);
				/* in order only: a re-fed chunk already here is dropped */
				if (idx == have && count >= DATA_HDR &&
				    (uint32_t)(count - DATA_HDR) ==
				            dr_xfer_chunk_len((uint64_t)offer.size, chunk, have)) {
					if (dr_cache_append(&w, rbuf + DATA_HDR,
					                    (size_t)count - DATA_HDR, why,
					                    sizeof why) != 0) {
						failed = true;
						receiving = false;
					} else {
						have++;
					}
				}
				if (!failed && have < nchunks) {
					k = MPI_Irecv(rbuf, (int)(DATA_HDR + chunk), MPI_BYTE,
					              MPI_ANY_SOURCE, TAG_DATA, comm, &rreq);
					if (k != MPI_SUCCESS) {
						mpi_err(k, "MPI_Irecv", err, errlen);
						goto done;
					}
				} else {
					receiving = false;
					if (!failed &&
					    dr_cache_commit(&w, local, len, why, sizeof why) != 0)
						failed = true;
					out = (ctl){.type = CTL_DONE, .status = failed};
					snprintf(out.text, sizeof out.text, "%s",
					         failed ? why : "");
					if (failed) {
						dr_cache_abort(&w);
						snprintf(local, len, "%s", offer.text);
					}
					if (send_ctl(&s, comm, 0, &out, err, errlen) != 0)
						goto done;
					last_sent = dr_now();
					reported = have;
				}
			}
		}
		if (rfd >= 0 && !failed) {
			went = pump(comm, rfd, (uint64_t)offer.size, chunk, nchunks, have, f, nf,
			            &s, window, err, errlen);
			if (went < 0)
				goto done;
			busy = busy || went > 0;
		}
		if (sends_test(&s, err, errlen) < 0)
			goto done;
		/* progress for rank 0's re-feeding, and a keep-alive while waiting */
		if (answer == ANS_NEED &&
		    (have - reported >= 8 || dr_now() - last_sent >= KEEPALIVE_S)) {
			out = (ctl){.type = CTL_PROGRESS, .count = have};
			if (send_ctl(&s, comm, 0, &out, err, errlen) != 0)
				goto done;
			last_sent = dr_now();
			reported = have;
		}
		nap(&ms, busy);
	}
	if (receiving) {
		dr_seterr(err, errlen,
		          "staging ended before this node had the scene (%lld of %lld "
		          "chunks)",
		          (long long)have, (long long)nchunks);
		goto done;
	}
	if (failed) {
		dr_seterr(err, errlen, "staging: %s", why);
		goto done;
	}
	rc = 0;
done:
	if (receiving && rreq != MPI_REQUEST_NULL) {
		MPI_Cancel(&rreq);
		MPI_Request_free(&rreq);
		rbuf = NULL; /* MPI may still write into it: kept for good */
	}
	if (rc != 0 && w.fd >= 0)
		dr_cache_abort(&w);
	if (rc != 0)
		snprintf(local, len, "%s", offer.text);
	sends_settle(&s, rc == 0 ? 0.2 : 0);
	if (rfd >= 0)
		close(rfd);
	if (have_cache)
		dr_cache_close(&cache);
	free(rbuf);
	free(f);
	return rc;
}
