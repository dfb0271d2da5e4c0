/* Unit tests for dr_video's pure parts: names, argv arrays, ffprobe and Blender output parsing;
 * and one encode with stand-in ffmpeg/ffprobe scripts to check the temporary name and cleanup. */
#include "dr_video.h"
#include "tap.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[2048];

/* Index of S in A's argv, or -1. */
static int find(const dr_video_argv *a, const char *s)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], s) == 0)
			return (int)i;
	return -1;
}

static void test_names(void)
{
	char buf[64];

	is_str(dr_video_container("a/b.mp4"), "mp4", ".mp4 -> mp4");
	is_str(dr_video_container("B.WEBM"), "webm", ".WEBM -> webm (any case)");
	is_str(dr_video_container("x.mov"), "mov", ".mov -> mov");
	ok(!dr_video_container("x.avi"), ".avi is refused");
	ok(!dr_video_container("dir/.mp4") && !dr_video_container(".mp4"),
	   "a bare extension is no name");
	ok(!dr_video_container(NULL), "NULL is no name");
	is_int(dr_video_check_path("out/v.mp4", err, sizeof err), 0, "check_path: out/v.mp4");
	is_int(dr_video_check_path("out/v.gif", err, sizeof err), -1, "check_path: .gif refused");
	ok(strstr(err, ".mp4, .webm or .mov") != NULL, "  and says which names work");
	is_int(dr_video_check_path("", err, sizeof err), -1, "check_path: empty refused");
	is_int(dr_video_check_fps(0, err, sizeof err), 0, "fps 0 = the scene's");
	is_int(dr_video_check_fps(29.97, err, sizeof err), 0, "fps 29.97");
	is_int(dr_video_check_fps(-1, err, sizeof err), -1, "fps -1 refused");
	is_int(dr_video_check_fps(5000, err, sizeof err), -1, "fps 5000 refused");
	is_int(dr_video_fps_text(12, buf, sizeof buf), 0, "fps text 12");
	is_str(buf, "12", "  is '12'");
	dr_video_fps_text(30 / 1.001, buf, sizeof buf);
	is_str(buf, "29.97003", "NTSC rate keeps 7 digits");
	is_int(dr_video_link_name("/o/.seq", 11, ".png", buf, sizeof buf), 0, "link name");
	is_str(buf, "/o/.seq/0000011.png", "  is 7-digit, 0-based");
	is_int(dr_video_link_name("/o", 10000000, ".png", buf, sizeof buf), -1,
	       "link name: more than 7 digits refused");
	is_int(dr_video_link_name("/a/very/long/directory/name/indeed", 1, ".png", buf, 16), -1,
	       "link name: too long refused");
}

static void test_ffmpeg_argv(void)
{
	dr_video_argv a;
	int i;

	is_int(dr_video_ffmpeg_argv(&a, "/usr/bin/ffmpeg", "/o/.seq", ".png", 12, "mp4", "/o/t.tmp",
	                            err, sizeof err),
	       0, "ffmpeg argv for mp4");
	is_str(a.v[0], "/usr/bin/ffmpeg", "  argv[0] is the executable");
	ok(a.v[a.n] == NULL, "  NULL-terminated");
	i = find(&a, "-framerate");
	ok(i > 0 && strcmp(a.v[i + 1], "12") == 0, "  -framerate 12 before the input");
	i = find(&a, "-i");
	ok(i > 0 && strcmp(a.v[i + 1], "/o/.seq/%07d.png") == 0, "  image2 input pattern");
	ok(find(&a, "-i") > find(&a, "-framerate"), "  input options come first");
	i = find(&a, "-c:v");
	ok(i > 0 && strcmp(a.v[i + 1], "libx264") == 0, "  H.264");
	ok(find(&a, "yuv420p") > 0, "  yuv420p (plays everywhere)");
	ok(find(&a, "-nostdin") > 0, "  never reads stdin");
	is_str(a.v[a.n - 1], "/o/t.tmp", "  output last");
	i = find(&a, "-start_number");
	ok(i > 0 && strcmp(a.v[i + 1], "0") == 0, "  sequence starts at 0");
	is_str(a.v[a.n - 2], "mp4", "  muxer named (the temporary name has no extension)");

	dr_video_ffmpeg_argv(&a, "ffmpeg", "/o/.seq", ".exr", 25, "webm", "/o/t", err, sizeof err);
	i = find(&a, "-c:v");
	ok(i > 0 && strcmp(a.v[i + 1], "libvpx-vp9") == 0, "webm: VP9");
	dr_video_ffmpeg_argv(&a, "ffmpeg", "/o/.seq", ".png", 25, "mov", "/o/t", err, sizeof err);
	is_str(a.v[a.n - 2], "mov", "mov: mov muxer");
	is_int(dr_video_ffmpeg_argv(&a, "ffmpeg", "/o/.seq", ".png", 0, "mp4", "/o/t", err,
	                            sizeof err),
	       -1, "fps 0 refused by the builder");
	is_int(dr_video_ffmpeg_argv(&a, "ffmpeg", "/o/.seq", ".png", 25, "avi", "/o/t", err,
	                            sizeof err),
	       -1, "unknown container refused");
	is_int(dr_video_ffmpeg_argv(&a, "ffmpeg", "", ".png", 25, "mp4", "/o/t", err, sizeof err),
	       -1, "empty directory refused");

	is_int(dr_video_ffprobe_argv(&a, "ffprobe", "/o/v.mp4", err, sizeof err), 0,
	       "ffprobe argv");
	ok(find(&a, "-count_frames") > 0, "  counts decoded frames");
	is_str(a.v[a.n - 1], "/o/v.mp4", "  the file last");

	is_int(dr_video_fps_argv(&a, "blender", "s.blend", false, err, sizeof err), 0,
	       "Blender fps argv");
	ok(find(&a, "--disable-autoexec") > 0, "  autoexec off by default");
	is_str(a.v[2], "s.blend", "  scene after -b");
	dr_video_fps_argv(&a, "blender", "s.blend", true, err, sizeof err);
	ok(find(&a, "--disable-autoexec") < 0, "  --allow-autoexec honoured");
}

