/* Unit tests for dr_jobspec: every class of bad body, path confinement with real files and
 * symlinks, good bodies, and the journal form. */
#include "dr_http.h"
#include "dr_jobspec.h"
#include "dr_util.h"
#include "tap.h"
#include "testfs.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];
static char top[PATH_MAX], blends[PATH_MAX], outs[PATH_MAX], scene[PATH_MAX], xblend[PATH_MAX];
static dr_jobspec_limits lim;

static void path(char *buf, const char *a, const char *b)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", a, b);
	if (n < 0 || n >= PATH_MAX)
		exit(1);
}

static void touch(const char *dir, const char *name)
{
	char p[PATH_MAX];
	FILE *f;

	path(p, dir, name);
	f = fopen(p, "w");
	if (f) {
		fputs("BLENDER-v300", f);
		fclose(f);
	}
}

static void link_to(const char *target, const char *dir, const char *name)
{
	char p[PATH_MAX];

	path(p, dir, name);
	if (symlink(target, p) < 0)
		perror(p);
}

static void mkdir_in(const char *dir, const char *name)
{
	char p[PATH_MAX];

	path(p, dir, name);
	mkdir(p, 0755);
}

/* A tree:  TOP/blends/{scene.blend, sub/dir/x.blend, evil.blend -> ../outside/secret.blend,
 *          pref.blend -> ../blendsX/a.blend, alias.blend -> sub/dir/x.blend, loop -> loop}
 *          TOP/blendsX/a.blend  TOP/outside/secret.blend
 *          TOP/out/{afile, evilout -> ../outside, okdir/} */
static void setup(void)
{
	char tmpl[] = "/tmp/drender-jobspec.XXXXXX", p[PATH_MAX];

	if (!mkdtemp(tmpl) || !realpath(tmpl, top))
		exit(1);
	mkdir_in(top, "blends");
	mkdir_in(top, "blendsX");
	mkdir_in(top, "outside");
	mkdir_in(top, "out");
	path(blends, top, "blends");
	path(outs, top, "out");
	touch(blends, "scene.blend");
	mkdir_in(blends, "sub");
	path(p, blends, "sub");
	mkdir_in(p, "dir");
	path(p, blends, "sub/dir");
	touch(p, "x.blend");
	path(p, top, "outside");
	touch(p, "secret.blend");
	path(p, top, "blendsX");
	touch(p, "a.blend");
	link_to("../outside/secret.blend", blends, "evil.blend");
	link_to("../blendsX/a.blend", blends, "pref.blend");
	link_to("sub/dir/x.blend", blends, "alias.blend");
	link_to("loop", blends, "loop");
	touch(outs, "afile");
	link_to("../outside", outs, "evilout");
	mkdir_in(outs, "okdir");
	path(scene, blends, "scene.blend");
	path(xblend, blends, "sub/dir/x.blend");
	lim.blend_root = blends;
	lim.output_root = outs;
	lim.default_scene = scene;
	lim.max_frames = 10000;
}

static int parse(const char *body, dr_jobspec *s)
{
	err[0] = '\0';
	return dr_jobspec_from_json(body, strlen(body), &lim, s, err, sizeof(err));
}

/* BODY fails with CODE, a message naming NAMES (a quoted field or a phrase), OUT untouched. */
static void bad(const char *body, int code, const char *names)
{
	dr_jobspec s;
	int rc;

	memset(&s, 0x5a, sizeof(s));
	rc = (int)dr_http_status(parse(body, &s)); /* the kind, as the service answers it */
	is_int(rc, code, "%s -> %d", body, code);
	ok(strstr(err, names) != NULL, "%s: message names %s (%s)", body, names, err);
	ok(s.priority == 0x5a5a5a5a && s.frames.v == (void *)0x5a5a5a5a5a5a5a5aULL,
	   "%s: output untouched", body);
}

