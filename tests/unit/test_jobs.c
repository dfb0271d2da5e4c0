/* Unit tests for dr_jobs: queue order, limits, cancellation, status merge, listing and its pages,
 * frames, restart from the database, a full disk, import of an older journal (a torn last line
 * included), eviction by count and age, and the metrics page. */
#include "dr_jobs.h"
#include "dr_log.h"
#include "dr_util.h"
#include "tap.h"
#include "testfs.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];
static char top[PATH_MAX];

static dr_jobspec mkspec(const char *frames, int priority)
{
	dr_jobspec s;

	memset(&s, 0, sizeof(s));
	snprintf(s.render.scene, sizeof(s.render.scene), "/scenes/shot.blend");
	snprintf(s.render.format, sizeof(s.render.format), "PNG");
	s.priority = priority;
	if (dr_frames_parse(frames, &s.frames, err, sizeof(err)) < 0)
		exit(1);
	return s;
}

/* Submit a job with FRAMES and PRIORITY; its id into ID. */
static int submit(dr_jobs *t, const char *frames, int priority, char *id)
{
	dr_jobspec s = mkspec(frames, priority);
	int rc = dr_jobs_submit(t, &s, top, id, DR_JOB_ID_MAX, err, sizeof(err));

	dr_jobspec_free(&s);
	return rc;
}

static cJSON *status_of(dr_jobs *t, const char *id, dr_job_state *st)
{
	char *s = dr_jobs_status(t, id, st);
	cJSON *j = s ? cJSON_Parse(s) : NULL;

	free(s);
	return j;
}

static double num(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *a)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_queue(void)
{
	dr_jobs *t = dr_jobs_create(NULL, 3, err, sizeof(err));
	char a[DR_JOB_ID_MAX], b[DR_JOB_ID_MAX], c[DR_JOB_ID_MAX], d[DR_JOB_ID_MAX],
	        got[DR_JOB_ID_MAX], want[PATH_MAX + 64];
	dr_jobspec s;

	ok(t != NULL, "create without a journal (%s)", err);
	is_int(submit(t, "1-10", 0, a), 0, "submit a");
	is_int(strlen(a), 12, "id has 12 characters");
	ok(strspn(a, "0123456789abcdef") == 12, "id is lower-case hex: %s", a);
	is_int(submit(t, "1-5", 5, b), 0, "submit b (priority 5)");
	is_int(submit(t, "1", 0, c), 0, "submit c");
	ok(strcmp(a, b) && strcmp(b, c) && strcmp(a, c), "ids differ");
	is_int(submit(t, "1", 9, d), DR_E_BUSY, "fourth submit: queue full (3)");
	ok(strstr(err, "queue is full") != NULL, "says the queue is full: %s", err);

	memset(&s, 0, sizeof(s));
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take");
	is_str(got, b, "highest priority first");
	is_int(s.frames.n, 5, "spec copied");
	snprintf(want, sizeof(want), "%s/%s/shot_####", top, b);
	is_str(s.render.output, want, "output filled with <root>/<id>/<scene>_####");
	dr_jobspec_free(&s);
	is_int(submit(t, "1", 9, d), DR_E_BUSY, "a taken job still counts as queued");
	dr_jobs_publish(t, b, DR_JOB_RUNNING, NULL);
	is_int(submit(t, "1", 0, d), 0, "room again once it runs");
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take");
	is_str(got, a, "then the oldest of equal priority");
	dr_jobspec_free(&s);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take");
	is_str(got, c, "then the next");
	dr_jobspec_free(&s);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take");
	is_str(got, d, "then the newest");
	dr_jobspec_free(&s);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 0, "nothing left to take");
	dr_jobs_publish(t, d, DR_JOB_QUEUED, NULL);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 0,
	       "a taken job published as queued (adopted, not started) is not taken again");
	dr_jobs_destroy(t);
	dr_jobs_destroy(NULL);
}

