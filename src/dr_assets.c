/* The scene's external files: parse what a node's Blender listed, decide what is missing or
 * fatal, and make the packed (self-contained) copy of a scene for staging. */
#include "dr_assets.h"

#include "dr_blender.h"
#include "dr_log.h"
#include "dr_proc.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void dr_assets_free(dr_assets *a)
{
	for (size_t i = 0; a && i < a->n; i++) {
		free(a->v[i].path);
		free(a->v[i].abs);
	}
	if (a) {
		free(a->v);
		*a = (dr_assets){0};
	}
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int dr_assets_parse(const char *text, dr_assets *a, char *err, size_t errlen)
{
	cJSON *json = text ? cJSON_Parse(text) : NULL;
	const cJSON *item;
	int rc = -1;

	dr_assets_free(a);
	if (!cJSON_IsArray(json)) {
		dr_seterr(err, errlen, "Blender's list of the scene's files is not a JSON array");
		goto out;
	}
	cJSON_ArrayForEach(item, json)
	{
		const char *kind = str_of(item, "kind"), *name = str_of(item, "name");
		const char *path = str_of(item, "path"), *abs = str_of(item, "abs");
		const cJSON *exists = cJSON_GetObjectItemCaseSensitive(item, "exists");
		const cJSON *packed = cJSON_GetObjectItemCaseSensitive(item, "packed");
		dr_asset *x;

		if (!cJSON_IsObject(item) || !kind || !path || !cJSON_IsBool(exists)) {
			dr_seterr(err, errlen,
			          "Blender's list of the scene's files has an entry without kind, "
			          "path or exists");
			goto out;
		}
		if (strcmp(kind, "truncated") == 0) { /* the driver listed only the first files */
			a->truncated = true;
			continue;
		}
		if (dr_grow(&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0)
			goto oom;
		x = &a->v[a->n];
		*x = (dr_asset){.exists = cJSON_IsTrue(exists), .packed = cJSON_IsTrue(packed)};
		snprintf(x->kind, sizeof x->kind, "%s", kind);
		snprintf(x->name, sizeof x->name, "%s", name ? name : "");
		x->path = strdup(path);
		x->abs = strdup(abs ? abs : path);
		a->n++;
		if (!x->path || !x->abs)
			goto oom;
	}
	rc = 0;
	goto out;
oom:
	dr_seterr(err, errlen, "out of memory");
out:
	if (rc != 0)
		dr_assets_free(a);
	cJSON_Delete(json);
	return rc;
}

#define MISSING_HEAD "the scene needs "
/* Beside a packed copy: the files that went into it (see dr_assets_pack_fresh). */
#define MANIFEST ".files"

bool dr_assets_missing_text(const char *text)
{
	return text && strncmp(text, MISSING_HEAD, sizeof MISSING_HEAD - 1) == 0;
}

bool dr_asset_path_absolute(const char *p)
{
	if (!p || !*p)
		return false;
	if (p[0] == '/')
		return p[1] != '/'; /* "//x" is Blender's "next to the .blend" */
	if (p[0] == '\\' && p[1] == '\\')
		return true; /* a Windows share */
	return ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':' &&
	       (p[2] == '\\' || p[2] == '/');
}

/* Caches that Blender recomputes when they are not there (simulations baked to disk). */
static bool resimulated(const char *kind)
{
	return strcmp(kind, "point_cache") == 0 || strcmp(kind, "fluid_cache") == 0;
}

enum dr_asset_verdict dr_asset_verdict(const dr_asset *x)
{
	/* packed files are inside the .blend; a text's content is saved inside it too */
	if (x->packed || strcmp(x->kind, "text") == 0)
		return DR_ASSET_FINE;
	if (!x->exists)
		return resimulated(x->kind) ? DR_ASSET_RESIMULATE : DR_ASSET_MISSING;
	if (dr_asset_path_absolute(x->path))
		return DR_ASSET_ABSOLUTE;
	return DR_ASSET_FINE;
}

/* One line about X into BUF at *POS: '  image "checker.png": //tex/checker.png' + TAIL. */
static void line_of(const dr_asset *x, const char *tail, char *line, size_t len)
{
	size_t pos = 0;

	dr_append(line, len, &pos, "  %s", x->kind);
	if (x->name[0])
		dr_append(line, len, &pos, " \"%s\"", x->name);
	dr_append(line, len, &pos, ": %s", x->path);
	if (strcmp(x->path, x->abs) != 0 && strcmp(tail, "missing") == 0)
		dr_append(line, len, &pos, " (not found at %s)", x->abs);
	else if (strcmp(tail, "missing") == 0)
		dr_append(line, len, &pos, " (not found)");
	else if (tail[0])
		dr_append(line, len, &pos, " (%s)", tail);
}

/* Append LINE to BUF unless it does not fit with room for "... and K more" after it; then count
 * it in *LEFT instead. */
static void add_line(char *buf, size_t len, size_t *pos, const char *line, size_t *left)
{
	static const size_t reserve = 40; /* "\n  ... and 99999 more" */

	if (*left > 0 || *pos + strlen(line) + 1 + reserve >= len) {
		(*left)++;
		return;
	}
	dr_append(buf, len, pos, "\n%s", line);
}

dr_assets_summary dr_assets_judge(const dr_assets *a, const char *host, bool allow_missing,
                                  char *fatal, size_t fatallen, char *warn, size_t warnlen)
{
	dr_assets_summary s = {0};
	size_t fpos = 0, wpos = 0, fleft = 0, wleft = 0;
	char line[2 * DR_PATH_MAX + 400];
	const char *on = host && host[0] ? host : "this host";

	if (fatal && fatallen)
		fatal[0] = '\0';
	if (warn && warnlen)
		warn[0] = '\0';
	for (size_t i = 0; i < a->n; i++) {
		switch (dr_asset_verdict(&a->v[i])) {
		case DR_ASSET_MISSING:
			s.missing++;
			break;
		case DR_ASSET_RESIMULATE:
			s.resimulate++;
			break;
		case DR_ASSET_ABSOLUTE:
			s.absolute++;
			break;
		case DR_ASSET_FINE:
			break;
		}
	}
	s.fatal = s.missing > 0 && !allow_missing;
	if (s.fatal && fatal && fatallen) {
		dr_append(fatal, fatallen, &fpos,
		          MISSING_HEAD "%zu file%s missing on %s (render anyway with "
		                       "--allow-missing):",
		          s.missing, s.missing == 1 ? " that is" : "s that are", on);
		for (size_t i = 0; i < a->n; i++)
			if (dr_asset_verdict(&a->v[i]) == DR_ASSET_MISSING) {
				line_of(&a->v[i], "missing", line, sizeof line);
				add_line(fatal, fatallen, &fpos, line, &fleft);
			}
		if (fleft)
			dr_append(fatal, fatallen, &fpos, "\n  ... and %zu more", fleft);
	}
	if (!warn || !warnlen)
		return s;
	if (s.missing && allow_missing) {
		dr_append(warn, warnlen, &wpos,
		          "rendering without %zu missing file%s (--allow-missing) on %s:",
		          s.missing, s.missing == 1 ? "" : "s", on);
		for (size_t i = 0; i < a->n; i++)
			if (dr_asset_verdict(&a->v[i]) == DR_ASSET_MISSING) {
				line_of(&a->v[i], "missing", line, sizeof line);
				add_line(warn, warnlen, &wpos, line, &wleft);
			}
	}
	if (s.resimulate) {
		dr_append(warn, warnlen, &wpos,
		          "%s%zu baked cache%s not found on %s: Blender simulates again on each "
		          "node, and nodes may disagree:",
		          wpos ? "\n" : "", s.resimulate, s.resimulate == 1 ? "" : "s", on);
		for (size_t i = 0; i < a->n; i++)
			if (dr_asset_verdict(&a->v[i]) == DR_ASSET_RESIMULATE) {
				line_of(&a->v[i], "missing", line, sizeof line);
				add_line(warn, warnlen, &wpos, line, &wleft);
			}
	}
	if (s.absolute) {
		dr_append(warn, warnlen, &wpos,
		          "%s%zu file%s referenced by an absolute path, which other hosts must "
		          "have at the same place (File > External Data > Make Paths Relative):",
		          wpos ? "\n" : "", s.absolute, s.absolute == 1 ? " is" : "s are");
		for (size_t i = 0; i < a->n; i++)
			if (dr_asset_verdict(&a->v[i]) == DR_ASSET_ABSOLUTE) {
				line_of(&a->v[i], "", line, sizeof line);
				add_line(warn, warnlen, &wpos, line, &wleft);
			}
	}
	if (wleft)
		dr_append(warn, warnlen, &wpos, "\n  ... and %zu more", wleft);
	if (a->truncated)
		dr_append(warn, warnlen, &wpos, "%sBlender listed only the scene's first files",
		          wpos ? "\n" : "");
	return s;
}

/* ---- the packed copy (acts) ---- */

/* True when PATH starts like a .blend: "BLENDER", or zstd/gzip compressed. */
static bool looks_like_blend(const char *path)
{
	unsigned char head[8] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, head, sizeof head) : -1;

	if (fd >= 0)
		close(fd);
	if (n < 4)
		return false;
	return (n >= 7 && memcmp(head, "BLENDER", 7) == 0) ||
	       memcmp(head, "\x28\xb5\x2f\xfd", 4) == 0 || memcmp(head, "\x1f\x8b", 2) == 0;
}

/* The unpackable files Blender listed in its output TAIL ("drender-unpackable: K\tN\tP"), one
 * line each, into ERR after a head line. */
static void unpackable(const char *tail, const char *scene, char *err, size_t errlen)
{
	static const char mark[] = "drender-unpackable: ";
	size_t pos = 0, n = 0;
	const char *p;

	dr_append(err, errlen, &pos,
	          "cannot make a self-contained copy of %s: Blender cannot pack these files into "
	          "it (stage them beside the scene with the same relative layout, or render with "
	          "a shared directory):",
	          scene);
	for (p = strstr(tail, mark); p; p = strstr(p, mark)) {
		const char *k = p + sizeof mark - 1, *end = k + strcspn(k, "\n");
		const char *t1 = memchr(k, '\t', (size_t)(end - k));
		const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(end - t1 - 1)) : NULL;

		if (t2)
			dr_append(err, errlen, &pos, "\n  %.*s \"%.*s\": %.*s", (int)(t1 - k), k,
			          (int)(t2 - t1 - 1), t1 + 1, (int)(end - t2 - 1), t2 + 1);
		n++;
		p = end;
	}
	if (!n)
		dr_append(err, errlen, &pos, " (Blender did not say which)");
}

