/* HTTP API on libmicrohttpd's threads: routes, auth, limits, answers from the job table, the
 * dashboard's embedded assets and its long-poll of changes. */
#include "dr_http.h"

#include "dr_log.h"
#include "dr_outdir.h"
#include "dr_scene.h"
#include "dr_util.h"
#include "dr_video.h"

#include "ui_app_js.h"
#include "ui_index_html.h"
#include "ui_style_css.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX          (64 * 1024)
#define RATE_SLOTS        1024 /* client addresses remembered by the rate limiter */
#define RATE_PROBE        8
#define QUEUE_RETRY_AFTER "10"
#define STATUS_RETRY      "2"
#define POLL_WAIT_MAX     25 /* seconds a GET /updates may wait for a change */
#define POLL_WAIT_DEFAULT 20
#define POLL_WAITERS_MAX  64   /* long-polls waiting at once; more answer at once */
#define POLL_REFRESH      0.25 /* seconds between two looks at the job table */
#define SCENES_MAX        1000 /* .blend files GET /info lists */
#define SCENES_DEPTH      4    /* folder levels under --blend-root it looks into */
/* Slow and idle clients (issue 24 item 1). A connection is "waiting" from its start (a TLS
 * handshake included) or the end of its last request until a request's headers are complete. */
#define CONN_LIMIT      512u /* connections at once, all clients */
#define CONN_PER_IP     256u /* connections at once from one address */
#define WAITING_MAX     64   /* waiting connections at once: more cut the longest waiting */
#define HEADER_DEADLINE 10.0 /* seconds a connection may wait (trickling headers or idle) */
#define REAP_EVERY      0.5  /* seconds between two looks for connections past the deadline */

/* The page's policy: its own script, style and images only; no inline code, no framing. */
#define UI_CSP                                                                                     \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "          \
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

/* One client address's token bucket. */
struct bucket {
	unsigned char addr[17]; /* family byte + up to 16 address bytes; all zero = free slot */
	double tokens, last;
};

/* What the long-poll has seen of one job: a hash of its status text and the version it changed at.
 */
struct seen_job {
	char id[DR_JOB_ID_MAX];
	unsigned long long hash, changed;
};

/* Versions of the job table for GET /updates: each look at the table that finds a job added,
 * changed or gone bumps VERSION; waiters sleep on CV. */
struct tracker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	int waiters;
	unsigned long long version;
	double looked; /* dr_now() of the last look; 0 = never */
	cJSON *snap;   /* the last {"jobs": [...]} */
	struct seen_job *seen;
	size_t nseen, capseen;
	char epoch[24]; /* this server's run: versions from another run mean nothing */
};

struct dr_http {
	struct MHD_Daemon *d;
	struct tracker tr;
	dr_jobs *jobs;
	int port;
	char *token, *blend_root, *output_root, *default_scene;
	char *allow_hosts;        /* ",name,name," (lower case) or NULL */
	bool check_host;          /* no token, or names given: a Host must be ours */
	char *tls_cert, *tls_key; /* PEM text (NULL: plain HTTP) */
	size_t tls_key_len;
	dr_jobspec_limits limits;
	bool read_only, overwrite;
	double rate, burst;
	pthread_mutex_t rl_mu;
	/* libmicrohttpd's messages (one per broken connection): at most LOG_BURST per LOG_WINDOW_S,
	 * then how many were left out (a slow-client attack must not flood the log); under rl_mu */
	double log_window;
	unsigned log_lines, log_dropped;
	struct bucket *buckets; /* RATE_SLOTS, or NULL when not rate limited */
	struct guard *guard;    /* slow and idle connections */
};

/* Methods, as bits of a route's set. */
enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_DELETE = 8 };
#define M_READ  (M_GET | M_HEAD)
#define M_WRITE (M_POST | M_DELETE) /* what a read-only server (--http in a batch) refuses */

/* Who may call a route. */
enum access {
	A_TOKEN,  /* the token (when the server has one) and the rate limit */
	A_OPEN,   /* the rate limit only: the dashboard's files hold no data */
	A_HEALTH, /* neither: a liveness probe gets through whatever else happens */
};

struct call;
typedef enum MHD_Result (*route_fn)(const struct call *k);

/* One row of the route table: parsing, the method check (405 + Allow), auth and dispatch all come
 * from it. PATH is literal but for "<id>" and "<n>", each one non-empty path segment. */
struct route {
	unsigned methods;
	const char *path;
	enum access access;
	route_fn fn;
	int arg; /* the handler's own: which file, which variant */
};

#define FRAME_TEXT_MAX 32 /* a <n> segment longer than this is not a frame number */

/* One request's state across the handler's calls. */
struct req {
	char *body;
	size_t len;
	bool too_big, answered;
	const struct route *rt;         /* the row for the path and method; NULL: see ALLOWED */
	unsigned allowed;               /* methods the path answers (0: no such path) */
	enum access access;             /* the path's (an unknown path needs the token) */
	char id[DR_JOB_ID_MAX];         /* <id>: cut to fit, so that a longer one matches no job */
	char frame[FRAME_TEXT_MAX + 2]; /* <n>: cut after FRAME_TEXT_MAX + 1 characters */
};

/* What a route's handler gets. */
struct call {
	dr_http *h;
	struct MHD_Connection *c;
	const struct req *r;
	int arg;
};

/* Queue a response with BODY (LEN bytes, copied), status CODE and extra header pairs HDRS
 * (name, value, ..., NULL). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *ctype,
                             const char *body, size_t len, const char *const *hdrs)
{
	struct MHD_Response *resp =
	        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	for (size_t i = 0; hdrs && hdrs[i] && hdrs[i + 1]; i += 2)
		MHD_add_response_header(resp, hdrs[i], hdrs[i + 1]);
	rc = MHD_queue_response(c, code, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned code, const char *json,
                                  const char *const *hdrs)
{
	return reply(c, code, "application/json", json, strlen(json), hdrs);
}

/* {"error": MSG} with status CODE. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned code, const char *const *hdrs,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned code, const char *const *hdrs,
                                   const char *fmt, ...)
{
	char msg[1024];
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	enum MHD_Result rc;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a cut message is still a message */
	va_end(ap);
	if (o && cJSON_AddStringToObject(o, "error", msg))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	rc = reply_json(c, code, s ? s : "{\"error\":\"out of memory\"}", hdrs);
	cJSON_free(s);
	return rc;
}

/* {"jobId": ID, "state": STATE} (STATE may be NULL). */
static enum MHD_Result reply_job(struct MHD_Connection *c, unsigned code, const char *id,
                                 const char *state, const char *const *hdrs)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	enum MHD_Result rc;

	if (o && cJSON_AddStringToObject(o, "jobId", id) &&
	    (!state || cJSON_AddStringToObject(o, "state", state)))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return reply_error(c, 500, NULL, "out of memory");
	rc = reply_json(c, code, s, hdrs);
	cJSON_free(s);
	return rc;
}

/* Does URL match PATH? "<x>" in PATH stands for one non-empty segment: the first is copied into
 * M's id, the second into its frame text (both cut to fit). */
static bool route_match(const char *path, const char *url, struct req *m)
{
	int holes = 0;

	while (*path) {
		if (*path == '<') {
			size_t n = strcspn(url, "/");
			const char *close = strchr(path, '>');
			char *to = holes++ ? m->frame : m->id;
			size_t cap = holes > 1 ? sizeof m->frame : sizeof m->id;

			if (!n || !close)
				return false;
			snprintf(to, cap, "%.*s", (int)(n < cap ? n : cap - 1), url);
			url += n;
			path = close + 1;
		} else if (*path++ != *url++) {
			return false;
		}
	}
	return !*url;
}

static unsigned method_bit(const char *m)
{
	static const char *const names[] = {MHD_HTTP_METHOD_GET, MHD_HTTP_METHOD_HEAD,
	                                    MHD_HTTP_METHOD_POST, MHD_HTTP_METHOD_DELETE};

	for (unsigned i = 0; i < 4; i++)
		if (!strcmp(m, names[i]))
			return 1u << i;
	return 0;
}