static void test_cancel_and_status(void)
{
	dr_jobs *t = dr_jobs_create(NULL, 0, err, sizeof(err));
	char a[DR_JOB_ID_MAX], b[DR_JOB_ID_MAX], got[DR_JOB_ID_MAX];
	dr_job_state st;
	dr_jobspec s;
	cJSON *j;
	char *list;

	submit(t, "1-20", 2, a);
	submit(t, "1-4", 0, b);
	j = status_of(t, a, &st);
	is_int(st, DR_JOB_QUEUED, "queued");
	is_str(str(j, "jobId"), a, "jobId");
	is_str(str(j, "state"), "queued", "state");
	is_int(num(j, "priority", NULL), 2, "priority");
	is_int(strlen(str(j, "submitted")), 20, "submitted is ISO-8601 UTC: %s",
	       str(j, "submitted"));
	ok(str(j, "submitted")[10] == 'T' && str(j, "submitted")[19] == 'Z', "…with T and Z");
	is_int(num(j, "frames", "total"), 20, "frames.total from the spec");
	is_int(num(j, "frames", "pending"), 20, "frames.pending = total");
	is_int(num(j, "frames", "done"), 0, "frames.done 0");
	is_int(num(j, "frames", "running"), 0, "frames.running 0");
	is_int(num(j, "progress", NULL), 0, "progress 0");
	cJSON_Delete(j);
	ok(dr_jobs_status(t, "nope", &st) == NULL, "unknown id: NULL");

	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take a");
	dr_jobspec_free(&s);
	dr_jobs_publish(
	        t, a, DR_JOB_RUNNING,
	        "{\"jobId\":\"evil\",\"state\":\"done\",\"frames\":{\"total\":20,\"done\":5,"
	        "\"skipped\":0,\"failed\":0,\"running\":2,\"pending\":13},\"progress\":0.25,"
	        "\"etaSeconds\":37.5,\"nodes\":[{\"rank\":1,\"host\":\"vm\","
	        "\"currentFrame\":6,\"framesDone\":3}]}");
	j = status_of(t, a, &st);
	is_int(st, DR_JOB_RUNNING, "running");
	is_str(str(j, "jobId"), a, "published jobId does not override");
	is_str(str(j, "state"), "running", "published state does not override");
	is_int(num(j, "frames", "done"), 5, "published frames merged");
	ok(num(j, "progress", NULL) == 0.25, "published progress merged");
	ok(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "nodes")), "nodes merged");
	cJSON_Delete(j);
	dr_jobs_publish(t, a, DR_JOB_RUNNING, "not json");
	j = status_of(t, a, &st);
	is_int(num(j, "frames", "done"), 5, "bad published JSON is ignored");
	cJSON_Delete(j);

	is_int(dr_jobs_cancel(t, "nope"), -1, "cancel unknown: -1");
	is_int(dr_jobs_cancel(t, b), 0, "cancel queued b");
	j = status_of(t, b, &st);
	is_int(st, DR_JOB_CANCELLED, "a queued job is cancelled at once");
	is_int(num(j, "frames", "pending"), 0, "nothing pending once cancelled");
	cJSON_Delete(j);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 0, "a cancelled job is not taken");
	is_int(dr_jobs_cancel(t, b), 1, "cancel again: already finished");
	ok(!dr_jobs_cancel_requested(t, a), "no cancel asked for a yet");
	is_int(dr_jobs_cancel(t, a), 0, "cancel running a");
	ok(dr_jobs_cancel_requested(t, a), "cancel requested for a");
	j = status_of(t, a, &st);
	is_int(st, DR_JOB_RUNNING, "still running until the orchestrator stops it");
	ok(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "cancelRequested")),
	   "status says cancelRequested");
	cJSON_Delete(j);
	dr_jobs_publish(t, a, DR_JOB_CANCELLED, NULL);
	j = status_of(t, a, &st);
	is_int(st, DR_JOB_CANCELLED, "cancelled once published");
	is_int(num(j, "frames", "done"), 5, "last published counts kept");
	cJSON_Delete(j);
	dr_jobs_publish(t, a, DR_JOB_RUNNING, NULL);
	cJSON_Delete(status_of(t, a, &st));
	is_int(st, DR_JOB_CANCELLED, "a finished job stays finished");
	is_int(dr_jobs_cancel(t, a), 1, "cancel finished: 1");

	list = dr_jobs_list(t, DR_JOBS_LIST_DEF, 0);
	j = list ? cJSON_Parse(list) : NULL;
	free(list);
	{
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "jobs");
		ok(cJSON_GetArraySize(arr) == 2, "list has both jobs");
		is_str(str(cJSON_GetArrayItem(arr, 0), "jobId"), b, "newest first");
		is_str(str(cJSON_GetArrayItem(arr, 1), "jobId"), a, "then older");
	}
	cJSON_Delete(j);
	dr_jobs_destroy(t);
}

