/* Staging: rank 0 dr_sendq the scene to the render nodes that lack it, over MPI, into their caches.
 */
#include "dr_stage.h"
#include "dr_assets.h"
#include "dr_blob.h"
#include "dr_cache.h"
#include "dr_log.h"
#include "dr_loop.h"
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

/* Seconds between a node's keep-alives while staging, and how long rank 0 waits for answers. */
#define KEEPALIVE_S    0.5
#define ANSWER_MIN_S   30.0
#define PROGRESS_EVERY 2.0
#define DRAIN_S        2.0

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

static int send_ctl(dr_sendq *s, const dr_peers *peers, int dest, const ctl *m, char *err,
                    size_t errlen)
{
	size_t len = offsetof(ctl, text) + strnlen(m->text, sizeof m->text - 1) + 1;
	ctl *copy = malloc(sizeof *copy);

	if (!copy)
		return dr_seterr(err, errlen, "staging: out of memory");
	memcpy(copy, m, len);
	copy->text[len - offsetof(ctl, text) - 1] = '\0';
	return dr_sendq_add(s, dr_peers_get(peers, dest), DR_TAG_STAGE_CTL, copy, len, err, errlen);
}

/* One control message if one is waiting: 1 with M and *SRC, 0 if none, -1 with ERR. */
static int poll_ctl(const dr_peers *peers, ctl *m, int *src, char *err, size_t errlen)
{
	int n = 0, k;

	do {
		memset(m, 0, sizeof *m);
		k = dr_wire_recv_any(peers, DR_TAG_STAGE_CTL, m, sizeof *m, &n, src, err, errlen);
	} while (k == 2); /* too long: not ours */
	m->text[sizeof m->text - 1] = '\0';
	return k;
}

/* Send chunks this rank has (HAVE, read from FD: SIZE bytes in CHUNK-byte pieces) to its active
 * children, up to WINDOW in flight each. Returns how many went, or -1 with ERR. */
