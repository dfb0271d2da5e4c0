/* Staging: rank 0 dr_sendq the scene to the render nodes that lack it, over MPI, into their caches.
 */
#include "dr_stage.h"
#include "dr_assets.h"
#include "dr_cache.h"
#include "dr_log.h"
#include "dr_sendq.h"
#include "dr_util.h"
#include "dr_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <nettle/sha2.h>
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

enum {
	CTL_OFFER = 1,
	CTL_ANSWER,
	CTL_FEED,
	CTL_UNFEED,
	CTL_PROGRESS,
	CTL_DONE,
	CTL_FINISH,
	CTL_PARENT
};
enum { ANS_SAME = 1, ANS_CACHED, ANS_NEED, ANS_FAIL };

/* A control message; only the used part of text travels. */
typedef struct ctl {
	int32_t type;
	int32_t status; /* ANSWER: ANS_*; DONE: 0 = ok, else failed (text says why) */
	int32_t rank;   /* FEED, UNFEED: the child; PARENT: the rank to receive from */
	int32_t always; /* OFFER */
	uint32_t chunk; /* OFFER */
	int32_t shared; /* ANSWER: the node sees rank 0's probe file (same output directory) */
	int32_t never;  /* OFFER: no staging, only the probe */
	int32_t ask;    /* OFFER: only say whether the node has it; FINISH: another offer follows */
	int64_t size;   /* OFFER */
	int64_t count;  /* FEED: first chunk to send; PROGRESS: chunks received */
	char hex[DR_SHA256_HEX];
	char same_hex[DR_SHA256_HEX]; /* OFFER: what the file at text must hash to ("" = hex) */
	int64_t same_size;            /* ... and its size */
	char ext[DR_CACHE_EXT_MAX];
	char probe[1024]; /* OFFER: rank 0's probe file in its output directory ("" = none) */
	char token[64];   /* OFFER: what it contains */
	char text[4096];  /* OFFER: rank 0's path; ANSWER, DONE: a message */
} ctl;

/* A child this rank forwards to, and the next chunk it will send it. */
typedef struct feed {
	int rank;
	int64_t sent;
	bool active;
} feed;

static int mpi_err(int rc, const char *what, char *err, size_t errlen)
{
	char msg[DR_ERRLEN];

	dr_mpi_fail(rc, what, msg, sizeof msg);
	return dr_seterr(err, errlen, "staging: %s", msg);
}