static void test_frames(void)
{
	dr_jobs *t = dr_jobs_create(NULL, 0, err, sizeof(err));
	char a[DR_JOB_ID_MAX], p[PATH_MAX], fmt[32], want[2 * PATH_MAX], dir[PATH_MAX + 64];
	FILE *f;

	submit(t, "1-3,7", 0, a);
	is_int(dr_jobs_frame(t, "nope", 1, p, sizeof(p), fmt, sizeof(fmt)), -1, "unknown job");
	is_int(dr_jobs_frame(t, a, 5, p, sizeof(p), fmt, sizeof(fmt)), -2, "frame not in job");
	is_int(dr_jobs_frame(t, a, 7, p, sizeof(p), fmt, sizeof(fmt)), -3, "not rendered yet");
	snprintf(dir, sizeof(dir), "%s/%s", top, a);
	mkdir(dir, 0755);
	snprintf(want, sizeof(want), "%s/shot_0007.png", dir);
	f = fopen(want, "w");
	if (f) {
		fputs("\x89PNG", f);
		fclose(f);
	}
	is_int(dr_jobs_frame(t, a, 7, p, sizeof(p), fmt, sizeof(fmt)), 0, "rendered frame");
	is_str(p, want, "its path");
	is_str(fmt, "PNG", "its format");
	dr_jobs_destroy(t);
}

