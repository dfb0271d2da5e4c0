/* Unit tests for dr_opts: arguments, every option with good and bad values, defaults and messages.
 */
#include "dr_opts.h"
#include "dr_render_cfg.h"
#include "tap.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[512];
static char store[32][256];
static char *argv_buf[34];

/* Parse "drender" followed by the NULL-terminated arguments, with ENV as $DRENDER_BLENDER. */
static int parse(dr_opts *o, const char *env, ...)
{
	va_list ap;
	int argc = 0;
	const char *a;

	snprintf(store[0], sizeof store[0], "drender");
	argv_buf[argc++] = store[0];
	va_start(ap, env);
	while ((a = va_arg(ap, const char *)) != NULL && argc < 32) {
		snprintf(store[argc], sizeof store[argc], "%s", a);
		argv_buf[argc] = store[argc];
		argc++;
	}
	va_end(ap);
	argv_buf[argc] = NULL;
	err[0] = '\0';
	return dr_opts_parse(argc, argv_buf, env, o, err, sizeof err);
}

/* The last parse failed and its message contains both A and B (B may be NULL). */
static void fails_with(int rc, const char *what, const char *a, const char *b)
{
	int has = strstr(err, a) != NULL && (!b || strstr(err, b) != NULL);
	ok(rc == -1 && has, "%s: refused, message names '%s'%s%s", what, a, b ? " and " : "",
	   b ? b : "");
	if (rc != -1 || !has)
		printf("#   rc %d, message: %s\n", rc, err);
}

static void test_defaults(void)
{
	dr_opts o = {0};
	int rc = parse(&o, NULL, "scene.blend", "1", "5", NULL);
	is_int(rc, 0, "START END parses");
	is_str(o.scene, "scene.blend", "scene");
	ok(o.frames.n == 5 && o.frames.v[0] == 1 && o.frames.v[4] == 5, "frames 1..5");
	is_str(o.format, "PNG", "default format PNG");
	is_int(o.chunk, 1, "default chunk 1");
	is_int(o.retries, 3, "default retries 3");
	is_str(o.blender, "blender", "default blender: 'blender'");
	ok(o.output == NULL && o.engine == NULL && o.report == NULL, "no output, engine, report");
	ok(o.samples == 0 && o.threads == 0 && o.timeout == 0, "samples, threads, timeout 0");
	is_int(o.verbosity, 0, "normal verbosity");
	ok(!o.one_shot && !o.overwrite && !o.allow_autoexec && !o.help && !o.version, "flags off");
	dr_opts_free(&o);

	o = (dr_opts){0};
	parse(&o, "/opt/blender/blender", "s.blend", "1", "1", NULL);
	is_str(o.blender, "/opt/blender/blender", "blender from $DRENDER_BLENDER");
	dr_opts_free(&o);
	o = (dr_opts){0};
	parse(&o, "", "s.blend", "1", "1", NULL);
	is_str(o.blender, "blender", "empty $DRENDER_BLENDER ignored");
	dr_opts_free(&o);
	o = (dr_opts){0};
	parse(&o, "/opt/b", "--blender", "/usr/bin/blender4", "s.blend", "1", "1", NULL);
	is_str(o.blender, "/usr/bin/blender4", "--blender wins over the environment");
	dr_opts_free(&o);
}