static int pump(const dr_peers *peers, int fd, uint64_t size, uint32_t chunk, int64_t have, feed *f,
                int nf, dr_sendq *s, int window, char *err, size_t errlen)
{
	char why[DR_ERRLEN];
	int went = 0;

	for (int i = 0; i < nf; i++) {
		dr_blob_out o;
		int k;

		if (!f[i].active)
			continue;
		dr_blob_out_init(&o, fd, size, chunk, dr_peers_get(peers, f[i].rank),
		                 DR_TAG_STAGE_DATA, 0, 0, f[i].sent);
		k = dr_blob_out_pump(&o, s, have, window, why, sizeof why);
		f[i].sent = o.next;
		if (k < 0)
			return dr_seterr(err, errlen, "staging: %s", why);
		went += k;
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

/* The loop's one back-off (dr_loop), from 0.2 to 2 ms: a waiting rank stays near 0% CPU. */
static void nap(dr_backoff *b, bool busy)
{
	double ms = dr_backoff_next(b, busy);

	if (!busy)
		dr_sleep_ms(ms);
}

/* ---- rank 0 ---------------------------------------------------------------------------------- */

typedef struct source {
	const dr_peers *peers; /* the nodes of the communicator staged over (id = rank) */
	const dr_stage_cfg *c;
	ctl offer;
	int fd; /* the file offered */
	uint32_t chunk;
	int window;
	double timeout;
	dr_stage_result res;
	dr_xfer_plan plan;
	dr_sendq s;
	feed *f;
	int nf;
	double *heard;
	bool *done;
	int *answer; /* per rank: enum dr_stage_answer, 0 = none yet */
	int nanswers;
	int *members; /* the chain: rank 0, then the nodes that need the file */
	int nmembers;
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
	dr_sendq_abandon(&src->s, dr_peers_get(src->peers, src->plan.rank[m]));
	if (parent == 0) {
		feed_stop(src->f, src->nf, src->plan.rank[m]);
	} else if (parent > 0 && !src->plan.lost[parent]) {
		msg.type = DR_STAGE_UNFEED;
		msg.rank = src->plan.rank[m];
		if (send_ctl(&src->s, src->peers, src->plan.rank[parent], &msg, err, errlen) != 0)
			goto fail;
	}
	for (int i = 0; i < n; i++) {
		int o = orph[i];
		/* the orphan receives from its adopter only from now on (a receive matched to a
		 * message of the lost node might never end) */
		msg = (ctl){.type = DR_STAGE_PARENT, .rank = src->plan.rank[adopter]};
		if (send_ctl(&src->s, src->peers, src->plan.rank[o], &msg, err, errlen) != 0)
			goto fail;
		if (adopter == 0) {
			feed_set(src->f, &src->nf, src->plan.rank[o], src->plan.have[o]);
			continue;
		}
		msg = (ctl){.type = DR_STAGE_FEED,
		            .rank = src->plan.rank[o],
		            .count = src->plan.have[o]};
		if (send_ctl(&src->s, src->peers, src->plan.rank[adopter], &msg, err, errlen) != 0)
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

/* Rank 0's offer of PATH into SRC->offer, and PATH opened in SRC->fd. 0, or -1 with ERR. */
static int make_offer(source *src, const char *path, char *err, size_t errlen)
{
	const dr_stage_cfg *c = src->c;
	ctl *o = &src->offer;
	uint64_t size, size0 = 0;
	struct stat st;

	/* the one place rank 0's staged file is read: PATH, as chosen by the caller */
	if (!c->never && dr_sha256_file(path, o->hex, &size, err, errlen) != 0)
		return -1;
	if (c->never) {
		if (stat(path, &st) != 0)
			return dr_seterr(err, errlen, "staging: %s: %s", path, strerror(errno));
		size = (uint64_t)st.st_size;
		memset(o->hex, '0', 64);
	}
	src->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (src->fd < 0 || fstat(src->fd, &st) != 0 || (uint64_t)st.st_size != size)
		return dr_seterr(err, errlen, "staging: %s changed while it was read", path);
	src->res.size = size;
	if (c->same_as && !c->never &&
	    dr_sha256_file(c->same_as, o->same_hex, &size0, err, errlen) != 0)
		return -1;
	o->same_size = (int64_t)size0;
	o->type = DR_STAGE_OFFER;
	o->ask = c->ask;
	o->always = c->always;
	o->never = c->never;
	if (c->probe && c->token &&
	    ((size_t)snprintf(o->probe, sizeof o->probe, "%s", c->probe) >= sizeof o->probe ||
	     (size_t)snprintf(o->token, sizeof o->token, "%s", c->token) >= sizeof o->token))
		o->probe[0] = '\0'; /* too long to say: nodes assume they share it */
	o->chunk = src->chunk;
	o->size = (int64_t)size;
	snprintf(o->ext, sizeof o->ext, "%s", dr_cache_ext(path));
	if ((size_t)snprintf(o->text, sizeof o->text, "%s", c->same_as ? c->same_as : path) >=
	    sizeof o->text)
		return dr_seterr(err, errlen, "staging: scene path too long");
	return 0;
}

/* Node FROM's answer M to the offer. 0, or -1 with ERR. */
static int take_answer(source *src, int from, const ctl *m, char *err, size_t errlen)
{
	src->answer[from] = m->status;
	src->nanswers++;
	src->res.collect += !m->shared;
	switch (m->status) {
	case DR_STAGE_SAME:
		src->res.same++;
		break;
	case DR_STAGE_CACHED:
		src->res.cached++;
		break;
	case DR_STAGE_NEED:
		src->members[src->nmembers++] = from;
		break;
	default:
		src->res.failed++;
		dr_warn("staging: rank %d cannot take the scene: %s", from, m->text);
	}
	if (m->status != DR_STAGE_NEED && !src->c->ask) { /* nothing to receive: it may go on */
		ctl fin = {.type = DR_STAGE_FINISH};
		return send_ctl(&src->s, src->peers, from, &fin, err, errlen);
	}
	return 0;
}

/* True (with ERR) when a signal asked to give up. */
static bool interrupted(const dr_stage_cfg *c, char *err, size_t errlen)
{
	if (c->interrupted && *c->interrupted) {
		dr_seterr(err, errlen, "staging: interrupted");
		return true;
	}
	return false;
}

/* Offer the file to every node not known silent, and take their answers (each node looks at its
 * own disk). 0, or -1 with ERR. */
static int gather_answers(source *src, char *err, size_t errlen)
{
	const dr_stage_cfg *c = src->c;
	double wait = src->timeout * 3 > ANSWER_MIN_S ? src->timeout * 3 : ANSWER_MIN_S;
	double deadline = dr_now() + wait;
	dr_backoff bo = dr_backoff_make(0.2, 2);
	int expected = src->size - 1, from, k;
	ctl m;

	for (int i = 1; i < src->size; i++) {
		if (c->silent && c->silent[i]) {
			expected--;
			continue;
		}
		if (send_ctl(&src->s, src->peers, i, &src->offer, err, errlen) != 0)
			return -1;
	}
	while (src->nanswers < expected && dr_now() < deadline) {
		if (interrupted(src->c, err, errlen))
			return -1;
		k = poll_ctl(src->peers, &m, &from, err, errlen);
		if (k < 0 || dr_sendq_test(&src->s, err, errlen) < 0)
			return -1;
		if (k == 1 && m.type == DR_STAGE_ANSWER && from > 0 && !src->answer[from] &&
		    take_answer(src, from, &m, err, errlen) != 0)
			return -1;
		nap(&bo, k == 1);
	}
	if (src->nanswers < expected) {
		dr_warn("staging: %d node%s did not answer within %.0f s", expected - src->nanswers,
		        expected - src->nanswers == 1 ? "" : "s", wait);
		src->res.failed += expected - src->nanswers;
		for (int i = 1; c->silent && i < src->size; i++)
			if (!src->answer[i])
				c->silent[i] = 1;
	}
	return 0;
}

/* Tell each member of the chain whom it receives from, and each sender whom it feeds. */
static int start_chain(source *src, const char *path, char *err, size_t errlen)
{
	int64_t nchunks = dr_xfer_nchunks(src->res.size, src->chunk);
	int *members = src->members, n = src->nmembers;

	if (dr_xfer_plan_init(&src->plan, members, n, src->c->fanout > 0 ? src->c->fanout : 1,
	                      nchunks) != 0)
		return dr_seterr(err, errlen, "staging: out of memory");
	dr_info("staging %s (%.1f MiB) to %d node%s", path, src->res.size / 1048576.0, n - 1,
	        n == 2 ? "" : "s");
	for (int i = 1; i < n; i++) {
		int p = src->plan.parent[i];
		ctl pm = {.type = DR_STAGE_PARENT, .rank = members[p]};
		src->heard[i] = dr_now();
		if (send_ctl(&src->s, src->peers, members[i], &pm, err, errlen) != 0)
			return -1;
		if (p == 0) {
			feed_set(src->f, &src->nf, members[i], 0);
			continue;
		}
		ctl fm = {.type = DR_STAGE_FEED, .rank = members[i], .count = 0};
		if (send_ctl(&src->s, src->peers, members[p], &fm, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* Control messages during the transfer: progress, done, failed. 1 when some came, 0 if none, -1
 * with ERR. */
static int chain_ctl(source *src, char *err, size_t errlen)
{
	int k, from, busy = 0;
	ctl m;

	while ((k = poll_ctl(src->peers, &m, &from, err, errlen)) == 1) {
		int mb = dr_xfer_member(&src->plan, from);
		busy = 1;
		if (mb < 1 || src->plan.lost[mb])
			continue;
		src->heard[mb] = dr_now();
		if (m.type == DR_STAGE_PROGRESS) {
			dr_xfer_progress(&src->plan, mb, m.count);
		} else if (m.type == DR_STAGE_DONE && m.status == 0) {
			src->done[mb] = true;
			dr_xfer_progress(&src->plan, mb, src->plan.nchunks);
			src->res.staged++;
			src->res.bytes += src->res.size;
		} else if (m.type == DR_STAGE_DONE) {
			char why[300];
			snprintf(why, sizeof why, "failed: %.200s", m.text);
			if (lose(src, mb, why, err, errlen) != 0)
				return -1;
			src->res.failed++;
		}
	}
	return k < 0 ? -1 : busy;
}

/* Members silent for the timeout are lost. 1 when every live member is done, else 0; -1 with
 * ERR. */
static int chain_check(source *src, char *err, size_t errlen)
{
	int all = 1;

	for (int i = 1; i < src->nmembers; i++) {
		if (src->plan.lost[i] || src->done[i])
			continue;
		all = 0;
		if (dr_now() - src->heard[i] > src->timeout) {
			if (lose(src, i, "fell silent while staging", err, errlen) != 0)
				return -1;
			src->res.failed++;
		}
	}
	return all;
}

/* The transfer: a chain from rank 0 through every node that needs the file, until each has it or
 * is lost. 0, or -1 with ERR. */
static int run_chain(source *src, const char *path, char *err, size_t errlen)
{
	double last_show = dr_now();
	dr_backoff bo = dr_backoff_make(0.2, 2);

	if (start_chain(src, path, err, errlen) != 0)
		return -1;
	for (;;) {
		int busy = 0, went, k;

		if (interrupted(src->c, err, errlen) || (busy = chain_ctl(src, err, errlen)) < 0)
			return -1;
		if ((k = chain_check(src, err, errlen)) != 0)
			return k < 0 ? -1 : 0;
		went = pump(src->peers, src->fd, src->res.size, src->chunk, src->plan.nchunks,
		            src->f, src->nf, &src->s, src->window, err, errlen);
		k = dr_sendq_test(&src->s, err, errlen);
		if (went < 0 || k < 0)
			return -1;
		if (dr_now() - last_show >= PROGRESS_EVERY) {
			show_progress(src, path, src->res.size);
			last_show = dr_now();
		}
		nap(&bo, busy || went > 0 || k > 0);
	}
}

/* Everyone still waiting may go on: those that received it, and those that failed; in an ask
 * round, to another offer if someone lacks the file. */
static int finish_all(source *src, char *err, size_t errlen)
{
	const dr_stage_cfg *c = src->c;

	for (int i = 1; i < src->size; i++) {
		ctl fin = {.type = DR_STAGE_FINISH};
		if (c->ask) {
			fin.ask = c->more && src->res.need > 0;
			if (!src->answer[i])
				continue;
		} else if ((src->answer[i] && src->answer[i] != DR_STAGE_NEED) ||
		           (c->silent && c->silent[i])) {
			continue; /* told already, or gone */
		}
		if (send_ctl(&src->s, src->peers, i, &fin, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* The end, either way: on failure nodes still waiting go on without the file (best effort); late
 * keep-alives are read and dropped while the last sends complete; everything is freed. */
static void source_end(source *src, bool ok)
{
	char e2[DR_ERRLEN];
	ctl m;
	int from;

	if (!ok) {
		ctl fin = {.type = DR_STAGE_FINISH};
		for (int i = 1; i < src->size; i++)
			send_ctl(&src->s, src->peers, i, &fin, e2, sizeof e2);
		dr_sendq_settle(&src->s, 0.5);
	}
	for (double end = dr_now() + (ok ? DRAIN_S : 0); dr_now() < end;) {
		while (poll_ctl(src->peers, &m, &from, e2, sizeof e2) == 1)
			;
		if (dr_sendq_test(&src->s, e2, sizeof e2) < 0 || src->s.n == 0)
			break;
		dr_sleep_ms(1);
	}
	dr_sendq_settle(&src->s, 0);
	if (src->plan.n)
		dr_xfer_plan_free(&src->plan);
	free(src->answer);
	free(src->members);
	free(src->f);
	free(src->heard);
	free(src->done);
	if (src->fd >= 0)
		close(src->fd);
}

int dr_stage_source(MPI_Comm comm, const dr_stage_cfg *c, const char *path, dr_stage_result *r,
                    char *err, size_t errlen)
{
	source src = {.c = c, .fd = -1, .nmembers = 1};
	double t0 = dr_now();
	dr_peers peers;
	int rc = -1;

	src.chunk = c->chunk ? c->chunk : DR_WIRE_STAGE_CHUNK;
	src.window = c->window > 0 ? c->window : DR_WIRE_STAGE_WINDOW;
	src.timeout = c->timeout > 0 ? c->timeout : 30;
	if (dr_peers_init(&peers, comm, err, errlen) != 0)
		return -1;
	src.peers = &peers;
	src.size = peers.n;
	if (src.size < 2) {
		dr_peers_free(&peers);
		*r = src.res;
		return 0;
	}
	if (make_offer(&src, path, err, errlen) != 0)
		goto out;
	src.answer = calloc((size_t)src.size, sizeof *src.answer);
	src.members = calloc((size_t)src.size, sizeof *src.members);
	src.f = calloc((size_t)src.size, sizeof *src.f);
	src.heard = calloc((size_t)src.size, sizeof *src.heard);
	src.done = calloc((size_t)src.size, sizeof *src.done);
	if (!src.answer || !src.members || !src.f || !src.heard || !src.done) {
		dr_seterr(err, errlen, "staging: out of memory");
		goto out;
	}
	if (gather_answers(&src, err, errlen) != 0)
		goto out;
	if (c->ask) { /* only asked: everyone goes on, to another offer if someone lacks it */
		src.res.need = src.nmembers - 1;
		if (finish_all(&src, err, errlen) != 0)
			goto out;
		src.nmembers = 1;
	}
	src.members[0] = 0;
	if (src.nmembers > 1 && run_chain(&src, path, err, errlen) != 0)
		goto out;
	if (!c->ask && finish_all(&src, err, errlen) != 0)
		goto out;
	src.res.seconds = dr_now() - t0;
	if (!c->ask && src.nmembers > 1)
		dr_info("staged %s to %d node%s in %.2f s (%d failed)", path, src.res.staged,
		        src.res.staged == 1 ? "" : "s", src.res.seconds, src.res.failed);
	*r = src.res;
	rc = 0;
out:
	source_end(&src, rc == 0);
	dr_peers_free(&peers);
	return rc;
}

/* ---- a render node ----------------------------------------------------------------------------
 */

/* The node's answer to OFFER: DR_STAGE_SAME (LOCAL = the offered path), DR_STAGE_CACHED (LOCAL =
 * the cached copy), DR_STAGE_NEED (W is open), or DR_STAGE_FAIL with WHY. */
static int decide(const ctl *offer, dr_cache *cache, dr_cache_wr *w, char *local, size_t len,
                  char *why, size_t whylen)
{
	struct stat st;
	char hex[DR_SHA256_HEX];
	uint64_t size;
	int k;

	if (offer->never) {
		snprintf(local, len, "%s", offer->text);
		return DR_STAGE_SAME;
	}
	const char *want = offer->same_hex[0] ? offer->same_hex : offer->hex;
	int64_t want_size = offer->same_hex[0] ? offer->same_size : offer->size;
	if (!offer->always && stat(offer->text, &st) == 0 && S_ISREG(st.st_mode) &&
	    (int64_t)st.st_size == want_size &&
	    dr_sha256_file(offer->text, hex, &size, why, whylen) == 0 && strcmp(hex, want) == 0) {
		snprintf(local, len, "%s", offer->text);
		return DR_STAGE_SAME;
	}
	if (offer->ask)
		return DR_STAGE_NEED; /* nothing received in an ask round: the next offer says what
		                       */
	k = dr_cache_lookup(cache, offer->hex, offer->ext, (uint64_t)offer->size, local, len, why,
	                    whylen);
	if (k == 1)
		return DR_STAGE_CACHED;
	if (k < 0 || dr_cache_begin(cache, offer->hex, offer->ext, (uint64_t)offer->size, w, why,
	                            whylen) != 0)
		return DR_STAGE_FAIL;
	return DR_STAGE_NEED;
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

/* A node's side of one offer. */
typedef struct node {
	const dr_peers *peers; /* rank 0 and the other nodes (id = rank) */
	const dr_stage_cfg *c;
	char *local; /* the path Blender opens */
	size_t len;
	ctl offer;
	dr_cache cache;
	bool have_cache;
	dr_cache_wr w;
	dr_blob_in in; /* into W */
	dr_sendq s;
	feed *f; /* the children this node forwards to */
	int nf;
	int answer, rfd, window;
	int parent; /* the rank this node receives from (DR_STAGE_PARENT), -1 = not told yet */
	bool finish, more, receiving, failed, posted;
	uint32_t chunk;
	int64_t reported; /* chunks last reported to rank 0 */
	char *rbuf;
	MPI_Request rreq;
	double last_sent;
	char why[DR_ERRLEN];
} node;

/* Wait for rank 0's offer (a FEED may overtake it). 0, or -1 with ERR. */
static int wait_offer(node *n, char *err, size_t errlen)
{
	dr_backoff bo = dr_backoff_make(0.2, 2);
	int k, from;
	ctl m;

	while (!n->offer.type) {
		if (interrupted(n->c, err, errlen))
			return -1;
		k = poll_ctl(n->peers, &m, &from, err, errlen);
		if (k < 0)
			return -1;
		if (k == 1 && from == 0 && m.type == DR_STAGE_OFFER)
			n->offer = m;
		else if (k == 1 && m.type == DR_STAGE_FEED)
			feed_set(n->f, &n->nf, m.rank, m.count);
		nap(&bo, k == 1);
	}
	return 0;
}

static int send_done(node *n, char *err, size_t errlen)
{
	ctl out = {.type = DR_STAGE_DONE, .status = n->failed};

	snprintf(out.text, sizeof out.text, "%s", n->failed ? n->why : "");
	if (n->failed) {
		dr_cache_abort(&n->w);
		snprintf(n->local, n->len, "%s", n->offer.text);
	}
	n->last_sent = dr_now();
	n->reported = n->in.got;
	return send_ctl(&n->s, n->peers, 0, &out, err, errlen);
}

/* Look at the offer, answer it, and get ready to receive when the file is needed. 0, or -1 with
 * ERR. */
static int answer_offer(node *n, bool *shared, char *err, size_t errlen)
{
	const ctl *o = &n->offer;
	char cdir[4096];
	ctl out;

	snprintf(n->local, n->len, "%s", o->text);
	*shared = sees_probe(o);
	if (n->c->cache_dir)
		snprintf(cdir, sizeof cdir, "%s", n->c->cache_dir);
	else
		dr_stage_default_cache(cdir, sizeof cdir);
	n->answer = DR_STAGE_FAIL;
	if (dr_cache_open(&n->cache, cdir, n->c->cache_max, n->why, sizeof n->why) == 0) {
		n->have_cache = true;
		n->answer = decide(o, &n->cache, &n->w, n->local, n->len, n->why, sizeof n->why);
	}
	if (n->answer == DR_STAGE_NEED && !o->ask) {
		n->chunk = o->chunk ? o->chunk : DR_WIRE_STAGE_CHUNK;
		dr_blob_in_init(&n->in, &n->w, -1, (uint64_t)o->size, n->chunk);
		n->rfd = open(n->w.tmp, O_RDONLY | O_CLOEXEC); /* what this node forwards */
		n->rbuf = malloc(sizeof(dr_wire_chunk) + (size_t)n->chunk);
		if (n->rfd < 0 || !n->rbuf) {
			snprintf(n->why, sizeof n->why, "cannot read back %.1500s: %s", n->w.tmp,
			         strerror(errno));
			dr_cache_abort(&n->w);
			n->answer = DR_STAGE_FAIL;
		}
	}
	out = (ctl){.type = DR_STAGE_ANSWER, .status = n->answer, .shared = *shared};
	snprintf(out.text, sizeof out.text, "%s", n->answer == DR_STAGE_FAIL ? n->why : "");
	if (send_ctl(&n->s, n->peers, 0, &out, err, errlen) != 0)
		return -1;
	n->last_sent = dr_now();
	if (n->answer == DR_STAGE_FAIL) {
		n->failed = true;
		snprintf(n->local, n->len, "%s", o->text);
	}
	if (n->answer != DR_STAGE_NEED || o->ask)
		return 0;
	if (!dr_blob_in_done(&n->in)) {
		n->receiving = true; /* once rank 0 names the parent */
		return 0;
	}
	/* an empty file: nothing to receive */
	n->failed = dr_cache_commit(&n->w, n->local, n->len, n->why, sizeof n->why) != 0;
	return send_done(n, err, errlen);
}

/* Receive from a new parent: a receive posted to the old one is left to MPI with its buffer (it
 * might never end). 0, or -1 with ERR. */
static int new_parent(node *n, int rank, char *err, size_t errlen)
{
	if (n->posted) {
		MPI_Cancel(&n->rreq);
		MPI_Request_free(&n->rreq);
		n->posted = false;
		n->rbuf = malloc(sizeof(dr_wire_chunk) + (size_t)n->chunk);
		if (!n->rbuf)
			return dr_seterr(err, errlen, "staging: out of memory");
	}
	n->parent = rank;
	return 0;
}

/* Rank 0's control messages, not past a FINISH (what follows it, another offer, is the next
 * round's). 1 when some came, 0 if none, -1 with ERR. */
static int node_ctl(node *n, char *err, size_t errlen)
{
	int k = 0, from, busy = 0;
	ctl m;

	while (!n->finish && (k = poll_ctl(n->peers, &m, &from, err, errlen)) == 1) {
		busy = 1;
		if (from != 0)
			continue;
		if (m.type == DR_STAGE_FEED) {
			feed_set(n->f, &n->nf, m.rank, m.count);
		} else if (m.type == DR_STAGE_UNFEED) {
			feed_stop(n->f, n->nf, m.rank);
			dr_sendq_abandon(&n->s, dr_peers_get(n->peers, m.rank));
		} else if (m.type == DR_STAGE_FINISH) {
			n->finish = true;
			n->more = m.ask;
		} else if (m.type == DR_STAGE_PARENT && m.rank != n->parent &&
		           new_parent(n, m.rank, err, errlen) != 0) {
			return -1;
		}
	}
	return k < 0 ? -1 : busy;
}

/* Post the receive of the next chunk from the parent, and take it when it is in (in order only:
 * a re-fed chunk already here is dropped). 1 when one came, 0 if none, -1 with ERR. */
static int node_recv(node *n, char *err, size_t errlen)
{
	int k, got = 0, count = 0;
	dr_wire_chunk h;
	MPI_Status st;

	if (!n->receiving || n->parent < 0)
		return 0;
	if (!n->posted) {
		dr_peer from = dr_peers_get(n->peers, n->parent);
		k = MPI_Irecv(n->rbuf, (int)(sizeof h + n->chunk), MPI_BYTE, from.rank,
		              DR_TAG_STAGE_DATA, from.comm, &n->rreq);
		if (k != MPI_SUCCESS)
			return dr_wire_fail(k, "staging: MPI_Irecv", err, errlen);
		n->posted = true;
	}
	if ((k = MPI_Test(&n->rreq, &got, &st)) != MPI_SUCCESS)
		return dr_wire_fail(k, "staging: MPI_Test", err, errlen);
	if (!got)
		return 0;
	n->posted = false;
	MPI_Get_count(&st, MPI_BYTE, &count);
	if (dr_blob_header(n->rbuf, (size_t)count, &h) == 0 &&
	    dr_blob_in_put(&n->in, &h, n->rbuf, (size_t)count, n->why, sizeof n->why) < 0)
		n->failed = true;
	if (!n->failed && !dr_blob_in_done(&n->in))
		return 1;
	n->receiving = false;
	if (!n->failed && dr_cache_commit(&n->w, n->local, n->len, n->why, sizeof n->why) != 0)
		n->failed = true;
	return send_done(n, err, errlen) != 0 ? -1 : 1;
}

/* Receive and forward until rank 0 says FINISH. 0, or -1 with ERR. */
static int node_run(node *n, char *err, size_t errlen)
{
	dr_backoff bo = dr_backoff_make(0.2, 2);

	while (!n->finish) {
		int busy = 0, k = 0, went = 0;

		if (interrupted(n->c, err, errlen) || (busy = node_ctl(n, err, errlen)) < 0 ||
		    (k = node_recv(n, err, errlen)) < 0)
			return -1;
		if (n->rfd >= 0 && !n->failed &&
		    (went = pump(n->peers, n->rfd, (uint64_t)n->offer.size, n->chunk, n->in.got,
		                 n->f, n->nf, &n->s, n->window, err, errlen)) < 0)
			return -1;
		if (dr_sendq_test(&n->s, err, errlen) < 0)
			return -1;
		/* progress for rank 0's re-feeding, and a keep-alive while waiting */
		if (n->answer == DR_STAGE_NEED &&
		    (n->in.got - n->reported >= 8 || dr_now() - n->last_sent >= KEEPALIVE_S)) {
			ctl out = {.type = DR_STAGE_PROGRESS, .count = n->in.got};
			if (send_ctl(&n->s, n->peers, 0, &out, err, errlen) != 0)
				return -1;
			n->last_sent = dr_now();
			n->reported = n->in.got;
		}
		nap(&bo, busy || k || went > 0);
	}
	if (n->receiving)
		return dr_seterr(err, errlen,
		                 "staging ended before this node had the scene (%lld of %lld "
		                 "chunks)",
		                 (long long)n->in.got, (long long)n->in.nchunks);
	if (n->failed)
		return dr_seterr(err, errlen, "staging: %s", n->why);
	return 0;
}

/* One offer: answer it and receive/forward as told. *MORE: rank 0 said another offer follows. */
static int stage_node_once(const dr_peers *peers, const dr_stage_cfg *c, char *local, size_t len,
                           bool *shared, bool *more, char *err, size_t errlen)
{
	node n = {.peers = peers, .c = c, .local = local, .len = len, .rfd = -1, .parent = -1};
	int rc = -1;

	n.w.fd = -1;
	n.rreq = MPI_REQUEST_NULL;
	n.window = c->window > 0 ? c->window : DR_WIRE_STAGE_WINDOW;
	n.f = calloc((size_t)peers->n, sizeof *n.f);
	if (!n.f)
		return dr_seterr(err, errlen, "staging: out of memory");
	if (wait_offer(&n, err, errlen) == 0 && answer_offer(&n, shared, err, errlen) == 0 &&
	    node_run(&n, err, errlen) == 0)
		rc = 0;
	*more = n.more;
	if (n.posted && n.rreq != MPI_REQUEST_NULL) {
		MPI_Cancel(&n.rreq);
		MPI_Request_free(&n.rreq);
		n.rbuf = NULL; /* MPI may still write into it: kept for good */
	}
	if (rc != 0 && n.w.fd >= 0)
		dr_cache_abort(&n.w);
	if (rc != 0)
		snprintf(local, len, "%s", n.offer.text);
	dr_sendq_settle(&n.s, rc == 0 ? 0.2 : 0);
	if (n.rfd >= 0)
		close(n.rfd);
	if (n.have_cache)
		dr_cache_close(&n.cache);
	free(n.rbuf);
	free(n.f);
	return rc;
}

int dr_stage_node(MPI_Comm comm, const dr_stage_cfg *c, char *local, size_t len, bool *shared,
                  char *err, size_t errlen)
{
	dr_peers peers;
	bool more;
	int rc;

	if (dr_peers_init(&peers, comm, err, errlen) != 0)
		return -1;
	do {
		more = false;
		rc = stage_node_once(&peers, c, local, len, shared, &more, err, errlen);
	} while (rc == 0 && more);
	dr_peers_free(&peers);
	return rc;
}