/* DIR/NAME into a static buffer. */
static const char *in(const char *dir, const char *name)
{
	static char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static bool exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Restart semantics (these were the journal's assertions; the database keeps the same promises):
 * finished jobs come back as they ended, unfinished ones queued in their order. */
static void test_restart(void)
{
	char jdir[PATH_MAX + 16], a[DR_JOB_ID_MAX], b[DR_JOB_ID_MAX], c[DR_JOB_ID_MAX],
	        d[DR_JOB_ID_MAX], e[DR_JOB_ID_MAX], got[DR_JOB_ID_MAX];
	dr_jobs *t, *t2;
	dr_jobspec s;
	dr_job_state st;
	cJSON *j;

	snprintf(jdir, sizeof(jdir), "%s/j", top);
	mkdir(jdir, 0755);
	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "create with a database (%s)", err);
	ok(exists(in(jdir, "jobs.db")), "jobs.db is there");
	t2 = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t2 == NULL && strstr(err, "in use") && strstr(err, "pid "),
	   "a second table on the same directory is refused, naming the holder: %s", err);
	dr_jobs_destroy(t2);
	submit(t, "1-4", 0, a);
	submit(t, "1-4", 3, b);
	submit(t, "5", 0, c);
	submit(t, "6-8", 0, d);
	submit(t, "9", 0, e);
	while (dr_jobs_take(t, got, sizeof(got), &s) == 1) {
		dr_jobspec_free(&s);
		if (!strcmp(got, d))
			break;
	}
	dr_jobs_publish(t, a, DR_JOB_RUNNING, NULL);
	dr_jobs_publish(t, a, DR_JOB_DONE,
	                "{\"frames\":{\"total\":4,\"done\":4,\"skipped\":0,\"failed\":0,"
	                "\"running\":0,\"pending\":0},\"progress\":1}");
	dr_jobs_publish(t, b, DR_JOB_RUNNING, NULL);
	dr_jobs_publish(t, d, DR_JOB_RUNNING, NULL);
	dr_jobs_cancel(t, d); /* requested, never confirmed */
	dr_jobs_cancel(t, e); /* queued: cancelled at once */
	j = status_of(t, a, &st);
	is_int(st, DR_JOB_DONE, "a finished job is answered from the database");
	is_int(num(j, "frames", "done"), 4, "with its final status");
	cJSON_Delete(j);
	is_int(dr_jobs_cancel(t, a), 1, "cancel a finished job (from the database): 1");
	dr_jobs_destroy(t);

	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "restart (%s)", err);
	j = status_of(t, a, &st);
	is_int(st, DR_JOB_DONE, "done job comes back done");
	is_int(num(j, "frames", "done"), 4, "with its final status");
	ok(num(j, "progress", NULL) == 1, "progress 1");
	cJSON_Delete(j);
	cJSON_Delete(status_of(t, b, &st));
	is_int(st, DR_JOB_QUEUED, "running job comes back queued");
	cJSON_Delete(status_of(t, c, &st));
	is_int(st, DR_JOB_QUEUED, "queued job comes back queued");
	cJSON_Delete(status_of(t, d, &st));
	is_int(st, DR_JOB_CANCELLED, "job whose cancel was asked comes back cancelled");
	cJSON_Delete(status_of(t, e, &st));
	is_int(st, DR_JOB_CANCELLED, "cancelled job comes back cancelled");
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take after restart");
	is_str(got, b, "priority kept");
	is_str(s.render.scene, "/scenes/shot.blend", "spec kept");
	dr_jobspec_free(&s);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take after restart");
	is_str(got, c, "submission order kept");
	dr_jobspec_free(&s);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 0, "nothing else to take");
	dr_jobs_destroy(t);

	ok(dr_jobs_create("/nonexistent/dir", 10, err, sizeof(err)) == NULL,
	   "unwritable directory refused: %s", err);
}

/* A full disk: the database refuses a write (max_page_count plays the disk). A job that cannot
 * be recorded is refused (DR_E_UNAVAILABLE, the reason said) and leaves no trace; every accepted
 * one is kept; the same table accepts jobs again once there is room. */
static void test_full_disk(void)
{
	char jdir[PATH_MAX + 16], ids[200][DR_JOB_ID_MAX], x[DR_JOB_ID_MAX], big[4096];
	dr_jobs_cfg cfg = {.max_pages = 8};
	dr_jobs *t;
	dr_job_state st;
	size_t n = 0, pos = 0;
	int rc = 0, kept = 0;
	char *list;
	cJSON *j;

	for (int f = 1; pos + 16 < sizeof(big) && f < 100000; f += 3)
		dr_append(big, sizeof(big), &pos, "%s%d", f > 1 ? "," : "", f);
	snprintf(jdir, sizeof(jdir), "%s/full", top);
	mkdir(jdir, 0755);
	cfg.dir = jdir;
	t = dr_jobs_create_with(&cfg, err, sizeof(err));
	ok(t != NULL, "create with an 8-page database (%s)", err);
	while (n < 200 && (rc = submit(t, big, 0, ids[n])) == 0)
		n++;
	ok(n > 0 && n < 200, "%zu jobs fit", n);
	is_int(rc, DR_E_UNAVAILABLE, "the next one cannot be recorded: DR_E_UNAVAILABLE (503)");
	ok(strstr(err, "full") && strstr(err, "jobs.db"), "the reason says so: %s", err);
	is_int(submit(t, "1", 0, x), DR_E_UNAVAILABLE,
	       "a small one is refused too while the disk is full");
	list = dr_jobs_list(t, DR_JOBS_LIST_MAX, 0);
	j = list ? cJSON_Parse(list) : NULL;
	is_int(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "jobs")), (int)n,
	       "only the accepted jobs are listed");
	cJSON_Delete(j);
	free(list);
	dr_jobs_destroy(t);

	cfg.max_pages = 0; /* room again */
	t = dr_jobs_create_with(&cfg, err, sizeof(err));
	ok(t != NULL, "restart after the full disk (%s)", err);
	for (size_t i = 0; i < n; i++) {
		cJSON_Delete(status_of(t, ids[i], &st));
		kept += st == DR_JOB_QUEUED;
	}
	is_int(kept, (int)n, "every accepted job is there, queued");
	is_int(submit(t, "1", 0, x), 0, "with room, jobs are accepted again");
	dr_jobs_destroy(t);
}

