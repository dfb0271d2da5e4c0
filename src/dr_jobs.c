/* Job table: jobs, their states and published status behind one mutex, recorded in SQLite.
 *
 * The database (DIR/jobs.db) holds every job the service knows; memory holds only the unfinished
 * ones (with their live status), found by id in a hash table and by priority in a heap, so that
 * no operation on one job walks the others. A finished job is written once (state, end time and
 * final status) and then answered from the database until it is evicted. */
#include "dr_jobs.h"
#include "dr_log.h"
#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DB_NAME       "jobs.db"
#define LOCK_NAME     "jobs.lock"
#define JOURNAL_NAME  "jobs.journal"
#define MIGRATED_NAME "jobs.journal.migrated"
#define ID_BYTES      6    /* 12 hex characters */
#define EVICT_EVERY   10.0 /* seconds between eviction passes */
#define BUSY_MS       1000 /* wait this long for a reader (the sqlite3 shell) to let go */

struct job {
	char id[DR_JOB_ID_MAX];
	dr_jobspec spec;
	dr_job_state state;
	time_t submitted;
	long long seq; /* submission order: the row's key */
	bool taken, cancel_req;
	cJSON *status;     /* last published status object, or NULL */
	struct job *hnext; /* next in its hash bucket */
	size_t heap_i;     /* 1 + its index in the heap of jobs to take; 0: not there */
	size_t vi;         /* its index in v */
};