/* "GET, HEAD, DELETE" for the bits of MASK, for 405's Allow header. */
static const char *methods_text(unsigned mask, char *buf, size_t len)
{
	static const char *const names[] = {"GET", "HEAD", "POST", "DELETE"};
	size_t pos = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 4; i++)
		if (mask & (1u << i))
			dr_append(buf, len, &pos, "%s%s", pos ? ", " : "", names[i]);
	return buf;
}

/* Take one token from the client's bucket; false if it is empty. */
static bool rate_ok(dr_http *h, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;
	unsigned char key[17] = {0};
	unsigned hash = 2166136261u;
	struct bucket *slot = NULL, *oldest = NULL;
	double t;
	bool ok;

	if (!h->buckets)
		return true;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return true;
	if (ci->client_addr->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ci->client_addr;
		key[0] = 4;
		memcpy(key + 1, &a->sin_addr, 4);
	} else if (ci->client_addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ci->client_addr;
		key[0] = 6;
		memcpy(key + 1, &a->sin6_addr, 16);
	} else {
		return true;
	}
	for (size_t i = 0; i < sizeof(key); i++)
		hash = (hash ^ key[i]) * 16777619u;
	t = dr_now();
	pthread_mutex_lock(&h->rl_mu);
	/* Probe a few slots: the client's own, else a free one, else the least recently seen. */
	for (unsigned i = 0; i < RATE_PROBE && !slot; i++) {
		struct bucket *b = &h->buckets[(hash + i) % RATE_SLOTS];
		if (!memcmp(b->addr, key, sizeof(key)))
			slot = b;
		else if (!oldest || (oldest->addr[0] && (!b->addr[0] || b->last < oldest->last)))
			oldest = b;
	}
	if (!slot) {
		slot = oldest;
		memcpy(slot->addr, key, sizeof(key));
		slot->tokens = h->burst;
		slot->last = t;
	}
	slot->tokens += (t - slot->last) * h->rate;
	if (slot->tokens > h->burst)
		slot->tokens = h->burst;
	slot->last = t;
	ok = slot->tokens >= 1.0;
	if (ok)
		slot->tokens -= 1.0;
	pthread_mutex_unlock(&h->rl_mu);
	return ok;
}

/* Does the request carry "Authorization: Bearer <token>"? Compared in constant time. */
static bool auth_ok(const dr_http *h, struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	size_t tn, gn;
	unsigned char diff;

	if (!h->token)
		return true;
	if (!v || strncasecmp(v, "Bearer ", 7) != 0)
		return false;
	v += 7;
	while (*v == ' ')
		v++;
	tn = strlen(h->token);
	gn = strlen(v);
	diff = (unsigned char)(tn != gn);
	for (size_t i = 0; i < tn; i++)
		diff |= (unsigned char)h->token[i] ^ (unsigned char)(i < gn ? v[i] : 0);
	return diff == 0;
}

static const char *frame_ctype(const char *format)
{
	static const char *const map[][2] = {
	        {"PNG", "image/png"},        {"JPEG", "image/jpeg"},
	        {"OPEN_EXR", "image/x-exr"}, {"OPEN_EXR_MULTILAYER", "image/x-exr"},
	        {"TIFF", "image/tiff"},      {"BMP", "image/bmp"},
	        {"WEBP", "image/webp"},      {"HDR", "image/vnd.radiance"},
	        {"TARGA", "image/x-tga"},    {"TARGA_RAW", "image/x-tga"},
	        {"JPEG2000", "image/jp2"},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(format, map[i][0]))
			return map[i][1];
	return "application/octet-stream";
}

unsigned dr_http_status(dr_err kind)
{
	switch (kind) {
	case DR_OK:
		return 200;
	case DR_E_INVALID:
		return 400;
	case DR_E_FORBIDDEN:
		return 403;
	case DR_E_NOT_FOUND:
		return 404;
	case DR_E_CONFLICT:
		return 409;
	case DR_E_TOO_LARGE:
		return 413;
	case DR_E_BUSY:
		return 429;
	case DR_E_UNAVAILABLE:
		return 503;
	case DR_E_NOMEM:
	case DR_E_INTERNAL:
		break;
	}
	return 500;
}

/* {"error": ERR} with the status of KIND (and Retry-After when it is worth trying again). */
static enum MHD_Result reply_kind(struct MHD_Connection *c, dr_err kind, const char *err)
{
	const char *retry[] = {MHD_HTTP_HEADER_RETRY_AFTER, QUEUE_RETRY_AFTER, NULL};

	return reply_error(c, dr_http_status(kind), kind == DR_E_BUSY ? retry : NULL, "%s", err);
}

static enum MHD_Result do_render(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	const struct req *r = k->r;
	dr_jobspec spec;
	char err[1024], id[DR_JOB_ID_MAX], loc[DR_JOB_ID_MAX + 16];
	dr_err kind = dr_jobspec_from_json(r->body, r->len, &h->limits, &spec, err, sizeof(err));

	if (kind != DR_OK)
		return reply_kind(c, kind, err);
	/* A file that is not a .blend fails now, with the reason, not later in a node's log. */
	if (dr_scene_check(spec.render.scene, err, sizeof err) != 0) {
		dr_jobspec_free(&spec);
		return reply_error(c, dr_http_status(DR_E_INVALID), NULL, "blend: %s", err);
	}
	/* A named output directory that holds frames made from another scene or settings: those
	 * frames would be skipped as this job's (the job's own directory is new: nothing to check).
	 */
	if (spec.render.output[0]) {
		dr_outpath op;
		kind = dr_render_cfg_outpath(&spec.render, &op, err, sizeof err) != 0
		               ? DR_E_INTERNAL
		               : dr_outdir_manifest_check_frames(&op, &spec.frames, &spec.render,
		                                                 false, h->overwrite, err,
		                                                 sizeof err);
		if (kind != DR_OK) {
			dr_jobspec_free(&spec);
			return reply_kind(c, kind, err);
		}
	}
	/* not recorded, so not accepted: the reason (a full queue, a full disk...) is in ERR */
	kind = dr_jobs_submit(h->jobs, &spec, h->output_root, id, sizeof(id), err, sizeof(err));
	dr_jobspec_free(&spec);
	if (kind != DR_OK)
		return reply_kind(c, kind, err);
	snprintf(loc, sizeof(loc), "/status/%s", id); /* fits: id is shorter than DR_JOB_ID_MAX */
	const char *hdrs[] = {MHD_HTTP_HEADER_LOCATION, loc, NULL};
	dr_info("job %s submitted over HTTP", id);
	return reply_job(c, 202, id, NULL, hdrs);
}

/* GET /status/<id> (202 while the job runs), and GET /jobs/<id> (ARG 1: 200 always). */
static enum MHD_Result do_status(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	const char *id = k->r->id;
	bool always_200 = k->arg;
	dr_job_state st;
	char *s = dr_jobs_status(h->jobs, id, &st);
	char loc[DR_JOB_ID_MAX + 16];
	enum MHD_Result rc;

	if (!s)
		return reply_error(c, 404, NULL, "no job '%s'", id);
	snprintf(loc, sizeof(loc), "/status/%s", id);
	if (!always_200 && (st == DR_JOB_QUEUED || st == DR_JOB_RUNNING)) {
		const char *hdrs[] = {MHD_HTTP_HEADER_LOCATION, loc, MHD_HTTP_HEADER_RETRY_AFTER,
		                      STATUS_RETRY, NULL};
		rc = reply_json(c, 202, s, hdrs);
	} else {
		rc = reply_json(c, 200, s, NULL);
	}
	free(s);
	return rc;
}

