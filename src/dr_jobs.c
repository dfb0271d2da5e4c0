/* Job table: jobs, their states and published status behind one mutex, with an append-only journal.
 */
#include "dr_jobs.h"
#include "dr_log.h"
#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_NAME "jobs.journal"
#define ID_BYTES     6 /* 12 hex characters */

struct job {
	char id[DR_JOB_ID_MAX];
	dr_jobspec spec;
	dr_job_state state;
	time_t submitted;
	unsigned long long seq; /* submission order */
	bool taken, cancel_req;
	cJSON *status; /* last published status object, or NULL */
};

struct dr_jobs {
	pthread_mutex_t mu;
	struct job **v;
	size_t n, cap;
	size_t max_queued;
	size_t max_frames; /* frames of unfinished jobs, 0 = no limit */
	unsigned long long seq;
	int jfd; /* journal, or -1 */
	dr_metrics metrics;
};

const char *dr_job_state_name(dr_job_state st)
{
	switch (st) {
	case DR_JOB_QUEUED:
		return "queued";
	case DR_JOB_RUNNING:
		return "running";
	case DR_JOB_DONE:
		return "done";
	case DR_JOB_FAILED:
		return "failed";
	case DR_JOB_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

static bool state_from_name(const char *s, dr_job_state *st)
{
	for (int i = DR_JOB_QUEUED; i <= DR_JOB_CANCELLED; i++)
		if (s && strcmp(s, dr_job_state_name((dr_job_state)i)) == 0) {
			*st = (dr_job_state)i;
			return true;
		}
	return false;
}

static bool finished(dr_job_state st)
{
	return st == DR_JOB_DONE || st == DR_JOB_FAILED || st == DR_JOB_CANCELLED;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	dr_jobspec_free(&j->spec);
	cJSON_Delete(j->status);
	free(j);
}

static struct job *find(const dr_jobs *t, const char *id)
{
	for (size_t i = 0; id && i < t->n; i++)
		if (strcmp(t->v[i]->id, id) == 0)
			return t->v[i];
	return NULL;
}

/* Make room for one more job; -1 on out of memory. */
static int reserve(dr_jobs *t)
{
	return dr_grow(&t->v, &t->cap, t->n + 1, sizeof *t->v);
}

/* Append one journal record (an object, consumed) as a line; -1 with ERR on failure. */
static int journal_write(dr_jobs *t, cJSON *rec, char *err, size_t errlen)
{
	char *line = NULL;
	size_t len, off = 0;
	int rc = -1;

	if (t->jfd < 0) {
		cJSON_Delete(rec);
		return 0;
	}
	if (!rec || !(line = cJSON_PrintUnformatted(rec))) {
		snprintf(err, errlen, "out of memory writing the job journal");
		goto out;
	}
	len = strlen(line);
	line[len] = '\n'; /* replaces the NUL: LEN + 1 bytes go out in one write */
	while (off < len + 1) {
		ssize_t w = write(t->jfd, line + off, len + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(err, errlen, "cannot write the job journal: %s",
			         w < 0 ? strerror(errno) : "short write");
			goto out;
		}
		off += (size_t)w;
	}
	rc = 0;
out:
	cJSON_free(line);
	cJSON_Delete(rec);
	return rc;
}

/* A journal record {"op":OP,"id":ID}, or NULL on out of memory. */
static cJSON *record(const char *op, const char *id)
{
	cJSON *r = cJSON_CreateObject();

	if (r && (!cJSON_AddStringToObject(r, "op", op) || !cJSON_AddStringToObject(r, "id", id))) {
		cJSON_Delete(r);
		return NULL;
	}
	return r;
}

/* Journal a finished state with its status; failures are logged, not fatal. */
static void journal_end(dr_jobs *t, const struct job *j)
{
	cJSON *r = record("end", j->id);
	cJSON *status = j->status ? cJSON_Duplicate(j->status, true) : NULL;
	char err[DR_ERRLEN];

	if (r && (!cJSON_AddStringToObject(r, "state", dr_job_state_name(j->state)) ||
	          (j->status && (!status || !cJSON_AddItemToObject(r, "status", status))))) {
		cJSON_Delete(status);
		cJSON_Delete(r);
		r = NULL;
	} else if (!r) {
		cJSON_Delete(status);
	}
	if (!r) {
		dr_warn("job %s: out of memory journaling its end", j->id);
		return;
	}
	if (journal_write(t, r, err, sizeof(err)) < 0)
		dr_warn("job %s: %s", j->id, err);
}

/* Apply one journal line; unknown or malformed records are skipped with a warning. */
static void replay_line(dr_jobs *t, const char *line, size_t lineno)
{
	cJSON *r = cJSON_Parse(line);
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(r, "op");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
	struct job *j;
	char err[DR_ERRLEN];

	if (!cJSON_IsString(op) || !cJSON_IsString(id) || !id->valuestring[0] ||
	    strlen(id->valuestring) >= DR_JOB_ID_MAX) {
		dr_warn("job journal line %zu is not a record; skipped", lineno);
		goto out;
	}
	j = find(t, id->valuestring);
	if (strcmp(op->valuestring, "submit") == 0) {
		const cJSON *sub = cJSON_GetObjectItemCaseSensitive(r, "submitted");
		struct job *nj;

		if (j || reserve(t) < 0 || !(nj = calloc(1, sizeof(*nj)))) {
			dr_warn("job journal line %zu: %s; skipped", lineno,
			        j ? "job submitted twice" : "out of memory");
			goto out;
		}
		if (dr_jobspec_from_journal(cJSON_GetObjectItemCaseSensitive(r, "spec"), &nj->spec,
		                            err, sizeof(err)) < 0) {
			dr_warn("job journal line %zu: %s; skipped", lineno, err);
			free(nj);
			goto out;
		}
		memcpy(nj->id, id->valuestring, strlen(id->valuestring) + 1);
		nj->submitted = cJSON_IsNumber(sub) ? (time_t)sub->valuedouble : 0;
		nj->seq = ++t->seq;
		nj->state = DR_JOB_QUEUED;
		t->v[t->n++] = nj;
	} else if (!j) {
		dr_warn("job journal line %zu: unknown job %s; skipped", lineno, id->valuestring);
	} else if (strcmp(op->valuestring, "state") == 0 || strcmp(op->valuestring, "end") == 0) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "state");
		cJSON *status = cJSON_DetachItemFromObjectCaseSensitive(r, "status");
		dr_job_state s;

		if (!cJSON_IsString(st) || !state_from_name(st->valuestring, &s)) {
			dr_warn("job journal line %zu: bad state; skipped", lineno);
			cJSON_Delete(status);
			goto out;
		}
		j->state = s;
		if (cJSON_IsObject(status)) {
			cJSON_Delete(j->status);
			j->status = status;
		} else {
			cJSON_Delete(status);
		}
	} else if (strcmp(op->valuestring, "cancel") == 0) {
		j->cancel_req = true;
	} else {
		dr_warn("job journal line %zu: unknown op; skipped", lineno);
	}
out:
	cJSON_Delete(r);
}