static void test_frames(void)
{
	dr_opts o = {0};
	int rc = parse(&o, NULL, "s.blend", "--frames", "1-3,7,10-14:2", NULL);
	is_int(rc, 0, "--frames SPEC");
	ok(o.frames.n == 7 && o.frames.v[3] == 7 && o.frames.v[6] == 14, "frames 1 2 3 7 10 12 14");
	dr_opts_free(&o);
	o = (dr_opts){0};
	rc = parse(&o, NULL, "--frames=5", "s.blend", NULL);
	ok(rc == 0 && o.frames.n == 1 && o.frames.v[0] == 5, "--frames=SPEC before the scene");
	dr_opts_free(&o);
	o = (dr_opts){0};
	rc = parse(&o, NULL, "s.blend", "1", "5", "--frames", "1-3", NULL);
	fails_with(rc, "START END and --frames", "--frames", "not both");
	rc = parse(&o, NULL, "s.blend", "1", "--frames", "1-3", NULL);
	fails_with(rc, "one number and --frames", "--frames", NULL);
	rc = parse(&o, NULL, "s.blend", "--frames", "1-x", NULL);
	ok(rc == -1 && err[0], "bad --frames spec refused: %s", err);
	rc = parse(&o, NULL, "s.blend", "--frames", "", NULL);
	ok(rc == -1 && err[0], "empty --frames spec refused: %s", err);
	rc = parse(&o, NULL, "s.blend", "5", "1", NULL);
	ok(rc == -1 && err[0], "START after END refused: %s", err);
	rc = parse(&o, NULL, "s.blend", "a", "5", NULL);
	ok(rc == -1 && strstr(err, "a"), "bad START refused: %s", err);
	rc = parse(&o, NULL, "--frames", "1-3", NULL);
	fails_with(rc, "--frames without a scene", "SCENE", NULL);
	ok(o.frames.v == NULL && o.frames.n == 0, "failures leave the struct untouched");

	/* Options after the positional arguments (GNU permutation) and "--". */
	o = (dr_opts){0};
	rc = parse(&o, NULL, "s.blend", "2", "4", "-F", "jpeg", NULL);
	ok(rc == 0 && o.frames.n == 3 && strcmp(o.format, "JPEG") == 0,
	   "options after START END are read");
	dr_opts_free(&o);
	o = (dr_opts){0};
	rc = parse(&o, NULL, "--", "-odd.blend", "1", "2", NULL);
	ok(rc == 0 && strcmp(o.scene, "-odd.blend") == 0, "'--' ends the options");
	dr_opts_free(&o);
}

static void test_args_count(void)
{
	dr_opts o = {0};
	int rc = parse(&o, NULL, NULL);
	fails_with(rc, "no arguments", "missing SCENE.blend", NULL);
	rc = parse(&o, NULL, "s.blend", NULL);
	fails_with(rc, "scene only", "missing frame range", NULL);
	rc = parse(&o, NULL, "s.blend", "1", NULL);
	fails_with(rc, "START only", "missing frame range", NULL);
	rc = parse(&o, NULL, "s.blend", "1", "2", "3", NULL);
	fails_with(rc, "one argument too many", "too many arguments", NULL);
	rc = parse(&o, NULL, "-q", "s.blend", "1", "2", "x", "y", NULL);
	fails_with(rc, "two too many", "too many arguments", NULL);
}

static void test_options_valid(void)
{
	dr_opts o = {0};
	int rc = parse(&o, NULL, "-o", "out/f_####", "-F", "exr", "-E", "cycles", "-t", "8",
	               "--samples", "64", "--chunk", "4", "--retries", "0", "--timeout", "2.5",
	               "--report", "r.json", "--one-shot", "--overwrite", "--allow-autoexec",
	               "s.blend", "1", "2", NULL);
	is_int(rc, 0, "every option at once");
	is_str(o.output, "out/f_####", "-o");
	is_str(o.format, "OPEN_EXR", "-F exr -> OPEN_EXR");
	is_str(o.engine, "CYCLES", "-E cycles -> CYCLES");
	is_int(o.threads, 8, "-t 8");
	is_int(o.samples, 64, "--samples 64");
	is_int(o.chunk, 4, "--chunk 4");
	is_int(o.retries, 0, "--retries 0");
	ok(o.timeout == 2.5, "--timeout 2.5");
	is_str(o.report, "r.json", "--report");
	ok(o.one_shot && o.overwrite && o.allow_autoexec, "flags");
	dr_opts_free(&o);

	o = (dr_opts){0};
	rc = parse(&o, NULL, "--output=x_##", "--format=TIFF", "--engine=eevee", "--threads=1",
	           "--chunk=256", "--retries=100", "--samples=16777216", "--timeout=604800",
	           "s.blend", "1", "2", NULL);
	is_int(rc, 0, "long options with '=' and the upper limits");
	ok(strcmp(o.output, "x_##") == 0 && strcmp(o.format, "TIFF") == 0 &&
	           strcmp(o.engine, "BLENDER_EEVEE") == 0 && o.threads == 1 && o.chunk == 256 &&
	           o.retries == 100 && o.samples == 1 << 24 && o.timeout == 604800.0,
	   "values read");
	dr_opts_free(&o);

	o = (dr_opts){0};
	rc = parse(&o, NULL, "-Fjpg", "-Eworkbench", "-t2", "s.blend", "1", "2", NULL);
	ok(rc == 0 && strcmp(o.format, "JPEG") == 0 && strcmp(o.engine, "BLENDER_WORKBENCH") == 0 &&
	           o.threads == 2,
	   "short options with attached values");
	dr_opts_free(&o);

	o = (dr_opts){0};
	rc = parse(&o, NULL, "--over", "--chu", "3", "s.blend", "1", "2", NULL);
	ok(rc == 0 && o.overwrite && o.chunk == 3, "unambiguous abbreviations accepted");
	dr_opts_free(&o);

	o = (dr_opts){0};
	rc = parse(&o, NULL, "--chunk", "2", "--chunk", "5", "s.blend", "1", "2", NULL);
	ok(rc == 0 && o.chunk == 5, "the last of a repeated option wins");
	dr_opts_free(&o);
}