/* Write an older drender's journal into DIR. */
static void write_journal(const char *dir, const char *a, const char *b, const char *c)
{
	dr_jobspec s = mkspec("1-4", 2);
	cJSON *js = dr_jobspec_to_json(&s);
	char *spec = js ? cJSON_PrintUnformatted(js) : NULL;
	FILE *f = fopen(in(dir, "jobs.journal"), "w");

	if (f && spec) {
		fprintf(f,
		        "{\"op\":\"submit\",\"id\":\"%s\",\"submitted\":1700000000,\"spec\":%s}\n",
		        a, spec);
		fprintf(f,
		        "{\"op\":\"submit\",\"id\":\"%s\",\"submitted\":1700000001,\"spec\":%s}\n",
		        b, spec);
		fprintf(f,
		        "{\"op\":\"submit\",\"id\":\"%s\",\"submitted\":1700000002,\"spec\":%s}\n",
		        c, spec);
		fprintf(f, "{\"op\":\"state\",\"id\":\"%s\",\"state\":\"running\"}\n", a);
		fprintf(f,
		        "{\"op\":\"end\",\"id\":\"%s\",\"state\":\"done\",\"status\":{\"frames\":"
		        "{\"total\":4,\"done\":4,\"skipped\":0,\"failed\":0,\"running\":0,"
		        "\"pending\":0},\"progress\":1}}\n",
		        a);
		fprintf(f, "{\"op\":\"state\",\"id\":\"%s\",\"state\":\"running\"}\n", b);
		fprintf(f,
		        "garbage line\n{\"op\":\"state\",\"id\":\"unknown\",\"state\":\"done\"}\n");
		fprintf(f, "{\"op\":\"cancel\",\"id\":\"%s\"}\n", c);
		fprintf(f, "{\"op\":\"submit\",\"id\":\"torn\",\"subm");
	}
	if (f)
		fclose(f);
	cJSON_free(spec);
	cJSON_Delete(js);
	dr_jobspec_free(&s);
}

static void test_migrate(void)
{
	char jdir[PATH_MAX + 16], got[DR_JOB_ID_MAX], n1[DR_JOB_ID_MAX];
	dr_jobs *t;
	dr_jobspec s;
	dr_job_state st;
	cJSON *j;

	snprintf(jdir, sizeof(jdir), "%s/old", top);
	mkdir(jdir, 0755);
	write_journal(jdir, "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc");
	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "first start on an old journal (%s)", err);
	ok(!exists(in(jdir, "jobs.journal")), "jobs.journal is gone");
	ok(exists(in(jdir, "jobs.journal.migrated")), "kept as jobs.journal.migrated");
	j = status_of(t, "aaaaaaaaaaaa", &st);
	is_int(st, DR_JOB_DONE, "imported: the done job is done");
	is_int(num(j, "frames", "done"), 4, "with its final status");
	is_str(str(j, "submitted"), "2023-11-14T22:13:20Z", "and its submission time");
	cJSON_Delete(j);
	cJSON_Delete(status_of(t, "bbbbbbbbbbbb", &st));
	is_int(st, DR_JOB_QUEUED, "imported: the running job is queued again");
	cJSON_Delete(status_of(t, "cccccccccccc", &st));
	is_int(st, DR_JOB_CANCELLED, "imported: the job whose cancel was asked is cancelled");
	ok(dr_jobs_status(t, "torn", &st) == NULL, "the torn record's job is not there");
	ok(dr_jobs_status(t, "unknown", &st) == NULL, "nor the record of an unknown job");
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "the imported job can be taken");
	is_str(got, "bbbbbbbbbbbb", "it is b");
	is_int(s.priority, 2, "its spec came along");
	dr_jobspec_free(&s);
	is_int(submit(t, "1", 0, n1), 0, "submit after the import");
	dr_jobs_destroy(t);
	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "second start (%s)", err);
	cJSON_Delete(status_of(t, n1, &st));
	is_int(st, DR_JOB_QUEUED, "the new job is there");
	cJSON_Delete(status_of(t, "aaaaaaaaaaaa", &st));
	is_int(st, DR_JOB_DONE, "and the imported ones, imported once");
	dr_jobs_destroy(t);
}