static enum MHD_Result do_cancel(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	const char *id = k->r->id;
	dr_job_state st = DR_JOB_QUEUED;
	int rc = dr_jobs_cancel(h->jobs, id);
	char *s;

	if (rc < 0)
		return reply_error(c, 404, NULL, "no job '%s'", id);
	s = dr_jobs_status(h->jobs, id, &st);
	free(s);
	if (st == DR_JOB_QUEUED || st == DR_JOB_RUNNING) {
		dr_info("job %s: cancellation requested over HTTP", id);
		return reply_job(c, 202, id, "cancelling", NULL);
	}
	if (rc == 0)
		dr_info("job %s cancelled over HTTP", id);
	return reply_job(c, 200, id, dr_job_state_name(st), NULL);
}

/* The thumbnail of the frame at PATH (see src/dr_node.c): "<dir>/.thumbs/<name>.thumb", PNG data
 * (no .png suffix, so that a glob for frames does not count thumbnails). */
static int thumb_path(char *path, size_t len)
{
	char frame[DR_PATH_MAX];
	char *slash;
	int w;

	snprintf(frame, sizeof(frame), "%s", path);
	slash = strrchr(frame, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	w = snprintf(path, len, "%s/.thumbs/%s.thumb", frame, slash + 1);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

/* GET /jobs/<id>/frames/<n> (ARG 1: /thumb, its small PNG preview). */
static enum MHD_Result do_frame(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	const char *id = k->r->id, *ftext = k->r->frame;
	bool thumb = k->arg;
	char path[DR_PATH_MAX], format[32], why[DR_PATH_MAX * 2 + 64], *end;
	struct MHD_Response *resp;
	struct stat st;
	dr_err kind;
	long n;
	int fd, rc;

	errno = 0;
	n = strtol(ftext, &end, 10);
	if (strlen(ftext) > FRAME_TEXT_MAX || *ftext < '0' || *ftext > '9' || *end || errno ||
	    n > DR_FRAME_MAX)
		return reply_error(c, 400, NULL, "'%.32s' is not a frame number", ftext);
	rc = dr_jobs_frame(h->jobs, id, (int)n, path, sizeof(path), format, sizeof(format));
	if (rc == -1)
		return reply_error(c, 404, NULL, "no job '%s'", id);
	if (rc == -2)
		return reply_error(c, 404, NULL, "frame %ld is not part of job '%s'", n, id);
	if (rc < 0)
		return reply_error(c, 404, NULL,
		                   "frame %ld of job '%s' has not been rendered (yet)", n, id);
	if (thumb && thumb_path(path, sizeof(path)) != 0)
		return reply_error(c, 404, NULL, "frame %ld of job '%s' has no thumbnail", n, id);
	/* confined when opened: a frame replaced by a symlink, or a directory on its way replaced
	 * by one leading out of the output root, is refused (issue 10 item 5) */
	fd = dr_outdir_open_confined(path, h->limits.output_root, &kind, why, sizeof why);
	if (fd < 0 && kind == DR_E_FORBIDDEN) {
		dr_warn("job %s frame %ld: %s", id, n, why);
		return reply_error(c, 403, NULL,
		                   "frame %ld of job '%s' is not a plain file in the "
		                   "output root (refused)",
		                   n, id);
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return reply_error(c, 404, NULL, "frame %ld of job '%s' has %s", n, id,
		                   thumb ? "no thumbnail (yet)" : "not been rendered (yet)");
	}
	resp = MHD_create_response_from_fd((size_t)st.st_size, fd); /* owns FD from here */
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        thumb ? "image/png" : frame_ctype(format));
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	rc = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return (enum MHD_Result)rc;
}

/* The Content-Type of a video at PATH (its extension, as dr_video_container knows them). */
static const char *video_ctype(const char *path)
{
	const char *c = dr_video_container(path);

	return !c                   ? "application/octet-stream"
	       : !strcmp(c, "webm") ? "video/webm"
	       : !strcmp(c, "mov")  ? "video/quicktime"
	                            : "video/mp4";
}

/* GET /jobs/<id>/video: 404 until the video is made, confined to the output root like frames. */
static enum MHD_Result do_video(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	const char *id = k->r->id;
	char path[DR_PATH_MAX], why[DR_PATH_MAX * 2 + 64];
	struct MHD_Response *resp;
	struct stat st;
	dr_err kind;
	int fd, rc = dr_jobs_video(h->jobs, id, path, sizeof path);

	if (rc == -1)
		return reply_error(c, 404, NULL, "no job '%s'", id);
	if (rc == -2)
		return reply_error(c, 404, NULL, "job '%s' asked for no video", id);
	if (rc < 0)
		return reply_error(c, 404, NULL, "the video of job '%s' is not made (yet)", id);
	fd = dr_outdir_open_confined(path, h->limits.output_root, &kind, why, sizeof why);
	if (fd < 0 && kind == DR_E_FORBIDDEN) {
		dr_warn("job %s video: %s", id, why);
		return reply_error(c, 403, NULL,
		                   "the video of job '%s' is not a plain file in the output root "
		                   "(refused)",
		                   id);
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return reply_error(c, 404, NULL, "the video of job '%s' is not made (yet)", id);
	}
	resp = MHD_create_response_from_fd((size_t)st.st_size, fd); /* owns FD from here */
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, video_ctype(path));
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	rc = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return (enum MHD_Result)rc;
}

/* The dashboard's embedded files (a route's ARG). */
enum { UI_INDEX, UI_JS, UI_CSS, UI_ICON };

/* One of the dashboard's embedded files, with the page's security headers. */
static enum MHD_Result do_static(const struct call *k)
{
	struct MHD_Connection *c = k->c;
	const char *hdrs[] = {"Content-Security-Policy",
	                      UI_CSP,
	                      "X-Frame-Options",
	                      "DENY",
	                      "Referrer-Policy",
	                      "no-referrer",
	                      NULL};