static int send_ctl(dr_sendq *s, MPI_Comm comm, int dest, const ctl *m, char *err, size_t errlen)
{
	size_t len = offsetof(ctl, text) + strnlen(m->text, sizeof m->text - 1) + 1;
	ctl *copy = malloc(sizeof *copy);

	if (!copy)
		return dr_seterr(err, errlen, "staging: out of memory");
	memcpy(copy, m, len);
	copy->text[len - offsetof(ctl, text) - 1] = '\0';
	return dr_sendq_add(s, comm, dest, TAG_CTL, copy, len, err, errlen);
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
                feed *f, int nf, dr_sendq *s, int window, char *err, size_t errlen)
{
	int64_t k;
	int went = 0;

	for (int i = 0; i < nf; i++) {
		if (!f[i].active)
			continue;
		while ((k = dr_xfer_next(nchunks, have, f[i].sent,
		                         dr_sendq_inflight(s, f[i].rank, TAG_DATA), window)) >= 0) {
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
			if (dr_sendq_add(s, comm, f[i].rank, TAG_DATA, buf, DATA_HDR + (size_t)len,
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
	dr_cache_default_dir(buf, len);
}

int dr_stage_pack(const char *blender, const char *scene, const char *cache_dir, const char *hex,
                  char *out, size_t len, char *err, size_t errlen)
{
	char dir[4096], own[DR_SHA256_HEX], key[DR_SHA256_HEX], real[PATH_MAX];
	uint64_t size;
	struct stat st;
	struct sha256_ctx ctx;
	uint8_t d[SHA256_DIGEST_SIZE];

	if (cache_dir)
		snprintf(dir, sizeof dir, "%s", cache_dir);
	else
		dr_stage_default_cache(dir, sizeof dir);
	if (strlen(dir) + 8 >= sizeof dir)
		return dr_seterr(err, errlen, "cache directory path too long");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return dr_seterr(err, errlen, "cannot make %s: %s", dir, strerror(errno));
	if (dr_cache_check_dir(dir, err, errlen) != 0) /* a packed copy there is trusted */
		return -1;
	strcat(dir, "/packed");
	if (!hex) {
		if (dr_sha256_file(scene, own, &size, err, errlen) != 0)
			return -1;
		hex = own;
	}
	if (!realpath(scene, real))
		snprintf(real, sizeof real, "%s", scene);
	sha256_init(&ctx);
	sha256_update(&ctx, strlen(hex), (const uint8_t *)hex);
	sha256_update(&ctx, 1, (const uint8_t *)"\n");
	sha256_update(&ctx, strlen(real), (const uint8_t *)real);
	sha256_digest(&ctx, sizeof d, d);
	for (size_t i = 0; i < sizeof d; i++)
		snprintf(key + 2 * i, 3, "%02x", d[i]);
	if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
	    (size_t)snprintf(out, len, "%s/%s.blend", dir, key) >= len)
		return dr_seterr(err, errlen, "cannot make %s: %s", dir, strerror(errno));
	if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && dr_assets_pack_fresh(out))
		return 0;
	dr_info("packing %s's external files into one copy for staging", scene);
	return dr_assets_pack(blender, scene, out, err, errlen);
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
	dr_sendq s;
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
	dr_sendq_abandon(&src->s, src->plan.rank[m]);
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
		/* the orphan receives from its adopter only from now on (a receive matched to a
		 * message of the lost node might never end) */
		msg = (ctl){.type = CTL_PARENT, .rank = src->plan.rank[adopter]};
		if (send_ctl(&src->s, src->comm, src->plan.rank[o], &msg, err, errlen) != 0)
			goto fail;
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
	int fd = -1, rc = -1, k, from, nanswers = 0, *members = NULL, nmembers = 1, expected;
	ctl offer = {0}, m;
	uint64_t size, size0 = 0;
	struct stat st;

	if (MPI_Comm_size(comm, &src.size) != MPI_SUCCESS)
		return dr_seterr(err, errlen, "staging: MPI_Comm_size failed");
	if (src.size < 2) {
		*r = res;
		return 0;
	}
	expected = src.size - 1;
	/* the one place rank 0's staged file is read: PATH, as chosen by the caller */
	if (!c->never && dr_sha256_file(path, offer.hex, &size, err, errlen) != 0)
		return -1;
	if (c->never) {
		if (stat(path, &st) != 0)
			return dr_seterr(err, errlen, "staging: %s: %s", path, strerror(errno));
		size = (uint64_t)st.st_size;
		memset(offer.hex, '0', 64);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != size) {
		dr_seterr(err, errlen, "staging: %s changed while it was read", path);
		goto out;
	}
	res.size = size;
	if (c->same_as && !c->never &&
	    dr_sha256_file(c->same_as, offer.same_hex, &size0, err, errlen) != 0)
		goto out;
	offer.same_size = (int64_t)size0;
	offer.type = CTL_OFFER;
	offer.ask = c->ask;
	offer.always = c->always;
	offer.never = c->never;
	if (c->probe && c->token &&
	    ((size_t)snprintf(offer.probe, sizeof offer.probe, "%s", c->probe) >=
	             sizeof offer.probe ||
	     (size_t)snprintf(offer.token, sizeof offer.token, "%s", c->token) >=
	             sizeof offer.token))
		offer.probe[0] = '\0'; /* too long to say: nodes assume they share it */
	offer.chunk = chunk;
	offer.size = (int64_t)size;
	snprintf(offer.ext, sizeof offer.ext, "%s", dr_cache_ext(path));
	if ((size_t)snprintf(offer.text, sizeof offer.text, "%s", c->same_as ? c->same_as : path) >=
	    sizeof offer.text) {
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
	for (int i = 1; i < src.size; i++) {
		if (c->silent && c->silent[i]) {
			expected--;
			continue;
		}
		if (send_ctl(&src.s, comm, i, &offer, err, errlen) != 0)
			goto out;
	}

	/* answers: each node looks at its own disk */
	deadline = dr_now() + (timeout * 3 > ANSWER_MIN_S ? timeout * 3 : ANSWER_MIN_S);
	while (nanswers < expected && dr_now() < deadline) {
		if (c->interrupted && *c->interrupted) {
			dr_seterr(err, errlen, "staging: interrupted");
			goto out;
		}
		k = poll_ctl(comm, &m, &from, err, errlen);
		if (k < 0 || dr_sendq_test(&src.s, err, errlen) < 0)
			goto out;
		if (k == 1 && m.type == CTL_ANSWER && from > 0 && !src.answer[from]) {
			src.answer[from] = m.status;
			nanswers++;
			res.collect += !m.shared;
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
			if (m.status != ANS_NEED &&
			    !c->ask) { /* nothing to receive: it may go on */
				ctl fin = {.type = CTL_FINISH};
				if (send_ctl(&src.s, comm, from, &fin, err, errlen) != 0)
					goto out;
			}
		}
		nap(&ms, k == 1);
	}
	if (nanswers < expected) {
		dr_warn("staging: %d node%s did not answer within %.0f s", expected - nanswers,
		        expected - nanswers == 1 ? "" : "s",
		        timeout * 3 > ANSWER_MIN_S ? timeout * 3 : ANSWER_MIN_S);
		res.failed += expected - nanswers;
		for (int i = 1; c->silent && i < src.size; i++)
			if (!src.answer[i])
				c->silent[i] = 1;
	}

	if (c->ask) { /* only asked: everyone goes on, to another offer if someone lacks it */
		res.need = nmembers - 1;
		for (int i = 1; i < src.size; i++) {
			ctl fin = {.type = CTL_FINISH, .ask = c->more && res.need > 0};
			if (src.answer[i] && send_ctl(&src.s, comm, i, &fin, err, errlen) != 0)
				goto out;
		}
		nmembers = 1;
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
			ctl pm = {.type = CTL_PARENT, .rank = members[p]};
			src.heard[i] = dr_now();
			if (send_ctl(&src.s, comm, members[i], &pm, err, errlen) != 0)
				goto out;
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
			k = dr_sendq_test(&src.s, err, errlen);
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
	for (int i = 1; i < src.size && !c->ask; i++) {
		if ((src.answer[i] && src.answer[i] != ANS_NEED) || (c->silent && c->silent[i]))
			continue; /* told already, or gone */
		ctl fin = {.type = CTL_FINISH};
		if (send_ctl(&src.s, comm, i, &fin, err, errlen) != 0)
			goto out;
	}
	res.seconds = dr_now() - t0;
	if (!c->ask && nmembers > 1)
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
		dr_sendq_settle(&src.s, 0.5);
	}
	/* late keep-alives are read and dropped while the last dr_sendq complete */
	for (double end = dr_now() + (rc == 0 ? DRAIN_S : 0); dr_now() < end;) {
		char e2[DR_ERRLEN];
		while (poll_ctl(comm, &m, &from, e2, sizeof e2) == 1)
			;
		if (dr_sendq_test(&src.s, e2, sizeof e2) < 0 || src.s.n == 0)
			break;
		dr_sleep_ms(1);
	}
	dr_sendq_settle(&src.s, 0);
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

	if (offer->never) {
		snprintf(local, len, "%s", offer->text);
		return ANS_SAME;
	}
	const char *want = offer->same_hex[0] ? offer->same_hex : offer->hex;
	int64_t want_size = offer->same_hex[0] ? offer->same_size : offer->size;
	if (!offer->always && stat(offer->text, &st) == 0 && S_ISREG(st.st_mode) &&
	    (int64_t)st.st_size == want_size &&
	    dr_sha256_file(offer->text, hex, &size, why, whylen) == 0 && strcmp(hex, want) == 0) {
		snprintf(local, len, "%s", offer->text);
		return ANS_SAME;
	}
	if (offer->ask)
		return ANS_NEED; /* nothing received in an ask round: the next offer says what */
	k = dr_cache_lookup(cache, offer->hex, offer->ext, (uint64_t)offer->size, local, len, why,
	                    whylen);
	if (k == 1)
		return ANS_CACHED;
	if (k < 0 || dr_cache_begin(cache, offer->hex, offer->ext, (uint64_t)offer->size, w, why,
	                            whylen) != 0)
		return ANS_FAIL;
	return ANS_NEED;
}

/* Does this node see rank 0's probe file with its token? True when there is no probe. */
static bool sees_probe(const ctl *offer)
{
	char buf[sizeof offer->token];
	ssize_t k;
	int fd;

	if (!offer->probe[0])
		return true;
	fd = open(offer->probe, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	k = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (k < 0)
		return false;
	buf[k] = '\0';
	return strcmp(buf, offer->token) == 0;
}

/* One offer: answer it and receive/forward as told. *MORE: rank 0 said another offer follows. */
static int stage_node_once(MPI_Comm comm, const dr_stage_cfg *c, char *local, size_t len,
                           bool *shared, bool *more, char *err, size_t errlen)
{
	dr_cache cache;
	dr_cache_wr w = {.fd = -1};
	char cdir[4096], why[DR_ERRLEN] = "";
	ctl offer = {0}, m, out;
	dr_sendq s = {0};
	feed *f = NULL;
	int nf = 0, size = 1, from, k, answer = 0, rfd = -1, rc = -1, window, got;
	bool have_cache = false, finish = false, receiving = false, failed = false, posted = false;
	int parent = -1; /* the rank this node receives from (CTL_PARENT), -1 = not told yet */
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
	*shared = sees_probe(&offer);
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
	if (answer == ANS_NEED && !offer.ask) {
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
	out = (ctl){.type = CTL_ANSWER, .status = answer, .shared = *shared};
	snprintf(out.text, sizeof out.text, "%s", answer == ANS_FAIL ? why : "");
	if (send_ctl(&s, comm, 0, &out, err, errlen) != 0)
		goto done;
	last_sent = dr_now();
	if (answer == ANS_FAIL) {
		failed = true;
		snprintf(local, len, "%s", offer.text);
	}
	if (answer == ANS_NEED && !offer.ask) {
		if (nchunks == 0) { /* an empty file: nothing to receive */
			k = dr_cache_commit(&w, local, len, why, sizeof why);
			out = (ctl){.type = CTL_DONE, .status = k != 0};
			snprintf(out.text, sizeof out.text, "%s", k ? why : "");
			failed = k != 0;
			if (send_ctl(&s, comm, 0, &out, err, errlen) != 0)
				goto done;
		} else {
			receiving = true; /* once rank 0 names the parent */
		}
	}
	while (!finish) {
		bool busy = false;
		int went;

		if (c->interrupted && *c->interrupted) {
			dr_seterr(err, errlen, "staging: interrupted");
			goto done;
		}
		/* not past a FINISH: what follows it (another offer) is the next round's */
		while (!finish && (k = poll_ctl(comm, &m, &from, err, errlen)) == 1) {
			busy = true;
			if (from != 0)
				continue;
			if (m.type == CTL_FEED)
				feed_set(f, &nf, m.rank, m.count);
			else if (m.type == CTL_UNFEED) {
				feed_stop(f, nf, m.rank);
				dr_sendq_abandon(&s, m.rank);
			} else if (m.type == CTL_FINISH) {
				finish = true;
				*more = m.ask;
			} else if (m.type == CTL_PARENT && m.rank != parent) {
				if (posted) { /* left to MPI with its buffer: see above */
					MPI_Cancel(&rreq);
					MPI_Request_free(&rreq);
					posted = false;
					rbuf = malloc(DATA_HDR + (size_t)chunk);
					if (!rbuf) {
						dr_seterr(err, errlen, "staging: out of memory");
						goto done;
					}
				}
				parent = m.rank;
			}
		}
		if (k < 0)
			goto done;
		if (receiving && !posted && parent >= 0) {
			k = MPI_Irecv(rbuf, (int)(DATA_HDR + chunk), MPI_BYTE, parent, TAG_DATA,
			              comm, &rreq);
			if (k != MPI_SUCCESS) {
				mpi_err(k, "MPI_Irecv", err, errlen);
				goto done;
			}
			posted = true;
		}
		if (receiving && posted) {
			k = MPI_Test(&rreq, &got, &st);
			if (k != MPI_SUCCESS) {
				mpi_err(k, "MPI_Test", err, errlen);
				goto done;
			}
			if (got) {
				int count = 0;
				int64_t idx;
				busy = true;
				posted = false;
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
				if (failed || have >= nchunks) {
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
		if (dr_sendq_test(&s, err, errlen) < 0)
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
	if (posted && rreq != MPI_REQUEST_NULL) {
		MPI_Cancel(&rreq);
		MPI_Request_free(&rreq);
		rbuf = NULL; /* MPI may still write into it: kept for good */
	}
	if (rc != 0 && w.fd >= 0)
		dr_cache_abort(&w);
	if (rc != 0)
		snprintf(local, len, "%s", offer.text);
	dr_sendq_settle(&s, rc == 0 ? 0.2 : 0);
	if (rfd >= 0)
		close(rfd);
	if (have_cache)
		dr_cache_close(&cache);
	free(rbuf);
	free(f);
	return rc;
}

int dr_stage_node(MPI_Comm comm, const dr_stage_cfg *c, char *local, size_t len, bool *shared,
                  char *err, size_t errlen)
{
	bool more;
	int rc;

	do {
		more = false;
		rc = stage_node_once(comm, c, local, len, shared, &more, err, errlen);
	} while (rc == 0 && more);
	return rc;
}
