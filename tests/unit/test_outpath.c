/* Unit tests for dr_outpath: format names, '#' expansion, final, directory and temporary paths. */
#include "dr_frames.h"
#include "dr_outpath.h"
#include "tap.h"

#include <stdlib.h>

static char err[512];
static char buf[DR_PATH_MAX];

static void test_formats(void)
{
	static const struct {
		const char *name, *ext, *arg;
	} table[] = {
	        {"PNG", ".png", "PNG"},
	        {"JPEG", ".jpg", "JPEG"},
	        {"JPEG2000", ".jp2", "JP2"},
	        {"BMP", ".bmp", "BMP"},
	        {"TARGA", ".tga", "TGA"},
	        {"TARGA_RAW", ".tga", "RAWTGA"},
	        {"IRIS", ".rgb", "IRIS"},
	        {"CINEON", ".cin", "CINEON"},
	        {"DPX", ".dpx", "DPX"},
	        {"OPEN_EXR", ".exr", "EXR"},
	        {"OPEN_EXR_MULTILAYER", ".exr", "MULTILAYER"},
	        {"HDR", ".hdr", "HDR"},
	        {"TIFF", ".tif", "TIFF"},
	        {"WEBP", ".webp", "WEBP"},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		is_str(dr_format_ext(table[i].name), table[i].ext, "%s extension", table[i].name);
		is_str(dr_format_canonical(table[i].name), table[i].name, "%s is canonical",
		       table[i].name);
		is_str(dr_format_blender_arg(table[i].name), table[i].arg, "%s on Blender's -F",
		       table[i].name);
	}
	static const struct {
		const char *alias, *name;
	} al[] = {
	        {"jpg", "JPEG"},          {"JPG", "JPEG"},
	        {"jpeg", "JPEG"},         {"exr", "OPEN_EXR"},
	        {"tif", "TIFF"},          {"tiff", "TIFF"},
	        {"TiFf", "TIFF"},         {"tga", "TARGA"},
	        {"png", "PNG"},           {"Png", "PNG"},
	        {"open_exr", "OPEN_EXR"}, {"rawtga", "TARGA_RAW"},
	        {"jp2", "JPEG2000"},      {"multilayer", "OPEN_EXR_MULTILAYER"},
	};
	for (size_t i = 0; i < sizeof(al) / sizeof(al[0]); i++)
		is_str(dr_format_canonical(al[i].alias), al[i].name, "alias %s", al[i].alias);
	is_str(dr_format_ext("jpg"), ".jpg", "ext of alias jpg");
	is_str(dr_format_ext("exr"), ".exr", "ext of alias exr");
	is_str(dr_format_blender_arg("targa"), "TGA", "Blender arg of lower-case targa");

	const char *bad[] = {"FFMPEG", "ffmpeg", "AVI_JPEG", "AVI_RAW", "GIF", "", "PNG ", "jpgx"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ok(dr_format_ext(bad[i]) == NULL, "'%s' has no extension", bad[i]);
		ok(dr_format_canonical(bad[i]) == NULL, "'%s' is not a supported format", bad[i]);
	}
	ok(dr_format_ext(NULL) == NULL && dr_format_canonical(NULL) == NULL &&
	           dr_format_blender_arg(NULL) == NULL,
	   "NULL format");
}

/* Init with PATTERN/SCENE/FORMAT and check the path of FRAME. */
static void frame_is(const char *pattern, const char *scene, const char *format, int frame,
                     const char *want)
{
	dr_outpath o;
	int rc = dr_outpath_init(&o, pattern, scene, format, err, sizeof(err));
	if (rc < 0)
		printf("# init failed: %s\n", err);
	rc = rc == 0 ? dr_outpath_frame(&o, frame, buf, sizeof(buf)) : -1;
	is_str(rc == 0 ? buf : NULL, want, "'%s' (%s) frame %d", pattern ? pattern : "(default)",
	       format, frame);
}

