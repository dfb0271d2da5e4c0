/* Unit tests for dr_report: the JSON report read back with cJSON, the human summary, durations. */
#include "dr_report.h"
#include "tap.h"

#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];

static void test_duration(void)
{
	static const struct {
		double s;
		const char *want;
	} t[] = {
	        {0, "0.0 s"},
	        {-5, "0.0 s"},
	        {0.04, "0.0 s"},
	        {12.34, "12.3 s"},
	        {59.9, "59.9 s"},
	        {59.96, "1:00"},
	        {60, "1:00"},
	        {61.4, "1:01"},
	        {245, "4:05"},
	        {599.5, "10:00"},
	        {3599.4, "59:59"},
	        {3599.6, "1:00:00"},
	        {3600, "1:00:00"},
	        {3723, "1:02:03"},
	        {36000 + 59, "10:00:59"},
	        {100 * 3600.0, "100:00:00"},
	};
	char buf[64];
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		dr_fmt_duration(t[i].s, buf, sizeof buf);
		is_str(buf, t[i].want, "duration %g", t[i].s);
	}
	char small[4];
	dr_fmt_duration(3723, small, sizeof small);
	is_int(strlen(small), 3, "a short buffer is truncated, not overrun");
}

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : -12345;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	if (!f)
		return NULL;
	FILE *m = open_memstream(&buf, &len);
	int c;
	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(m);
	fclose(f);
	return buf;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Frames 1..5 on two slots: 1 done, 2 skipped, 3 failed, 4 running, 5 pending. */
static dr_sched *make_sched(void)
{
	static const int f[] = {1, 2, 3, 4, 5};
	dr_sched_cfg cfg = {.nslots = 2, .chunk = 1, .retries = 0, .max_consec = 5};
	int out[2];
	dr_sched *s = dr_sched_create(f, 5, &cfg, err, sizeof err);
	if (!s)
		return NULL;
	dr_sched_skip(s, 2);
	dr_sched_next(s, 0, 0, out, 2); /* 1 on slot 0 */
	dr_sched_next(s, 1, 0, out, 2); /* 3 on slot 1 */
	dr_sched_done(s, 0, 1, 2.5);
	dr_sched_fail(s, 1, 3, "Blender crashed \"badly\"");
	dr_sched_next(s, 0, 1, out, 2); /* 4 on slot 0 */
	return s;
}