static void test_bad_bodies(void)
{
	char longname[400];

	bad("", 400, "empty");
	bad("not json", 400, "malformed JSON");
	bad("{\"from\":1,\"to\":2", 400, "malformed JSON");
	bad("{\"from\":1,\"to\":2} trailing", 400, "malformed JSON");
	bad("[1,2]", 400, "must be a JSON object");
	bad("\"str\"", 400, "must be a JSON object");
	bad("42", 400, "must be a JSON object");
	bad("null", 400, "must be a JSON object");
	bad("{}", 400, "\"from\"");
	bad("{\"from\":1}", 400, "\"to\" is missing");
	bad("{\"to\":2}", 400, "\"from\" is missing");
	bad("{\"from\":\"1\",\"to\":2}", 400, "\"from\" must be an integer");
	bad("{\"from\":1.5,\"to\":2}", 400, "\"from\"");
	bad("{\"from\":-1,\"to\":2}", 400, "\"from\"");
	bad("{\"from\":1e300,\"to\":2}", 400, "\"from\"");
	bad("{\"from\":5,\"to\":2}", 400, "\"to\" must be an integer >= \"from\"");
	bad("{\"from\":1,\"to\":\"x\"}", 400, "\"to\" must be an integer >= \"from\"");
	bad("{\"from\":1,\"to\":2000000}", 400, "\"to\"");
	bad("{\"from\":0,\"to\":1048574}", 413,
	    "more than the limit of 10000 per job (--max-frames)");
	bad("{\"frames\":\"1-100000\"}", 413,
	    "more than the limit of 10000 per job (--max-frames)");
	bad("{\"frames\":\"0-1048574\"}", 400, "\"frames\"");
	bad("{\"frames\":5}", 400, "\"frames\" must be a string");
	bad("{\"frames\":\"\"}", 400, "\"frames\"");
	bad("{\"frames\":\"1-x\"}", 400, "\"frames\"");
	bad("{\"frames\":\"9-3\"}", 400, "\"frames\"");
	bad("{\"from\":1,\"to\":2,\"frames\":\"3\"}", 400, "not both");
	bad("{\"from\":1,\"to\":2,\"from\":3}", 400, "\"from\" is given twice");
	bad("{\"from\":1,\"to\":2,\"color\":\"red\"}", 400, "unknown field \"color\"");
	bad("{\"From\":1,\"to\":2}", 400, "unknown field \"From\"");
	bad("{\"from\":1,\"to\":2,\"engine\":\"povray\"}", 400, "\"engine\"");
	bad("{\"from\":1,\"to\":2,\"engine\":5}", 400, "\"engine\" must be a string");
	bad("{\"from\":1,\"to\":2,\"format\":\"FFMPEG\"}", 400, "\"format\"");
	bad("{\"from\":1,\"to\":2,\"format\":\"GIF\"}", 400, "\"format\"");
	bad("{\"from\":1,\"to\":2,\"format\":\"\"}", 400, "\"format\" must not be empty");
	bad("{\"from\":1,\"to\":2,\"samples\":0}", 400, "\"samples\"");
	bad("{\"from\":1,\"to\":2,\"samples\":16777217}", 400, "\"samples\"");
	bad("{\"from\":1,\"to\":2,\"samples\":\"64\"}", 400, "\"samples\"");
	bad("{\"from\":1,\"to\":2,\"priority\":1001}", 400, "\"priority\"");
	bad("{\"from\":1,\"to\":2,\"priority\":true}", 400, "\"priority\"");
	bad("{\"from\":1,\"to\":2,\"device\":\"tpu\"}", 400, "\"device\" 'tpu' is unknown");
	bad("{\"from\":1,\"to\":2,\"device\":1}", 400, "\"device\" must be a string");
	bad("{\"from\":1,\"to\":2,\"output\":\"a/b\"}", 400, "\"output\"");
	bad("{\"from\":1,\"to\":2,\"output\":\".hidden\"}", 400, "\"output\" must not start");
	bad("{\"from\":1,\"to\":2,\"output\":\"sp ace\"}", 400, "\"output\"");
	bad("{\"from\":1,\"to\":2,\"output\":\"\"}", 400, "\"output\"");
	bad("{\"from\":1,\"to\":2,\"output\":[]}", 400, "\"output\" must be a string");
	bad("{\"from\":1,\"to\":2,\"output\":\"afile\"}", 400, "not a directory");
	memset(longname, 'a', 300);
	longname[300] = '\0';
	{
		char body[512];
		snprintf(body, sizeof(body), "{\"from\":1,\"to\":2,\"output\":\"%s\"}", longname);
		bad(body, 400, "\"output\" is longer");
	}
	bad("{\"from\":1,\"to\":2,\"blend\":\"\"}", 400, "\"blend\"");
	bad("{\"from\":1,\"to\":2,\"blend\":7}", 400, "\"blend\" must be a string");
	bad("{\"from\":1,\"to\":2,\"blend\":\"sub\"}", 400, "not a regular file");
	{
		dr_jobspec s;
		static const char nul[] = "{\"from\":1,\0\"to\":2}";
		memset(&s, 0, sizeof(s));
		is_int((int)dr_http_status(dr_jobspec_from_json(nul, sizeof(nul) - 1, &lim, &s, err,
		                                                sizeof(err))),
		       400, "a NUL byte inside the body -> 400");
	}
	{
		dr_jobspec_limits save = lim;
		lim.default_scene = NULL;
		bad("{\"from\":1,\"to\":2}", 400, "\"blend\" is missing");
		lim = save;
	}
}

