/* Unit tests for dr_jobs: queue order, limits, cancellation, status merge, listing, frames,
 * journal replay (a torn last line included) and the metrics page. */
#include "dr_jobs.h"
#include "dr_log.h"
#include "tap.h"
#include "testfs.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
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
	is_int(submit(t, "1", 9, d), -2, "fourth submit: queue full (3)");
	ok(strstr(err, "queue is full") != NULL, "says the queue is full: %s", err);

	memset(&s, 0, sizeof(s));
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take");
	is_str(got, b, "highest priority first");
	is_int(s.frames.n, 5, "spec copied");
	snprintf(want, sizeof(want), "%s/%s/shot_####", top, b);
	is_str(s.render.output, want, "output filled with <root>/<id>/<scene>_####");
	dr_jobspec_free(&s);
	is_int(submit(t, "1", 9, d), -2, "a taken job still counts as queued");
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

	list = dr_jobs_list(t);
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

/* The journal file's size and whether it ends with a newline. */
static long journal_size(const char *dir, int *nl)
{
	char p[PATH_MAX + 32];
	struct stat st;
	int fd;
	char c = 0;

	snprintf(p, sizeof(p), "%s/jobs.journal", dir);
	if (stat(p, &st) < 0)
		return -1;
	fd = open(p, O_RDONLY);
	if (fd >= 0 && st.st_size > 0 && pread(fd, &c, 1, st.st_size - 1) == 1)
		*nl = c == '\n';
	if (fd >= 0)
		close(fd);
	return (long)st.st_size;
}

static void append(const char *dir, const char *text)
{
	char p[PATH_MAX + 32];
	FILE *f;

	snprintf(p, sizeof(p), "%s/jobs.journal", dir);
	f = fopen(p, "a");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_journal(void)
{
	char jdir[PATH_MAX + 16], a[DR_JOB_ID_MAX], b[DR_JOB_ID_MAX], c[DR_JOB_ID_MAX],
	        d[DR_JOB_ID_MAX], e[DR_JOB_ID_MAX], f[DR_JOB_ID_MAX], got[DR_JOB_ID_MAX];
	dr_jobs *t, *t2;
	dr_jobspec s;
	dr_job_state st;
	cJSON *j;
	int nl = 0;
	long size;

	snprintf(jdir, sizeof(jdir), "%s/j", top);
	mkdir(jdir, 0755);
	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "create with a journal (%s)", err);
	t2 = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t2 == NULL && strstr(err, "in use"), "a second table on the same journal is refused: %s",
	   err);
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
	dr_jobs_destroy(t);

	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "replay (%s)", err);
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
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take after replay");
	is_str(got, b, "priority kept");
	is_str(s.render.scene, "/scenes/shot.blend", "spec kept");
	dr_jobspec_free(&s);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 1, "take after replay");
	is_str(got, c, "submission order kept");
	dr_jobspec_free(&s);
	is_int(dr_jobs_take(t, got, sizeof(got), &s), 0, "nothing else to take");
	dr_jobs_destroy(t);

	size = journal_size(jdir, &nl);
	append(jdir, "{\"op\":\"submit\",\"id\":\"torn\",\"subm");
	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "replay with a torn last line (%s)", err);
	is_int(journal_size(jdir, &nl), size, "torn line cut off");
	ok(nl, "journal ends with a newline");
	ok(dr_jobs_status(t, "torn", &st) == NULL, "the torn job is not there");
	is_int(submit(t, "1", 0, f), 0, "submit after repair");
	dr_jobs_destroy(t);
	append(jdir, "garbage line\n{\"op\":\"state\",\"id\":\"unknown\",\"state\":\"done\"}\n");
	t = dr_jobs_create(jdir, 10, err, sizeof(err));
	ok(t != NULL, "replay skips bad lines (%s)", err);
	cJSON_Delete(status_of(t, f, &st));
	is_int(st, DR_JOB_QUEUED, "job submitted after the repair is there");
	cJSON_Delete(status_of(t, a, &st));
	is_int(st, DR_JOB_DONE, "and the old ones");
	dr_jobs_destroy(t);

	ok(dr_jobs_create("/nonexistent/dir", 10, err, sizeof(err)) == NULL,
	   "unwritable journal dir refused: %s", err);
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

int main(void)
{
	char tmpl[] = "/tmp/drender-jobs.XXXXXX";

	dr_log_init(-1, DR_LOG_ERROR); /* the journal tests provoke warnings on purpose */
	if (!mkdtemp(tmpl) || !realpath(tmpl, top))
		return 1;
	is_str(dr_job_state_name(DR_JOB_CANCELLED), "cancelled", "state names");
	test_queue();
	test_cancel_and_status();
	test_frames();
	test_journal();
	test_metrics();
	testfs_rm_tree(top);
	return done_testing();
}