static void test_options_invalid(void)
{
	static const struct {
		const char *opt, *val, *name;
	} bad[] = {
	        {"-t", "0", "--threads"},
	        {"-t", "abc", "--threads"},
	        {"--threads", "4x", "--threads"},
	        {"--threads", "1025", "--threads"},
	        {"--threads", "-1", "--threads"},
	        {"--threads", "", "--threads"},
	        {"--samples", "0", "--samples"},
	        {"--samples", "-5", "--samples"},
	        {"--samples", "x", "--samples"},
	        {"--samples", "16777217", "--samples"},
	        {"--chunk", "0", "--chunk"},
	        {"--chunk", "257", "--chunk"},
	        {"--chunk", "2.5", "--chunk"},
	        {"--chunk", " ", "--chunk"},
	        {"--retries", "-1", "--retries"},
	        {"--retries", "101", "--retries"},
	        {"--retries", "many", "--retries"},
	        {"--retries", "99999999999999999999", "--retries"},
	        {"--timeout", "0", "--timeout"},
	        {"--timeout", "-3", "--timeout"},
	        {"--timeout", "abc", "--timeout"},
	        {"--timeout", "inf", "--timeout"},
	        {"--timeout", "nan", "--timeout"},
	        {"--timeout", "1e9", "--timeout"},
	        {"--timeout", "5s", "--timeout"},
	        {"--timeout", "", "--timeout"},
	        {"-F", "bogus", "--format"},
	        {"--format", "FFMPEG", "--format"},
	        {"-E", "octane", "--engine"},
	        {"--engine", "", "--engine"},
	        {"-o", "", "--output"},
	        {"--blender", "", "--blender"},
	        {"--report", "", "--report"},
	};
	dr_opts o = {0};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char what[128];
		int rc = parse(&o, NULL, bad[i].opt, bad[i].val, "s.blend", "1", "2", NULL);
		snprintf(what, sizeof what, "%s '%s'", bad[i].opt, bad[i].val);
		fails_with(rc, what, bad[i].name, bad[i].val[0] ? bad[i].val : "''");
	}
	ok(o.frames.v == NULL && o.scene == NULL, "failed parses left the struct untouched");
}

static void test_unknown_and_missing(void)
{
	dr_opts o = {0};
	int rc = parse(&o, NULL, "--bogus", "s.blend", "1", "2", NULL);
	fails_with(rc, "unknown long option", "--bogus", "unknown option");
	rc = parse(&o, NULL, "-x", "s.blend", "1", "2", NULL);
	fails_with(rc, "unknown short option", "-x", "unknown option");
	rc = parse(&o, NULL, "-qx", "s.blend", "1", "2", NULL);
	fails_with(rc, "unknown short option in a group", "-x", NULL);
	rc = parse(&o, NULL, "--o", "s.blend", "1", "2", NULL);
	fails_with(rc, "ambiguous abbreviation", "--o", NULL);
	rc = parse(&o, NULL, "--overwrite=yes", "s.blend", "1", "2", NULL);
	fails_with(rc, "value for an option that takes none", "--overwrite", NULL);
	rc = parse(&o, NULL, "--one-shot=1", "s.blend", "1", "2", NULL);
	fails_with(rc, "value for --one-shot", "--one-shot", NULL);
	rc = parse(&o, NULL, "--verbose=2", "s.blend", "1", "2", NULL);
	fails_with(rc, "value for --verbose", "--verbose", NULL);
	rc = parse(&o, NULL, "s.blend", "1", "2", "--chunk", NULL);
	fails_with(rc, "--chunk without a value", "--chunk", "needs a value");
	rc = parse(&o, NULL, "s.blend", "1", "2", "-o", NULL);
	fails_with(rc, "-o without a value", "-o", "needs a value");
	rc = parse(&o, NULL, "s.blend", "1", "2", "--frames", NULL);
	fails_with(rc, "--frames without a value", "--frames", "needs a value");
	rc = parse(&o, NULL, "s.blend", "1", "2", "-qt", NULL);
	fails_with(rc, "-t at the end of a group without a value", "-qt", "needs a value");
}