static void test_json(void)
{
	char dir[] = "/tmp/drender-test-report-XXXXXX";
	char path[256], bad[300];
	dr_outpath out;
	dr_report_node nodes[2] = {{.rank = 1, .host = "alpha", .threads = 4},
	                           {.rank = 2, .host = "beta", .threads = 2}};
	dr_sched *s = make_sched();

	ok(s != NULL, "scheduler set up");
	ok(mkdtemp(dir) != NULL, "temporary directory");
	ok(dr_outpath_init(&out, "/renders/f_####", "scene.blend", "PNG", err, sizeof err) == 0,
	   "output naming set up");
	snprintf(path, sizeof path, "%s/report.json", dir);
	dr_report r = {.scene = "scene.blend",
	               .sched = s,
	               .out = &out,
	               .nodes = nodes,
	               .nslots = 2,
	               .wall = 10.0,
	               .exit_code = 1,
	               .status = "failed",
	               .message = "stopped early"};
	err[0] = '\0';
	is_int(dr_report_write(&r, path, err, sizeof err), 0, "report written (%s)", err);
	is_int(count_entries(dir), 1, "only the report is left in the directory (no temp file)");

	char *text = slurp(path);
	cJSON *root = text ? cJSON_Parse(text) : NULL;
	ok(root != NULL, "the report is valid JSON");
	if (!root) {
		free(text);
		dr_sched_destroy(s);
		return;
	}
	is_str(str(root, "scene"), "scene.blend", "scene");
	is_str(str(root, "status"), "failed", "status");
	is_int(num(root, "exit_code"), 1, "exit code");
	is_str(str(root, "message"), "stopped early", "message");
	ok(num(root, "wall_seconds") == 10.0, "wall seconds");

	const cJSON *c = get(root, "counts");
	ok(cJSON_IsObject(c), "counts object");
	ok(num(c, "total") == 5 && num(c, "rendered") == 1 && num(c, "skipped") == 1 &&
	           num(c, "failed") == 1 && num(c, "unfinished") == 2,
	   "counts: 5 total, 1 rendered, 1 skipped, 1 failed, 2 unfinished");

	const cJSON *ranks = get(root, "ranks");
	ok(cJSON_IsArray(ranks) && cJSON_GetArraySize(ranks) == 2, "two ranks");
	const cJSON *r0 = cJSON_GetArrayItem(ranks, 0), *r1 = cJSON_GetArrayItem(ranks, 1);
	ok(num(r0, "rank") == 1 && strcmp(str(r0, "host"), "alpha") == 0 && num(r0, "threads") == 4,
	   "rank 1 on alpha with 4 threads");
	ok(num(r0, "frames") == 1 && num(r0, "failed_attempts") == 0 &&
	           num(r0, "busy_seconds") == 2.5 && num(r0, "busy_share") == 0.25 &&
	           num(r0, "mean_seconds_per_frame") == 2.5,
	   "rank 1 stats");
	ok(cJSON_IsFalse(get(r0, "excluded")) && cJSON_IsFalse(get(r0, "lost")),
	   "rank 1 neither excluded nor lost");
	ok(num(r1, "rank") == 2 && num(r1, "frames") == 0 && num(r1, "failed_attempts") == 1 &&
	           num(r1, "mean_seconds_per_frame") == 0,
	   "rank 2 stats");

	const cJSON *frames = get(root, "frames");
	ok(cJSON_IsArray(frames) && cJSON_GetArraySize(frames) == 5, "five frames");
	static const struct {
		int frame;
		const char *state;
		int rank; /* 0 = null */
		int attempts;
		double seconds;
	} want[] = {
	        {1, "done", 1, 1, 2.5},  {2, "skipped", 0, 0, 0}, {3, "failed", 2, 1, 0},
	        {4, "running", 1, 1, 0}, {5, "pending", 0, 0, 0},
	};
	for (int i = 0; i < 5; i++) {
		const cJSON *f = cJSON_GetArrayItem(frames, i);
		char outp[64];
		snprintf(outp, sizeof outp, "/renders/f_%04d.png", want[i].frame);
		is_int(num(f, "frame"), want[i].frame, "frame %d: number", want[i].frame);
		is_str(str(f, "state"), want[i].state, "frame %d: state", want[i].frame);
		if (want[i].rank) {
			is_int(num(f, "rank"), want[i].rank, "frame %d: rank", want[i].frame);
			is_str(str(f, "host"), want[i].rank == 1 ? "alpha" : "beta",
			       "frame %d: host", want[i].frame);
		} else {
			ok(cJSON_IsNull(get(f, "rank")) && cJSON_IsNull(get(f, "host")),
			   "frame %d: rank and host null", want[i].frame);
		}
		is_int(num(f, "attempts"), want[i].attempts, "frame %d: attempts", want[i].frame);
		ok(num(f, "seconds") == want[i].seconds, "frame %d: seconds", want[i].frame);
		is_str(str(f, "output"), outp, "frame %d: output path", want[i].frame);
	}
	is_str(str(cJSON_GetArrayItem(frames, 2), "error"), "Blender crashed \"badly\"",
	       "failed frame carries its error (quotes escaped and read back)");
	ok(get(cJSON_GetArrayItem(frames, 0), "error") == NULL, "done frame has no error");
	cJSON_Delete(root);
	free(text);

	/* No message: no "message" key; a rewrite replaces the file. */
	r.message = NULL;
	r.status = "done";
	is_int(dr_report_write(&r, path, err, sizeof err), 0, "report rewritten");
	text = slurp(path);
	root = text ? cJSON_Parse(text) : NULL;
	ok(root && get(root, "message") == NULL && strcmp(str(root, "status"), "done") == 0,
	   "no message key when there is none; file replaced");
	ok(root && get(root, "still") == NULL, "not a still: no \"still\" key");
	cJSON_Delete(root);
	free(text);

	/* A still split: its "still" object. */
	static const int samples[5] = {19, 17, 0, 15, 13};
	r.has_still = true;
	r.still = (dr_report_still){.frame = 7,
	                            .ranges = 5,
	                            .range_samples = samples,
	                            .samples = 64,
	                            .samples_per_s = 6.4,
	                            .path = "/renders/f_0007.png",
	                            .state = "made",
	                            .merged_by = 2,
	                            .merged_host = "beta",
	                            .merge_seconds = 2.5,
	                            .merge_wall = 3.0};
	is_int(dr_report_write(&r, path, err, sizeof err), 0, "still report written");
	text = slurp(path);
	root = text ? cJSON_Parse(text) : NULL;
	const cJSON *st = root ? get(root, "still") : NULL;
	ok(st && num(st, "frame") == 7 && strcmp(str(st, "state"), "made") == 0 &&
	           num(st, "ranges_total") == 5 && num(st, "ranges_done") == 2 &&
	           num(st, "samples") == 64 && num(st, "samples_per_second") == 6.4,
	   "still: frame, state, ranges done/total (from the frames), samples, samples/s");
	ok(st && num(st, "merged_by_rank") == 2 && strcmp(str(st, "merged_by_host"), "beta") == 0 &&
	           num(st, "merge_seconds") == 2.5 && num(st, "merge_wall_seconds") == 3.0,
	   "still: who merged, in how long");
	const cJSON *per = st ? get(st, "samples_per_range") : NULL;
	ok(cJSON_GetArraySize(per) == 5 && cJSON_GetArrayItem(per, 0)->valuedouble == 19 &&
	           cJSON_IsNull(cJSON_GetArrayItem(per, 2)),
	   "still: samples per range, null where unknown");
	ok(st && get(st, "error") == NULL, "still made: no error");
	cJSON_Delete(root);
	free(text);
	r.has_still = false;

	snprintf(bad, sizeof bad, "%s/missing/report.json", dir);
	err[0] = '\0';
	is_int(dr_report_write(&r, bad, err, sizeof err), -1, "unwritable path refused");
	ok(strstr(err, "cannot write report") && strstr(err, "missing"),
	   "message names the path: %s", err);

	/* Human summary. */
	char *sum = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&sum, &len);
	r.message = "stopped early";
	dr_report_print(&r, m);
	fclose(m);
	ok(sum && strstr(sum, "5 frames") && strstr(sum, "1 rendered") &&
	           strstr(sum, "1 skipped") && strstr(sum, "1 failed") &&
	           strstr(sum, "2 not finished"),
	   "summary totals");
	ok(sum && strstr(sum, "alpha") && strstr(sum, "beta"), "summary lists the hosts");
	ok(sum && strstr(sum, "frame 3 after 1 attempt: Blender crashed"),
	   "summary lists the failed frame");
	ok(sum && strstr(sum, "stopped early"), "summary ends with the message");
	free(sum);

	unlink(path);
	rmdir(dir);
	dr_sched_destroy(s);
}

