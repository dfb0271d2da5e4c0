/* Run report: the end-of-run summary for people and the --report JSON for programs. */
#include "dr_report.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void dr_fmt_duration(double s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 59.95) { /* from 59.95 on, "%.1f" would print "60.0" */
		snprintf(buf, len, "%.1f s", s);
		return;
	}
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

double dr_report_clamp_seconds(double s, double max, bool *clamped)
{
	double v = s;

	if (!(max >= 0) || !isfinite(max))
		max = 0;
	if (!isfinite(v) || v < 0)
		v = 0;
	else if (v > max)
		v = max;
	*clamped = v != s;
	return v;
}

static const char *state_name(enum dr_fstate st)
{
	static const char *const names[] = {"pending", "running", "done", "skipped", "failed"};
	return names[st];
}

void dr_report_print(const dr_report *r, FILE *f)
{
	dr_sched_counts c = dr_sched_count(r->sched);
	char wall[32];

	dr_fmt_duration(r->wall, wall, sizeof wall);
	fprintf(f, "\n%s: %zu frame%s in %s: %zu rendered, %zu skipped (already done), %zu failed",
	        r->scene, c.total, c.total == 1 ? "" : "s", wall, c.done, c.skipped, c.failed);
	if (c.pending + c.running)
		fprintf(f, ", %zu not finished", c.pending + c.running);
	fprintf(f, "\n");
	if (c.done > 0) {
		fprintf(f, "  %-5s %-24s %-20s %7s %7s %6s %10s\n", "rank", "host", "device",
		        "threads", "frames", "busy", "s/frame");
		for (int i = 0; i < r->nslots; i++) {
			const dr_slot_stats *st = dr_sched_slot(r->sched, i);
			double busy = r->wall > 0 ? 100.0 * st->busy / r->wall : 0;
			fprintf(f, "  %-5d %-24.24s %-20.20s %7d %7d %5.0f%% %10.2f%s\n",
			        r->nodes[i].rank, r->nodes[i].host[0] ? r->nodes[i].host : "?",
			        r->nodes[i].device[0] ? r->nodes[i].device : "?",
			        r->nodes[i].threads, st->done, busy,
			        st->done ? st->busy / st->done : 0.0,
			        r->nodes[i].lost ? "  (lost)"
			        : st->excluded   ? "  (taken out of rotation)"
			        : st->gone       ? "  (could not load the scene)"
			                         : "");
		}
	}
	for (int i = 0; i < r->nslots; i++) {
		const dr_report_node *n = &r->nodes[i];
		char at[32];
		if (!n->lost)
			continue;
		dr_fmt_duration(n->lost_at, at, sizeof at);
		fprintf(f, "Lost: rank %d (%s) after %s: %s; %d frame%s went back to the queue\n",
		        n->rank, n->host[0] ? n->host : "?", at, n->lost_why, n->nlost_frames,
		        n->nlost_frames == 1 ? "" : "s");
	}
	if (r->clamped)
		fprintf(f,
		        "  (%zu frame time%s reported by Blender %s out of range and clamped: "
		        "the busy column is approximate)\n",
		        r->clamped, r->clamped == 1 ? "" : "s", r->clamped == 1 ? "was" : "were");
	if (c.failed > 0) {
		fprintf(f, "Failed frames:\n");
		for (size_t i = 0; i < dr_sched_size(r->sched); i++) {
			const dr_fitem *it = dr_sched_item(r->sched, i);
			if (it->state == DR_F_FAILED)
				fprintf(f, "  frame %d after %d attempt%s: %s\n", it->frame,
				        it->attempts, it->attempts == 1 ? "" : "s",
				        it->last_error ? it->last_error : "unknown error");
		}
	}
	if (r->has_still && r->still.merged_by >= 0)
		fprintf(f,
		        "Still frame %d: %d ranges, %.0f samples at %.1f samples/s; merged by rank "
		        "%d "
		        "(%s) in %.1f s (%.1f s from the last range to the still): %s\n",
		        r->still.frame, r->still.ranges, r->still.samples, r->still.samples_per_s,
		        r->still.merged_by, r->still.merged_host ? r->still.merged_host : "?",
		        r->still.merge_seconds, r->still.merge_wall, r->still.state);
	if (r->stage.ran)
		fprintf(f,
		        "Staging: %.1f MiB sent in %.2f s (%d node%s received the scene, %d had it "
		        "at "
		        "its path, %d in cache, %d could not get it)\n",
		        r->stage.bytes / 1048576.0, r->stage.seconds, r->stage.staged,
		        r->stage.staged == 1 ? "" : "s", r->stage.same, r->stage.cached,
		        r->stage.failed);
	if (r->nhome)
		fprintf(f,
		        "Collect: %zu frame%s brought home, %.1f MiB in %.2f s of transfers (rank "
		        "0 "
		        "held up %.1f ms at most)\n",
		        r->nhome, r->nhome == 1 ? "" : "s", r->home_bytes / 1048576.0,
		        r->home_seconds, r->home_max_turn * 1000);
	if (r->message)
		fprintf(f, "%s\n", r->message);
	fflush(f);
}