/* Replay the journal open on FD (read from the start); cut a torn last line off. */
static int replay(dr_jobs *t, int fd, const char *path, char *err, size_t errlen)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	off_t good = 0, pos = 0;
	ssize_t n;
	int dfd = dup(fd);

	if (dfd < 0 || !(f = fdopen(dfd, "r"))) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		pos += n;
		lineno++;
		if (line[n - 1] != '\n') {
			dr_warn("%s: last line is incomplete (a crash while writing?); dropped",
			        path);
			break;
		}
		line[n - 1] = '\0';
		good = pos;
		replay_line(t, line, lineno);
	}
	free(line);
	fclose(f);
	if (pos != good && ftruncate(fd, good) < 0) {
		return dr_seterr(err, errlen, "cannot repair %s: %s", path, strerror(errno));
	}
	return 0;
}

dr_jobs *dr_jobs_create(const char *journal_dir, size_t max_queued, char *err, size_t errlen)
{
	dr_jobs *t = calloc(1, sizeof(*t));
	char path[4096];
	int w;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->jfd = -1;
	t->max_queued = max_queued;
	if (pthread_mutex_init(&t->mu, NULL) != 0) {
		snprintf(err, errlen, "cannot create the job table's lock");
		free(t);
		return NULL;
	}
	if (!journal_dir)
		return t;
	w = snprintf(path, sizeof(path), "%s/" JOURNAL_NAME, journal_dir);
	if (w < 0 || (size_t)w >= sizeof(path)) {
		snprintf(err, errlen, "journal directory '%s' is too long", journal_dir);
		goto fail;
	}
	t->jfd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (t->jfd < 0) {
		snprintf(err, errlen, "cannot open the job journal %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(t->jfd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "job journal %s is in use by another drender (%s)", path,
		         strerror(errno));
		goto fail;
	}
	if (replay(t, t->jfd, path, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < t->n; i++) {
		struct job *j = t->v[i];
		if (finished(j->state))
			continue;
		if (j->cancel_req) {
			j->state = DR_JOB_CANCELLED;
			journal_end(t, j);
		} else {
			j->state = DR_JOB_QUEUED;
		}
	}
	return t;
fail:
	dr_jobs_destroy(t);
	return NULL;
}

void dr_jobs_destroy(dr_jobs *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		job_free(t->v[i]);
	free(t->v);
	if (t->jfd >= 0)
		close(t->jfd);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* A fresh random id not in T; -1 if no randomness is to be had. */
static int new_id(const dr_jobs *t, char *id)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[ID_BYTES];

	do {
		size_t got = 0;
		while (got < sizeof(b)) {
			ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			got += (size_t)r;
		}
		for (size_t i = 0; i < sizeof(b); i++) {
			id[2 * i] = hex[b[i] >> 4];
			id[2 * i + 1] = hex[b[i] & 15];
		}
		id[2 * sizeof(b)] = '\0';
	} while (find(t, id));
	return 0;
}

static size_t count_state(const dr_jobs *t, dr_job_state st)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		n += t->v[i]->state == st;
	return n;
}