/* Set every finished job's end time back by SECS in DIR's database, as if time had passed. */
static void age(const char *dir, double secs)
{
	sqlite3 *db = NULL;
	char sql[128];

	snprintf(sql, sizeof(sql), "UPDATE jobs SET ended = ended - %.0f WHERE ended IS NOT NULL",
	         secs);
	if (sqlite3_open(in(dir, "jobs.db"), &db) == SQLITE_OK)
		sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
}

static void finish(dr_jobs *t, const char *id)
{
	char got[DR_JOB_ID_MAX];
	dr_jobspec s;

	if (dr_jobs_take(t, got, sizeof(got), &s) == 1)
		dr_jobspec_free(&s);
	dr_jobs_publish(t, id, DR_JOB_DONE, NULL);
}

static void test_evict(void)
{
	char jdir[PATH_MAX + 16], ids[8][DR_JOB_ID_MAX], q[DR_JOB_ID_MAX], p[PATH_MAX + 64];
	dr_jobs_cfg cfg = {.keep_jobs = 3};
	dr_jobs *t;
	dr_job_state st;
	char *txt;
	int gone = 0;

	snprintf(jdir, sizeof(jdir), "%s/evict", top);
	mkdir(jdir, 0755);
	cfg.dir = jdir;
	t = dr_jobs_create_with(&cfg, err, sizeof(err));
	for (int i = 0; i < 5; i++) {
		submit(t, "1", 0, ids[i]);
		finish(t, ids[i]);
	}
	submit(t, "1", 0, q); /* stays queued */
	dr_jobs_destroy(t);
	t = dr_jobs_create_with(&cfg, err, sizeof(err));
	ok(t != NULL, "restart with --keep-jobs 3 (%s)", err);
	for (int i = 0; i < 2; i++)
		gone += dr_jobs_status(t, ids[i], &st) == NULL;
	is_int(gone, 2, "the two oldest finished jobs are evicted");
	cJSON_Delete(status_of(t, ids[2], &st));
	is_int(st, DR_JOB_DONE, "the three newest are kept");
	cJSON_Delete(status_of(t, q, &st));
	is_int(st, DR_JOB_QUEUED, "an unfinished job is never evicted");
	txt = dr_jobs_metrics(t);
	ok(txt && strstr(txt, "drender_jobs{state=\"done\"} 3\n"), "metrics count what is kept");
	free(txt);
	snprintf(p, sizeof(p), "%s", in(jdir, "jobs.db"));
	dr_jobs_destroy(t);

	cfg.keep_jobs = 0;
	cfg.keep_for = 3600;
	t = dr_jobs_create_with(&cfg, err, sizeof(err));
	submit(t, "1", 0, ids[5]);
	finish(t, ids[5]);
	dr_jobs_destroy(t);
	age(jdir, 7200); /* every finished job ended two hours ago */
	t = dr_jobs_create_with(&cfg, err, sizeof(err));
	submit(t, "1", 0, ids[6]);
	finish(t, ids[6]); /* ended now */
	dr_jobs_destroy(t);
	t = dr_jobs_create_with(&cfg, err, sizeof(err));
	ok(t != NULL, "restart with --keep-for 1h (%s)", err);
	ok(dr_jobs_status(t, ids[5], &st) == NULL && dr_jobs_status(t, ids[2], &st) == NULL,
	   "jobs that finished more than an hour ago are evicted");
	cJSON_Delete(status_of(t, ids[6], &st));
	is_int(st, DR_JOB_DONE, "one that finished just now is kept");
	cJSON_Delete(status_of(t, q, &st));
	is_int(st, DR_JOB_QUEUED, "the unfinished one is still there");
	dr_jobs_destroy(t);
	ok(exists(p), "the database stays");
}