/* --report is checked before anything renders (issue 10 item 7). */
static void test_check_path(void)
{
	char dir[] = "/tmp/dr-report-XXXXXX", scene[600], alias[600], pat[600], p[700];
	dr_outpath out;
	int fv[] = {1, 2, 3};
	dr_frames fr = {fv, 3};
	FILE *fp;

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(scene, sizeof scene, "%s/victim.blend", dir);
	snprintf(alias, sizeof alias, "%s/alias.blend", dir);
	fp = fopen(scene, "w");
	if (fp)
		fclose(fp);
	ok(link(scene, alias) == 0, "a hard link to the scene");
	snprintf(pat, sizeof pat, "%s/out/x_#", dir);
	ok(dr_outpath_init(&out, pat, scene, "PNG", err, sizeof err) == 0, "pattern");

	snprintf(p, sizeof p, "%s/report.json", dir);
	ok(dr_report_check_path(p, scene, &out, &fr, err, sizeof err) == 0, "a fresh file: ok (%s)",
	   err);
	ok(dr_report_check_path(scene, scene, &out, &fr, err, sizeof err) == -1 &&
	           strstr(err, "is the scene"),
	   "the scene itself is refused (%s)", err);
	ok(dr_report_check_path(alias, scene, &out, &fr, err, sizeof err) == -1 &&
	           strstr(err, "is the scene"),
	   "a hard link to the scene is refused (%s)", err);
	snprintf(p, sizeof p, "%s/out", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/out/x_2.png", dir);
	ok(dr_report_check_path(p, scene, &out, &fr, err, sizeof err) == -1 &&
	           strstr(err, "frame 2"),
	   "a frame of the job is refused (%s)", err);
	snprintf(p, sizeof p, "%s/out/../out/x_3.png", dir);
	ok(dr_report_check_path(p, scene, &out, &fr, err, sizeof err) == -1 &&
	           strstr(err, "frame 3"),
	   "the same frame by another name is refused (%s)", err);
	snprintf(p, sizeof p, "%s/out/x_4.png", dir);
	ok(dr_report_check_path(p, scene, &out, &fr, err, sizeof err) == 0,
	   "a frame name outside the job is fine");
	snprintf(p, sizeof p, "%s/missing/r.json", dir);
	ok(dr_report_check_path(p, scene, &out, &fr, err, sizeof err) == -1 &&
	           strstr(err, "does not exist"),
	   "a missing directory is refused (%s)", err);
	snprintf(p, sizeof p, "%s/out", dir);
	ok(dr_report_check_path(p, scene, &out, &fr, err, sizeof err) == -1 &&
	           strstr(err, "directory"),
	   "a directory is refused (%s)", err);
	snprintf(p, sizeof p, "%s/out/x_2.png", dir);
	unlink(alias);
	unlink(scene);
	snprintf(p, sizeof p, "%s/out", dir);
	rmdir(p);
	rmdir(dir);
}

/* Render times from Blender are clamped and flagged (issue 10 item 9: "-inf%" in the summary). */
static void test_clamp(void)
{
	bool c;

	ok(dr_report_clamp_seconds(1.5, 10, &c) == 1.5 && !c, "a sane time is kept");
	ok(dr_report_clamp_seconds(-3, 10, &c) == 0 && c, "negative -> 0, flagged");
	ok(dr_report_clamp_seconds(-INFINITY, 10, &c) == 0 && c, "-inf -> 0, flagged");
	ok(dr_report_clamp_seconds(NAN, 10, &c) == 0 && c, "NaN -> 0, flagged");
	ok(dr_report_clamp_seconds(1e308, 10, &c) == 10 && c, "absurd -> the time that passed");
	ok(dr_report_clamp_seconds(INFINITY, 10, &c) == 0 && c, "inf -> 0 (not a time)");
	ok(dr_report_clamp_seconds(5, -1, &c) == 0 && c, "no time passed: 0");
}

int main(void)
{
	test_duration();
	test_clamp();
	test_check_path();
	test_json();
	return done_testing();
}