	switch (k->arg) {
	case UI_JS:
		return reply(c, 200, "text/javascript; charset=utf-8", dr_ui_app_js,
		             sizeof(dr_ui_app_js) - 1, hdrs);
	case UI_CSS:
		return reply(c, 200, "text/css; charset=utf-8", dr_ui_style_css,
		             sizeof(dr_ui_style_css) - 1, hdrs);
	case UI_ICON:
		return reply(c, 204, "image/x-icon", "", 0, hdrs);
	default:
		return reply(c, 200, "text/html; charset=utf-8", dr_ui_index_html,
		             sizeof(dr_ui_index_html) - 1, hdrs);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add the regular *.blend files under ROOT/REL (REL "" or ending in '/') to ARR, DEPTH levels
 * down at most. Symbolic links and hidden entries are skipped: the list shows only what a job
 * can name without leaving the root. */
static void list_scenes(const char *root, const char *rel, int depth, cJSON *arr, size_t *n)
{
	char dir[DR_PATH_MAX], sub[DR_PATH_MAX];
	char **names = NULL;
	size_t nn = 0, cap = 0;
	struct dirent *e;
	DIR *d;

	if (snprintf(dir, sizeof(dir), "%s/%s", root, rel) >= (int)sizeof(dir) ||
	    !(d = opendir(dir)))
		return;
	while ((e = readdir(d)) && nn < SCENES_MAX) {
		char *copy;
		if (e->d_name[0] == '.' || dr_grow(&names, &cap, nn + 1, sizeof(*names)) < 0 ||
		    !(copy = strdup(e->d_name)))
			continue;
		names[nn++] = copy;
	}
	closedir(d);
	if (nn)
		qsort(names, nn, sizeof(*names), cmp_str);
	for (size_t i = 0; i < nn; i++) {
		struct stat st;
		size_t len = strlen(names[i]);
		if (*n < SCENES_MAX &&
		    snprintf(sub, sizeof(sub), "%s/%s%s", root, rel, names[i]) < (int)sizeof(sub) &&
		    lstat(sub, &st) == 0) {
			if (S_ISREG(st.st_mode) && len > 6 &&
			    !strcasecmp(names[i] + len - 6, ".blend") &&
			    snprintf(sub, sizeof(sub), "%s%s", rel, names[i]) < (int)sizeof(sub) &&
			    cJSON_AddItemToArray(arr, cJSON_CreateString(sub)))
				(*n)++;
			else if (S_ISDIR(st.st_mode) && depth > 1 &&
			         snprintf(sub, sizeof(sub), "%s%s/", rel, names[i]) <
			                 (int)sizeof(sub))
				list_scenes(root, sub, depth - 1, arr, n);
		}
		free(names[i]);
	}
	free(names);
}

/* {"version", "readOnly", "tokenRequired", "features": [...], "scenes": [paths under
 * --blend-root]}. "features" names the optional routes the page may use: "updates" (GET /updates)
 * "frames" (GET /jobs/<id>/frames) and "thumbs" (GET /jobs/<id>/frames/<n>/thumb). */
static enum MHD_Result do_info(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	cJSON *o = cJSON_CreateObject(), *arr = NULL;
	size_t n = 0;
	char *s = NULL;
	enum MHD_Result rc;

	if (o && cJSON_AddStringToObject(o, "version", DR_VERSION) &&
	    cJSON_AddBoolToObject(o, "readOnly", h->read_only) &&
	    cJSON_AddBoolToObject(o, "tokenRequired", h->token != NULL) &&
	    (arr = cJSON_AddArrayToObject(o, "features")) &&
	    cJSON_AddItemToArray(arr, cJSON_CreateString("updates")) &&
	    cJSON_AddItemToArray(arr, cJSON_CreateString("frames")) &&
	    cJSON_AddItemToArray(arr, cJSON_CreateString("thumbs")) &&
	    (arr = cJSON_AddArrayToObject(o, "scenes"))) {
		if (h->blend_root && !h->read_only)
			list_scenes(h->blend_root, "", SCENES_DEPTH, arr, &n);
		s = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(o);
	if (!s)
		return reply_error(c, 500, NULL, "out of memory");
	rc = reply_json(c, 200, s, NULL);
	cJSON_free(s);
	return rc;
}

static unsigned long long hash_text(const char *s)
{
	unsigned long long x = 1469598103934665603ull;

	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ull;
	return x;
}

/* Look at the job table (under TR->mu) unless the last look is recent, and bump the version when
 * a job was added, changed or dropped. */
static void tracker_look(dr_http *h)
{
	struct tracker *tr = &h->tr;
	struct seen_job *seen = NULL;
	size_t n = 0, cap = 0;
	bool changed = false, oom = false;
	const cJSON *a, *j;
	cJSON *snap;
	char *s;
	double t = dr_now();

	if (tr->snap && t - tr->looked < POLL_REFRESH)
		return;
	s = dr_jobs_list(h->jobs, DR_JOBS_LIST_MAX,
	                 0); /* the newest page: what the dashboard shows */
	snap = s ? cJSON_Parse(s) : NULL;
	free(s);
	a = cJSON_GetObjectItemCaseSensitive(snap, "jobs");
	if (!cJSON_IsArray(a)) {
		cJSON_Delete(snap);
		return; /* out of memory: keep the last look */
	}
	cJSON_ArrayForEach(j, a)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "jobId");
		char *txt = cJSON_PrintUnformatted(j);
		size_t k;

		if (!cJSON_IsString(id) || !txt || dr_grow(&seen, &cap, n + 1, sizeof(*seen)) < 0) {
			cJSON_free(txt);
			oom = true;
			break;
		}
		snprintf(seen[n].id, sizeof(seen[n].id), "%s", id->valuestring);
		seen[n].hash = hash_text(txt);
		seen[n].changed = 0;
		cJSON_free(txt);
		for (k = 0; k < tr->nseen; k++)
			if (!strcmp(tr->seen[k].id, seen[n].id))
				break;
		if (k < tr->nseen && tr->seen[k].hash == seen[n].hash)
			seen[n].changed = tr->seen[k].changed;
		else
			changed = true;
		n++;
	}
	if (oom) {
		free(seen);
		cJSON_Delete(snap);
		return;
	}
	if (n != tr->nseen)
		changed = true; /* one went (the table drops old jobs) */
	if (changed || !tr->snap) {
		tr->version++;
		for (size_t i = 0; i < n; i++)
			if (!seen[i].changed)
				seen[i].changed = tr->version;
	}
	free(tr->seen);
	tr->seen = seen;
	tr->nseen = n;
	tr->capseen = cap;
	cJSON_Delete(tr->snap);
	tr->snap = snap;
	tr->looked = t;
	if (changed)
		pthread_cond_broadcast(&tr->cv);
}

/* Query argument NAME as a non-negative integer, or DEF when absent or not one. */
static unsigned long long arg_ull(struct MHD_Connection *c, const char *name,
                                  unsigned long long def)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	unsigned long long n;
	char *end;

	if (!v || *v < '0' || *v > '9')
		return def;
	errno = 0;
	n = strtoull(v, &end, 10);
	return *end || errno ? def : n;
}

/* GET /updates?epoch=E&since=V&wait=S: waits up to S seconds (default 20, at most 25) until the
 * job table differs from version V of run E, then answers {"epoch", "version", "full", "ids":
 * [every job id, newest first], "jobs": [the jobs changed after V, or all of them when "full"]}. */
/* Wait on TR's condition (TR->mu held) for LEFT seconds at most, and POLL_REFRESH at most: a
 * long-poll looks again that often. A poller counts as waiting from its first nap; false when
 * POLL_WAITERS_MAX already wait (the poll then answers at once). */
static bool poll_nap(struct tracker *tr, double left, bool *waiting)
{
	struct timespec ts;

	if (!*waiting) {
		if (tr->waiters >= POLL_WAITERS_MAX)
			return false;
		tr->waiters++;
		*waiting = true;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	left = left < POLL_REFRESH ? left : POLL_REFRESH;
	ts.tv_nsec += (long)(left * 1e9);
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&tr->cv, &tr->mu, &ts);
	return true;
}

static enum MHD_Result do_updates(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	struct tracker *tr = &h->tr;
	const char *ep = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "epoch");
	unsigned long long since = arg_ull(c, "since", 0),
	                   wait = arg_ull(c, "wait", POLL_WAIT_DEFAULT);
	double deadline;
	bool full, waiting = false;
	cJSON *o = cJSON_CreateObject(), *ids = NULL, *jobs = NULL;
	const cJSON *j;
	char *s = NULL, num[24];
	enum MHD_Result rc;

	if (wait > POLL_WAIT_MAX)
		wait = POLL_WAIT_MAX;
	deadline = dr_now() + (double)wait;
	pthread_mutex_lock(&tr->mu);
	full = !ep || strcmp(ep, tr->epoch) != 0 || since > tr->version;
	if (full)
		since = 0;
	for (;;) {
		double left;

		tracker_look(h);
		left = deadline - dr_now();
		if (tr->version > since || tr->stopping || left <= 0 ||
		    !poll_nap(tr, left, &waiting))
			break;
	}
	if (waiting)
		tr->waiters--;
	snprintf(num, sizeof(num), "%llu", tr->version);
	if (o && cJSON_AddStringToObject(o, "epoch", tr->epoch) &&
	    cJSON_AddRawToObject(o, "version", num) && cJSON_AddBoolToObject(o, "full", full) &&
	    (ids = cJSON_AddArrayToObject(o, "ids")) &&
	    (jobs = cJSON_AddArrayToObject(o, "jobs"))) {
		size_t i = 0;
		bool ok = true;
		cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(tr->snap, "jobs"))
		{
			if (i >= tr->nseen)
				break;
			ok = ok && cJSON_AddItemToArray(ids, cJSON_CreateString(tr->seen[i].id));
			if (ok && tr->seen[i].changed > since)
				ok = cJSON_AddItemToArray(jobs, cJSON_Duplicate(j, true));
			i++;
		}
		if (ok)
			s = cJSON_PrintUnformatted(o);
	}
	pthread_mutex_unlock(&tr->mu);
	cJSON_Delete(o);
	if (!s)
		return reply_error(c, 500, NULL, "out of memory");
	rc = reply_json(c, 200, s, NULL);
	cJSON_free(s);
	return rc;
}