static void test_confinement(void)
{
	bad("{\"from\":1,\"to\":2,\"blend\":\"/etc/passwd\"}", 403, "\"blend\"");
	bad("{\"from\":1,\"to\":2,\"blend\":\"../outside/secret.blend\"}", 403, "\"blend\"");
	bad("{\"from\":1,\"to\":2,\"blend\":\"sub/../../outside/secret.blend\"}", 403, "'..'");
	bad("{\"from\":1,\"to\":2,\"blend\":\"sub/..\"}", 403, "'..'");
	bad("{\"from\":1,\"to\":2,\"blend\":\"evil.blend\"}", 403,
	    "\"blend\" 'evil.blend' escapes");
	bad("{\"from\":1,\"to\":2,\"blend\":\"pref.blend\"}", 403,
	    "\"blend\" 'pref.blend' escapes");
	bad("{\"from\":1,\"to\":2,\"blend\":\"loop\"}", 403, "\"blend\"");
	bad("{\"from\":1,\"to\":2,\"blend\":\"nope.blend\"}", 404, "does not exist");
	bad("{\"from\":1,\"to\":2,\"blend\":\"sub/missing.blend\"}", 404, "does not exist");
	bad("{\"from\":1,\"to\":2,\"blend\":\"scene.blend/x\"}", 404, "\"blend\"");
	bad("{\"from\":1,\"to\":2,\"output\":\"/tmp\"}", 403, "\"output\"");
	bad("{\"from\":1,\"to\":2,\"output\":\"..\"}", 403, "\"output\"");
	bad("{\"from\":1,\"to\":2,\"output\":\"evilout\"}", 403, "\"output\" 'evilout' escapes");
	{
		dr_jobspec_limits save = lim;
		lim.blend_root = NULL;
		lim.output_root = NULL;
		bad("{\"from\":1,\"to\":2,\"blend\":\"scene.blend\"}", 403, "--blend-root");
		bad("{\"from\":1,\"to\":2,\"output\":\"x\"}", 403, "--output-root");
		lim = save;
	}
	{
		/* A root given with a trailing slash still confines on a path boundary. */
		dr_jobspec_limits save = lim;
		char slashed[PATH_MAX + 2];
		snprintf(slashed, sizeof(slashed), "%s/", blends);
		lim.blend_root = slashed;
		bad("{\"from\":1,\"to\":2,\"blend\":\"pref.blend\"}", 403, "escapes");
		lim = save;
	}
}