/* The report's "still" object (a still split). */
static void add_still(cJSON *root, const dr_report_still *s, dr_sched_counts c)
{
	cJSON *o = cJSON_AddObjectToObject(root, "still"), *a;

	if (!o)
		return;
	cJSON_AddNumberToObject(o, "frame", s->frame);
	cJSON_AddStringToObject(o, "state", s->state);
	cJSON_AddStringToObject(o, "path", s->path);
	cJSON_AddNumberToObject(o, "ranges_total", s->ranges);
	cJSON_AddNumberToObject(o, "ranges_done", (double)(c.done + c.skipped));
	a = cJSON_AddArrayToObject(o, "samples_per_range");
	for (int k = 0; a && s->range_samples && k < s->ranges; k++)
		cJSON_AddItemToArray(a, s->range_samples[k] > 0
		                                ? cJSON_CreateNumber(s->range_samples[k])
		                                : cJSON_CreateNull());
	cJSON_AddNumberToObject(o, "samples", s->samples);
	cJSON_AddNumberToObject(o, "samples_per_second", s->samples_per_s);
	if (s->merged_by >= 0) {
		cJSON_AddNumberToObject(o, "merged_by_rank", s->merged_by);
		cJSON_AddStringToObject(o, "merged_by_host", s->merged_host ? s->merged_host : "");
		cJSON_AddNumberToObject(o, "merge_seconds", s->merge_seconds);
		cJSON_AddNumberToObject(o, "merge_wall_seconds", s->merge_wall);
	} else {
		cJSON_AddNullToObject(o, "merged_by_rank");
		cJSON_AddNullToObject(o, "merge_seconds");
	}
	if (s->error)
		cJSON_AddStringToObject(o, "error", s->error);
}

/* A frame brought home (dr_collect): its bytes and seconds, as "home_bytes", "home_seconds". */
static void add_home(const dr_report *r, int frame, cJSON *o)
{
	size_t lo = 0, hi = r->nhome;

	while (r->home && lo < hi) { /* r->home is sorted by frame */
		size_t mid = lo + (hi - lo) / 2;
		if (r->home[mid].frame < frame) {
			lo = mid + 1;
		} else if (r->home[mid].frame > frame) {
			hi = mid;
		} else {
			cJSON_AddNumberToObject(o, "home_bytes", (double)r->home[mid].bytes);
			cJSON_AddNumberToObject(o, "home_seconds", r->home[mid].seconds);
			return;
		}
	}
}

/* The times of frame I (its scheduler index), or NULL. */
static const dr_report_times *times_of(const dr_report *r, size_t i)
{
	size_t stride = r->times_stride ? r->times_stride : sizeof *r->times;

	return r->times ? (const dr_report_times *)((const char *)r->times + i * stride) : NULL;
}

/* "collect" and "staging": how frames came home and how the scene went out. */
static void add_transfers(const dr_report *r, cJSON *root)
{
	if (r->nhome) {
		cJSON *h = cJSON_AddObjectToObject(root, "collect");
		if (h) {
			cJSON_AddNumberToObject(h, "frames", (double)r->nhome);
			cJSON_AddNumberToObject(h, "bytes", (double)r->home_bytes);
			cJSON_AddNumberToObject(h, "seconds", r->home_seconds);
			cJSON_AddNumberToObject(h, "max_turn_ms", r->home_max_turn * 1000);
		}
	}
	if (r->stage.ran) {
		cJSON *st = cJSON_AddObjectToObject(root, "staging");
		if (st) {
			cJSON_AddNumberToObject(st, "size", (double)r->stage.size);
			cJSON_AddNumberToObject(st, "bytes", (double)r->stage.bytes);
			cJSON_AddNumberToObject(st, "seconds", r->stage.seconds);
			cJSON_AddNumberToObject(st, "nodes_same_file", r->stage.same);
			cJSON_AddNumberToObject(st, "nodes_cached", r->stage.cached);
			cJSON_AddNumberToObject(st, "nodes_staged", r->stage.staged);
			cJSON_AddNumberToObject(st, "nodes_failed", r->stage.failed);
		}
	}
}