/* GET /jobs/<id>/frames?since=V&wait=S: the job's per-frame state (see dr_jobs_frames), at once
 * when V is 0, from another run or older than the last change, else when something changes or
 * after S seconds (default 20, at most 25: then the answer lists no cell). 204 while a known job
 * has no per-frame state yet (queued: ask again); 404 for an unknown job, or a finished one whose
 * per-frame state is no longer kept (the page falls back to its counts). */
static enum MHD_Result do_frames(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	const char *id = k->r->id;
	struct tracker *tr = &h->tr;
	unsigned long long since = arg_ull(c, "since", 0),
	                   wait = arg_ull(c, "wait", POLL_WAIT_DEFAULT);
	double deadline;
	bool waiting = false;
	char *s = NULL;
	int rc;
	enum MHD_Result mr;

	if (wait > POLL_WAIT_MAX)
		wait = POLL_WAIT_MAX;
	deadline = dr_now() + (double)wait;
	pthread_mutex_lock(&tr->mu);
	for (;;) {
		double left;

		/* the orchestrator publishes every 0.25 s: poll_nap looks again as often */
		s = dr_jobs_frames(h->jobs, id, since, &rc);
		left = deadline - dr_now();
		if (rc != 0 || tr->stopping || left <= 0 || !poll_nap(tr, left, &waiting))
			break;
	}
	if (waiting)
		tr->waiters--;
	pthread_mutex_unlock(&tr->mu);
	if (rc == 1) {
		mr = reply(c, 200, "application/json", s, strlen(s), NULL);
		free(s);
		return mr;
	}
	if (rc == -2)
		return reply_error(c, 500, NULL, "out of memory");
	if (rc == 0) { /* nothing changed within the wait */
		char body[160];
		int w = snprintf(body, sizeof(body),
		                 "{\"jobId\":\"%s\",\"version\":%llu,\"full\":false,"
		                 "\"index\":[],\"state\":\"\"}",
		                 id, since);
		return reply(c, 200, "application/json", body, (size_t)w, NULL);
	}
	{
		dr_job_state st;
		char *js = dr_jobs_status(h->jobs, id, &st);
		free(js);
		if (js && (st == DR_JOB_QUEUED || st == DR_JOB_RUNNING))
			return reply(c, 204, "application/json", "", 0, NULL);
	}
	return reply_error(c, 404, NULL, "no per-frame state for job '%s'", id);
}

/* Query parameter NAME as a whole number in [1, MAX] into *V (left alone when absent); false if it
 * is there but not such a number. */
static bool query_num(struct MHD_Connection *c, const char *name, long long max, long long *v)
{
	const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	char *end;
	long long n;

	if (!s)
		return true;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || n < 1 || n > max)
		return false;
	*v = n;
	return true;
}

/* GET /jobs (= /status): one page, newest first; ?limit=N&after=CURSOR (the last page's "next"). */
static enum MHD_Result do_list(const struct call *k)
{
	dr_http *h = k->h;
	struct MHD_Connection *c = k->c;
	long long limit = DR_JOBS_LIST_DEF, after = 0;
	enum MHD_Result rc;
	char *s;

	if (!query_num(c, "limit", DR_JOBS_LIST_MAX, &limit))
		return reply_error(c, 400, NULL, "\"limit\" must be a whole number from 1 to %d",
		                   DR_JOBS_LIST_MAX);
	if (!query_num(c, "after", LLONG_MAX, &after))
		return reply_error(c, 400, NULL,
		                   "\"after\" must be the \"next\" cursor of a previous page");
	s = dr_jobs_list(h->jobs, (size_t)limit, after);
	if (!s)
		return reply_error(c, 500, NULL,
		                   "cannot list the jobs (out of memory or a "
		                   "database error: see the service's log)");
	rc = reply_json(c, 200, s, NULL);
	free(s);
	return rc;
}

static enum MHD_Result do_health(const struct call *k)
{
	return reply_json(k->c, 200, "{\"status\":\"ok\"}", NULL);
}

static enum MHD_Result do_metrics(const struct call *k)
{
	char *s = dr_jobs_metrics(k->h->jobs);
	enum MHD_Result rc;

	if (!s)
		return reply_error(k->c, 500, NULL, "out of memory");
	rc = reply(k->c, 200, "text/plain; version=0.0.4; charset=utf-8", s, strlen(s), NULL);
	free(s);
	return rc;
}

/* Every route the service answers (GET rows answer HEAD too). A unit test compares it with the
 * route table in the user docs. */
static const struct route routes[] = {
        {M_READ, "/health", A_HEALTH, do_health, 0},
        {M_READ, "/healthz", A_HEALTH, do_health, 0},
        {M_READ, "/metrics", A_TOKEN, do_metrics, 0},
        {M_POST, "/render", A_TOKEN, do_render, 0},
        {M_READ, "/status", A_TOKEN, do_list, 0},
        {M_READ, "/jobs", A_TOKEN, do_list, 0},
        {M_READ, "/status/<id>", A_TOKEN, do_status, 0},
        {M_READ, "/jobs/<id>", A_TOKEN, do_status, 1},
        {M_DELETE, "/jobs/<id>", A_TOKEN, do_cancel, 0},
        {M_READ, "/jobs/<id>/frames", A_TOKEN, do_frames, 0},
        {M_READ, "/jobs/<id>/frames/<n>", A_TOKEN, do_frame, 0},
        {M_READ, "/jobs/<id>/frames/<n>/thumb", A_TOKEN, do_frame, 1},
        {M_READ, "/jobs/<id>/video", A_TOKEN, do_video, 0},
        {M_READ, "/info", A_TOKEN, do_info, 0},
        {M_READ, "/updates", A_TOKEN, do_updates, 0},
        {M_READ, "/", A_OPEN, do_static, UI_INDEX},
        {M_READ, "/ui", A_OPEN, do_static, UI_INDEX},
        {M_READ, "/ui/", A_OPEN, do_static, UI_INDEX},
        {M_READ, "/ui/index.html", A_OPEN, do_static, UI_INDEX},
        {M_READ, "/ui/app.js", A_OPEN, do_static, UI_JS},
        {M_READ, "/ui/style.css", A_OPEN, do_static, UI_CSS},
        /* browsers ask for it: an empty answer keeps their consoles clean */
        {M_READ, "/favicon.ico", A_OPEN, do_static, UI_ICON},
};

/* Find URL's row for METHOD into R: R->allowed the methods its path answers (0: none), R->rt the
 * row (NULL when the method is not one of them, or writes to a read-only server). */
static void route_find(const dr_http *h, const char *url, const char *method, struct req *r)
{
	unsigned m = method_bit(method);

	r->rt = NULL;
	r->allowed = 0;
	r->access = A_TOKEN;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		unsigned ok = routes[i].methods & (h->read_only ? ~(unsigned)M_WRITE : ~0u);
		struct req seg = {.id = "", .frame = ""};

		if (!route_match(routes[i].path, url, &seg))
			continue;
		if (!r->allowed)
			r->access = routes[i].access; /* a path's rows share their access */
		r->allowed |= routes[i].methods;
		if (ok & m) {
			r->rt = &routes[i];
			memcpy(r->id, seg.id, sizeof r->id);
			memcpy(r->frame, seg.frame, sizeof r->frame);
		}
	}
}

int dr_http_routes(char *buf, size_t len)
{
	size_t pos = 0;
	int n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		char m[32];
		methods_text(routes[i].methods & ~(unsigned)M_HEAD, m, sizeof m);
		dr_append(buf, len, &pos, "%s %s\n", m, routes[i].path);
		n++;
	}
	return pos + 1 >= len ? -1 : n;
}