static void test_frames(void)
{
	frame_is("out/f_####", NULL, "PNG", 1, "out/f_0001.png");
	frame_is("out/f_####", NULL, "PNG", 12345, "out/f_12345.png");
	frame_is("out/f_#", NULL, "PNG", 7, "out/f_7.png");
	frame_is("out/f_#", NULL, "PNG", 70, "out/f_70.png");
	frame_is("out/f_###.png", NULL, "PNG", 5, "out/f_005.png");
	frame_is("out/f_###.PNG", NULL, "png", 5, "out/f_005.PNG");
	frame_is("out/f_###.jpeg", NULL, "JPEG", 5, "out/f_005.jpeg.jpg");
	frame_is("out/f_####.exr", NULL, "exr", 0, "out/f_0000.exr");
	frame_is("out/f", NULL, "PNG", 3, "out/f0003.png");
	frame_is("out/", NULL, "PNG", 3, "out/0003.png");
	frame_is("f_##_v_##", NULL, "TIFF", 4, "f_04_v_04.tif");
	frame_is("shot_##/frame_####", NULL, "JPEG", 42, "shot_42/frame_0042.jpg");
	frame_is("/abs/path/f####", NULL, "OPEN_EXR_MULTILAYER", 1048574, "/abs/path/f1048574.exr");
	frame_is("a.png_####", NULL, "PNG", 1, "a.png_0001.png");
	frame_is("out/f_####.png", NULL, "TARGA", 1, "out/f_0001.png.tga");
	frame_is("out/f_#.webp", NULL, "WEBP", 9, "out/f_9.webp");
	frame_is(NULL, "scenes/shot10.blend", "PNG", 1, "output/shot10_0001.png");
	frame_is(NULL, "/x/y/Shot.BLEND", "JPEG", 25, "output/Shot_0025.jpg");
	frame_is(NULL, "noext", "HDR", 2, "output/noext_0002.hdr");
	frame_is(NULL, "my.scene.blend", "DPX", 2, "output/my.scene_0002.dpx");

	dr_outpath o;
	ok(dr_outpath_init(&o, "out/f_####", NULL, "PNG", err, sizeof(err)) == 0, "init");
	is_str(o.pattern, "out/f_####", "pattern kept as given");
	is_str(o.ext, ".png", "extension");
	ok(dr_outpath_init(&o, "out/f", NULL, "PNG", err, sizeof(err)) == 0 &&
	           strcmp(o.pattern, "out/f####") == 0,
	   "#### appended to the stored pattern");
	ok(dr_outpath_frame(&o, -1, buf, sizeof(buf)) == -1 && buf[0] == '\0', "negative frame");

	char small[14];
	ok(dr_outpath_frame(&o, 1, small, sizeof(small)) == 0, "exact fit (13 chars + NUL)");
	is_str(small, "out/f0001.png", "... content");
	ok(dr_outpath_frame(&o, 1, small, 13) == -1 && small[0] == '\0',
	   "one byte short: -1 and empty buffer");
	ok(dr_outpath_frame(&o, 10000, small, sizeof(small)) == -1, "wider frame no longer fits");
	ok(dr_outpath_frame(&o, 1, small, 0) == -1, "zero-length buffer");
}

static void init_fails(const char *pattern, const char *scene, const char *format,
                       const char *needle)
{
	dr_outpath o;
	memset(&o, 'Z', sizeof(o));
	o.pattern[sizeof(o.pattern) - 1] = '\0';
	int rc = dr_outpath_init(&o, pattern, scene, format, err, sizeof(err));
	ok(rc == -1 && o.pattern[0] == 'Z' && o.ext[0] == 'Z', "init refuses %s/%s/%s untouched",
	   pattern ? pattern : "(null)", scene ? scene : "(null)", format ? format : "(null)");
	ok(strstr(err, needle) != NULL, "message mentions '%s'", needle);
	if (!strstr(err, needle))
		printf("#   message: %s\n", err);
}

static void test_init_errors(void)
{
	init_fails("out/####", NULL, "FFMPEG", "'FFMPEG'");
	init_fails("out/####", NULL, "FFMPEG", "movie");
	init_fails("out/####", NULL, "avi_jpeg", "movie");
	init_fails("out/####", NULL, "GIF", "unknown output format 'GIF'");
	init_fails("out/####", NULL, NULL, "unknown output format");
	init_fails("", NULL, "PNG", "empty");
	init_fails("//render/f_####", NULL, "PNG", "'//render/f_####'");
	init_fails(NULL, NULL, "PNG", "scene");
	init_fails(NULL, "dir/.blend", "PNG", "'dir/.blend'");
	init_fails(NULL, "dir/", "PNG", "'dir/'");

	char *longp = malloc(DR_PATH_MAX + 10);
	memset(longp, 'a', DR_PATH_MAX + 9);
	longp[DR_PATH_MAX + 9] = '\0';
	init_fails(longp, NULL, "PNG", "too long");
	longp[DR_PATH_MAX - 100] = '\0';
	init_fails(longp, NULL, "PNG", "too long");
	longp[DR_PATH_MAX - 300] = '\0';
	dr_outpath o;
	ok(dr_outpath_init(&o, longp, NULL, "PNG", err, sizeof(err)) == 0,
	   "a long pattern with room to spare is fine");
	ok(dr_outpath_frame(&o, DR_FRAME_MAX, buf, sizeof(buf)) == 0,
	   "... and its widest frame fits");
	free(longp);
}