static void test_help_version_verbosity(void)
{
	dr_opts o = {0};
	ok(parse(&o, NULL, "--help", NULL) == 0 && o.help, "--help alone");
	o = (dr_opts){0};
	ok(parse(&o, NULL, "-h", NULL) == 0 && o.help, "-h");
	o = (dr_opts){0};
	ok(parse(&o, NULL, "s.blend", "--help", NULL) == 0 && o.help,
	   "--help wins over missing arguments");
	o = (dr_opts){0};
	ok(parse(&o, NULL, "--version", NULL) == 0 && o.version && !o.help, "--version");
	o = (dr_opts){0};
	ok(parse(&o, NULL, "--chunk", "0", "--help", NULL) == -1,
	   "a bad option before --help fails");

	static const struct {
		const char *a, *b;
		int want;
	} v[] = {
	        {"-q", NULL, -1}, {"--quiet", NULL, -1}, {"-v", NULL, 1}, {"--verbose", NULL, 1},
	        {"-vv", NULL, 2}, {"-v", "-v", 2},       {"-q", "-v", 1}, {"-v", "-q", -1},
	        {"-qv", NULL, 1}, {"-vvv", NULL, 3},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		o = (dr_opts){0};
		int rc = v[i].b ? parse(&o, NULL, v[i].a, v[i].b, "s.blend", "1", "1", NULL)
		                : parse(&o, NULL, v[i].a, "s.blend", "1", "1", NULL);
		ok(rc == 0 && o.verbosity == v[i].want, "%s %s -> verbosity %d", v[i].a,
		   v[i].b ? v[i].b : "", v[i].want);
		dr_opts_free(&o);
	}
}

static void test_twice(void)
{
	dr_opts a = {0}, b = {0};
	int ra = parse(&a, NULL, "-t", "3", "x.blend", "1", "2", NULL);
	int rb = parse(&b, NULL, "y.blend", "--frames", "9", NULL);
	ok(ra == 0 && rb == 0 && b.threads == 0 && b.frames.n == 1 && b.frames.v[0] == 9,
	   "a second parse starts afresh");
	dr_opts_free(&a);
	dr_opts_free(&b);
}

static void test_engines(void)
{
	static const struct {
		const char *in, *want;
	} t[] = {
	        {"CYCLES", "CYCLES"},
	        {"cycles", "CYCLES"},
	        {"Cycles", "CYCLES"},
	        {"eevee", "BLENDER_EEVEE"},
	        {"EEVEE", "BLENDER_EEVEE"},
	        {"blender_eevee", "BLENDER_EEVEE"},
	        {"BLENDER_EEVEE", "BLENDER_EEVEE"},
	        {"workbench", "BLENDER_WORKBENCH"},
	        {"BLENDER_WORKBENCH", "BLENDER_WORKBENCH"},
	        {"Blender_Workbench", "BLENDER_WORKBENCH"},
	        {"", NULL},
	        {"cycle", NULL},
	        {"cycles ", NULL},
	        {"octane", NULL},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		const char *got = dr_engine_canonical(t[i].in);
		if (t[i].want)
			is_str(got, t[i].want, "engine '%s'", t[i].in);
		else
			ok(got == NULL, "engine '%s' unknown", t[i].in);
	}
}

static void test_usage(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	dr_opts_usage(f);
	fclose(f);
	ok(text && strstr(text, "Usage:") && strstr(text, "--frames") && strstr(text, "--retries"),
	   "usage mentions the synopsis and options");
	free(text);
}