/* Is the Content-Type value V application/json (parameters such as a charset allowed)? */
static bool json_type(const char *v)
{
	static const char want[] = "application/json";

	if (!v)
		return false;
	while (*v == ' ' || *v == '\t')
		v++;
	return !strncasecmp(v, want, sizeof want - 1) &&
	       (!v[sizeof want - 1] || strchr("; \t", v[sizeof want - 1]));
}

static enum MHD_Result answer(dr_http *h, struct MHD_Connection *c, const char *url,
                              const char *method, const struct req *r)
{
	char allow[40];

	if (!r->allowed)
		return reply_error(c, 404, NULL, "no such endpoint: %.200s", url);
	if (!r->rt) {
		unsigned mask = r->allowed & (h->read_only ? ~(unsigned)M_WRITE : ~0u);
		const char *hdrs[] = {MHD_HTTP_HEADER_ALLOW,
		                      methods_text(mask, allow, sizeof allow), NULL};
		if (h->read_only && (method_bit(method) & M_WRITE))
			return reply_error(
			        c, 405, hdrs,
			        "this server is read-only (drender --http during a batch): "
			        "submit and cancel jobs with drender --serve");
		return reply_error(c, 405, hdrs,
		                   "method %.16s is not allowed on %.200s (allowed: %s)", method,
		                   url, allow);
	}
	if (r->too_big)
		return reply_error(c, 413, NULL, "the request body is larger than %d bytes",
		                   BODY_MAX);
	/* a body of another type is what a form on another site sends, without a preflight */
	if ((r->rt->methods & M_POST) && r->len &&
	    !json_type(
	            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return reply_error(c, 415, NULL,
		                   "the body must be JSON, sent with \"Content-Type: "
		                   "application/json\"");
	return r->rt->fn(&(struct call){h, c, r, r->rt->arg});
}

/* The name in a Host header or an Origin's authority (V, up to its end or a '/'), without its port
 * and in lower case, into NAME. False when it does not fit. *IP says whether it is an IP literal.
 */
static bool host_name(const char *v, char *name, size_t len, bool *ip)
{
	unsigned char buf[sizeof(struct in6_addr)];
	size_t n;

	name[0] = '\0';
	if (v[0] == '[') { /* [v6]:port */
		*ip = true;
		return strchr(v, ']') != NULL;
	}
	n = strcspn(v, ":/");
	if (!n || n >= len)
		return false;
	for (size_t i = 0; i < n; i++)
		name[i] = (char)tolower((unsigned char)v[i]);
	name[n] = '\0';
	*ip = inet_pton(AF_INET, name, buf) == 1;
	return true;
}

/* Is NAME (lower case) one of the --allow-host names? */
static bool host_allowed(const dr_http *h, const char *name)
{
	char key[260];
	int w = snprintf(key, sizeof key, ",%s,", name);

	return h->allow_hosts && w > 0 && (size_t)w < sizeof key &&
	       (strstr(h->allow_hosts, key) || strstr(h->allow_hosts, ",*,"));
}

/* False, with WHY, for a request from another site: a Host that is not an IP address, localhost
 * or an --allow-host name (DNS rebinding: checked without a token, or with names), and an Origin
 * that is not this server's (a page elsewhere posting here; "null" included). */
static bool same_site(const dr_http *h, struct MHD_Connection *c, char *why, size_t len)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *auth = origin ? strstr(origin, "://") : NULL;
	char name[256];
	bool ip = false;

	if (host && h->check_host &&
	    !(host_name(host, name, sizeof name, &ip) &&
	      (ip || !strcmp(name, "localhost") || host_allowed(h, name)))) {
		snprintf(why, len,
		         "Host '%.200s' is not this server's address: refused (a name that leads "
		         "here must be allowed with --allow-host NAME)",
		         host);
		return false;
	}
	if (!origin)
		return true;
	if (auth && host && !strcasecmp(auth + 3, host))
		return true; /* the dashboard: the page's origin is the server's own */
	if (auth && host_name(auth + 3, name, sizeof name, &ip) && host_allowed(h, name))
		return true; /* behind a proxy that rewrites Host: a name the user allowed */
	snprintf(why, len, "Origin '%.200s' is not this server: a cross-site request is refused",
	         origin);
	return false;
}

/* First call for a request: find its route, and refuse early what needs no body (rate, token,
 * declared size). */
static enum MHD_Result first_call(dr_http *h, struct MHD_Connection *c, const char *url,
                                  const char *method, struct req *r)
{
	const char *cl;
	char why[512];

	route_find(h, url, method, r);
	if (r->access == A_HEALTH)
		return MHD_YES;
	if (!same_site(h, c, why, sizeof why)) {
		r->answered = true;
		return reply_error(c, 403, NULL, "%s", why);
	}
	if (!rate_ok(h, c)) {
		const char *hdrs[] = {MHD_HTTP_HEADER_RETRY_AFTER, "1", NULL};
		r->answered = true;
		return reply_error(c, 429, hdrs, "too many requests from this address: slow down");
	}
	if (r->access == A_TOKEN && !auth_ok(h, c)) {
		const char *hdrs[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"drender\"",
		                      NULL};
		r->answered = true;
		return reply_error(
		        c, 401, hdrs,
		        "missing or wrong token: send \"Authorization: Bearer <token>\"");
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(cl, &end, 10);
		if (end != cl && !*end && (errno == ERANGE || n > BODY_MAX)) {
			r->answered = true;
			return reply_error(c, 413, NULL, "the request body is larger than %d bytes",
			                   BODY_MAX);
		}
	}
	return MHD_YES;
}

/* One connection as the guard sees it; FD -1: a free slot. */
struct conn {
	int fd;
	double since; /* dr_now() when it began waiting for a request's headers */
	bool busy;    /* a request of it is being answered: not waiting */
	bool cut;     /* shut down by the guard (once) */
};

/* Cuts connections that wait too long for their headers, and the longest waiting one when too
 * many wait, so that idle, trickling (slowloris) and half-open TLS clients cannot fill the
 * connection limit: a client that sends its request at once always finds room. Cutting is a
 * shutdown() of the socket under MU; libmicrohttpd tells the guard a connection closed (under
 * MU) before it closes its socket, so a descriptor is never cut after it was reused. */
struct guard {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t reaper;
	bool stopping, running;
	struct conn slot[CONN_LIMIT + 8]; /* libmicrohttpd starts no more than CONN_LIMIT */
	unsigned long long cut_idle, cut_crowded;
};

static void guard_cut(struct conn *k)
{
	shutdown(k->fd, SHUT_RDWR); /* its thread sees the end and closes it */
	k->cut = true;
}

static void *guard_reap(void *arg)
{
	struct guard *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		struct timespec ts;
		double t = dr_now();

		for (size_t i = 0; i < sizeof g->slot / sizeof g->slot[0]; i++) {
			struct conn *k = &g->slot[i];
			if (k->fd >= 0 && !k->busy && !k->cut && t - k->since > HEADER_DEADLINE) {
				guard_cut(k);
				g->cut_idle++;
			}
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(REAP_EVERY * 1e9);
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* A connection started (its slot into *CTX) or closed (its slot freed). */
static void guard_notify(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_ConnectionNotificationCode code)
{
	struct guard *g = ((dr_http *)cls)->guard;
	const union MHD_ConnectionInfo *ci;
	struct conn *k = *ctx, *oldest = NULL;
	int waiting = 0;

	pthread_mutex_lock(&g->mu);
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (k)
			k->fd = -1;
		*ctx = NULL;
		pthread_mutex_unlock(&g->mu);
		return;
	}
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	for (size_t i = 0; ci && i < sizeof g->slot / sizeof g->slot[0]; i++) {
		struct conn *o = &g->slot[i];
		if (o->fd < 0 && !*ctx) {
			*o = (struct conn){.fd = ci->connect_fd, .since = dr_now()};
			*ctx = o;
		} else if (o->fd >= 0 && !o->busy && !o->cut) {
			waiting++;
			if (!oldest || o->since < oldest->since)
				oldest = o;
		}
	}
	if (waiting >= WAITING_MAX && oldest) {
		guard_cut(oldest);
		g->cut_crowded++;
	}
	pthread_mutex_unlock(&g->mu);
}

/* The request on C began (BUSY) or ended: its connection waits again from now. */
static void guard_busy(dr_http *h, struct MHD_Connection *c, bool busy)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci ? ci->socket_context : NULL;

	if (!k)
		return;
	pthread_mutex_lock(&h->guard->mu);
	k->busy = busy;
	k->since = dr_now();
	pthread_mutex_unlock(&h->guard->mu);
}

/* Start the guard's reaper. 0, or -1 with ERR. */
static int guard_start(dr_http *h, char *err, size_t errlen)
{
	struct guard *g = calloc(1, sizeof *g);

	if (!g)
		return dr_seterr(err, errlen, "out of memory");
	for (size_t i = 0; i < sizeof g->slot / sizeof g->slot[0]; i++)
		g->slot[i].fd = -1;
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		free(g);
		return dr_seterr(err, errlen, "cannot create a lock");
	}
	if (pthread_cond_init(&g->cv, NULL) != 0 ||
	    pthread_create(&g->reaper, NULL, guard_reap, g) != 0) {
		pthread_mutex_destroy(&g->mu);
		free(g);
		return dr_seterr(err, errlen, "cannot start the HTTP connection guard");
	}
	g->running = true;
	h->guard = g;
	return 0;
}