/* The line of Blender's output TAIL that says why it failed: the last "Error:" line (Blender
 * that cannot read a file says so and exits 0), else the last line that is not "Blender quit".
 * Cuts TAIL. */
static const char *last_error(char *tail)
{
	char *p, *best = NULL, *end;

	for (p = tail; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, "Error:", 6) == 0)
			best = p;
	if (best) {
		best[strcspn(best, "\n")] = '\0';
		return best;
	}
	end = tail + strlen(tail);
	for (;;) {
		while (end > tail && (end[-1] == '\n' || end[-1] == ' '))
			*--end = '\0';
		p = end;
		while (p > tail && p[-1] != '\n')
			p--;
		if (p == tail || strcmp(p, "Blender quit") != 0)
			return p;
		end = p;
	}
}

bool dr_assets_pack_fresh(const char *out)
{
	char path[DR_PATH_MAX + 16], line[DR_PATH_MAX + 64];
	bool fresh;
	FILE *f;

	if (snprintf(path, sizeof path, "%s%s", out, MANIFEST) >= (int)sizeof path ||
	    !(f = fopen(path, "re")))
		return false;
	fresh = true;
	while (fresh && fgets(line, sizeof line, f)) {
		unsigned long long size, mtime;
		struct stat st;
		int at = 0;
		size_t n = strlen(line);

		if (n == 0 || line[n - 1] != '\n' ||
		    sscanf(line, "%llu\t%llu\t%n", &size, &mtime, &at) != 2 || at == 0) {
			fresh = false; /* a line too long or not ours */
			break;
		}
		line[n - 1] = '\0';
		fresh = stat(line + at, &st) == 0 && (unsigned long long)st.st_size == size &&
		        (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
		                        (unsigned long long)st.st_mtim.tv_nsec ==
		                mtime;
	}
	fclose(f);
	return fresh;
}

int dr_assets_pack(const char *blender, const char *scene, const char *out, char *err,
                   size_t errlen)
{
	char tmp[DR_PATH_MAX + 64] = "", driver[DR_PATH_MAX], tail[DR_PROC_TAIL_SIZE + 1];
	char list[DR_PATH_MAX + 80] = "", dst[DR_PATH_MAX + 16];
	char why[256], *exe = NULL, *text = NULL;
	const char *slash = out ? strrchr(out, '/') : NULL;
	cJSON *job = cJSON_CreateObject();
	dr_proc_cfg pc = {.what = "Blender (pack)", .cmd_fd = -1, .reply_fd = -1};
	dr_proc *p = NULL;
	const char *argv[12];
	int n = 0, status, rc = -1, w;

	if (!scene || !*scene || !out || !*out) {
		dr_seterr(err, errlen, "packing a scene needs the scene and where the copy goes");
		goto out;
	}
	if (access(scene, R_OK) != 0) {
		dr_seterr(err, errlen, "cannot read the scene %s: %s", scene, strerror(errno));
		goto out;
	}
	/* A hidden name in OUT's directory, so that the rename is atomic; Blender adds its own
	 * ".blend@" step on top. */
	w = snprintf(tmp, sizeof tmp, "%.*s.drender-pack-%ld-%s",
	             slash ? (int)(slash - out + 1) : 0, out, (long)getpid(),
	             slash ? slash + 1 : out);
	if (w < 0 || (size_t)w >= sizeof tmp) {
		dr_seterr(err, errlen, "the packed copy's path is too long: %s", out);
		goto out;
	}
	snprintf(list, sizeof list, "%s%s", tmp, MANIFEST);
	if (!job || !cJSON_AddStringToObject(job, "output", tmp) ||
	    !cJSON_AddStringToObject(job, "manifest", list) ||
	    !(text = cJSON_PrintUnformatted(job))) {
		dr_seterr(err, errlen, "out of memory");
		goto out;
	}
	if (!(exe = dr_blender_find(blender, err, errlen)) ||
	    dr_blender_driver(driver, sizeof driver, err, errlen) != 0 ||
	    !(p = dr_proc_create(&pc, err, errlen)))
		goto out;
	argv[n++] = exe;
	argv[n++] = "-b";
	argv[n++] = scene;
	argv[n++] = "--disable-autoexec";
	argv[n++] = "--python";
	argv[n++] = driver;
	argv[n++] = "--";
	argv[n++] = "--drender-pack";
	argv[n++] = text;
	argv[n] = NULL;
	unlink(tmp);
	if (dr_proc_spawn(p, exe, (char *const *)argv, err, errlen) != 0)
		goto out;
	while (!dr_proc_wait_exit(p, 200))
		;
	status = dr_proc_kill(p);
	dr_proc_tail(p, tail, sizeof tail);
	if (status != 0 && strstr(tail, "drender-unpackable: ")) {
		unpackable(tail, scene, err, errlen);
		goto out;
	}
	if (status != 0 || access(tmp, F_OK) != 0) {
		const char *last = last_error(tail);

		dr_proc_describe(status, why, sizeof why);
		/* Blender that cannot read the scene exits 0 without running the driver */
		dr_seterr(err, errlen, "cannot make a self-contained copy of %s (Blender %s): %s",
		          scene, status == 0 ? "wrote nothing" : why, last);
		goto out;
	}
	if (!looks_like_blend(tmp)) {
		dr_seterr(err, errlen, "the packed copy of %s is not a .blend file", scene);
		goto out;
	}
	if (rename(tmp, out) != 0) {
		dr_seterr(err, errlen, "cannot move the packed copy to %s: %s", out,
		          strerror(errno));
		goto out;
	}
	/* what went into it, for dr_assets_pack_fresh (without it, the copy is made again) */
	snprintf(dst, sizeof dst, "%s%s", out, MANIFEST);
	if (rename(list, dst) != 0)
		unlink(dst);
	rc = 0;
out:
	if (rc != 0 && tmp[0])
		unlink(tmp);
	if (list[0])
		unlink(list);
	dr_proc_destroy(p);
	free(exe);
	cJSON_free(text);
	cJSON_Delete(job);
	return rc;
}