/* getopt's refusals word for word (tests/e2e/badinput.sh and scripts rely on them). */
static void test_exact_messages(void)
{
	static const struct {
		const char *a, *want;
	} t[] = {
	        {"--bogus", "unknown option '--bogus' (see drender --help)"},
	        {"-x", "unknown option '-x' (see drender --help)"},
	        {"--overwrite=yes", "option '--overwrite=yes' takes no value"},
	        {"--quiet=1", "option '--quiet=1' takes no value"},
	        {"--help=1", "option '--help=1' takes no value"},
	        {"--output=", "--output wants a path pattern, not ''"},
	        {"--blender=", "--blender wants a path, not ''"},
	        {"--report=", "--report wants a file name, not ''"},
	        {"--token=", "--token needs a value, not ''"},
	        {"--samples=0", "--samples wants a whole number from 1 to 16777216, not '0'"},
	        {"--chunk=257", "--chunk wants a whole number from 1 to 256, not '257'"},
	        {"--timeout=-1",
	         "--timeout wants seconds greater than 0 (and at most a week), not '-1'"},
	};
	dr_opts o = {0};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = parse(&o, NULL, t[i].a, "s.blend", "1", "2", NULL);
		ok(rc == -1 && strcmp(err, t[i].want) == 0, "%s: \"%s\"", t[i].a, t[i].want);
		if (rc != -1 || strcmp(err, t[i].want) != 0)
			printf("#   rc %d, message: %s\n", rc, err);
	}
	int rc = parse(&o, NULL, "s.blend", "1", "2", "--retries", NULL);
	ok(rc == -1 && strcmp(err, "option '--retries' needs a value") == 0,
	   "missing value: \"option '--retries' needs a value\"");
	rc = parse(&o, NULL, "s.blend", "1", "2", "-t", NULL);
	ok(rc == -1 && strcmp(err, "option '-t' needs a value") == 0,
	   "missing value: \"option '-t' needs a value\"");
	ok(o.scene == NULL && o.frames.v == NULL, "failed parses left the struct untouched");
}

/* Every option is accepted, listed in --help in its column, and the first of --help and
 * --version decides. */
static void test_video(void)
{
	dr_opts o = {0};

	is_int(parse(&o, NULL, "--video", "o/v.webm", "--fps", "29.97", "s.blend", "1", "2", NULL),
	       0, "--video o/v.webm --fps 29.97");
	is_str(o.video, "o/v.webm", "  video");
	ok(o.fps > 29.96 && o.fps < 29.98, "  fps");
	dr_opts_free(&o);
	fails_with(parse(&o, NULL, "--video", "v.gif", "s.blend", "1", "2", NULL), "--video v.gif",
	           ".mp4, .webm or .mov", NULL);
	fails_with(parse(&o, NULL, "--video", "v.mp4", "--fps", "0", "s.blend", "1", "2", NULL),
	           "--fps 0", "frame rate", NULL);
	fails_with(parse(&o, NULL, "--fps", "12", "s.blend", "1", "2", NULL), "--fps alone",
	           "needs --video", NULL);
	fails_with(parse(&o, NULL, "--serve", "--video", "v.mp4", NULL), "--serve --video",
	           "not --serve", NULL);
}

static void test_every_option(void)
{
	static const struct {
		const char *opt, *val, *help; /* help: how --help shows it */
	} t[] = {
	        {"--output", "x", "  -o, --output PATTERN      "},
	        {"--format", "png", "  -F, --format FORMAT       "},
	        {"--engine", "cycles", "  -E, --engine ENGINE       "},
	        {"--threads", "2", "  -t, --threads N           "},
	        {"--samples", "8", "      --samples N           "},
	        {"--chunk", "2", "      --chunk N             "},
	        {"--retries", "0", "      --retries N           "},
	        {"--timeout", "5", "      --timeout SECS        "},
	        {"--node-timeout", "5", "      --node-timeout SECS   "},
	        {"--blender", "b", "      --blender PATH        "},
	        {"--report", "r.json", "      --report FILE.json    "},
	        {"--http", "127.0.0.1:0", "      --http ADDR:PORT      "},
	        {"--token", "t", "      --token TOKEN         "},
	        {"--token-file", "f", "      --token-file FILE     "},
	        {"--max-queued", "5", "      --max-queued N        "},
	        {"--rate-limit", "5", "      --rate-limit N        "},
	        {"--video", "v.mp4", "      --video FILE          "},
	        {"--one-shot", NULL, "      --one-shot            "},
	        {"--overwrite", NULL, "      --overwrite           "},
	        {"--allow-autoexec", NULL, "      --allow-autoexec      "},
	        {"--no-speculate", NULL, "      --no-speculate        "},
	        {"--quiet", NULL, "  -q, --quiet               "},
	        {"--verbose", NULL, "  -v, --verbose             "},
	};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	dr_opts o = {0};

	dr_opts_usage(f);
	fclose(f);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = t[i].val ? parse(&o, NULL, t[i].opt, t[i].val, "s.blend", "1", "2", NULL)
		                  : parse(&o, NULL, t[i].opt, "s.blend", "1", "2", NULL);
		ok(rc == 0 && text && strstr(text, t[i].help), "%s accepted and listed in --help",
		   t[i].opt);
		dr_opts_free(&o);
		o = (dr_opts){0};
	}
	ok(text && strstr(text, "Frames:\n  START END                 render START..END") &&
	           strstr(text, "\nMessages:\n  -q, --quiet") &&
	           strstr(text, "\n      --version             version\n\nExit status:"),
	   "--help's sections and its last option");
	free(text);
	ok(parse(&o, NULL, "--version", "--help", NULL) == 0 && o.version && !o.help,
	   "--version before --help: version");
	o = (dr_opts){0};
	ok(parse(&o, NULL, "-qh", NULL) == 0 && o.help && o.verbosity == 0,
	   "-h in a group: help, nothing else filled");
}