/* Slot I's entry in "ranks". */
static cJSON *rank_json(const dr_report *r, int i)
{
	const dr_slot_stats *st = dr_sched_slot(r->sched, i);
	const dr_report_node *nd = &r->nodes[i];
	cJSON *o = cJSON_CreateObject(), *l, *fr;

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "rank", nd->rank);
	cJSON_AddStringToObject(o, "host", nd->host);
	cJSON_AddNumberToObject(o, "threads", nd->threads);
	if (nd->device[0])
		cJSON_AddStringToObject(o, "device", nd->device);
	else
		cJSON_AddNullToObject(o, "device");
	if (nd->peak_mb > 0)
		cJSON_AddNumberToObject(o, "peak_memory_mb", nd->peak_mb);
	else
		cJSON_AddNullToObject(o, "peak_memory_mb");
	cJSON_AddNumberToObject(o, "frames", st->done);
	cJSON_AddNumberToObject(o, "failed_attempts", st->failed);
	cJSON_AddNumberToObject(o, "busy_seconds", st->busy);
	cJSON_AddNumberToObject(o, "busy_share", r->wall > 0 ? st->busy / r->wall : 0);
	cJSON_AddNumberToObject(o, "mean_seconds_per_frame", st->done ? st->busy / st->done : 0);
	cJSON_AddBoolToObject(o, "excluded", st->excluded);
	cJSON_AddBoolToObject(o, "lost", nd->lost);
	if (nd->lost && (l = cJSON_AddObjectToObject(o, "lost_info"))) {
		cJSON_AddNumberToObject(l, "after_seconds", nd->lost_at);
		cJSON_AddStringToObject(l, "why", nd->lost_why);
		fr = cJSON_AddArrayToObject(l, "frames");
		for (int k = 0; fr && k < nd->nlost_frames && k < DR_LOST_FRAMES_MAX; k++)
			cJSON_AddItemToArray(fr, cJSON_CreateNumber(nd->lost_frames[k]));
	}
	return o;
}

/* Frame I's entry in "frames". */
static cJSON *frame_json(const dr_report *r, size_t i)
{
	const dr_fitem *it = dr_sched_item(r->sched, i);
	const dr_report_times *t = times_of(r, i);
	bool on_node = it->slot >= 0 && it->slot < r->nslots;
	char path[DR_PATH_MAX];
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "frame", it->frame);
	cJSON_AddStringToObject(o, "state", state_name(it->state));
	if (on_node) {
		cJSON_AddNumberToObject(o, "rank", r->nodes[it->slot].rank);
		cJSON_AddStringToObject(o, "host", r->nodes[it->slot].host);
	} else {
		cJSON_AddNullToObject(o, "rank");
		cJSON_AddNullToObject(o, "host");
	}
	/* the device of the node that rendered it (a node keeps its device for a job) */
	if (it->state == DR_F_DONE && on_node && r->nodes[it->slot].device[0])
		cJSON_AddStringToObject(o, "device", r->nodes[it->slot].device);
	else
		cJSON_AddNullToObject(o, "device");
	cJSON_AddNumberToObject(o, "attempts", it->attempts);
	cJSON_AddNumberToObject(o, "seconds", it->seconds);
	add_home(r, it->frame, o);
	if (t && it->state == DR_F_DONE) {
		cJSON_AddNumberToObject(o, "dispatch_seconds", t->dispatch);
		cJSON_AddNumberToObject(o, "finished_at", t->finished_at);
	}
	if (dr_outpath_frame(r->out, it->frame, path, sizeof path) == 0)
		cJSON_AddStringToObject(o, "output", path);
	if (it->last_error)
		cJSON_AddStringToObject(o, "error", it->last_error);
	return o;
}