static void test_good(void)
{
	dr_jobspec s;
	char want[PATH_MAX + 64];

	memset(&s, 0, sizeof(s));
	is_int(parse("{\"from\":1,\"to\":20}", &s), 0, "tutorial body accepted (%s)", err);
	is_int(s.frames.n, 20, "20 frames");
	ok(s.frames.n == 20 && s.frames.v[0] == 1 && s.frames.v[19] == 20, "frames 1..20");
	is_str(s.render.scene, scene, "default scene");
	is_str(s.render.output, "", "output left to the job table");
	is_str(s.render.format, "PNG", "format PNG by default");
	is_str(s.render.engine, "", "the scene's engine");
	is_str(s.render.device, "", "the scene's device");
	ok(s.render.samples == 0 && s.priority == 0, "samples and priority default to 0");
	dr_jobspec_free(&s);

	memset(&s, 0, sizeof(s));
	is_int(parse("{\"frames\":\" 1-3,7 \",\"blend\":\"sub/dir/x.blend\",\"output\":\"run-1\","
	             "\"engine\":\"cycles\",\"format\":\"jpg\",\"samples\":64,\"priority\":-5,"
	             "\"device\":\"Optix\"}",
	             &s),
	       0, "full body accepted (%s)", err);
	is_int(s.frames.n, 4, "4 frames");
	is_str(s.render.scene, xblend, "scene resolved under the root");
	ok(snprintf(want, sizeof(want), "%s/run-1/x_####", outs) < (int)sizeof(want), "fits");
	is_str(s.render.output, want, "output under the output root");
	is_str(s.render.format, "JPEG", "format canonical");
	is_str(s.render.engine, "CYCLES", "engine canonical");
	ok(s.render.samples == 64 && s.priority == -5, "samples and priority");
	is_str(s.render.device, "OPTIX", "device canonical");
	dr_jobspec_free(&s);

	memset(&s, 0, sizeof(s));
	is_int(parse("{\"from\":3,\"to\":3,\"blend\":\"alias.blend\",\"output\":\"okdir\","
	             "\"engine\":null,\"priority\":1000,\"samples\":16777216}",
	             &s),
	       0, "symlink inside the root, existing output dir, null field (%s)", err);
	is_str(s.render.scene, xblend, "symlink resolved");
	is_int(s.frames.n, 1, "one frame");
	dr_jobspec_free(&s);

	memset(&s, 0, sizeof(s));
	is_int(parse("{\"from\":0,\"to\":9999,\"format\":\"OPEN_EXR\"}", &s), 0,
	       "exactly max_frames frames (%s)", err);
	is_int(s.frames.n, 10000, "10000 frames");
	dr_jobspec_free(&s);

	memset(&s, 0, sizeof(s));
	is_int(parse(" {\"from\":1e1,\"to\":12}\n", &s), 0, "whitespace and 1e1 (%s)", err);
	ok(s.frames.n == 3 && s.frames.v[0] == 10, "from 10");
	dr_jobspec_free(&s);
}

static void test_journal(void)
{
	dr_jobspec s, back, copy;
	cJSON *j;
	char *txt;

	memset(&s, 0, sizeof(s));
	memset(&back, 0, sizeof(back));
	is_int(parse("{\"frames\":\"1-3,7,10-20:2,100,101,103\",\"engine\":\"eevee\","
	             "\"format\":\"exr\",\"samples\":8,\"priority\":3,\"output\":\"o\"}",
	             &s),
	       0, "body for the journal (%s)", err);
	j = dr_jobspec_to_json(&s);
	ok(j != NULL, "to_json");
	txt = cJSON_PrintUnformatted(j);
	ok(txt && strstr(txt, "\"frames\":\"1-3,7,10-20:2,100-101,103\""),
	   "frames as a compact spec: %s", txt ? txt : "");
	cJSON_free(txt);
	is_int(dr_jobspec_from_journal(j, &back, err, sizeof(err)), 0, "from_journal (%s)", err);
	is_str(back.render.scene, s.render.scene, "scene round-trips");
	is_str(back.render.output, s.render.output, "output round-trips");
	is_str(back.render.format, "OPEN_EXR", "format round-trips");
	is_str(back.render.engine, "BLENDER_EEVEE", "engine round-trips");
	ok(back.render.samples == 8 && back.priority == 3, "numbers round-trip");
	ok(back.frames.n == s.frames.n &&
	           !memcmp(back.frames.v, s.frames.v, s.frames.n * sizeof(int)),
	   "frames round-trip (%zu)", back.frames.n);
	cJSON_ReplaceItemInObject(j, "format", cJSON_CreateString("GIF"));
	memset(&copy, 0x33, sizeof(copy));
	is_int(dr_jobspec_from_journal(j, &copy, err, sizeof(err)), -1, "bad journal format");
	ok(copy.priority == 0x33333333, "journal failure leaves OUT untouched");
	cJSON_DeleteItemFromObject(j, "frames");
	is_int(dr_jobspec_from_journal(j, &copy, err, sizeof(err)), -1, "journal without frames");
	cJSON_Delete(j);

	is_int(dr_jobspec_copy(&copy, &s), 0, "copy");
	ok(copy.frames.v != s.frames.v && copy.frames.n == s.frames.n &&
	           !memcmp(copy.frames.v, s.frames.v, s.frames.n * sizeof(int)),
	   "deep copy of frames");
	dr_jobspec_free(&copy);
	dr_jobspec_free(&back);

	is_int(dr_jobspec_set_output(&s, "/", "abc", err, sizeof(err)), 0, "set_output at /");
	is_str(s.render.output, "/abc/scene_####",
	       "no '//' at the root (Blender would read it as relative)");
	dr_jobspec_free(&s);
	dr_jobspec_free(&s); /* twice is harmless */
}