/* Service and fault options: --serve and its company, --node-timeout, --no-speculate. */
static void test_service_options(void)
{
	dr_opts o = {0};
	int rc = parse(&o, NULL, "--serve", NULL);
	is_int(rc, 0, "--serve alone parses");
	ok(o.serve && o.scene == NULL && o.frames.n == 0, "--serve: no scene, no frames");
	is_str(o.listen, "127.0.0.1:4000", "--serve listens on 127.0.0.1:4000 by default");
	is_int(o.max_queued, 100, "default --max-queued 100");
	is_int(o.rate_limit, 50, "default --rate-limit 50");
	dr_opts_free(&o);

	memset(&o, 0, sizeof o);
	rc = parse(&o, NULL, "--serve", "--listen", "0.0.0.0:8080", "--scene", "a.blend",
	           "--blend-root", "b", "--output-root", "out", "--token", "t0k", "--max-queued",
	           "7", "--rate-limit", "0", NULL);
	is_int(rc, 0, "--serve with every service option parses");
	ok(strcmp(o.listen, "0.0.0.0:8080") == 0 && strcmp(o.scene, "a.blend") == 0 &&
	           strcmp(o.blend_root, "b") == 0 && strcmp(o.output_root, "out") == 0 &&
	           strcmp(o.token, "t0k") == 0 && o.max_queued == 7 && o.rate_limit == 0,
	   "service options are kept");
	dr_opts_free(&o);

	fails_with(parse(&o, NULL, "--serve", "s.blend", "1", "2", NULL), "--serve with a scene",
	           "--serve takes no SCENE", NULL);
	fails_with(parse(&o, NULL, "--serve", "--frames", "1-3", NULL), "--serve with --frames",
	           "--frames", "not --serve");
	fails_with(parse(&o, NULL, "--listen", "127.0.0.1:1", "s.blend", "1", "2", NULL),
	           "--listen without --serve", "need --serve", NULL);
	fails_with(parse(&o, NULL, "--serve", "--max-queued", "0", NULL), "--max-queued 0",
	           "--max-queued", "'0'");
	fails_with(parse(&o, NULL, "--serve", "--rate-limit", "-1", NULL), "--rate-limit -1",
	           "--rate-limit", "'-1'");
	fails_with(parse(&o, NULL, "--serve", "--token", "", NULL), "--token ''", "--token", NULL);

	memset(&o, 0, sizeof o);
	rc = parse(&o, NULL, "s.blend", "1", "2", "--http", "127.0.0.1:0", "--node-timeout", "2.5",
	           "--no-speculate", NULL);
	is_int(rc, 0, "--http, --node-timeout, --no-speculate parse");
	ok(strcmp(o.http, "127.0.0.1:0") == 0 && o.node_timeout == 2.5 && o.no_speculate,
	   "and are kept");
	dr_opts_free(&o);
	memset(&o, 0, sizeof o);
	rc = parse(&o, NULL, "s.blend", "1", "2", NULL);
	ok(rc == 0 && o.node_timeout == 0 && o.min_nodes == 1 && !o.no_speculate,
	   "defaults: --node-timeout left to the orchestrator (0), tail control on");
	dr_opts_free(&o);
	fails_with(parse(&o, NULL, "--node-timeout", "0", "s.blend", "1", "2", NULL),
	           "--node-timeout 0", "--node-timeout", "'0'");
}