/* Pages of GET /jobs: newest first, LIMIT at a time, a cursor that survives eviction. */
static void test_pages(void)
{
	dr_jobs *t = dr_jobs_create(NULL, 0, err, sizeof(err));
	char ids[25][DR_JOB_ID_MAX], order[25][DR_JOB_ID_MAX];
	long long after = 0;
	int pages = 0, seen = 0, right = 0;
	bool last_null = false;

	for (int i = 0; i < 25; i++)
		submit(t, "1", 0, ids[i]);
	finish(t, ids[3]); /* a finished job (answered from the database) among them */
	do {
		char *s = dr_jobs_list(t, 10, after);
		cJSON *o = s ? cJSON_Parse(s) : NULL, *e;
		const cJSON *next = cJSON_GetObjectItemCaseSensitive(o, "next");
		free(s);
		pages++;
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "jobs"))
		{
			if (seen < 25)
				snprintf(order[seen], sizeof(order[0]), "%s", str(e, "jobId"));
			seen++;
		}
		last_null = cJSON_IsNull(next);
		after = cJSON_IsString(next) ? strtoll(next->valuestring, NULL, 10) : 0;
		cJSON_Delete(o);
	} while (after > 0 && pages < 10);
	is_int(pages, 3, "25 jobs in pages of 10: 3 pages");
	is_int(seen, 25, "every job once");
	ok(last_null, "the last page's next is null");
	for (int i = 0; i < 25 && seen == 25; i++)
		right += !strcmp(order[i], ids[24 - i]);
	is_int(right, 25, "newest first across pages");
	{
		char *s = dr_jobs_list(t, 1, 0);
		cJSON *o = s ? cJSON_Parse(s) : NULL;
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "jobs");
		is_int(cJSON_GetArraySize(arr), 1, "limit 1: one job");
		is_str(str(cJSON_GetArrayItem(arr, 0), "jobId"), ids[24], "the newest");
		ok(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "next")),
		   "and a next cursor");
		cJSON_Delete(o);
		free(s);
	}
	dr_jobs_destroy(t);
}

