/* libFuzzer target: HTTP request body -> dr_jobspec_from_json (and the journal round trip). */
#include "dr_jobspec.h"

#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fixed roots made once per fuzzing process: TOP/blends/{a.blend, sub/b.blend,
 * out.blend -> ../outside/x.blend}, TOP/outside/x.blend, TOP/out/{d/, f, esc -> ../outside}. */
static char top[PATH_MAX], blends[PATH_MAX + 16], outs[PATH_MAX + 16], scene[PATH_MAX + 32];
static dr_jobspec_limits lim;

static void put(const char *path)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs("BLENDER", f);
		fclose(f);
	}
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void cleanup(void)
{
	if (top[0])
		nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char tmpl[] = "/tmp/drender-fuzz.XXXXXX", p[2 * PATH_MAX];

	(void)argc;
	(void)argv;
	if (!mkdtemp(tmpl) || !realpath(tmpl, top))
		abort();
	atexit(cleanup);
	snprintf(blends, sizeof(blends), "%s/blends", top);
	snprintf(outs, sizeof(outs), "%s/out", top);
	mkdir(blends, 0755);
	mkdir(outs, 0755);
	snprintf(p, sizeof(p), "%s/outside", top);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/outside/x.blend", top);
	put(p);
	snprintf(p, sizeof(p), "%s/sub", blends);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sub/b.blend", blends);
	put(p);
	snprintf(scene, sizeof(scene), "%s/a.blend", blends);
	put(scene);
	snprintf(p, sizeof(p), "%s/out.blend", blends);
	if (symlink("../outside/x.blend", p) < 0)
		abort();
	snprintf(p, sizeof(p), "%s/d", outs);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/f", outs);
	put(p);
	snprintf(p, sizeof(p), "%s/esc", outs);
	if (symlink("../outside", p) < 0)
		abort();
	lim.blend_root = blends;
	lim.output_root = outs;
	lim.default_scene = scene;
	lim.max_frames = 100000;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dr_jobspec s, back;
	char err[1024];
	dr_err rc;
	cJSON *j;

	memset(&s, 0, sizeof(s));
	rc = dr_jobspec_from_json((const char *)data, size, &lim, &s, err, sizeof(err));
	if (rc != 0) {
		if (rc != DR_E_INVALID && rc != DR_E_FORBIDDEN && rc != DR_E_NOT_FOUND &&
		    rc != DR_E_TOO_LARGE)
			abort(); /* anything else only on out of memory */
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort(); /* every refusal says why */
		return 0;
	}
	/* Accepted: within limits, confined, and the journal form round-trips. */
	if (!s.frames.n || s.frames.n > lim.max_frames ||
	    strncmp(s.render.scene, blends, strlen(blends)))
		abort();
	if (s.render.output[0] && strncmp(s.render.output, outs, strlen(outs)))
		abort();
	j = dr_jobspec_to_json(&s);
	if (!j)
		abort();
	memset(&back, 0, sizeof(back));
	if (dr_jobspec_from_journal(j, &back, err, sizeof(err)) != 0 ||
	    back.frames.n != s.frames.n ||
	    memcmp(back.frames.v, s.frames.v, s.frames.n * sizeof(int)) ||
	    strcmp(back.render.scene, s.render.scene) ||
	    strcmp(back.render.output, s.render.output) ||
	    strcmp(back.render.format, s.render.format) ||
	    strcmp(back.render.engine, s.render.engine) ||
	    back.render.samples != s.render.samples || back.priority != s.priority)
		abort();
	cJSON_Delete(j);
	dr_jobspec_free(&back);
	dr_jobspec_free(&s);
	return 0;
}