/* A spec too long for one small buffer (the writer grows it several times) round-trips. */
static void test_long_spec(void)
{
	char body[8192], spec[4096];
	size_t pos = 0;
	dr_jobspec s, back;
	cJSON *j, *f;

	for (int i = 1; i <= 300; i++) /* squares: no two steps alike, so no ranges */
		dr_append(spec, sizeof spec, &pos, "%s%d", i > 1 ? "," : "", i * i);
	snprintf(body, sizeof body, "{\"frames\":\"%s\"}", spec);
	memset(&s, 0, sizeof(s));
	memset(&back, 0, sizeof(back));
	is_int(parse(body, &s), 0, "300 single frames (%s)", err);
	j = dr_jobspec_to_json(&s);
	f = j ? cJSON_GetObjectItem(j, "frames") : NULL;
	ok(f && cJSON_IsString(f) && strcmp(f->valuestring, spec) == 0,
	   "a %zu-character spec written back whole", pos);
	is_int(dr_jobspec_from_journal(j, &back, err, sizeof(err)), 0, "and read back (%s)", err);
	ok(back.frames.n == 300 && back.frames.v[299] == 90000, "all 300 frames");
	cJSON_Delete(j);
	dr_jobspec_free(&back);
	dr_jobspec_free(&s);
}

/* Strings must be valid UTF-8 without NUL (issue 10 item 8): cJSON takes both. */
static void test_strings(void)
{
	bad("{\"blend\":\"\xff\xfe.blend\",\"from\":1,\"to\":2}", 400,
	    "\"blend\" is not valid UTF-8");
	bad("{\"from\":1,\"to\":2,\"engine\":\"x\\u0000y\"}", 400, "\"engine\" contains a NUL");
	bad("{\"from\":1,\"to\":2,\"output\":\"a\xc3\"}", 400, "\"output\" is not valid UTF-8");
	bad("{\"from\":1,\"to\":2,\"format\":\"\xed\xa0\x80\"}", 400,
	    "\"format\" is not valid UTF-8");
	bad("{\"from\":1,\"to\":2,\"frames\":\"\xc0\xaf\"}", 400, "\"frames\" is not valid UTF-8");
	bad("{\"fr\\u0000om\":1,\"to\":2}", 400, "a field name contains a NUL");
	bad("{\"\xff\":1,\"to\":2}", 400, "a field name is not valid UTF-8");
	bad("{\"from\":1,\"to\":2,\"blend\":\"a\\\\u0000\",\"engine\":\"\\u0000\"}", 400,
	    "\"engine\" contains a NUL");
}