static void test_parse(void)
{
	long n = -1;
	double fps = -1;

	is_int(dr_video_parse_probe("r_frame_rate=12/1\nnb_read_frames=20\n", &n, &fps, err,
	                            sizeof err),
	       0, "probe parsed");
	is_int(n, 20, "  20 frames");
	ok(fps == 12, "  12 fps");
	dr_video_parse_probe("r_frame_rate=30000/1001\nnb_read_frames=3", &n, &fps, err,
	                     sizeof err);
	ok(fps > 29.96 && fps < 29.98, "NTSC rate parsed");
	dr_video_parse_probe("r_frame_rate=0/0\nnb_read_frames=3", &n, &fps, err, sizeof err);
	ok(fps == 0, "0/0 is no rate");
	is_int(dr_video_parse_probe("", &n, &fps, err, sizeof err), -1, "no stream: refused");
	is_int(dr_video_parse_probe("nb_read_frames=N/A\n", &n, &fps, err, sizeof err), -1,
	       "N/A: refused");
	is_int(dr_video_check_probe("nb_read_frames=20\n", 20, err, sizeof err), 0,
	       "check: 20 of 20");
	is_int(dr_video_check_probe("nb_read_frames=19\n", 20, err, sizeof err), -1,
	       "check: 19 of 20 refused");
	is_str(err, "the video has 19 frames instead of 20", "  and says so");

	is_int(dr_video_parse_fps("Blender 3.4.1\nDRENDER_FPS=12.0\n\nBlender quit\n", &fps), 0,
	       "Blender's fps line parsed");
	ok(fps == 12, "  12");
	is_int(dr_video_parse_fps("print('DRENDER_FPS=%r')\nBlender quit\n", &fps), -1,
	       "an echoed script line is not a rate");
	is_int(dr_video_parse_fps("DRENDER_FPS=0.0\n", &fps), -1, "rate 0 refused");
	is_int(dr_video_parse_fps(NULL, &fps), -1, "no output: refused");
}

/* Write an executable script. */
static void script(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, 0755);
}

/* Entries in DIR other than . and .. and KEEP. */
static int others(const char *dir, const char *keep)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int count = 0;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep))
			count++;
	if (d)
		closedir(d);
	return count;
}

static void test_encode(void)
{
	char dir[] = "/tmp/dr-video-XXXXXX", f1[256], f2[256], ffm[256], ffp[256], bad[256],
	     vid[256];
	const char *frames[2] = {f1, f2};
	dr_video_job j = {.path = vid, .frames = frames, .n = 2, .fps = 12};
	struct stat st;

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(f1, sizeof f1, "%s/f_01.png", dir);
	snprintf(f2, sizeof f2, "%s/f_02.png", dir);
	snprintf(ffm, sizeof ffm, "%s/ffmpeg", dir);
	snprintf(ffp, sizeof ffp, "%s/ffprobe", dir);
	snprintf(bad, sizeof bad, "%s/badprobe", dir);
	snprintf(vid, sizeof vid, "%s/v.mp4", dir);
	script(f1, "1");
	script(f2, "2");
	/* a stand-in ffmpeg: both links must be there; writes its last argument */
	script(ffm, "#!/bin/sh\n"
	            "while [ $# -gt 1 ]; do\n"
	            "  case $1 in -framerate) rate=$2;; -i) in=$2;; esac; shift\n"
	            "done\n"
	            "[ \"$rate\" = 12 ] || { echo \"bad rate $rate\" >&2; exit 1; }\n"
	            "seq=${in%/*}/\n"
	            "[ \"$(cat \"${seq}0000000.png\")$(cat \"${seq}0000001.png\")\" = 12 ] || "
	            "{ echo bad links >&2; exit 1; }\n"
	            "echo video > \"$1\"\n");
	script(ffp, "#!/bin/sh\necho r_frame_rate=12/1\necho nb_read_frames=2\n");
	script(bad, "#!/bin/sh\necho nb_read_frames=1\n");
	j.ffmpeg = ffm;
	j.ffprobe = ffp;
	is_int(dr_video_encode(&j, err, sizeof err), 0, "encode with stand-ins");
	if (err[0] && stat(vid, &st) != 0)
		printf("#   %s\n", err);
	ok(stat(vid, &st) == 0 && st.st_size > 0, "  the video is in place");
	is_int(others(dir, "v.mp4"), 5, "  no sequence directory or temporary file left");
	unlink(vid);
	j.ffprobe = bad;
	is_int(dr_video_encode(&j, err, sizeof err), -1, "a video with a frame missing");
	ok(strstr(err, "1 frames instead of 2") != NULL, "  says so");
	ok(stat(vid, &st) != 0, "  and is not renamed into place");
	is_int(others(dir, ""), 5, "  nothing left behind");
	j.ffmpeg = "drender-no-such-ffmpeg";
	is_int(dr_video_encode(&j, err, sizeof err), -1, "no ffmpeg");
	ok(strstr(err, "not installed") != NULL, "  says it is not installed");
}

int main(void)
{
	test_names();
	test_ffmpeg_argv();
	test_parse();
	test_encode();
	return done_testing();
}