static cJSON *build(const dr_report *r)
{
	dr_sched_counts c = dr_sched_count(r->sched);
	cJSON *root = cJSON_CreateObject(), *frames, *ranks, *counts, *o;

	if (!root)
		return NULL;
	cJSON_AddStringToObject(root, "scene", r->scene);
	cJSON_AddStringToObject(root, "status", r->status);
	cJSON_AddNumberToObject(root, "exit_code", r->exit_code);
	if (r->message)
		cJSON_AddStringToObject(root, "message", r->message);
	cJSON_AddNumberToObject(root, "wall_seconds", r->wall);
	if (r->rank0_cpu >= 0)
		cJSON_AddNumberToObject(root, "rank0_cpu_seconds", r->rank0_cpu);
	if (r->clamped)
		cJSON_AddNumberToObject(root, "clamped_frame_times", (double)r->clamped);
	add_transfers(r, root);
	counts = cJSON_AddObjectToObject(root, "counts");
	if (counts) {
		cJSON_AddNumberToObject(counts, "total", (double)c.total);
		cJSON_AddNumberToObject(counts, "rendered", (double)c.done);
		cJSON_AddNumberToObject(counts, "skipped", (double)c.skipped);
		cJSON_AddNumberToObject(counts, "failed", (double)c.failed);
		cJSON_AddNumberToObject(counts, "unfinished", (double)(c.pending + c.running));
	}
	ranks = cJSON_AddArrayToObject(root, "ranks");
	for (int i = 0; ranks && i < r->nslots && (o = rank_json(r, i)); i++)
		cJSON_AddItemToArray(ranks, o);
	frames = cJSON_AddArrayToObject(root, "frames");
	for (size_t i = 0; frames && i < dr_sched_size(r->sched) && (o = frame_json(r, i)); i++)
		cJSON_AddItemToArray(frames, o);
	if (r->has_still)
		add_still(root, &r->still, dr_sched_count(r->sched));
	return root;
}

int dr_report_write(const dr_report *r, const char *path, char *err, size_t errlen)
{
	char tmp[DR_PATH_MAX];
	cJSON *root = build(r);
	char *text = root ? cJSON_Print(root) : NULL;
	FILE *f;
	int ret = -1, n;

	if (!text) {
		snprintf(err, errlen, "out of memory writing the report");
		goto out;
	}
	n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof tmp) {
		snprintf(err, errlen, "report path too long: %s", path);
		goto out;
	}
	f = fopen(tmp, "w");
	if (!f) {
		snprintf(err, errlen, "cannot write report %s: %s", tmp, strerror(errno));
		goto out;
	}
	int bad = fputs(text, f) < 0 || fputc('\n', f) < 0;
	if (fclose(f) != 0 || bad) {
		snprintf(err, errlen, "cannot write report %s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot write report %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	ret = 0;
out:
	free(text);
	cJSON_Delete(root);
	return ret;
}

/* Split PATH into its directory's real path (DIR, PATH_MAX) and its last component (BASE, a pointer
 * into PATH). 0, or -1 with errno (the directory cannot be resolved). */
static int real_dir(const char *path, char *dir, const char **base)
{
	char d[DR_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int n;

	*base = slash ? slash + 1 : path;
	n = slash == path ? snprintf(d, sizeof d, "/")
	    : slash       ? snprintf(d, sizeof d, "%.*s", (int)(slash - path), path)
	                  : snprintf(d, sizeof d, ".");
	if (n < 0 || (size_t)n >= sizeof d) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return realpath(d, dir) ? 0 : -1;
}

int dr_report_check_path(const char *path, const char *scene, const dr_outpath *out,
                         const dr_frames *f, char *err, size_t errlen)
{
	char dir[PATH_MAX], fdir[PATH_MAX], fpath[DR_PATH_MAX];
	const char *base, *fbase;
	struct stat st, sst;

	if (!*path || real_dir(path, dir, &base) != 0) {
		snprintf(err, errlen, "--report %s: its directory %s", path,
		         *path ? strerror(errno) : "is missing (empty path)");
		if (*path && errno == ENOENT)
			snprintf(err, errlen, "--report %s: its directory does not exist", path);
		return -1;
	}
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		snprintf(err, errlen, "--report %s: names a directory, not a file", path);
		return -1;
	}
	if (access(dir, W_OK) != 0) {
		snprintf(err, errlen, "--report %s: cannot write in %s: %s", path, dir,
		         strerror(errno));
		return -1;
	}
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "--report %s: is a directory", path);
			return -1;
		}
		if (scene && stat(scene, &sst) == 0 && st.st_dev == sst.st_dev &&
		    st.st_ino == sst.st_ino) {
			snprintf(err, errlen,
			         "--report %s: is the scene %s; it would be overwritten", path,
			         scene);
			return -1;
		}
	}
	for (size_t i = 0; out && f && i < f->n; i++) {
		if (dr_outpath_frame(out, f->v[i], fpath, sizeof fpath) != 0)
			continue;
		fbase = strrchr(fpath, '/');
		fbase = fbase ? fbase + 1 : fpath;
		if (strcmp(fbase, base) != 0)
			continue;
		/* same name (rare): is it the same directory? */
		if (real_dir(fpath, fdir, &fbase) == 0 && strcmp(fdir, dir) == 0) {
			snprintf(err, errlen,
			         "--report %s: is the output file of frame %d; it would be "
			         "overwritten",
			         path, f->v[i]);
			return -1;
		}
	}
	return 0;
}