/* The statements, prepared once. */
enum {
	S_INSERT,
	S_END,
	S_CANCEL,
	S_GET,
	S_PAGE,
	S_EVICT,
	S_COUNT,
	S_N,
};
static const char *const stmt_sql[S_N] = {
        [S_INSERT] = "INSERT INTO jobs(id, submitted, priority, nframes, output, spec, state, "
                     "cancel_req, ended, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [S_END] = "UPDATE jobs SET state = ?2, ended = ?3, status = ?4 WHERE seq = ?1",
        [S_CANCEL] = "UPDATE jobs SET cancel_req = 1 WHERE seq = ?1",
        [S_GET] = "SELECT seq, id, submitted, priority, nframes, output, state, cancel_req, "
                  "status, spec FROM jobs WHERE id = ?1",
        [S_PAGE] = "SELECT seq, id, submitted, priority, nframes, output, state, cancel_req, "
                   "status FROM jobs WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
        [S_EVICT] = "DELETE FROM jobs WHERE ended IS NOT NULL AND (ended < ?1 OR seq IN (SELECT "
                    "seq FROM jobs WHERE ended IS NOT NULL ORDER BY ended DESC, seq DESC "
                    "LIMIT -1 OFFSET ?2))",
        [S_COUNT] = "SELECT state, count(*) FROM jobs WHERE ended IS NOT NULL GROUP BY state",
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS jobs(\n"
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT, -- submission order, never reused\n"
        "  id TEXT NOT NULL UNIQUE,\n"
        "  submitted INTEGER NOT NULL,  -- Unix time\n"
        "  priority INTEGER NOT NULL,\n"
        "  nframes INTEGER NOT NULL,\n"
        "  output TEXT NOT NULL,\n"
        "  spec TEXT NOT NULL,          -- dr_jobspec_to_json\n"
        "  state TEXT NOT NULL,         -- queued (also while running), done, failed, cancelled\n"
        "  cancel_req INTEGER NOT NULL,\n"
        "  ended REAL,                  -- Unix time it finished; NULL while unfinished\n"
        "  status TEXT                  -- its last published status (JSON), or NULL\n"
        ");\n"
        "CREATE INDEX IF NOT EXISTS jobs_ended ON jobs(ended, seq) WHERE ended IS NOT NULL;\n";

/* One job's per-frame state for GET /jobs/<id>/frames, kept apart from struct job so that it
 * outlives a finished job's trip to the database (the DR_JOBS_FRAMES_KEEP last ones). */
struct fstate {
	char id[DR_JOB_ID_MAX];
	size_t n;
	int *frame, *node, *attempts;
	char *state;
	double *seconds, *started;
	unsigned long long *ver; /* per cell: the version it last changed at */
	char **err;
	unsigned long long base, version; /* its first and its last version */
	cJSON *hosts;
	bool final;
	double ended; /* dr_now() when it became final */
};

struct dr_jobs {
	pthread_mutex_t mu;
	dr_jobs_notify_fn notify; /* dr_jobs_set_notify; under mu */
	void *notify_ctx;
	struct fstate **fs; /* per-frame states: unfinished jobs' and the last finished ones' */
	size_t nfs, capfs;
	/* the last frames version given; starts at the wall clock in ms, so that a version from an
	 * earlier run of the service is below every version of this one */
	unsigned long long fver;
	struct job **v; /* jobs in memory: unfinished, or finished but not recorded yet */
	size_t n, cap;
	struct job **hash; /* by id; hcap is a power of two */
	size_t hcap;
	struct job **heap; /* queued jobs not taken yet: highest priority, then oldest, on top */
	size_t hn, heapcap;
	size_t count[DR_JOB_CANCELLED + 1]; /* every job known, by state */
	size_t unrecorded;                  /* finished jobs in memory whose end is not recorded */
	dr_jobs_cfg cfg;
	char path[4096]; /* the database, for messages */
	sqlite3 *db;
	sqlite3_stmt *st[S_N];
	int lockfd;
	double last_evict;
	size_t max_frames; /* frames of unfinished jobs, 0 = no limit */
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

/* ---- memory: hash by id, heap by priority ---- */

static size_t hash_id(const char *id)
{
	size_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

static struct job *find(const dr_jobs *t, const char *id)
{
	if (!id || !t->hcap)
		return NULL;
	for (struct job *j = t->hash[hash_id(id) & (t->hcap - 1)]; j; j = j->hnext)
		if (strcmp(j->id, id) == 0)
			return j;
	return NULL;
}

/* Does A go before B (higher priority, then submitted earlier)? */
static bool heap_before(const struct job *a, const struct job *b)
{
	return a->spec.priority > b->spec.priority ||
	       (a->spec.priority == b->spec.priority && a->seq < b->seq);
}

static void heap_set(dr_jobs *t, size_t i, struct job *j)
{
	t->heap[i] = j;
	j->heap_i = i + 1;
}

static void heap_fix(dr_jobs *t, size_t i)
{
	struct job *j = t->heap[i];

	while (i > 0 && heap_before(j, t->heap[(i - 1) / 2])) {
		heap_set(t, i, t->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= t->hn)
			break;
		if (c + 1 < t->hn && heap_before(t->heap[c + 1], t->heap[c]))
			c++;
		if (!heap_before(t->heap[c], j))
			break;
		heap_set(t, i, t->heap[c]);
		i = c;
	}
	heap_set(t, i, j);
}

static void heap_remove(dr_jobs *t, struct job *j)
{
	size_t i;

	if (!j->heap_i)
		return;
	i = j->heap_i - 1;
	j->heap_i = 0;
	if (i != --t->hn) {
		t->heap[i] = t->heap[t->hn];
		heap_fix(t, i);
	}
}

/* Room for one more job in v, the hash and the heap; -1 on out of memory (nothing changed but
 * capacity). */
static int reserve(dr_jobs *t)
{
	if (dr_grow(&t->v, &t->cap, t->n + 1, sizeof *t->v) < 0 ||
	    dr_grow(&t->heap, &t->heapcap, t->n + 1, sizeof *t->heap) < 0)
		return -1;
	if (t->n + 1 > t->hcap) {
		size_t nc = t->hcap ? 2 * t->hcap : 64;
		struct job **nh = calloc(nc, sizeof *nh);
		if (!nh)
			return -1;
		for (size_t i = 0; i < t->n; i++) {
			struct job *j = t->v[i];
			size_t b = hash_id(j->id) & (nc - 1);
			j->hnext = nh[b];
			nh[b] = j;
		}
		free(t->hash);
		t->hash = nh;
		t->hcap = nc;
	}
	return 0;
}

/* Put J (state set) into memory; reserve() must have succeeded. */
static void mem_add(dr_jobs *t, struct job *j)
{
	size_t b = hash_id(j->id) & (t->hcap - 1);

	j->vi = t->n;
	t->v[t->n++] = j;
	j->hnext = t->hash[b];
	t->hash[b] = j;
	j->heap_i = 0;
	if (j->state == DR_JOB_QUEUED && !j->taken && !j->cancel_req) {
		t->hn++;
		heap_set(t, t->hn - 1, j);
		heap_fix(t, t->hn - 1);
	}
	t->count[j->state]++;
}

/* Take J out of memory (the caller frees it); counts are left alone. */
static void mem_remove(dr_jobs *t, struct job *j)
{
	struct job **p = &t->hash[hash_id(j->id) & (t->hcap - 1)];

	while (*p != j)
		p = &(*p)->hnext;
	*p = j->hnext;
	heap_remove(t, j);
	t->v[j->vi] = t->v[--t->n];
	t->v[j->vi]->vi = j->vi;
}

static void set_state(dr_jobs *t, struct job *j, dr_job_state st)
{
	t->count[j->state]--;
	t->count[st]++;
	j->state = st;
	if (st != DR_JOB_QUEUED)
		heap_remove(t, j);
}

/* ---- database ---- */

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The database's last error, with the system's reason when there is one, for WHAT. */
static int db_err(dr_jobs *t, char *err, size_t errlen, const char *what)
{
	int se = sqlite3_system_errno(t->db);

	if (se && sqlite3_errcode(t->db) != SQLITE_FULL)
		return dr_seterr(err, errlen, "%s in %s: %s (%s)", what, t->path,
		                 sqlite3_errmsg(t->db), strerror(se));
	return dr_seterr(err, errlen, "%s in %s: %s", what, t->path, sqlite3_errmsg(t->db));
}

/* Run statement ST to its end (bindings set); SQLITE_DONE or the error, with the message kept in
 * the connection. The statement is reset and its bindings cleared. */
static int run(sqlite3_stmt *st)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* Text of OBJ (NULL: SQL NULL) bound to parameter I of ST; -1 on out of memory. */
static int bind_json(sqlite3_stmt *st, int i, const cJSON *obj)
{
	char *s;

	if (!obj)
		return sqlite3_bind_null(st, i) == SQLITE_OK ? 0 : -1;
	s = cJSON_PrintUnformatted(obj);
	if (!s)
		return -1;
	/* cJSON_free is free() here; SQLite takes the string over in every case */
	return sqlite3_bind_text(st, i, s, -1, cJSON_free) == SQLITE_OK ? 0 : -1;
}

/* Record J (a new row; ENDED is its end time for a finished J) and set J->seq. 0; -1 with ERR on
 * out of memory; -3 with ERR when the database refuses (full, I/O); -4 if the id is taken. */
static int db_insert(dr_jobs *t, struct job *j, double ended, char *err, size_t errlen)
{
	sqlite3_stmt *st = t->st[S_INSERT];
	cJSON *spec = dr_jobspec_to_json(&j->spec);
	bool fin = finished(j->state);
	int rc;

	if (!spec || bind_json(st, 6, spec) < 0 || bind_json(st, 10, fin ? j->status : NULL) < 0) {
		cJSON_Delete(spec);
		sqlite3_clear_bindings(st);
		return dr_seterr(err, errlen, "out of memory");
	}
	cJSON_Delete(spec);
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->submitted);
	sqlite3_bind_int(st, 3, j->spec.priority);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)j->spec.frames.n);
	sqlite3_bind_text(st, 5, j->spec.render.output, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, dr_job_state_name(fin ? j->state : DR_JOB_QUEUED), -1,
	                  SQLITE_STATIC);
	sqlite3_bind_int(st, 8, j->cancel_req);
	if (fin)
		sqlite3_bind_double(st, 9, ended);
	rc = run(st);
	if (rc != SQLITE_DONE) {
		db_err(t, err, errlen, "cannot record the job");
		return -3;
	}
	if (sqlite3_changes(t->db) == 0)
		return -4;
	j->seq = (long long)sqlite3_last_insert_rowid(t->db);
	return 0;
}

/* Record J's end (its state and last status). 0, or -1 with ERR. */
static int db_end(dr_jobs *t, const struct job *j, char *err, size_t errlen)
{
	sqlite3_stmt *st = t->st[S_END];

	if (bind_json(st, 4, j->status) < 0) {
		sqlite3_clear_bindings(st);
		return dr_seterr(err, errlen, "out of memory");
	}
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_text(st, 2, dr_job_state_name(j->state), -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, wall_now());
	if (run(st) != SQLITE_DONE)
		return db_err(t, err, errlen, "cannot record the end of the job");
	return 0;
}

/* J has just finished (its state is set): record it and let it go from memory, or keep it there
 * to try again later. */
static void job_ended(dr_jobs *t, struct job *j, bool retry)
{
	char err[DR_ERRLEN];

	if (db_end(t, j, err, sizeof err) < 0) {
		if (!retry) {
			dr_warn("job %s: %s; trying again later", j->id, err);
			t->unrecorded++;
		}
		return;
	}
	if (retry)
		t->unrecorded--;
	mem_remove(t, j);
	job_free(j);
}

/* Recount the finished jobs (the database's and the unrecorded ones in memory). */
static int recount(dr_jobs *t, char *err, size_t errlen)
{
	sqlite3_stmt *st = t->st[S_COUNT];
	size_t c[DR_JOB_CANCELLED + 1] = {0};
	dr_job_state s;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (state_from_name((const char *)sqlite3_column_text(st, 0), &s) && finished(s))
			c[s] += (size_t)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(t, err, errlen, "cannot count the jobs");
	for (size_t i = 0; t->unrecorded && i < t->n; i++)
		if (finished(t->v[i]->state))
			c[t->v[i]->state]++;
	for (int i = DR_JOB_DONE; i <= DR_JOB_CANCELLED; i++)
		t->count[i] = c[i];
	return 0;
}

/* Delete finished jobs beyond --keep-jobs or older than --keep-for. */
static void evict(dr_jobs *t)
{
	sqlite3_stmt *st = t->st[S_EVICT];
	char err[DR_ERRLEN];
	int changes;

	t->last_evict = dr_now();
	if (!t->cfg.keep_jobs && !(t->cfg.keep_for > 0))
		return;
	sqlite3_bind_double(st, 1, t->cfg.keep_for > 0 ? wall_now() - t->cfg.keep_for : -1e300);
	sqlite3_bind_int64(st, 2, t->cfg.keep_jobs ? (sqlite3_int64)t->cfg.keep_jobs : INT64_MAX);
	if (run(st) != SQLITE_DONE) {
		db_err(t, err, sizeof err, "cannot evict finished jobs");
		dr_warn("%s", err);
		return;
	}
	changes = sqlite3_changes(t->db);
	if (changes > 0) {
		dr_info("evicted %d finished job%s from the job table", changes,
		        changes == 1 ? "" : "s");
		if (recount(t, err, sizeof err) < 0)
			dr_warn("%s", err);
	}
}

/* Retry unrecorded ends; evict when it is time. */
static void housekeep(dr_jobs *t)
{
	for (size_t i = t->n; t->unrecorded && i-- > 0;)
		if (finished(t->v[i]->state))
			job_ended(t, t->v[i], true);
	if (dr_now() - t->last_evict >= EVICT_EVERY)
		evict(t);
}

/* ---- start-up: lock, open, import a journal, read ---- */

/* DIR/NAME into BUF; -1 with ERR if too long. */
static int join(char *buf, size_t len, const char *dir, const char *name, char *err, size_t errlen)
{
	int w = snprintf(buf, len, "%s/%s", dir, name);

	if (w < 0 || (size_t)w >= len)
		return dr_seterr(err, errlen, "directory '%s' is too long", dir);
	return 0;
}

/* The byte of jobs.db that the service holding it locks: far past anything SQLite locks (its
 * lock bytes sit at 1 GiB), so the two never meet. */
#define DB_LOCK_BYTE ((off_t)1 << 60)

/* One service per directory: hold a write lock on DIR/jobs.db itself (an open file description
 * lock, which SQLite's own locks and closes in this process leave alone, and which deleting a
 * file cannot sidestep: jobs.db is the database), and write who holds it into DIR/jobs.lock for
 * people to read. The lock dies with the process: after a crash, just start the service again. */
static int lock_dir(dr_jobs *t, const char *dir, char *err, size_t errlen)
{
	char p[4096], holder[256] = "", host[128] = "?";
	struct flock fl = {
	        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = DB_LOCK_BYTE, .l_len = 1};
	ssize_t n;
	int fd;

	if (join(p, sizeof p, dir, DB_NAME, err, errlen) < 0)
		return -1;
	t->lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (t->lockfd < 0)
		return dr_seterr(err, errlen, "cannot open the job database %s: %s", p,
		                 strerror(errno));
	if (fcntl(t->lockfd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;

		if (join(p, sizeof p, dir, LOCK_NAME, err, errlen) == 0 &&
		    (fd = open(p, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = read(fd, holder, sizeof holder - 1);
			holder[n > 0 ? n : 0] = '\0';
			holder[strcspn(holder, "\n")] = '\0';
			close(fd);
		}
		return dr_seterr(err, errlen,
		                 "job database %s/" DB_NAME " is in use by another drender (%s)",
		                 dir,
		                 holder[0]                    ? holder
		                 : e == EAGAIN || e == EACCES ? "jobs.lock, which names it, is gone"
		                                              : strerror(e));
	}
	if (join(p, sizeof p, dir, LOCK_NAME, err, errlen) < 0)
		return -1;
	gethostname(host, sizeof host - 1);
	n = snprintf(holder, sizeof holder, "pid %ld on host %s\n", (long)getpid(), host);
	/* best effort: a full disk must not keep the service from starting */
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, holder, (size_t)n) < 0)
		dr_debug("cannot write %s: %s", p, strerror(errno));
	if (fd >= 0)
		close(fd);
	return 0;
}

/* A journal record's job, replayed into memory (the import of an older drender's journal);
 * unknown or malformed records are skipped with a warning. */
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
		nj->seq = (long long)t->n;
		nj->state = DR_JOB_QUEUED;
		nj->taken = true; /* not in the heap: the import only lists them */
		mem_add(t, nj);
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
		set_state(t, j, s);
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

/* Forget every job in memory. */
static void mem_clear(dr_jobs *t)
{
	for (size_t i = 0; i < t->n; i++)
		job_free(t->v[i]);
	t->n = t->hn = 0;
	if (t->hcap)
		memset(t->hash, 0, t->hcap * sizeof *t->hash);
	memset(t->count, 0, sizeof t->count);
}

/* Import DIR/jobs.journal (an older drender's) in one transaction, then rename it
 * jobs.journal.migrated. No journal: nothing to do. A torn last line is dropped. */
static int migrate(dr_jobs *t, const char *dir, char *err, size_t errlen)
{
	char p[4096], q[4096], *line = NULL;
	size_t cap = 0, lineno = 0, imported = 0;
	ssize_t n;
	FILE *f = NULL;
	int fd, rc = -1;
	double now = wall_now();

	if (join(p, sizeof p, dir, JOURNAL_NAME, err, errlen) < 0 ||
	    join(q, sizeof q, dir, MIGRATED_NAME, err, errlen) < 0)
		return -1;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return dr_seterr(err, errlen, "cannot read the job journal %s: %s", p,
		                 strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return dr_seterr(err, errlen, "job journal %s is in use by another drender (%s)", p,
		                 strerror(errno));
	}
	if (!(f = fdopen(fd, "r"))) {
		close(fd);
		return dr_seterr(err, errlen, "cannot read %s: %s", p, strerror(errno));
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[n - 1] != '\n') {
			dr_warn("%s: last line is incomplete (a crash while writing?); dropped", p);
			break;
		}
		line[n - 1] = '\0';
		replay_line(t, line, lineno);
	}
	free(line);
	if (sqlite3_exec(t->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		db_err(t, err, errlen, "cannot import the job journal");
		goto out;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct job *j = t->v[i];
		int r;
		if (!finished(j->state))
			j->state = DR_JOB_QUEUED; /* running when the old service stopped */
		r = db_insert(t, j, now, err, errlen);
		if (r == -1 || r == -3) {
			sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		imported += r == 0;
	}
	if (sqlite3_exec(t->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_err(t, err, errlen, "cannot import the job journal");
		sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	/* Imported: a crash before the rename imports it again, and rows already there are kept. */
	if (rename(p, q) < 0)
		dr_warn("cannot rename %s to %s: %s", p, q, strerror(errno));
	dr_info("imported %zu jobs from %s into %s (the journal is kept as %s)", imported, p,
	        t->path, q);
	rc = 0;
out:
	fclose(f);
	mem_clear(t);
	return rc;
}

/* Read the unfinished jobs into memory (cancelled ones whose cancel was asked end now). */
static int load(dr_jobs *t, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL, *up = NULL;
	long long *bad = NULL;
	size_t nbad = 0, badcap = 0;
	int rc = -1, s;

	if (sqlite3_prepare_v2(
	            t->db,
	            "UPDATE jobs SET state = 'cancelled', ended = ?1 WHERE ended IS NULL "
	            "AND cancel_req",
	            -1, &up, NULL) != SQLITE_OK ||
	    sqlite3_bind_double(up, 1, wall_now()) != SQLITE_OK || run(up) != SQLITE_DONE) {
		db_err(t, err, errlen, "cannot read the jobs");
		goto out;
	}
	if (recount(t, err, errlen) < 0)
		goto out;
	if (sqlite3_prepare_v2(t->db,
	                       "SELECT seq, id, submitted, spec FROM jobs WHERE ended IS NULL "
	                       "ORDER BY seq",
	                       -1, &st, NULL) != SQLITE_OK) {
		db_err(t, err, errlen, "cannot read the jobs");
		goto out;
	}
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 1);
		const char *spec = (const char *)sqlite3_column_text(st, 3);
		cJSON *js = spec ? cJSON_Parse(spec) : NULL;
		struct job *j = NULL;
		char jerr[DR_ERRLEN] = "not JSON";

		if (!id || strlen(id) >= DR_JOB_ID_MAX || reserve(t) < 0 ||
		    !(j = calloc(1, sizeof *j)) ||
		    (js && dr_jobspec_from_journal(js, &j->spec, jerr, sizeof jerr) < 0) || !js) {
			dr_warn("job %s: %s; it is marked failed", id ? id : "?",
			        j ? jerr : "out of memory");
			free(j);
			cJSON_Delete(js);
			if (dr_grow(&bad, &badcap, nbad + 1, sizeof *bad) == 0)
				bad[nbad++] = sqlite3_column_int64(st, 0);
			continue;
		}
		cJSON_Delete(js);
		memcpy(j->id, id, strlen(id) + 1);
		j->seq = sqlite3_column_int64(st, 0);
		j->submitted = (time_t)sqlite3_column_int64(st, 2);
		j->state = DR_JOB_QUEUED;
		mem_add(t, j);
	}
	if (s != SQLITE_DONE) {
		db_err(t, err, errlen, "cannot read the jobs");
		goto out;
	}
	for (size_t i = 0; i < nbad; i++) {
		struct job b = {.seq = bad[i], .state = DR_JOB_FAILED};
		if (db_end(t, &b, err, errlen) < 0)
			goto out;
		t->count[DR_JOB_FAILED]++;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(up);
	free(bad);
	return rc;
}

/* Open (or create) the database: pragmas, schema, statements. */
static int db_open(dr_jobs *t, const char *dir, char *err, size_t errlen)
{
	char sql[64];

	if (dir) {
		if (join(t->path, sizeof t->path, dir, DB_NAME, err, errlen) < 0)
			return -1;
	} else {
		snprintf(t->path, sizeof t->path, ":memory:");
	}
	if (sqlite3_open_v2(t->path, &t->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		if (!t->db)
			return dr_seterr(err, errlen, "cannot open %s: out of memory", t->path);
		return db_err(t, err, errlen, "cannot open the job database");
	}
	sqlite3_extended_result_codes(t->db, 0);
	sqlite3_busy_timeout(t->db, BUSY_MS);
	/* WAL: a commit appends to the log, so a failed write (full disk) leaves the database as it
	 * was, and fewer syncs than a rollback journal. FULL: the log is synced at every commit, so
	 * a job answered 202 survives a power cut (NORMAL would only keep the database consistent).
	 */
	if ((dir && sqlite3_exec(t->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL,
	                         NULL, NULL) != SQLITE_OK) ||
	    sqlite3_exec(t->db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return db_err(t, err, errlen, "cannot set up the job database");
	if (t->cfg.max_pages > 0) {
		snprintf(sql, sizeof sql, "PRAGMA max_page_count=%ld", t->cfg.max_pages);
		sqlite3_exec(t->db, sql, NULL, NULL, NULL);
	}
	for (int i = 0; i < S_N; i++)
		if (sqlite3_prepare_v3(t->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &t->st[i],
		                       NULL) != SQLITE_OK)
			return db_err(t, err, errlen, "cannot prepare the job database");
	return 0;
}

static void fstate_free(struct fstate *f)
{
	if (!f)
		return;
	for (size_t i = 0; f->err && i < f->n; i++)
		free(f->err[i]);
	free(f->err);
	free(f->frame);
	free(f->node);
	free(f->attempts);
	free(f->state);
	free(f->seconds);
	free(f->started);
	free(f->ver);
	cJSON_Delete(f->hosts);
	free(f);
}

dr_jobs *dr_jobs_create_with(const dr_jobs_cfg *cfg, char *err, size_t errlen)
{
	dr_jobs *t = calloc(1, sizeof(*t));

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->lockfd = -1;
	t->cfg = *cfg;
	t->fver = (unsigned long long)(wall_now() * 1000.0);
	t->max_frames = cfg->max_frames;
	if (pthread_mutex_init(&t->mu, NULL) != 0) {
		snprintf(err, errlen, "cannot create the job table's lock");
		free(t);
		return NULL;
	}
	if ((cfg->dir && lock_dir(t, cfg->dir, err, errlen) < 0) ||
	    db_open(t, cfg->dir, err, errlen) < 0 ||
	    (cfg->dir && migrate(t, cfg->dir, err, errlen) < 0) || load(t, err, errlen) < 0)
		goto fail;
	t->cfg.dir = NULL; /* not kept: the caller's string */
	evict(t);
	return t;
fail:
	dr_jobs_destroy(t);
	return NULL;
}

dr_jobs *dr_jobs_create(const char *journal_dir, size_t max_queued, char *err, size_t errlen)
{
	dr_jobs_cfg c = {.dir = journal_dir,
	                 .max_queued = max_queued,
	                 .keep_jobs = DR_JOBS_KEEP_JOBS,
	                 .keep_for = DR_JOBS_KEEP_FOR};

	return dr_jobs_create_with(&c, err, errlen);
}

void dr_jobs_destroy(dr_jobs *t)
{
	if (!t)
		return;
	mem_clear(t);
	for (size_t i = 0; i < t->nfs; i++)
		fstate_free(t->fs[i]);
	free(t->fs);
	free(t->v);
	free(t->hash);
	free(t->heap);
	for (int i = 0; i < S_N; i++)
		sqlite3_finalize(t->st[i]);
	if (t->db && sqlite3_close(t->db) != SQLITE_OK)
		dr_warn("cannot close %s: %s", t->path, sqlite3_errmsg(t->db));
	if (t->lockfd >= 0)
		close(t->lockfd);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* ---- HTTP side ---- */

/* A fresh random id not in memory (the database refuses one it has: see dr_jobs_submit); -1 if no
 * randomness is to be had. */
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

void dr_jobs_set_max_frames(dr_jobs *t, size_t n)
{
	pthread_mutex_lock(&t->mu);
	t->max_frames = n;
	pthread_mutex_unlock(&t->mu);
}

/* Frames of jobs that are queued or running (all of them are in memory). */
static size_t unfinished_frames(const dr_jobs *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i]->state == DR_JOB_QUEUED || t->v[i]->state == DR_JOB_RUNNING)
			n += t->v[i]->spec.frames.n;
	return n;
}

void dr_jobs_set_notify(dr_jobs *t, dr_jobs_notify_fn fn, void *ctx)
{
	pthread_mutex_lock(&t->mu);
	t->notify = fn;
	t->notify_ctx = ctx;
	pthread_mutex_unlock(&t->mu);
}

/* Unlock T and, when CHANGED, tell whoever runs its jobs (dr_jobs_set_notify). */
static void unlock_notify(dr_jobs *t, bool changed)
{
	dr_jobs_notify_fn fn = changed ? t->notify : NULL;
	void *ctx = t->notify_ctx;

	pthread_mutex_unlock(&t->mu);
	if (fn)
		fn(ctx);
}

dr_err dr_jobs_submit(dr_jobs *t, dr_jobspec *spec, const char *output_root, char *id, size_t idlen,
                      char *err, size_t errlen)
{
	struct job *j = NULL;
	dr_err kind = DR_E_INTERNAL;
	int rc = -1, tries = 0;

	pthread_mutex_lock(&t->mu);
	if (t->cfg.max_queued && t->count[DR_JOB_QUEUED] >= t->cfg.max_queued) {
		snprintf(err, errlen, "the queue is full (%zu jobs waiting): try again later",
		         t->cfg.max_queued);
		kind = DR_E_BUSY;
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
			kind = DR_E_BUSY;
			goto out;
		}
	}
	if (reserve(t) < 0 || !(j = calloc(1, sizeof(*j)))) {
		snprintf(err, errlen, "out of memory");
		kind = DR_E_NOMEM;
		goto out;
	}
	j->spec = *spec;
	j->submitted = time(NULL);
	j->state = DR_JOB_QUEUED;
	do {
		if (new_id(t, j->id) < 0) {
			snprintf(err, errlen, "cannot make a job id: %s", strerror(errno));
			goto out;
		}
		if (strlen(j->id) >= idlen) {
			snprintf(err, errlen, "job id buffer too small");
			goto out;
		}
		j->spec = *spec; /* afresh for each id drawn: the output and a still follow it */
		if (!spec->render.output[0] && output_root &&
		    dr_jobspec_set_output(&j->spec, output_root, j->id, err, errlen) < 0)
			goto out;
		if (dr_jobspec_finish(&j->spec, err, errlen) != 0) /* a still, a video: see there */
			goto out;
		rc = db_insert(t, j, 0, err, errlen);
	} while (rc == -4 && ++tries < 8); /* the id of a finished job: draw again */
	if (rc == -4)
		snprintf(err, errlen, "cannot make a job id that is not taken");
	if (rc != 0) {
		kind = rc == -3 ? DR_E_UNAVAILABLE : DR_E_INTERNAL;
		goto out;
	}
	mem_add(t, j);
	memcpy(id, j->id, strlen(j->id) + 1);
	*spec = j->spec; /* the table owns the frames now; the caller's copy must not free them */
	memset(&spec->frames, 0, sizeof(spec->frames));
	j = NULL;
	kind = DR_OK;
out:
	if (j) {
		memset(&j->spec, 0, sizeof(j->spec)); /* still the caller's */
		job_free(j);
	}
	unlock_notify(t, kind == DR_OK);
	return kind;
}

/* ISO-8601 UTC time of T into BUF. */
static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "1970-01-01T00:00:00Z");
}

/* What a status answer is made from: a job in memory or a row of the database. */
struct view {
	const char *id;
	dr_job_state state;
	time_t submitted;
	int priority;
	size_t nframes;
	const char *output;
	bool cancel_req;
	const cJSON *status;
};

static struct view view_of(const struct job *j)
{
	return (struct view){j->id,
	                     j->state,
	                     j->submitted,
	                     j->spec.priority,
	                     j->spec.frames.n,
	                     j->spec.render.output,
	                     j->cancel_req,
	                     j->status};
}

/* A row of S_GET or S_PAGE as a view; its status parsed into *STATUS (the caller deletes it).
 * False if the row is not one of ours. */
static bool view_of_row(sqlite3_stmt *st, struct view *v, cJSON **status)
{
	const char *s = (const char *)sqlite3_column_text(st, 8);

	*status = s ? cJSON_Parse(s) : NULL;
	*v = (struct view){
	        .id = (const char *)sqlite3_column_text(st, 1),
	        .submitted = (time_t)sqlite3_column_int64(st, 2),
	        .priority = sqlite3_column_int(st, 3),
	        .nframes = (size_t)sqlite3_column_int64(st, 4),
	        .output = (const char *)sqlite3_column_text(st, 5),
	        .cancel_req = sqlite3_column_int(st, 7) != 0,
	        .status = *status,
	};
	return v->id && v->output &&
	       state_from_name((const char *)sqlite3_column_text(st, 6), &v->state);
}

/* V's status object (caller deletes), or NULL on out of memory. */
static cJSON *status_object(const struct view *j)
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
	     cJSON_AddNumberToObject(o, "priority", j->priority);
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
		double n = (double)j->nframes;
		ok = f && cJSON_AddNumberToObject(f, "total", n) &&
		     cJSON_AddNumberToObject(f, "done", 0) &&
		     cJSON_AddNumberToObject(f, "skipped", 0) &&
		     cJSON_AddNumberToObject(f, "failed", 0) &&
		     cJSON_AddNumberToObject(f, "running", 0) &&
		     cJSON_AddNumberToObject(f, "pending", finished(j->state) ? 0 : n);
		if (ok && !cJSON_GetObjectItemCaseSensitive(o, "progress"))
			ok = cJSON_AddNumberToObject(o, "progress", 0) != NULL;
	}
	if (ok && !cJSON_GetObjectItemCaseSensitive(o, "output") && j->output[0])
		ok = cJSON_AddStringToObject(o, "output", j->output) != NULL;
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

/* Step S_GET for ID (bound); SQLITE_ROW with the row, else the statement is reset. */
static int db_get(dr_jobs *t, const char *id)
{
	sqlite3_stmt *st = t->st[S_GET];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	return rc;
}

static void db_get_done(dr_jobs *t)
{
	sqlite3_reset(t->st[S_GET]);
	sqlite3_clear_bindings(t->st[S_GET]);
}

char *dr_jobs_status(dr_jobs *t, const char *id, dr_job_state *state)
{
	struct job *j;
	struct view v;
	cJSON *status;
	char *s = NULL;

	pthread_mutex_lock(&t->mu);
	j = find(t, id);
	if (j) {
		v = view_of(j);
		if (state)
			*state = j->state;
		s = print_free(status_object(&v));
	} else if (id && db_get(t, id) == SQLITE_ROW) {
		if (view_of_row(t->st[S_GET], &v, &status)) {
			if (state)
				*state = v.state;
			s = print_free(status_object(&v));
		}
		cJSON_Delete(status);
		db_get_done(t);
	}
	pthread_mutex_unlock(&t->mu);
	return s;
}

char *dr_jobs_list(dr_jobs *t, size_t limit, long long after)
{
	cJSON *o = cJSON_CreateObject(), *a = o ? cJSON_AddArrayToObject(o, "jobs") : NULL;
	sqlite3_stmt *st = t->st[S_PAGE];
	long long last = 0;
	size_t got = 0;
	bool more = false;
	char *s = NULL, cursor[32];
	int rc;

	if (limit < 1)
		limit = 1;
	if (limit > DR_JOBS_LIST_MAX)
		limit = DR_JOBS_LIST_MAX;
	pthread_mutex_lock(&t->mu);
	if (!a)
		goto out;
	sqlite3_bind_int64(st, 1, after > 0 ? after : INT64_MAX);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const struct job *j;
		struct view v;
		cJSON *status = NULL, *js = NULL;
		if (got == limit) {
			more = true;
			break;
		}
		if (!view_of_row(st, &v, &status)) {
			cJSON_Delete(status);
			continue;
		}
		j = find(t, v.id); /* in memory: its live state and status */
		if (j)
			v = view_of(j);
		js = status_object(&v);
		cJSON_Delete(status);
		if (!js || !cJSON_AddItemToArray(a, js)) {
			cJSON_Delete(js);
			rc = SQLITE_NOMEM;
			break;
		}
		last = sqlite3_column_int64(st, 0);
		got++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && !more)
		goto out;
	snprintf(cursor, sizeof cursor, "%lld", last);
	if (more ? !cJSON_AddStringToObject(o, "next", cursor) : !cJSON_AddNullToObject(o, "next"))
		goto out;
	s = print_free(o);
	o = NULL;
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
		rc = id && db_get(t, id) == SQLITE_ROW ? 1 : -1; /* not in memory: finished */
		if (rc == 1)
			db_get_done(t);
	} else if (finished(j->state)) {
		rc = 1;
	} else if (j->state == DR_JOB_QUEUED && !j->taken) {
		set_state(t, j, DR_JOB_CANCELLED);
		job_ended(t, j, false);
	} else if (!j->cancel_req) {
		sqlite3_stmt *st = t->st[S_CANCEL];
		j->cancel_req = true;
		sqlite3_bind_int64(st, 1, j->seq);
		if (run(st) != SQLITE_DONE) {
			db_err(t, err, sizeof err, "cannot record the cancel request");
			dr_warn("job %s: %s", j->id, err);
		}
	}
	unlock_notify(t, rc == 0);
	return rc;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* Frame FRAME of SPEC: its path and format; 0, -2 not part of it, -3 no path. */
static int frame_of(const dr_jobspec *spec, int frame, char *path, size_t pathlen, char *format,
                    size_t formatlen)
{
	dr_outpath o;
	char err[DR_ERRLEN];

	if (!spec->frames.n ||
	    !bsearch(&frame, spec->frames.v, spec->frames.n, sizeof(int), cmp_int))
		return -2;
	if (dr_outpath_init(&o, spec->render.output[0] ? spec->render.output : NULL,
	                    spec->render.scene, spec->render.format, err, sizeof(err)) < 0 ||
	    dr_outpath_frame(&o, frame, path, pathlen) < 0 ||
	    (size_t)snprintf(format, formatlen, "%s", spec->render.format) >= formatlen)
		return -3;
	return 0;
}

/* What a file route asks of a job's settings: which file (one of the job's frames, or its
 * video) into PATH, and for a frame its format. */
typedef struct file_ask {
	bool video; /* the video, else frame FRAME */
	int frame;
	char *path, *format;
	size_t pathlen, formatlen;
} file_ask;

/* The video path of SPEC into PATH: 0, or -2 when it asked for none. */
static int video_of(const dr_jobspec *spec, char *path, size_t pathlen)
{
	if (!spec->render.video[0])
		return -2;
	snprintf(path, pathlen, "%s", spec->render.video);
	return 0;
}

static int file_of(const dr_jobspec *spec, const file_ask *a)
{
	return a->video ? video_of(spec, a->path, a->pathlen)
	                : frame_of(spec, a->frame, a->path, a->pathlen, a->format, a->formatlen);
}

/* A job's file, from the live table or the database: 0 with the path of a file on disk, -1 no
 * such job, -2 the job has no such file, -3 not (yet) on disk. */
static int job_file(dr_jobs *t, const char *id, const file_ask *a)
{
	struct job *j;
	struct stat st;
	int rc = -1;

	pthread_mutex_lock(&t->mu);
	j = find(t, id);
	if (j) {
		rc = file_of(&j->spec, a);
	} else if (id && db_get(t, id) == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(t->st[S_GET], 9);
		cJSON *js = text ? cJSON_Parse(text) : NULL;
		dr_jobspec spec;
		char err[DR_ERRLEN];
		rc = -3;
		if (js && dr_jobspec_from_journal(js, &spec, err, sizeof err) == 0) {
			rc = file_of(&spec, a);
			dr_jobspec_free(&spec);
		}
		cJSON_Delete(js);
		db_get_done(t);
	}
	pthread_mutex_unlock(&t->mu);
	if (rc == 0 && !(stat(a->path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0))
		rc = -3;
	return rc;
}

int dr_jobs_frame(dr_jobs *t, const char *id, int frame, char *path, size_t pathlen, char *format,
                  size_t formatlen)
{
	file_ask a = {false, frame, path, format, pathlen, formatlen};
	return job_file(t, id, &a);
}

int dr_jobs_video(dr_jobs *t, const char *id, char *path, size_t pathlen)
{
	file_ask a = {true, -1, path, NULL, pathlen, 0};
	return job_file(t, id, &a);
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
	size_t by_state[DR_JOB_CANCELLED + 1];
	unsigned long long cum = 0;

	pthread_mutex_lock(&t->mu);
	m = t->metrics;
	memcpy(by_state, t->count, sizeof by_state);
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
	         "drender_render_nodes{state=\"idle\"} %d\n"
	         "drender_render_nodes{state=\"lost\"} %d\n",
	         m.nodes_busy, m.nodes_idle, m.nodes_lost);
	if (x.oom) {
		free(x.buf);
		return NULL;
	}
	return x.buf;
}

int dr_jobs_take(dr_jobs *t, char *id, size_t idlen, dr_jobspec *spec)
{
	struct job *best;
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	best = t->hn ? t->heap[0] : NULL;
	if (best) {
		if (strlen(best->id) >= idlen || dr_jobspec_copy(spec, &best->spec) < 0) {
			rc = -1;
		} else {
			memcpy(id, best->id, strlen(best->id) + 1);
			best->taken = true;
			heap_remove(t, best);
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
	/* Queued and running are not recorded: after a restart both are queued again. */
	set_state(t, j, st);
	if (finished(st))
		job_ended(t, j, false);
out:
	pthread_mutex_unlock(&t->mu);
}

void dr_jobs_publish_metrics(dr_jobs *t, const dr_metrics *m)
{
	pthread_mutex_lock(&t->mu);
	t->metrics = *m;
	housekeep(t);
	pthread_mutex_unlock(&t->mu);
}

/* ---- per-frame state ---- */

static struct fstate *fstate_find(const dr_jobs *t, const char *id, size_t *at)
{
	for (size_t i = 0; i < t->nfs; i++)
		if (!strcmp(t->fs[i]->id, id)) {
			if (at)
				*at = i;
			return t->fs[i];
		}
	return NULL;
}

static void fstate_drop(dr_jobs *t, size_t i)
{
	fstate_free(t->fs[i]);
	t->fs[i] = t->fs[--t->nfs];
}

/* A new state for ID with N cells of FRAMES, all pending; NULL on out of memory. */
static struct fstate *fstate_new(const char *id, const int *frames, size_t n)
{
	struct fstate *f = calloc(1, sizeof(*f));
	size_t m = n ? n : 1;

	if (!f)
		return NULL;
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->n = n;
	f->frame = malloc(m * sizeof(*f->frame));
	f->node = calloc(m, sizeof(*f->node));
	f->attempts = calloc(m, sizeof(*f->attempts));
	f->state = malloc(m);
	f->seconds = calloc(m, sizeof(*f->seconds));
	f->started = calloc(m, sizeof(*f->started));
	f->ver = calloc(m, sizeof(*f->ver));
	f->err = calloc(m, sizeof(*f->err));
	if (!f->frame || !f->node || !f->attempts || !f->state || !f->seconds || !f->started ||
	    !f->ver || !f->err) {
		fstate_free(f);
		return NULL;
	}
	if (n)
		memcpy(f->frame, frames, n * sizeof(*frames));
	memset(f->state, 'p', m);
	return f;
}

/* Keep the DR_JOBS_FRAMES_KEEP most recently finished states. */
static void fstate_evict(dr_jobs *t)
{
	for (;;) {
		size_t nfin = 0, old = SIZE_MAX;
		for (size_t i = 0; i < t->nfs; i++) {
			if (!t->fs[i]->final)
				continue;
			nfin++;
			if (old == SIZE_MAX || t->fs[i]->ended < t->fs[old]->ended)
				old = i;
		}
		if (nfin <= DR_JOBS_FRAMES_KEEP)
			return;
		fstate_drop(t, old);
	}
}

int dr_jobs_publish_frames(dr_jobs *t, const char *id, const int *frames, size_t n,
                           const dr_jobs_cell *cells, size_t ncells, cJSON *hosts, bool final)
{
	struct fstate *f;
	size_t at;
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	f = fstate_find(t, id, &at);
	if (f && frames) { /* starting over */
		fstate_drop(t, at);
		f = NULL;
	}
	if (!f) {
		if (!frames || dr_grow(&t->fs, &t->capfs, t->nfs + 1, sizeof(*t->fs)) < 0 ||
		    !(f = fstate_new(id, frames, n))) {
			rc = -1;
			goto out;
		}
		t->fs[t->nfs++] = f;
		f->base = f->version = ++t->fver;
		for (size_t i = 0; i < n; i++)
			f->ver[i] = f->version;
	}
	if (f->final)
		goto out;
	if (ncells || final)
		f->version = ++t->fver;
	for (size_t k = 0; k < ncells; k++) {
		const dr_jobs_cell *c = &cells[k];
		size_t i = c->index;
		if (i >= f->n)
			continue;
		f->state[i] = c->state;
		f->node[i] = c->node;
		f->attempts[i] = c->attempts;
		f->seconds[i] = c->seconds;
		f->started[i] = c->started;
		f->ver[i] = f->version;
		if (c->error && (!f->err[i] || strcmp(f->err[i], c->error))) {
			char *e = strdup(c->error);
			if (e) {
				free(f->err[i]);
				f->err[i] = e;
			}
		}
	}
	if (hosts) {
		cJSON_Delete(f->hosts);
		f->hosts = hosts;
		hosts = NULL;
	}
	if (final) {
		f->final = true;
		f->ended = dr_now();
		fstate_evict(t);
	}
out:
	pthread_mutex_unlock(&t->mu);
	cJSON_Delete(hosts);
	return rc;
}

/* A growing text buffer; on out of memory it stops growing and OOM is set. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		w = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (w < 0) {
			b->oom = true;
			return;
		}
		if (b->s && b->len + (size_t)w < b->cap) {
			b->len += (size_t)w;
			return;
		}
		size_t need = b->len + (size_t)w + 1;
		if (need < 2 * b->cap)
			need = 2 * b->cap;
		if (need < 4096)
			need = 4096;
		if (dr_grow(&b->s, &b->cap, need, 1) < 0) {
			b->oom = true;
			return;
		}
	}
}

/* A number without needless digits: 0, 3.25. */
static void sb_num(struct sbuf *b, const char *sep, double v, int prec)
{
	if (v == 0)
		sb_add(b, "%s0", sep);
	else
		sb_add(b, "%s%.*f", sep, prec, v);
}

char *dr_jobs_frames(dr_jobs *t, const char *id, unsigned long long since, int *rc)
{
	struct sbuf b = {0};
	struct fstate *f;
	size_t *idx = NULL, m = 0;
	bool full;
	double now = dr_now();

	*rc = -1;
	pthread_mutex_lock(&t->mu);
	f = fstate_find(t, id, NULL);
	if (!f)
		goto out;
	full = since < f->base || since > f->version;
	if (!full && since == f->version) {
		*rc = 0;
		goto out;
	}
	if (!full) {
		idx = malloc((f->n ? f->n : 1) * sizeof(*idx));
		if (!idx) {
			*rc = -2;
			goto out;
		}
		for (size_t i = 0; i < f->n; i++)
			if (f->ver[i] > since)
				idx[m++] = i;
	} else {
		m = f->n;
	}
#define CELL(k) (full ? (k) : idx[k])
	sb_add(&b, "{\"jobId\":\"%s\",\"version\":%llu,\"full\":%s", f->id, f->version,
	       full ? "true" : "false");
	if (full) {
		sb_add(&b, ",\"frames\":[");
		for (size_t i = 0; i < f->n; i++)
			sb_add(&b, "%s%d", i ? "," : "", f->frame[i]);
		sb_add(&b, "]");
	} else {
		sb_add(&b, ",\"index\":[");
		for (size_t k = 0; k < m; k++)
			sb_add(&b, "%s%zu", k ? "," : "", idx[k]);
		sb_add(&b, "]");
	}
	sb_add(&b, ",\"state\":\"");
	for (size_t k = 0; k < m; k++)
		sb_add(&b, "%c", f->state[CELL(k)]);
	sb_add(&b, "\",\"node\":[");
	for (size_t k = 0; k < m; k++)
		sb_add(&b, "%s%d", k ? "," : "", f->node[CELL(k)]);
	sb_add(&b, "],\"attempts\":[");
	for (size_t k = 0; k < m; k++)
		sb_add(&b, "%s%d", k ? "," : "", f->attempts[CELL(k)]);
	sb_add(&b, "],\"seconds\":[");
	for (size_t k = 0; k < m; k++)
		sb_num(&b, k ? "," : "", f->seconds[CELL(k)], 2);
	sb_add(&b, "],\"runningFor\":[");
	for (size_t k = 0; k < m; k++) {
		size_t i = CELL(k);
		bool run = f->state[i] == 'r' || f->state[i] == 'c';
		sb_num(&b, k ? "," : "", run && f->started[i] > 0 ? now - f->started[i] : 0, 1);
	}
	sb_add(&b, "],\"errors\":{");
	for (size_t k = 0, first = 1; k < m; k++) {
		size_t i = CELL(k);
		char *e;
		if (!f->err[i])
			continue;
		cJSON *js = cJSON_CreateString(f->err[i]);
		e = js ? cJSON_PrintUnformatted(js) : NULL;
		cJSON_Delete(js);
		if (!e) {
			b.oom = true;
			break;
		}
		sb_add(&b, "%s\"%zu\":%s", first ? "" : ",", i, e);
		cJSON_free(e);
		first = 0;
	}
#undef CELL
	sb_add(&b, "}");
	if (f->hosts) {
		char *h = cJSON_PrintUnformatted(f->hosts);
		if (!h)
			b.oom = true;
		else
			sb_add(&b, ",\"hosts\":%s", h);
		cJSON_free(h);
	}
	sb_add(&b, "}");
	*rc = b.oom ? -2 : 1;
out:
	pthread_mutex_unlock(&t->mu);
	free(idx);
	if (*rc != 1) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