/* The node's and the orchestrator's settings carry what the options said. */
static void test_run_cfg(void)
{
	dr_opts o = {0};
	dr_node_cfg n;
	dr_orch_cfg r;
	int rc = parse(&o, "/opt/blender", "s.blend", "1", "2", "-F", "jpeg", "-E", "eevee",
	               "--samples", "7", "--one-shot", "--allow-autoexec", "-v", "--timeout", "9.5",
	               "--chunk", "4", "--retries", "0", "--node-timeout", "12", "--no-speculate",
	               "--overwrite", NULL);

	dr_opts_node_cfg(&o, &n);
	dr_opts_orch_cfg(&o, &r);
	ok(rc == 0 && strcmp(n.blender, "/opt/blender") == 0 && strcmp(n.scene, "s.blend") == 0 &&
	           strcmp(n.format, "JPEG") == 0 && strcmp(n.engine, "BLENDER_EEVEE") == 0 &&
	           n.samples == 7 && !n.serve && n.one_shot && n.allow_autoexec && n.verbose &&
	           n.timeout == 9.5,
	   "node settings from a batch's options");
	ok(r.chunk == 4 && r.retries == 0 && r.node_timeout == 12 && r.no_speculate &&
	           r.overwrite && !r.quiet && !r.serve,
	   "orchestrator settings from a batch's options");
	dr_opts_free(&o);

	o = (dr_opts){0};
	rc = parse(&o, NULL, "--serve", "-q", NULL);
	dr_opts_node_cfg(&o, &n);
	dr_opts_orch_cfg(&o, &r);
	ok(rc == 0 && n.scene == NULL && n.serve && !n.verbose && n.engine == NULL &&
	           strcmp(n.format, "PNG") == 0 && n.timeout == 0 && !n.one_shot,
	   "node settings of a service without a default scene");
	ok(r.serve && r.quiet && r.chunk == 1 && r.retries == 3 && r.node_timeout == 0 &&
	           !r.no_speculate && !r.overwrite,
	   "orchestrator settings of a quiet service: the defaults");
	o = (dr_opts){0};
	rc = parse(&o, NULL, "--serve", "--scene", "d.blend", NULL);
	dr_opts_node_cfg(&o, &n);
	ok(rc == 0 && n.scene && strcmp(n.scene, "d.blend") == 0 && n.serve,
	   "a service warms up on its default scene");
}

/* The defaults that depend on how MPI started are resolved once: --node-timeout's, by recovery. */
static void test_resolve(void)
{
	char err[256];
	dr_opts o = {0};
	int rc = parse(&o, NULL, "s.blend", "1", "2", NULL);

	ok(rc == 0 && dr_opts_resolve(&o, 3, false, err, sizeof err) == 0 &&
	           o.node_timeout == DR_NODE_TIMEOUT,
	   "no --node-timeout, no recovery: %g s", DR_NODE_TIMEOUT);
	dr_opts_free(&o);
	o = (dr_opts){0};
	rc = parse(&o, NULL, "s.blend", "1", "2", NULL);
	ok(rc == 0 && dr_opts_resolve(&o, 3, true, err, sizeof err) == 0 &&
	           o.node_timeout == DR_NODE_TIMEOUT_RECOVERY,
	   "no --node-timeout under --enable-recovery: %g s", DR_NODE_TIMEOUT_RECOVERY);
	dr_opts_free(&o);
	o = (dr_opts){0};
	rc = parse(&o, NULL, "s.blend", "--node-timeout", "4.5", "--still", "1", NULL);
	ok(rc == 0 && dr_opts_resolve(&o, 3, true, err, sizeof err) == 0 && o.node_timeout == 4.5 &&
	           o.split == 6 && o.frames.n == 6,
	   "--node-timeout given stays; --still's ranges are settled for 3 nodes");
	dr_opts_free(&o);
}

/* --blend-root's default: the directory of --scene, never / and never the working directory
 * when there is no --scene; --help lists the environment variables drender reads. */