/* Stop the reaper (before the daemon: the guard's slots stay valid until it is freed). */
static void guard_stop(dr_http *h)
{
	struct guard *g = h->guard;

	if (!g || !g->running)
		return;
	g->running = false;
	pthread_mutex_lock(&g->mu);
	g->stopping = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->reaper, NULL);
}

static void guard_free(dr_http *h)
{
	if (!h->guard)
		return;
	if (h->guard->cut_idle || h->guard->cut_crowded)
		dr_debug("http: %llu connections cut after %.0f s without a request, %llu when %d "
		         "were waiting",
		         h->guard->cut_idle, HEADER_DEADLINE, h->guard->cut_crowded, WAITING_MAX);
	pthread_cond_destroy(&h->guard->cv);
	pthread_mutex_destroy(&h->guard->mu);
	free(h->guard);
	h->guard = NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
	dr_http *h = cls;
	struct req *r = *con_cls;

	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		guard_busy(h, c, true);
		return first_call(h, c, url, method, r);
	}
	if (*upload_size) {
		if (!r->answered && !r->too_big) {
			if (*upload_size > BODY_MAX - r->len) {
				r->too_big = true;
				free(r->body);
				r->body = NULL;
				r->len = 0;
			} else {
				char *nb = realloc(r->body, r->len + *upload_size);
				if (!nb)
					return MHD_NO;
				memcpy(nb + r->len, upload, *upload_size);
				r->body = nb;
				r->len += *upload_size;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	r->answered = true;
	return answer(h, c, url, method, r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)toe;
	guard_busy(cls, c, false);
	if (r) {
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

#define LOG_BURST    5
#define LOG_WINDOW_S 10.0

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	dr_http *h = cls;
	char msg[512];
	unsigned dropped = 0;
	bool say = true;
	size_t n;

	if (h) {
		double t = dr_now();

		pthread_mutex_lock(&h->rl_mu);
		if (t - h->log_window >= LOG_WINDOW_S) {
			dropped = h->log_dropped;
			h->log_window = t;
			h->log_lines = h->log_dropped = 0;
		}
		if (h->log_lines < LOG_BURST)
			h->log_lines++;
		else {
			h->log_dropped++;
			say = false;
		}
		pthread_mutex_unlock(&h->rl_mu);
	}
	if (dropped)
		dr_warn("http: %u more messages like these were left out in %.0f s", dropped,
		        LOG_WINDOW_S);
	if (!say)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	dr_warn("http: %s", msg);
}

/* Parse "ADDR:PORT" ("[V6]:PORT", "localhost:PORT", ":PORT" or "*:PORT" for every address). */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl, bool *loopback,
                        char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *hs = s;
	size_t hn;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (!s) {
		snprintf(err, errlen, "no listen address");
		return -1;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			goto bad;
		hs = s + 1;
		hn = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			goto bad;
		hn = (size_t)(colon - s);
	}
	if (hn >= sizeof(host))
		goto bad;
	memcpy(host, hs, hn);
	host[hn] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port < 0 || port > 65535)
		goto bad;
	if (s[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			goto bad;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a);
		*loopback =
		        IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
		        (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		if (!strcmp(host, "localhost"))
			memcpy(host, "127.0.0.1", sizeof("127.0.0.1"));
		if (!host[0] || !strcmp(host, "*"))
			a->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			goto bad;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*sl = sizeof(*a);
		*loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	return 0;
bad:
	snprintf(err, errlen,
	         "listen address '%s' is not ADDR:PORT (e.g. 127.0.0.1:4000, [::1]:4000, "
	         "0.0.0.0:4000)",
	         s);
	return -1;
}

/* Read the PEM file PATH (what: "--tls-cert") into a NUL-terminated malloc'ed string *OUT.
 * 0, or -1 with ERR. */
static int read_pem(const char *path, const char *what, char **out, size_t *outlen, char *err,
                    size_t errlen)
{
	enum { PEM_MAX = 1 << 20 };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), rc = -1;

	if (fd < 0)
		return dr_seterr(err, errlen, "%s %s: %s", what, path, strerror(errno));
	for (;;) {
		ssize_t n;

		if (cap - len < 4096 &&
		    (len + 4096 > PEM_MAX || dr_grow(&buf, &cap, len + 4096, 1))) {
			dr_seterr(err, errlen, "%s %s: larger than 1 MiB or out of memory", what,
			          path);
			goto out;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			dr_seterr(err, errlen, "%s %s: %s", what, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf || !strstr(buf, "-----BEGIN ")) {
		dr_seterr(err, errlen, "%s %s: not a PEM file", what, path);
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		memset(buf, 0, cap);
		free(buf);
	}
	close(fd);
	return rc;
}

/* Free what dr_http_start allocated (the daemon is stopped or was never started). */
static void http_free(dr_http *h)
{
	guard_stop(h);
	guard_free(h);
	cJSON_Delete(h->tr.snap);
	free(h->tr.seen);
	pthread_cond_destroy(&h->tr.cv);
	pthread_mutex_destroy(&h->tr.mu);
	free(h->token);
	free(h->tls_cert);
	if (h->tls_key)
		memset(h->tls_key, 0, h->tls_key_len); /* the private key does not linger */
	free(h->tls_key);
	free(h->blend_root);
	free(h->output_root);
	free(h->default_scene);
	free(h->allow_hosts);
	free(h->buckets);
	pthread_mutex_destroy(&h->rl_mu);
	free(h);
}

/* H's list of Host names: NAMES (the user's, comma-separated, or NULL) and this machine's name,
 * whole and up to its first dot (a container's peers call it so; a rebound name cannot be it), as
 * ",name,...," in lower case. 0, or -1 on out of memory. */
static int allowed_hosts(dr_http *h, const char *names)
{
	char self[256] = "";
	size_t n, pos = 0;

	if (gethostname(self, sizeof self - 1) != 0)
		self[0] = '\0';
	self[sizeof self - 1] = '\0';
	n = (names ? strlen(names) : 0) + 2 * strlen(self) + 8;
	if (!(h->allow_hosts = malloc(n)))
		return -1;
	h->allow_hosts[0] = '\0';
	dr_append(h->allow_hosts, n, &pos, ",%s,%s,%.*s,", names ? names : "", self,
	          (int)strcspn(self, "."), self);
	for (char *p = h->allow_hosts; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

/* A server's state from CFG, not started: locks, the long-poll's epoch, copies of CFG's strings.
 * NULL with ERR. */
static dr_http *http_alloc(const dr_http_cfg *cfg, dr_jobs *jobs, char *err, size_t errlen)
{
	dr_http *h = calloc(1, sizeof(*h));
	struct timespec now;
	bool oom = false;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (pthread_mutex_init(&h->rl_mu, NULL) != 0) {
		free(h);
		snprintf(err, errlen, "cannot create a lock");
		return NULL;
	}
	if (pthread_mutex_init(&h->tr.mu, NULL) != 0) {
		pthread_mutex_destroy(&h->rl_mu);
		free(h);
		snprintf(err, errlen, "cannot create a lock");
		return NULL;
	}
	if (pthread_cond_init(&h->tr.cv, NULL) != 0) {
		pthread_mutex_destroy(&h->tr.mu);
		pthread_mutex_destroy(&h->rl_mu);
		free(h);
		snprintf(err, errlen, "cannot create a condition variable");
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(h->tr.epoch, sizeof(h->tr.epoch), "%lx%05lx", (unsigned long)now.tv_sec,
	         (unsigned long)(now.tv_nsec / 10000) & 0xfffffUL);
	h->jobs = jobs;
	h->read_only = cfg->read_only;
	h->overwrite = cfg->overwrite;
	h->rate = cfg->rate_per_s;
	h->burst = cfg->rate_burst < 1 ? 1 : cfg->rate_burst;
	h->token = cfg->token && cfg->token[0] ? dr_strdup_or_null(cfg->token, &oom) : NULL;
	h->blend_root = dr_strdup_or_null(cfg->limits.blend_root, &oom);
	h->output_root = dr_strdup_or_null(cfg->limits.output_root, &oom);
	h->default_scene = dr_strdup_or_null(cfg->limits.default_scene, &oom);
	h->limits.blend_root = h->blend_root;
	h->limits.output_root = h->output_root;
	h->limits.default_scene = h->default_scene;
	h->limits.max_frames = cfg->limits.max_frames;
	h->check_host = !h->token || cfg->allow_hosts;
	if (allowed_hosts(h, cfg->allow_hosts) < 0)
		oom = true;
	if (h->rate > 0 && !(h->buckets = calloc(RATE_SLOTS, sizeof(*h->buckets))))
		oom = true;
	if (oom) {
		snprintf(err, errlen, "out of memory");
		http_free(h);
		return NULL;
	}
	return h;
}

/* A listening socket bound to SS (SL bytes; updated to the bound address), named LISTEN in
 * messages. The descriptor, or -1 with ERR. */
static int listen_on(const char *listen_addr, struct sockaddr_storage *ss, socklen_t *sl, char *err,
                     size_t errlen)
{
	int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)ss, *sl) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)ss, sl) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen_addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* What CFG asks that can be refused before anything is made: an address that does not parse, a
 * non-loopback one without a token, half a TLS setup, TLS without the library's support. */
static int check_cfg(const dr_http_cfg *cfg, struct sockaddr_storage *ss, socklen_t *sl,
                     bool *loopback, bool *tls, char *err, size_t errlen)
{
	*tls = (cfg->tls_cert && cfg->tls_cert[0]) || (cfg->tls_key && cfg->tls_key[0]);
	if (parse_listen(cfg->listen, ss, sl, loopback, err, errlen) < 0)
		return -1;
	if (!*loopback && (!cfg->token || !cfg->token[0]))
		return dr_seterr(err, errlen,
		                 "listening on %s needs --token or DRENDER_TOKEN (or listen on "
		                 "127.0.0.1)",
		                 cfg->listen);
	if (!*loopback && strlen(cfg->token) < DR_HTTP_TOKEN_MIN)
		return dr_seterr(err, errlen,
		                 "listening on %s needs a token of %d characters or more (this one "
		                 "has %zu); e.g. head -c 24 /dev/urandom | base64",
		                 cfg->listen, DR_HTTP_TOKEN_MIN, strlen(cfg->token));
	if (*tls && (!cfg->tls_cert || !cfg->tls_cert[0] || !cfg->tls_key || !cfg->tls_key[0]))
		return dr_seterr(err, errlen,
		                 "HTTPS needs both --tls-cert FILE and --tls-key FILE");
	if (cfg->allow_hosts &&
	    (!cfg->allow_hosts[0] || cfg->allow_hosts[0] == ',' || strstr(cfg->allow_hosts, ",,") ||
	     cfg->allow_hosts[strlen(cfg->allow_hosts) - 1] == ',' ||
	     strspn(cfg->allow_hosts,
	            "abcdefghijklmnopqrstuvwxyz"
	            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_*,") != strlen(cfg->allow_hosts) ||
	     strlen(cfg->allow_hosts) > 4000))
		return dr_seterr(
		        err, errlen,
		        "--allow-host '%.100s': give host names without ports, separated by "
		        "commas (e.g. render.example.com,render01), or '*' for any",
		        cfg->allow_hosts);
	if (*tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return dr_seterr(err, errlen,
		                 "--tls-cert: this libmicrohttpd was built without TLS support "
		                 "(GnuTLS); HTTPS is not available");
	return 0;
}

dr_http *dr_http_start(const dr_http_cfg *cfg, dr_jobs *jobs, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	bool loopback = false, tls = false;
	dr_http *h = NULL;
	int fd = -1;
	/* A thread per connection: a long-poll waiting for a change holds only its own thread. */
	unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD |
	                 MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls_opts[3] = {{MHD_OPTION_END, 0, NULL}};

	if (check_cfg(cfg, &ss, &sl, &loopback, &tls, err, errlen) < 0 ||
	    !(h = http_alloc(cfg, jobs, err, errlen)))
		return NULL;
	if (tls) {
		size_t cert_len;

		if (read_pem(cfg->tls_cert, "--tls-cert", &h->tls_cert, &cert_len, err, errlen) ||
		    read_pem(cfg->tls_key, "--tls-key", &h->tls_key, &h->tls_key_len, err, errlen))
			goto fail;
		tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
		tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
		flags |= MHD_USE_TLS;
	}
	if ((fd = listen_on(cfg->listen, &ss, &sl, err, errlen)) < 0 ||
	    guard_start(h, err, errlen) < 0)
		goto fail;
	h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->d = MHD_start_daemon(
	        flags, 0, NULL, NULL, handler, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
	        MHD_OPTION_NOTIFY_CONNECTION, guard_notify, h, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	        (size_t)(64 * 1024), MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
	        MHD_OPTION_PER_IP_CONNECTION_LIMIT, CONN_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
	if (!h->d) {
		/* MHD may or may not have closed FD; leaking it beats closing someone else's. */
		fd = -1;
		snprintf(err, errlen, "cannot start the HTTP server on %s%s", cfg->listen,
		         tls ? " (is --tls-key the key of --tls-cert?)" : "");
		goto fail;
	}
	if (!loopback && !tls)
		dr_warn("WARNING: %s is served over plain HTTP: the API token and every job travel "
		        "in clear text to anyone on the network; use --tls-cert FILE --tls-key "
		        "FILE",
		        cfg->listen);
	dr_debug("HTTP API on %s://%s (port %d)%s%s", tls ? "https" : "http", cfg->listen, h->port,
	         h->token ? ", token required" : "", h->read_only ? ", read-only" : "");
	return h;
fail:
	if (fd >= 0)
		close(fd);
	http_free(h);
	return NULL;
}

void dr_http_stop(dr_http *h)
{
	if (!h)
		return;
	/* Wake the long-polls, or stopping would wait for each to time out. */
	pthread_mutex_lock(&h->tr.mu);
	h->tr.stopping = true;
	pthread_cond_broadcast(&h->tr.cv);
	pthread_mutex_unlock(&h->tr.mu);
	guard_stop(h);
	MHD_stop_daemon(h->d);
	http_free(h);
}

int dr_http_port(const dr_http *h)
{
	return h ? h->port : -1;
}