void dr_jobs_set_max_frames(dr_jobs *t, size_t n)
{
	pthread_mutex_lock(&t->mu);
	t->max_frames = n;
	pthread_mutex_unlock(&t->mu);
}

/* Frames of jobs that are queued or running. */
static size_t unfinished_frames(const dr_jobs *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i]->state == DR_JOB_QUEUED || t->v[i]->state == DR_JOB_RUNNING)
			n += t->v[i]->spec.frames.n;
	return n;
}

int dr_jobs_submit(dr_jobs *t, dr_jobspec *spec, const char *output_root, char *id, size_t idlen,
                   char *err, size_t errlen)
{
	struct job *j = NULL;
	cJSON *rec = NULL, *js;
	int rc = -1;

	pthread_mutex_lock(&t->mu);
	if (t->max_queued && count_state(t, DR_JOB_QUEUED) >= t->max_queued) {
		snprintf(err, errlen, "the queue is full (%zu jobs waiting): try again later",
		         t->max_queued);
		rc = -2;
		goto out;
	}
	if (t->max_frames) {
		size_t have = unfinished_frames(t);
		if (have + spec->frames.n > t->max_frames) {
			snprintf(
			        err, errlen,
			        "too many frames waiting: %zu in unfinished jobs + %zu asked > the "
			        "limit of %zu (--max-queued-frames); try again later",
			        have, spec->frames.n, t->max_frames);
			rc = -2;
			goto out;
		}
	}
	if (reserve(t) < 0 || !(j = calloc(1, sizeof(*j)))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (new_id(t, j->id) < 0) {
		snprintf(err, errlen, "cannot make a job id: %s", strerror(errno));
		goto out;
	}
	if (strlen(j->id) >= idlen) {
		snprintf(err, errlen, "job id buffer too small");
		goto out;
	}
	j->spec = *spec;
	if (!j->spec.render.output[0] && output_root &&
	    dr_jobspec_set_output(&j->spec, output_root, j->id, err, errlen) < 0)
		goto out;
	j->submitted = time(NULL);
	j->state = DR_JOB_QUEUED;
	rec = record("submit", j->id);
	js = dr_jobspec_to_json(&j->spec);
	if (!rec || !js || !cJSON_AddNumberToObject(rec, "submitted", (double)j->submitted) ||
	    !cJSON_AddItemToObject(rec, "spec", js)) {
		cJSON_Delete(js); /* not attached: AddItem failed or was never tried */
		cJSON_Delete(rec);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (journal_write(t, rec, err, errlen) < 0)
		goto out;
	j->seq = ++t->seq;
	t->v[t->n++] = j;
	memcpy(id, j->id, strlen(j->id) + 1);
	*spec = j->spec; /* the table owns the frames now; the caller's copy must not free them */
	memset(&spec->frames, 0, sizeof(spec->frames));
	j = NULL;
	rc = 0;
out:
	if (j) {
		memset(&j->spec, 0, sizeof(j->spec)); /* still the caller's */
		job_free(j);
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* ISO-8601 UTC time of T into BUF. */
static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "1970-01-01T00:00:00Z");
}

/* J's status object (caller deletes), or NULL on out of memory. */
static cJSON *status_object(const struct job *j)
{
	static const char *const own[] = {"jobId", "state", "submitted", "priority"};
	cJSON *o = cJSON_CreateObject(), *c;
	char when[32];
	bool ok;

	if (!o)
		return NULL;
	iso_time(j->submitted, when, sizeof(when));
	ok = cJSON_AddStringToObject(o, "jobId", j->id) &&
	     cJSON_AddStringToObject(o, "state", dr_job_state_name(j->state)) &&
	     cJSON_AddStringToObject(o, "submitted", when) &&
	     cJSON_AddNumberToObject(o, "priority", j->spec.priority);
	if (ok && j->cancel_req && !finished(j->state))
		ok = cJSON_AddTrueToObject(o, "cancelRequested") != NULL;
	cJSON_ArrayForEach(c, j->status)
	{
		bool skip = !c->string;
		for (size_t i = 0; i < sizeof(own) / sizeof(own[0]) && !skip; i++)
			skip = strcmp(c->string, own[i]) == 0;
		if (!ok || skip)
			continue;
		cJSON *d = cJSON_Duplicate(c, true);
		ok = d && cJSON_AddItemToObject(o, c->string, d);
		if (!ok)
			cJSON_Delete(d);
	}
	if (ok && !cJSON_GetObjectItemCaseSensitive(o, "frames")) {
		cJSON *f = cJSON_AddObjectToObject(o, "frames");
		double n = (double)j->spec.frames.n;
		ok = f && cJSON_AddNumberToObject(f, "total", n) &&
		     cJSON_AddNumberToObject(f, "done", 0) &&
		     cJSON_AddNumberToObject(f, "skipped", 0) &&
		     cJSON_AddNumberToObject(f, "failed", 0) &&
		     cJSON_AddNumberToObject(f, "running", 0) &&
		     cJSON_AddNumberToObject(f, "pending", finished(j->state) ? 0 : n);
		if (ok && !cJSON_GetObjectItemCaseSensitive(o, "progress"))
			ok = cJSON_AddNumberToObject(o, "progress", 0) != NULL;
	}
	if (ok && !cJSON_GetObjectItemCaseSensitive(o, "output") && j->spec.render.output[0])
		ok = cJSON_AddStringToObject(o, "output", j->spec.render.output) != NULL;
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Print O (deleted) into a malloc'd string (free()-able), or NULL. */
static char *print_free(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	char *copy = s ? strdup(s) : NULL;

	cJSON_free(s);
	cJSON_Delete(o);
	return copy;
}

char *dr_jobs_status(dr_jobs *t, const char *id, dr_job_state *state)
{
	struct job *j;
	char *s = NULL;

	pthread_mutex_lock(&t->mu);
	j = find(t, id);
	if (j) {
		if (state)
			*state = j->state;
		s = print_free(status_object(j));
	}
	pthread_mutex_unlock(&t->mu);
	return s;
}

char *dr_jobs_list(dr_jobs *t)
{
	cJSON *o = cJSON_CreateObject(), *a = o ? cJSON_AddArrayToObject(o, "jobs") : NULL;
	char *s = NULL;

	pthread_mutex_lock(&t->mu);
	if (a) {
		size_t i = t->n;
		while (i-- > 0) {
			cJSON *js = status_object(t->v[i]);
			if (!js || !cJSON_AddItemToArray(a, js)) {
				cJSON_Delete(js);
				goto out;
			}
		}
		s = print_free(o);
		o = NULL;
	}
out:
	pthread_mutex_unlock(&t->mu);
	cJSON_Delete(o);
	return s;
}

int dr_jobs_cancel(dr_jobs *t, const char *id)
{
	struct job *j;
	char err[DR_ERRLEN];
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	j = find(t, id);
	if (!j) {
		rc = -1;
	} else if (finished(j->state)) {
		rc = 1;
	} else if (j->state == DR_JOB_QUEUED && !j->taken) {
		j->state = DR_JOB_CANCELLED;
		journal_end(t, j);
	} else if (!j->cancel_req) {
		j->cancel_req = true;
		if (journal_write(t, record("cancel", j->id), err, sizeof(err)) < 0)
			dr_warn("job %s: %s", j->id, err);
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int dr_jobs_frame(dr_jobs *t, const char *id, int frame, char *path, size_t pathlen, char *format,
                  size_t formatlen)
{
	struct job *j;
	dr_outpath o;
	char err[DR_ERRLEN];
	struct stat st;
	int rc;

	pthread_mutex_lock(&t->mu);
	j = find(t, id);
	if (!j) {
		rc = -1;
	} else if (!j->spec.frames.n ||
	           !bsearch(&frame, j->spec.frames.v, j->spec.frames.n, sizeof(int), cmp_int)) {
		rc = -2;
	} else if (dr_outpath_init(&o, j->spec.render.output[0] ? j->spec.render.output : NULL,
	                           j->spec.render.scene, j->spec.render.format, err,
	                           sizeof(err)) < 0 ||
	           dr_outpath_frame(&o, frame, path, pathlen) < 0 ||
	           (size_t)snprintf(format, formatlen, "%s", j->spec.render.format) >= formatlen) {
		rc = -3;
	} else {
		rc = 0;
	}
	pthread_mutex_unlock(&t->mu);
	if (rc == 0 && !(stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0))
		rc = -3;
	return rc;
}

/* A growing text buffer for the metrics page. */
struct text {
	char *buf;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		w = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt,
		              ap);
		va_end(ap);
		if (w < 0) {
			t->oom = true;
			return;
		}
		if (t->buf && (size_t)w < t->cap - t->len) {
			t->len += (size_t)w;
			return;
		}
		if (dr_grow(&t->buf, &t->cap, t->len + (size_t)w + 1, 1) != 0) {
			t->oom = true;
			return;
		}
	}
}

char *dr_jobs_metrics(dr_jobs *t)
{
	static const char *const le[DR_HIST_BUCKETS] = {"0.1", "0.25", "0.5", "1",   "2.5", "5",
	                                                "10",  "30",   "60",  "120", "300", "600"};
	struct text x = {0};
	dr_metrics m;
	size_t by_state[DR_JOB_CANCELLED + 1] = {0};
	unsigned long long cum = 0;

	pthread_mutex_lock(&t->mu);
	m = t->metrics;
	for (size_t i = 0; i < t->n; i++)
		by_state[t->v[i]->state]++;
	pthread_mutex_unlock(&t->mu);

	text_add(&x, "# HELP drender_jobs Jobs known to the service, by state.\n"
	             "# TYPE drender_jobs gauge\n");
	for (int s = DR_JOB_QUEUED; s <= DR_JOB_CANCELLED; s++)
		text_add(&x, "drender_jobs{state=\"%s\"} %zu\n", dr_job_state_name((dr_job_state)s),
		         by_state[s]);
	text_add(&x,
	         "# HELP drender_frames_total Frames finished since the service started, by "
	         "outcome.\n"
	         "# TYPE drender_frames_total counter\n"
	         "drender_frames_total{outcome=\"done\"} %llu\n"
	         "drender_frames_total{outcome=\"failed\"} %llu\n"
	         "drender_frames_total{outcome=\"skipped\"} %llu\n",
	         m.frames_done, m.frames_failed, m.frames_skipped);
	text_add(&x,
	         "# HELP drender_frame_attempts_failed_total Render attempts that failed (each "
	         "retry counts).\n"
	         "# TYPE drender_frame_attempts_failed_total counter\n"
	         "drender_frame_attempts_failed_total %llu\n",
	         m.attempts_failed);
	text_add(&x, "# HELP drender_frame_render_seconds Time to render one frame that was "
	             "done.\n"
	             "# TYPE drender_frame_render_seconds histogram\n");
	for (int i = 0; i < DR_HIST_BUCKETS; i++) {
		cum += m.hist[i];
		text_add(&x, "drender_frame_render_seconds_bucket{le=\"%s\"} %llu\n", le[i], cum);
	}
	cum += m.hist[DR_HIST_BUCKETS];
	text_add(&x,
	         "drender_frame_render_seconds_bucket{le=\"+Inf\"} %llu\n"
	         "drender_frame_render_seconds_sum %.6f\n"
	         "drender_frame_render_seconds_count %llu\n",
	         cum, m.seconds_sum, cum);
	text_add(&x,
	         "# HELP drender_render_nodes Render nodes, by state.\n"
	         "# TYPE drender_render_nodes gauge\n"
	         "drender_render_nodes{state=\"busy\"} %d\n"
	         "drender_render_nodes{state=\"idle\"} %d\n",
	         m.nodes_busy, m.nodes_idle);
	if (x.oom) {
		free(x.buf);
		return NULL;
	}
	return x.buf;
}

int dr_jobs_take(dr_jobs *t, char *id, size_t idlen, dr_jobspec *spec)
{
	struct job *best = NULL;
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->n; i++) {
		struct job *j = t->v[i];
		if (j->state != DR_JOB_QUEUED || j->taken || j->cancel_req)
			continue;
		if (!best || j->spec.priority > best->spec.priority ||
		    (j->spec.priority == best->spec.priority && j->seq < best->seq))
			best = j;
	}
	if (best) {
		if (strlen(best->id) >= idlen || dr_jobspec_copy(spec, &best->spec) < 0) {
			rc = -1;
		} else {
			memcpy(id, best->id, strlen(best->id) + 1);
			best->taken = true;
			rc = 1;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

bool dr_jobs_cancel_requested(dr_jobs *t, const char *id)
{
	struct job *j;
	bool r;

	pthread_mutex_lock(&t->mu);
	j = find(t, id);
	r = j && j->cancel_req;
	pthread_mutex_unlock(&t->mu);
	return r;
}

void dr_jobs_publish(dr_jobs *t, const char *id, dr_job_state st, const char *status_json)
{
	dr_jobs_publish_json(t, id, st, status_json ? cJSON_Parse(status_json) : NULL);
}

void dr_jobs_publish_json(dr_jobs *t, const char *id, dr_job_state st, cJSON *status)
{
	struct job *j;
	char err[DR_ERRLEN];

	if (status && !cJSON_IsObject(status)) {
		dr_warn("job %s: published status is not a JSON object; ignored", id);
		cJSON_Delete(status);
		status = NULL;
	}
	pthread_mutex_lock(&t->mu);
	j = find(t, id);
	if (!j || finished(j->state)) {
		cJSON_Delete(status);
		goto out;
	}
	if (status) {
		cJSON_Delete(j->status);
		j->status = status;
	}
	if (st == j->state)
		goto out;
	j->state = st;
	if (st == DR_JOB_QUEUED) {
		/* taken but not started yet: it stays taken, a replay queues it anyway */
	} else if (finished(st)) {
		journal_end(t, j);
	} else {
		cJSON *r = record("state", j->id);
		if (r && !cJSON_AddStringToObject(r, "state", dr_job_state_name(st))) {
			cJSON_Delete(r);
			r = NULL;
		}
		if (journal_write(t, r, err, sizeof(err)) < 0)
			dr_warn("job %s: %s", j->id, err);
	}
out:
	pthread_mutex_unlock(&t->mu);
}

void dr_jobs_publish_metrics(dr_jobs *t, const dr_metrics *m)
{
	pthread_mutex_lock(&t->mu);
	t->metrics = *m;
	pthread_mutex_unlock(&t->mu);
}
