/* Unit tests for dr_render_cfg: checking, canonical names, the JSON form and Blender equality. */
#include "dr_render_cfg.h"
#include "tap.h"

#include <string.h>

static void test_init(void)
{
	dr_render_cfg c, keep;
	char err[256];

	ok(dr_render_cfg_init(&c, "/s/a.blend", NULL, NULL, NULL, 0, err, sizeof err) == 0,
	   "init: scene alone");
	is_str(c.format, "PNG", "init: format defaults to PNG");
	is_str(c.engine, "", "init: engine defaults to the scene's");
	is_str(c.output, "", "init: output defaults to \"\"");
	ok(dr_render_cfg_init(&c, "a.blend", "out/x_##", "jpg", "eevee", 16, err, sizeof err) == 0,
	   "init: every part");
	is_str(c.format, "JPEG", "init: format made canonical");
	is_str(c.engine, "BLENDER_EEVEE", "init: engine made canonical");
	is_str(c.output, "out/x_##", "init: output kept");
	is_int(c.samples, 16, "init: samples kept");

	keep = c;
	ok(dr_render_cfg_init(&c, "", NULL, NULL, NULL, 0, err, sizeof err) == -1 &&
	           strstr(err, "scene"),
	   "init: empty scene refused, named");
	ok(dr_render_cfg_init(&c, "a.blend", NULL, "FFMPEG", NULL, 0, err, sizeof err) == -1 &&
	           strstr(err, "format"),
	   "init: movie format refused, named");
	ok(dr_render_cfg_init(&c, "a.blend", NULL, NULL, "povray", 0, err, sizeof err) == -1 &&
	           strstr(err, "engine"),
	   "init: unknown engine refused, named");
	ok(dr_render_cfg_init(&c, "a.blend", NULL, NULL, NULL, -1, err, sizeof err) == -1 &&
	           strstr(err, "samples"),
	   "init: negative samples refused");
	ok(memcmp(&c, &keep, sizeof c) == 0, "init: nothing changes on failure");
	is_str(dr_engine_canonical("Workbench"), "BLENDER_WORKBENCH",
	       "engine: short name, any case");
	ok(dr_engine_canonical(NULL) == NULL, "engine: NULL is unknown");
}