/* "still", "split", "video", "fps" (issue 16). */
static void test_still_video(void)
{
	dr_jobspec s;
	char want[PATH_MAX + 64];

	bad("{\"still\":3,\"from\":1,\"to\":2}", 400, "\"still\" names the frame");
	bad("{\"still\":3,\"frames\":\"1-2\"}", 400, "\"still\" names the frame");
	bad("{\"still\":-1}", 400, "\"still\"");
	bad("{\"still\":\"3\"}", 400, "\"still\"");
	bad("{\"still\":3,\"split\":1}", 400, "\"split\"");
	bad("{\"still\":3,\"split\":1025}", 400, "\"split\"");
	bad("{\"still\":3,\"split\":\"many\"}", 400, "\"split\" must be \"auto\"");
	bad("{\"still\":3,\"split\":2.5}", 400, "\"split\"");
	bad("{\"from\":1,\"to\":2,\"split\":4}", 400, "\"split\" cuts a still");
	bad("{\"still\":3,\"video\":true}", 400, "\"video\"");
	bad("{\"from\":1,\"to\":2,\"video\":\"yes\"}", 400, "\"video\" must be true or false");
	bad("{\"from\":1,\"to\":2,\"fps\":12}", 400, "\"fps\" is the video's frame rate");
	bad("{\"from\":1,\"to\":2,\"video\":true,\"fps\":0}", 400, "\"fps\"");
	bad("{\"from\":1,\"to\":2,\"video\":true,\"fps\":5000}", 400, "\"fps\"");
	bad("{\"from\":1,\"to\":2,\"video\":true,\"fps\":\"12\"}", 400, "\"fps\"");
	lim.max_frames = 3;
	bad("{\"still\":3,\"split\":4}", 413, "\"split\" gives 4 ranges");
	lim.max_frames = 10000;

	memset(&s, 0, sizeof(s));
	is_int(parse("{\"still\":3,\"split\":8,\"format\":\"OPEN_EXR\"}", &s), 0,
	       "a still split in 8 (%s)", err);
	ok(s.frames.n == 8 && s.frames.v[0] == 0 && s.frames.v[7] == 7, "  frames are ranges 0..7");
	ok(s.still_ranges == 8 && s.render.ranges == 0, "  set up once the output is known");
	is_int(dr_jobspec_set_output(&s, outs, "job1", err, sizeof err), 0, "  output decided");
	is_int(dr_jobspec_finish(&s, err, sizeof err), 0, "  finished (%s)", err);
	ok(s.render.ranges == 8 && s.render.still == 3 && s.still_ranges == 0, "  a still split");
	ok(snprintf(want, sizeof(want), "%s/job1/scene_0003.exr.range-####.exr", outs) <
	           (int)sizeof(want),
	   "fits");
	is_str(s.render.output, want, "  ranges named after the still");
	is_int(dr_jobspec_finish(&s, err, sizeof err), 0, "  finish twice: nothing more");
	is_str(s.render.output, want, "  unchanged");
	dr_jobspec_free(&s);

	memset(&s, 0, sizeof(s));
	lim.auto_ranges = 6;
	is_int(parse("{\"still\":0,\"split\":\"auto\",\"output\":\"st\"}", &s), 0,
	       "split auto with an output (%s)", err);
	ok(s.frames.n == 6 && s.render.ranges == 6 && s.render.still == 0,
	   "  auto: the service's ranges, set up at once (output given)");
	dr_jobspec_free(&s);
	memset(&s, 0, sizeof(s));
	is_int(parse("{\"still\":5}", &s), 0, "still without split (%s)", err);
	is_int(s.still_ranges, 6, "  split defaults to auto");
	dr_jobspec_free(&s);
	lim.auto_ranges = 0;

	memset(&s, 0, sizeof(s));
	is_int(parse("{\"from\":1,\"to\":20,\"video\":true,\"fps\":12,\"output\":\"vid\"}", &s), 0,
	       "a video at 12 fps (%s)", err);
	ok(snprintf(want, sizeof(want), "%s/vid/scene.mp4", outs) < (int)sizeof(want), "fits");
	is_str(s.render.video, want, "  the video next to the frames, named after the scene");
	ok(s.render.fps == 12 && !s.video_pending, "  at 12 fps");
	dr_jobspec_free(&s);
	memset(&s, 0, sizeof(s));
	is_int(parse("{\"from\":1,\"to\":2,\"video\":false}", &s), 0, "video false (%s)", err);
	is_str(s.render.video, "", "  no video");
	dr_jobspec_free(&s);
}

int main(void)
{
	setup();
	test_bad_bodies();
	test_strings();
	test_confinement();
	test_good();
	test_journal();
	test_long_spec();
	test_still_video();
	testfs_rm_tree(top);
	return done_testing();
}