static void test_dir_and_temp(void)
{
	dr_outpath o;
	char small[32];

	ok(dr_outpath_init(&o, "render/shot_##/f_####", NULL, "PNG", err, sizeof(err)) == 0,
	   "init");
	ok(dr_outpath_dir(&o, 7, buf, sizeof(buf)) == 0, "dir");
	is_str(buf, "render/shot_07", "dir expands '#' too");
	ok(dr_outpath_temp(&o, 7, "node-3", buf, sizeof(buf)) == 0, "temp");
	is_str(buf, "render/shot_07/.drender-tmp-node-3-0000007", "temp path");
	ok(dr_outpath_temp(&o, 1048574, "host.example_1", buf, sizeof(buf)) == 0,
	   "temp, max frame");
	is_str(buf, "render/shot_1048574/.drender-tmp-host.example_1-1048574", "temp, 7 digits");

	const char *badtags[] = {"", "a/b", "a b", "x;rm", "ta\tg", "é", "a#b"};
	for (size_t i = 0; i < sizeof(badtags) / sizeof(badtags[0]); i++)
		ok(dr_outpath_temp(&o, 1, badtags[i], buf, sizeof(buf)) == -1 && buf[0] == '\0',
		   "tag '%s' refused", badtags[i]);
	ok(dr_outpath_temp(&o, 1, NULL, buf, sizeof(buf)) == -1, "NULL tag refused");
	ok(dr_outpath_temp(&o, -1, "t", buf, sizeof(buf)) == -1, "negative frame refused");
	ok(dr_outpath_temp(&o, 1, "t", small, sizeof(small)) == -1 && small[0] == '\0',
	   "temp too long for buffer");

	ok(dr_outpath_init(&o, "f_####", NULL, "JPEG", err, sizeof(err)) == 0, "no directory");
	ok(dr_outpath_dir(&o, 1, buf, sizeof(buf)) == 0, "dir");
	is_str(buf, ".", "dir is '.'");
	ok(dr_outpath_temp(&o, 1, "r0", buf, sizeof(buf)) == 0, "temp");
	is_str(buf, "./.drender-tmp-r0-0000001", "temp in '.'");

	ok(dr_outpath_init(&o, "/f_####", NULL, "PNG", err, sizeof(err)) == 0, "root");
	ok(dr_outpath_dir(&o, 1, buf, sizeof(buf)) == 0, "dir");
	is_str(buf, "/", "dir is '/'");
	ok(dr_outpath_temp(&o, 1, "r0", buf, sizeof(buf)) == 0, "temp");
	is_str(buf, "/.drender-tmp-r0-0000001", "temp in '/' has no '//'");

	ok(dr_outpath_init(&o, "a//b///f_####", NULL, "PNG", err, sizeof(err)) == 0, "slashes");
	ok(dr_outpath_dir(&o, 1, buf, sizeof(buf)) == 0, "dir");
	is_str(buf, "a//b", "trailing slashes of the directory dropped");
	ok(dr_outpath_temp(&o, 1, "r0", buf, sizeof(buf)) == 0, "temp");
	is_str(buf, "a//b/.drender-tmp-r0-0000001", "temp next to it");
	ok(dr_outpath_dir(&o, 1, small, 4) == -1 && small[0] == '\0', "dir too long for buffer");
	ok(dr_outpath_dir(&o, 1, small, 5) == 0, "dir exact fit");
}

static void test_is_temp(void)
{
	const char *yes[] = {
	        ".drender-tmp-node-3-0000007",         ".drender-tmp-x-1048574",
	        ".drender-tmp-host.example_1-0000001", ".drender-tmp-a-b-c-0000001",
	        ".drender-tmp-r0-0000001.png",         ".drender-tmp-r0-0000001.exr",
	};
	const char *no[] = {
	        "",
	        "f_0001.png",
	        ".drender-tmp-",
	        ".drender-tmp-0000001",
	        ".drender-tmp--0000001",
	        ".drender-tmp-x-000001",
	        ".drender-tmp-x-00000001x",
	        ".drender-tmp-x-000000a",
	        ".drender-tmp-a b-0000001",
	        ".drender-tmp-x-0000001.",
	        ".drender-tmp-x-0000001.p-g",
	        "x.drender-tmp-x-0000001",
	        ".drender-tmp-x/y-0000001",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ok(dr_outpath_is_temp(yes[i]), "'%s' is ours", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ok(!dr_outpath_is_temp(no[i]), "'%s' is not ours", no[i]);
	ok(!dr_outpath_is_temp(NULL), "NULL is not ours");

	/* Round trip: every generated temporary name is recognised. */
	dr_outpath o;
	dr_outpath_init(&o, "out/f_####", NULL, "PNG", err, sizeof(err));
	dr_outpath_temp(&o, 123, "worker-2.local", buf, sizeof(buf));
	ok(dr_outpath_is_temp(strrchr(buf, '/') + 1), "generated temp name recognised: %s", buf);
}

int main(void)
{
	test_formats();
	test_frames();
	test_init_errors();
	test_dir_and_temp();
	test_is_temp();
	return done_testing();
}