static void test_metrics(void)
{
	dr_jobs *t = dr_jobs_create(NULL, 0, err, sizeof(err));
	char a[DR_JOB_ID_MAX];
	dr_metrics m;
	char *txt;

	memset(&m, 0, sizeof(m));
	submit(t, "1", 0, a);
	submit(t, "2", 0, a);
	dr_jobs_publish(t, a, DR_JOB_RUNNING, NULL);
	m.frames_done = 6;
	m.frames_failed = 1;
	m.frames_skipped = 2;
	m.attempts_failed = 3;
	m.hist[0] = 1;  /* <= 0.1 */
	m.hist[3] = 2;  /* <= 1 */
	m.hist[12] = 3; /* > 600 */
	m.seconds_sum = 1900.5;
	m.nodes_busy = 2;
	m.nodes_idle = 1;
	dr_jobs_publish_metrics(t, &m);
	txt = dr_jobs_metrics(t);
	ok(txt != NULL, "metrics text");
	if (!txt)
		txt = strdup("");
	ok(strstr(txt, "# TYPE drender_jobs gauge\n"), "jobs TYPE line");
	ok(strstr(txt, "# HELP drender_jobs "), "jobs HELP line");
	ok(strstr(txt, "drender_jobs{state=\"queued\"} 1\n"), "1 queued");
	ok(strstr(txt, "drender_jobs{state=\"running\"} 1\n"), "1 running");
	ok(strstr(txt, "drender_jobs{state=\"done\"} 0\n"), "0 done");
	ok(strstr(txt, "# TYPE drender_frames_total counter\n"), "frames TYPE");
	ok(strstr(txt, "drender_frames_total{outcome=\"done\"} 6\n"), "frames done");
	ok(strstr(txt, "drender_frames_total{outcome=\"failed\"} 1\n"), "frames failed");
	ok(strstr(txt, "drender_frames_total{outcome=\"skipped\"} 2\n"), "frames skipped");
	ok(strstr(txt, "drender_frame_attempts_failed_total 3\n"), "failed attempts");
	ok(strstr(txt, "# TYPE drender_frame_render_seconds histogram\n"), "histogram TYPE");
	ok(strstr(txt, "drender_frame_render_seconds_bucket{le=\"0.1\"} 1\n"), "first bucket");
	ok(strstr(txt, "drender_frame_render_seconds_bucket{le=\"0.5\"} 1\n"), "cumulative");
	ok(strstr(txt, "drender_frame_render_seconds_bucket{le=\"1\"} 3\n"), "cumulative at 1");
	ok(strstr(txt, "drender_frame_render_seconds_bucket{le=\"600\"} 3\n"), "cumulative at 600");
	ok(strstr(txt, "drender_frame_render_seconds_bucket{le=\"+Inf\"} 6\n"), "+Inf = count");
	ok(strstr(txt, "drender_frame_render_seconds_sum 1900.5"), "sum");
	ok(strstr(txt, "drender_frame_render_seconds_count 6\n"), "count");
	ok(strstr(txt, "drender_render_nodes{state=\"busy\"} 2\n"), "busy nodes");
	ok(strstr(txt, "drender_render_nodes{state=\"idle\"} 1\n"), "idle nodes");
	is_int(txt[strlen(txt) - 1], '\n', "ends with a newline");
	free(txt);
	dr_jobs_destroy(t);
}

static void count_notify(void *ctx)
{
	(*(int *)ctx)++;
}

/* Whoever runs the jobs is told of a submit and of a cancel asked for, not of a refusal. */
static void test_notify(void)
{
	dr_jobs *t = dr_jobs_create(NULL, 1, err, sizeof(err));
	char a[DR_JOB_ID_MAX], b[DR_JOB_ID_MAX];
	int n = 0;

	dr_jobs_set_notify(t, count_notify, &n);
	is_int(submit(t, "1-4", 0, a), DR_OK, "submit");
	is_int(n, 1, "a submit notifies");
	ok(submit(t, "1-4", 0, b) != DR_OK, "a full queue refuses");
	is_int(n, 1, "a refused submit does not notify");
	is_int(dr_jobs_cancel(t, "nope"), -1, "cancel unknown");
	is_int(n, 1, "cancelling an unknown job does not notify");
	is_int(dr_jobs_cancel(t, a), 0, "cancel");
	is_int(n, 2, "a cancel notifies");
	dr_jobs_set_notify(t, NULL, NULL);
	is_int(submit(t, "1-4", 0, b), DR_OK, "submit with no hook");
	is_int(n, 2, "no hook: nothing called");
	dr_jobs_destroy(t);
}

int main(void)
{
	char tmpl[] = "/tmp/drender-jobs.XXXXXX";

	dr_log_init(-1, DR_LOG_ERROR); /* the journal tests provoke warnings on purpose */
	if (!mkdtemp(tmpl) || !realpath(tmpl, top))
		return 1;
	is_str(dr_job_state_name(DR_JOB_CANCELLED), "cancelled", "state names");
	test_queue();
	test_cancel_and_status();
	test_notify();
	test_frames();
	test_restart();
	test_full_disk();
	test_migrate();
	test_evict();
	test_pages();
	test_metrics();
	testfs_rm_tree(top);
	return done_testing();
}