static void test_blend_root_default(void)
{
	static const struct {
		const char *scene, *root;
	} t[] = {
	        {"shots/a.blend", "shots"}, {"/srv/blend/a.blend", "/srv/blend"},
	        {"a.blend", "."},           {"x//y//a.blend", "x//y"},
	        {"/a.blend", NULL},         {NULL, NULL},
	};
	dr_opts o;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		o = (dr_opts){0};
		int rc = t[i].scene ? parse(&o, NULL, "--serve", "--scene", t[i].scene, NULL)
		                    : parse(&o, NULL, "--serve", NULL);
		is_int(rc, 0, "--serve --scene %s parses", t[i].scene ? t[i].scene : "(none)");
		if (t[i].root)
			is_str(o.blend_root, t[i].root, "--scene %s: --blend-root defaults to %s",
			       t[i].scene, t[i].root);
		else
			ok(o.blend_root == NULL, "--scene %s: no default --blend-root",
			   t[i].scene ? t[i].scene : "(none)");
		dr_opts_free(&o);
	}
	o = (dr_opts){0};
	parse(&o, NULL, "--serve", "--scene", "a/s.blend", "--blend-root", "b", NULL);
	is_str(o.blend_root, "b", "--blend-root given: kept");
	dr_opts_free(&o);

	f = open_memstream(&text, &len);
	dr_opts_usage(f);
	fclose(f);
	ok(text && strstr(text, "Usage: drender-mpirun -np N drender [OPTIONS] SCENE.blend"),
	   "--help's usage launches with drender-mpirun");
	static const char *const env[] = {
	        "DRENDER_BLENDER",       "DRENDER_TOKEN",       "TMPDIR",
	        "CUDA_VISIBLE_DEVICES",  "DRENDER_STATUS_FILE", "DRENDER_STATUS_DIR",
	        "OMPI_ALLOW_RUN_AS_ROOT"};
	for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
		ok(text && strstr(text, env[i]), "--help names %s", env[i]);
	free(text);
}

static void test_token(void)
{
	char e[256], path[] = "/tmp/drender-test-token.XXXXXX";
	dr_opts o = {0};
	int fd = mkstemp(path);

	ok(fd >= 0 && write(fd, "from-the-file-0123\nsecond line\n", 31) == 31, "a token file");
	close(fd);
	ok(parse(&o, NULL, "--serve", "--token", "cmd-line-token-0123", NULL) == 0 &&
	           dr_opts_load_token(&o, "env-token", e, sizeof e) == 0 &&
	           strcmp(o.token, "cmd-line-token-0123") == 0,
	   "--token wins over DRENDER_TOKEN");
	dr_opts_free(&o);
	o = (dr_opts){0};
	ok(parse(&o, NULL, "--serve", NULL) == 0 &&
	           dr_opts_load_token(&o, "env-token", e, sizeof e) == 0 &&
	           strcmp(o.token, "env-token") == 0,
	   "DRENDER_TOKEN without --token");
	dr_opts_free(&o);
	o = (dr_opts){0};
	ok(parse(&o, NULL, "--serve", "--token-file", path, NULL) == 0 &&
	           dr_opts_load_token(&o, "env-token", e, sizeof e) == 0 &&
	           strcmp(o.token, "from-the-file-0123") == 0,
	   "--token-file: its first line, over DRENDER_TOKEN");
	dr_opts_free(&o);
	o = (dr_opts){0};
	ok(parse(&o, NULL, "--serve", "--token-file", path, "--token", "x", NULL) == 0 &&
	           dr_opts_load_token(&o, NULL, e, sizeof e) == -1 && strstr(e, "not both"),
	   "--token and --token-file: refused (%s)", e);
	dr_opts_free(&o);
	unlink(path);
	o = (dr_opts){0};
	ok(parse(&o, NULL, "--serve", "--token-file", path, NULL) == 0 &&
	           dr_opts_load_token(&o, NULL, e, sizeof e) == -1 && strstr(e, path),
	   "a missing --token-file: refused naming it (%s)", e);
	dr_opts_free(&o);
}

int main(void)
{
	test_token();
	test_video();
	test_defaults();
	test_frames();
	test_args_count();
	test_options_valid();
	test_options_invalid();
	test_unknown_and_missing();
	test_help_version_verbosity();
	test_twice();
	test_engines();
	test_usage();
	test_service_options();
	test_blend_root_default();
	test_exact_messages();
	test_every_option();
	test_run_cfg();
	test_resolve();
	return done_testing();
}