static void test_wire(void)
{
	dr_render_cfg a, b, keep;
	char buf[DR_PATH_MAX * 3], err[256];
	dr_outpath o;

	dr_render_cfg_init(&a, "/s/shot \"1\".blend", "/o/f_####", "OPEN_EXR", "CYCLES", 64, err,
	                   sizeof err);
	ok(dr_render_cfg_encode(&a, buf, sizeof buf) == 0, "encode");
	memset(&b, 0, sizeof b);
	ok(dr_render_cfg_decode(buf, &b, err, sizeof err) == 0, "decode");
	ok(memcmp(&a, &b, sizeof a) == 0, "round trip: every member equal");
	ok(dr_render_cfg_encode(&a, buf, 20) == -1, "encode: too small a buffer is refused");
	snprintf(a.version, sizeof a.version, "%s",
	         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	memset(&b, 0, sizeof b);
	ok(dr_render_cfg_encode(&a, buf, sizeof buf) == 0 && strstr(buf, "\"sceneVersion\"") &&
	           dr_render_cfg_decode(buf, &b, err, sizeof err) == 0 &&
	           memcmp(&a, &b, sizeof a) == 0,
	   "the scene's version travels with the job");
	a.version[0] = '\0';
	ok(dr_render_cfg_encode(&a, buf, sizeof buf) == 0 && !strstr(buf, "sceneVersion"),
	   "no version: no member");

	keep = b;
	ok(dr_render_cfg_decode("{\"scene\":\"x\"}", &b, err, sizeof err) == -1 &&
	           strstr(err, "output"),
	   "decode: a missing member is named");
	ok(dr_render_cfg_decode("{\"scene\":\"x\",\"output\":\"\",\"format\":\"PNG\",\"engine\":"
	                        "\"\",\"samples\":1.5}",
	                        &b, err, sizeof err) == -1,
	   "decode: fractional samples refused");
	ok(dr_render_cfg_decode("{\"scene\":\"x\",\"output\":\"\",\"format\":\"AVI_JPEG\","
	                        "\"engine\":\"\",\"samples\":1}",
	                        &b, err, sizeof err) == -1,
	   "decode: a movie format refused");
	ok(dr_render_cfg_decode("nope", &b, err, sizeof err) == -1, "decode: not JSON");
	ok(memcmp(&b, &keep, sizeof b) == 0, "decode: nothing changes on failure");

	ok(dr_render_cfg_outpath(&a, &o, err, sizeof err) == 0 &&
	           strcmp(o.pattern, "/o/f_####") == 0 && strcmp(o.ext, ".exr") == 0,
	   "outpath: pattern and extension");
	dr_render_cfg_init(&b, "/s/shot.blend", NULL, NULL, NULL, 0, err, sizeof err);
	ok(dr_render_cfg_outpath(&b, &o, err, sizeof err) == 0 &&
	           strcmp(o.pattern, "output/shot_####") == 0,
	   "outpath: the default pattern");
}

static void test_same(void)
{
	dr_render_cfg a, b;
	char err[256];

	dr_render_cfg_init(&a, "/s/a.blend", "/o/a_#", "PNG", "", 0, err, sizeof err);
	b = a;
	snprintf(b.output, sizeof b.output, "/o/other_#");
	ok(dr_render_cfg_same_blender(&a, &b), "same: another output needs no reload");
	b.samples = 2;
	ok(!dr_render_cfg_same_blender(&a, &b), "same: other samples need a reload");
	b = a;
	snprintf(b.engine, sizeof b.engine, "CYCLES");
	ok(!dr_render_cfg_same_blender(&a, &b), "same: another engine needs a reload");
	b = a;
	snprintf(b.scene, sizeof b.scene, "/s/b.blend");
	ok(!dr_render_cfg_same_blender(&a, &b), "same: another scene needs a reload");
	b = a;
	snprintf(b.device, sizeof b.device, "CUDA");
	ok(!dr_render_cfg_same_blender(&a, &b), "same: another device needs a reload");
}

static void test_device(void)
{
	dr_render_cfg c, d;
	char err[256], buf[8192];

	dr_render_cfg_init(&c, "/s/a.blend", NULL, NULL, NULL, 0, err, sizeof err);
	is_str(c.device, "", "device: the scene's by default");
	ok(dr_render_cfg_set_device(&c, "optix", err, sizeof err) == 0, "device: optix accepted");
	is_str(c.device, "OPTIX", "device: made canonical");
	ok(dr_render_cfg_set_device(&c, "tpu", err, sizeof err) == -1 && strstr(err, "cuda"),
	   "device: unknown refused, choices listed");
	is_str(c.device, "OPTIX", "device: untouched on failure");
	ok(dr_device_is_gpu("CUDA") && dr_device_is_gpu("ONEAPI") && !dr_device_is_gpu("CPU") &&
	           !dr_device_is_gpu("AUTO") && !dr_device_is_gpu(""),
	   "device: GPU backends told from cpu/auto/scene's");
	ok(dr_render_cfg_encode(&c, buf, sizeof buf) == 0 &&
	           dr_render_cfg_decode(buf, &d, err, sizeof err) == 0,
	   "device: travels on the wire");
	is_str(d.device, "OPTIX", "device: decoded");
	ok(dr_render_cfg_decode("{\"scene\":\"x\",\"output\":\"\",\"format\":\"PNG\",\"engine\":"
	                        "\"\",\"samples\":0}",
	                        &d, err, sizeof err) == 0 &&
	           d.device[0] == '\0',
	   "device: missing in older text means the scene's");
	ok(dr_render_cfg_decode("{\"scene\":\"x\",\"output\":\"\",\"format\":\"PNG\",\"engine\":"
	                        "\"\",\"samples\":0,\"device\":\"npu\"}",
	                        &d, err, sizeof err) == -1 &&
	           strstr(err, "npu"),
	   "device: unknown in text refused");
}

static void test_video(void)
{
	dr_render_cfg a, b;
	char buf[DR_PATH_MAX * 3], err[256];

	dr_render_cfg_init(&a, "s.blend", NULL, NULL, NULL, 0, err, sizeof err);
	dr_render_cfg_encode(&a, buf, sizeof buf);
	ok(!strstr(buf, "video") && !strstr(buf, "fps"), "no video: no video members on the wire");
	ok(dr_render_cfg_set_video(&a, "o/v.mp4", 12.5, err, sizeof err) == 0, "set a video");
	ok(dr_render_cfg_encode(&a, buf, sizeof buf) == 0 &&
	           dr_render_cfg_decode(buf, &b, err, sizeof err) == 0,
	   "video round trip");
	is_str(b.video, "o/v.mp4", "  video kept");
	ok(b.fps == 12.5, "  fps kept");
	b = a;
	ok(dr_render_cfg_set_video(&b, "o/v.avi", 0, err, sizeof err) == -1 &&
	           strcmp(b.video, "o/v.mp4") == 0,
	   "set_video: .avi refused, nothing changed");
	ok(dr_render_cfg_set_video(&b, "o/v.mp4", -3, err, sizeof err) == -1, "set_video: fps -3");
	ok(dr_render_cfg_decode("{\"scene\":\"s\",\"output\":\"\",\"format\":\"PNG\","
	                        "\"engine\":\"\",\"samples\":0,\"video\":7}",
	                        &b, err, sizeof err) == -1,
	   "decode: a video that is not a string is refused");
}

static void test_still(void)
{
	dr_render_cfg a, b, c;
	char err[256], buf[8192], path[DR_PATH_MAX];

	dr_render_cfg_init(&a, "s.blend", "out/img_####", "PNG", NULL, 64, err, sizeof err);
	b = a;
	ok(dr_render_cfg_set_still(&b, 3, 1, err, sizeof err) == -1 && b.ranges == 0,
	   "set_still: 1 range refused, nothing changed");
	ok(dr_render_cfg_set_still(&b, 3, 4, err, sizeof err) == 0, "set_still: frame 3, 4 ranges");
	is_str(b.format, "OPEN_EXR_MULTILAYER", "  ranges are multilayer EXRs");
	is_str(b.output, "out/img_0003.png.range-####.exr", "  named after the still");
	ok(dr_render_cfg_still_path(&b, path, sizeof path, err, sizeof err) == 0 &&
	           strcmp(path, "out/img_0003.png") == 0,
	   "  the still's own path");
	ok(!dr_render_cfg_same_blender(&a, &b), "  not the same Blender as the plain job");
	ok(dr_render_cfg_encode(&b, buf, sizeof buf) == 0 &&
	           dr_render_cfg_decode(buf, &c, err, sizeof err) == 0,
	   "still round trip");
	ok(c.still == 3 && c.ranges == 4 && strcmp(c.output, b.output) == 0 &&
	           strcmp(c.still_format, "PNG") == 0 && dr_render_cfg_same_blender(&b, &c),
	   "  everything kept");
	dr_render_cfg_encode(&a, buf, sizeof buf);
	ok(!strstr(buf, "ranges"), "no still: no still members on the wire");
}

static void test_merge(void)
{
	dr_render_cfg a, s, m, c, r;
	char err[256], buf[8192];
	int off, sum = 0, prev = 1 << 30, start = 0;

	dr_render_cfg_init(&a, "s.blend", "out/img_####", "PNG", NULL, 64, err, sizeof err);
	m = a;
	ok(dr_render_cfg_set_merge(&m, err, sizeof err) == -1 && !m.merge,
	   "set_merge: a plain job has no ranges to merge");
	s = a;
	dr_render_cfg_set_still(&s, 3, 4, err, sizeof err);
	m = s;
	ok(dr_render_cfg_set_merge(&m, err, sizeof err) == 0 && m.merge, "set_merge on a still");
	is_str(m.output, "out/img_####", "  the merge job writes the still's pattern");
	is_str(m.format, "PNG", "  in the still's format");
	ok(dr_render_cfg_set_merge(&m, err, sizeof err) == -1, "  not twice");
	ok(!dr_render_cfg_same_blender(&s, &m), "  not the same Blender as the ranges");
	ok(dr_render_cfg_ranges_of(&m, &r, err, sizeof err) == 0 && !r.merge &&
	           strcmp(r.output, s.output) == 0 && strcmp(r.format, s.format) == 0,
	   "ranges_of gives back the ranges' job");
	ok(dr_render_cfg_ranges_of(&s, &r, err, sizeof err) == -1, "ranges_of a non-merge refused");
	ok(dr_render_cfg_encode(&m, buf, sizeof buf) == 0 && strstr(buf, "\"merge\":true") &&
	           dr_render_cfg_decode(buf, &c, err, sizeof err) == 0,
	   "merge round trip");
	ok(c.merge && c.ranges == 4 && c.still == 3 && strcmp(c.output, m.output) == 0 &&
	           strcmp(c.format, "PNG") == 0 && dr_render_cfg_same_blender(&m, &c),
	   "  everything kept");
	ok(dr_render_cfg_decode("{\"scene\":\"s.blend\",\"output\":\"o_#\",\"format\":\"PNG\","
	                        "\"engine\":\"\",\"samples\":0,\"merge\":true}",
	                        &c, err, sizeof err) == -1,
	   "decode: merge without ranges refused");
	/* ranges as the driver cuts them: 64 samples in 4 = 19, 17, 15, 13 (test still.sh) */
	for (int k = 0; k < 4; k++) {
		int n = dr_render_cfg_range_samples(64, 4, k, &off);
		ok(n > 0 && n <= prev && off == start, "range %d: %d samples from %d", k, n, off);
		prev = n;
		start += n;
		sum += n;
	}
	is_int(sum, 64, "  the ranges cover every sample once");
	is_int(dr_render_cfg_range_samples(64, 4, 0, NULL), 19, "  the first (largest) is 19");
	sum = 0;
	for (int k = 0; k < 1024; k++)
		sum += dr_render_cfg_range_samples(100000, 1024, k, NULL);
	is_int(sum, 100000, "1024 ranges of 100000 samples cover every sample");
	ok(dr_render_cfg_range_samples(64, 4, 4, NULL) == -1 &&
	           dr_render_cfg_range_samples(0, 4, 0, NULL) == -1,
	   "range_samples: out of range refused");
}

/* dr_render_cfg_build: the parts of a command line, in the order the steps need. */
static void test_build(void)
{
	dr_render_cfg a, b, keep;
	char err[256];
	dr_render_args args = {.scene = "s.blend",
	                       .output = "out/img_####",
	                       .samples = 64,
	                       .video = "out/v.mp4",
	                       .fps = 25,
	                       .resolve = true};

	ok(dr_render_cfg_build(&a, &args, err, sizeof err) == 0, "build: frames and a video");
	is_str(a.format, "PNG", "  the default format");
	is_str(a.video, "out/v.mp4", "  the video");
	ok(a.fps == 25 && a.samples == 64 && a.ranges == 0, "  fps, samples, no still");
	args.video = NULL;
	args.still = 3;
	args.ranges = 4;
	ok(dr_render_cfg_build(&b, &args, err, sizeof err) == 0, "build: a still split");
	is_str(b.output, "out/img_0003.png.range-####.exr", "  ranges named after the still");
	ok(b.still == 3 && b.ranges == 4, "  frame 3, 4 ranges");
	keep = b;
	args.ranges = 1;
	ok(dr_render_cfg_build(&b, &args, err, sizeof err) == -1 &&
	           memcmp(&b, &keep, sizeof b) == 0,
	   "build: 1 range refused, nothing changed");
	args.ranges = 0;
	args.video = "v.gif";
	ok(dr_render_cfg_build(&b, &args, err, sizeof err) == -1 && strstr(err, ".mp4"),
	   "build: a bad video refused: %s", err);
}

int main(void)
{
	test_build();
	test_merge();
	test_still();
	test_video();
	test_init();
	test_wire();
	test_same();
	test_device();
	return done_testing();
}
