/* Command line: parse drender's options and arguments into a plain struct; no I/O, no MPI. */
#include "dr_opts.h"

#include "dr_cache.h"
#include "dr_render_cfg.h"
#include "dr_util.h"
#include "dr_video.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a row does with its value (or, for a flag, with being there). */
enum arg_kind {
	ARG_FLAG,    /* sets a bool field */
	ARG_INT,     /* a whole number in [min, max] into an int field */
	ARG_SECONDS, /* seconds in (0, a week] into a double field */
	ARG_STRING,  /* a non-empty value into a const char * field (pointing into argv) */
	ARG_CALL,    /* the row's handler does it */
};

/* The parse in progress: the options so far and what is checked only after the loop. */
typedef struct parse_state {
	dr_opts r;
	const char *spec; /* --frames SPEC */
} parse_state;

/* A handler's answer: go on, or stop parsing with success (--help, --version). */
enum { GO_ON = 0, STOP = 1 };

/* A handler: apply ARG (NULL for an option without a value) to S; GO_ON, STOP, or -1 with ERR. */
typedef int opt_handler(parse_state *s, const char *arg, char *err, size_t errlen);

/*
 * One option: everything about it is in its row. getopt_long's tables, the dispatch of values and
 * --help are all made from these rows, so adding an option means adding one row (and, for a value
 * that needs more than the kinds above, one handler).
 */
typedef struct opt_row {
	const char *section; /* --help: heading printed before this row, or NULL */
	const char *name;    /* long name; NULL = a line of --help only, not an option */
	char letter;         /* short option, or 0 */
	const char *metavar; /* the value's name in --help; NULL = the option takes no value */
	enum arg_kind kind;
	size_t field;         /* offsetof(dr_opts, ...) for every kind but ARG_CALL */
	long min, max;        /* ARG_INT's bounds */
	const char *wants;    /* ARG_STRING: what an empty value is told it needs */
	opt_handler *handler; /* ARG_CALL */
	const char *help;     /* --help's text; '\n' starts an indented continuation line */
} opt_row;

/* FIELD of dr_opts, which must have type T (a wrong type does not compile). */
#define FIELD_OF(f, T)                                                                             \
	(offsetof(dr_opts, f) + 0 * sizeof(char[_Generic(((dr_opts *)0)->f, T : 1, default : -1)]))
#define FLAG(f)        .kind = ARG_FLAG, .field = FIELD_OF(f, bool)
#define INT(f, lo, hi) .kind = ARG_INT, .field = FIELD_OF(f, int), .min = (lo), .max = (hi)
#define SECONDS(f)     .kind = ARG_SECONDS, .field = FIELD_OF(f, double)
#define STRING(f, w)   .kind = ARG_STRING, .field = FIELD_OF(f, const char *), .wants = (w)
#define CALL(h)        .kind = ARG_CALL, .handler = (h)

static opt_handler set_still, set_split;
static opt_handler set_format, set_engine, set_device, set_video, set_fps, set_frames, set_quiet,
        set_verbose, set_help, set_version, set_keep_for;
static opt_handler set_stage, set_cache_max;

static const opt_row rows[] = {
        {.section = "Frames:", .metavar = "START END", .help = "render START..END inclusive"},
        {.name = "frames",
         .metavar = "SPEC",
         CALL(set_frames),
         .help = "e.g. 1-20,25,30-40:2 (A-B:STEP every STEP-th frame);\n"
                 "frames listed twice are rendered once"},
        {.name = "still",
         .metavar = "FRAME",
         CALL(set_still),
         .help = "render the one frame FRAME on every node: its samples are\n"
                 "cut into ranges (Cycles' sample offset), rendered as\n"
                 "multilayer EXRs and merged into one image (-o, -F)"},
        {.name = "split",
         .metavar = "N|auto",
         CALL(set_split),
         .help = "with --still: N sample ranges (2..1024), larger first;\n"
                 "auto (default): two per render node"},
        {.section = "Output:",
         .name = "output",
         .letter = 'o',
         .metavar = "PATTERN",
         STRING(output, "wants a path pattern"),
         .help = "output path; '#' runs are the zero-padded frame number\n"
                 "(default output/<scene>_####); the format's extension\n"
                 "is added unless PATTERN ends with it"},
        {.name = "format",
         .letter = 'F',
         .metavar = "FORMAT",
         CALL(set_format),
         .help = "PNG (default), JPEG, OPEN_EXR, OPEN_EXR_MULTILAYER, TIFF,\n"
                 "BMP, TARGA, HDR, WEBP, JPEG2000, ..."},
        {.name = "overwrite", FLAG(overwrite), .help = "render frames whose output already exists"},
        {.name = "report",
         .metavar = "FILE.json",
         STRING(report, "wants a file name"),
         .help = "write a JSON report (per frame and per rank)"},
        {.name = "video",
         .metavar = "FILE",
         CALL(set_video),
         .help = "when every frame is there, encode them in frame order\n"
                 "into FILE (.mp4/.mov: H.264, .webm: VP9) with ffmpeg;\n"
                 "a failed encode is reported, the exit code stays the\n"
                 "frames' (a re-run with all frames there only encodes)"},
        {.name = "fps",
         .metavar = "N",
         CALL(set_fps),
         .help = "the video's frame rate (default: the scene's, asked of\n"
                 "Blender; 24 when it cannot say)"},
        {.section = "Rendering:",
         .name = "engine",
         .letter = 'E',
         .metavar = "ENGINE",
         CALL(set_engine),
         .help = "CYCLES, BLENDER_EEVEE or BLENDER_WORKBENCH (default: the\n"
                 "scene's)"},
        {.name = "samples",
         .metavar = "N",
         INT(samples, 1, DR_SAMPLES_MAX),
         .help = "render samples (default: the scene's)"},
        {.name = "threads",
         .letter = 't',
         .metavar = "N",
         INT(threads, 1, 1024),
         .help = "Blender threads per render node (default: the CPUs this\n"
                 "node's ranks may use, shared among its render nodes)"},
        {.name = "device",
         .metavar = "DEVICE",
         CALL(set_device),
         .help = "cpu, cuda, optix, hip, oneapi or auto (default: the\n"
                 "scene's); a GPU type Blender cannot see is an error,\n"
                 "never a quiet fall-back to CPU; auto: GPUs where\n"
                 "Blender sees them, CPU elsewhere"},
        {.name = "gpus-per-node",
         .metavar = "N",
         INT(gpus_per_node, 1, 1024),
         .help = "GPUs per host shared round-robin by its render nodes\n"
                 "(default: one GPU per render node, by local rank)"},
        {.name = "no-persistent-data",
         FLAG(no_persistent_data),
         .help = "rebuild Cycles' render data for every frame (default:\n"
                 "a warm Blender keeps it between frames)"},
        {.name = "chunk",
         .metavar = "N",
         INT(chunk, 1, DR_CHUNK_MAX),
         .help = "frames handed out per task (default 1, max 256)"},
        {.name = "retries",
         .metavar = "N",
         INT(retries, 0, 100),
         .help = "retry a failed frame up to N times (default 3)"},
        {.name = "timeout",
         .metavar = "SECS",
         SECONDS(timeout),
         .help = "kill and retry a frame that renders longer than SECS"},
        {.name = "load-timeout",
         .metavar = "SECS",
         SECONDS(load_timeout),
         .help = "kill a Blender that has not loaded the scene after SECS;\n"
                 "its frames go to other nodes (default 300)"},
        {.name = "stall",
         .metavar = "SECS",
         SECONDS(stall),
         .help = "kill and retry a frame whose Blender used no CPU time\n"
                 "for SECS: stuck, not slow (default 600)"},
        {.name = "one-shot",
         FLAG(one_shot),
         .help = "start Blender for every frame instead of keeping it warm"},
        {.name = "no-speculate",
         FLAG(no_speculate),
         .help = "hand frames out in ascending order, never copy a slow\n"
                 "frame to an idle node (default: sample the range,\n"
                 "expensive stretches first, copy stragglers at the end)"},
        {.name = "node-timeout",
         .metavar = "SECS",
         SECONDS(node_timeout),
         .help = "a render node silent that long is lost: its frames\n"
                 "go to the others (stopped, hung or cut off; default 10,\n"
                 "30 without mpirun --enable-recovery)"},
        {.name = "blender",
         .metavar = "PATH",
         STRING(blender, "wants a path"),
         .help = "Blender executable (default: $DRENDER_BLENDER, then\n"
                 "'blender' on PATH)"},
        {.name = "allow-autoexec",
         FLAG(allow_autoexec),
         .help = "let the scene's embedded Python scripts run (off by\n"
                 "default: Blender runs with --disable-autoexec)"},
        {.name = "allow-missing",
         FLAG(allow_missing),
         .help = "render even when files the scene needs (textures,\n"
                 "libraries, caches) are missing on a render node\n"
                 "(default: exit 2 listing them, before any frame renders)"},
        {.section = "No shared storage (see README):",
         .name = "stage",
         .metavar = "WHEN",
         CALL(set_stage),
         .help = "send the scene to render nodes over MPI: auto (nodes\n"
                 "whose file at the same path differs in size or SHA-256;\n"
                 "the default), always, or never"},
        {.name = "cache-dir",
         .metavar = "DIR",
         STRING(cache_dir, "wants a directory"),
         .help = "each node's cache of staged scenes, by SHA-256\n"
                 "(default $TMPDIR/drender-cache-UID; refused if another\n"
                 "user owns it or group/others may write it)"},
        {.name = "cache-max",
         .metavar = "SIZE",
         CALL(set_cache_max),
         .help = "bound on that cache, e.g. 500M, 20G (default 20G; least\n"
                 "recently used scenes go first; 0 = no bound)"},
        {.name = "collect",
         FLAG(collect),
         .help = "send every frame to rank 0's output directory over MPI\n"
                 "(default: only from nodes that do not see that directory)"},
        {.section = "Service (HTTP API, see README):",
         .name = "serve",
         FLAG(serve),
         .help = "run as a service that renders jobs POSTed to /render"},
        {.name = "listen",
         .metavar = "ADDR:PORT",
         STRING(listen, NULL),
         .help = "where --serve listens (default 127.0.0.1:4000)"},
        {.name = "http",
         .metavar = "ADDR:PORT",
         STRING(http, NULL),
         .help = "during a batch, serve its status read-only"},
        {.name = "scene",
         .metavar = "FILE",
         STRING(scene, NULL),
         .help = "default scene for requests that name none"},
        {.name = "blend-root",
         .metavar = "DIR",
         STRING(blend_root, NULL),
         .help = "the .blend files under DIR are the scenes requests may\n"
                 "name (\"blend\"); default: the directory of --scene;\n"
                 "with neither, requests cannot name a scene"},
        {.name = "output-root",
         .metavar = "DIR",
         STRING(output_root, NULL),
         .help = "where requested jobs write and the job database lives\n"
                 "(default output)"},
        {.name = "token",
         .metavar = "TOKEN",
         STRING(token, NULL),
         .help = "require 'Authorization: Bearer TOKEN' (default\n"
                 "$DRENDER_TOKEN; needed to listen beyond loopback, then\n"
                 "16 characters or more; a command line shows in ps:\n"
                 "prefer --token-file or DRENDER_TOKEN)"},
        {.name = "token-file",
         .metavar = "FILE",
         STRING(token_file, "wants a file"),
         .help = "read the token from the first line of FILE"},
        {.name = "tls-cert",
         .metavar = "FILE",
         STRING(tls_cert, "wants a PEM file"),
         .help = "serve HTTPS with this PEM certificate (with --tls-key)"},
        {.name = "tls-key",
         .metavar = "FILE",
         STRING(tls_key, "wants a PEM file"),
         .help = "the certificate's PEM private key"},
        {.name = "allow-host",
         .metavar = "NAME,...",
         STRING(allow_host, "wants host names"),
         .help = "host names the API answers besides IP addresses,\n"
                 "localhost and this machine's name (comma-separated;\n"
                 "'*' = any)"},
        {.name = "max-queued",
         .metavar = "N",
         INT(max_queued, 1, 100000),
         .help = "queued jobs before new ones get 429 (default 100)"},
        {.name = "max-frames",
         .metavar = "N",
         INT(max_frames, 1, DR_FRAMES_COUNT_MAX),
         .help = "frames one request may ask for before 413\n(default 100,000)"},
        {.name = "max-queued-frames",
         .metavar = "N",
         INT(max_queued_frames, 1, 1000000000),
         .help = "frames of unfinished jobs before new ones get 429\n(default 1,000,000)"},
        {.name = "rate-limit",
         .metavar = "N",
         INT(rate_limit, 0, 1000000),
         .help = "requests per second per client before 429 (default 50,\n"
                 "bursts of twice that; 0 = no limit)"},
        {.name = "min-nodes",
         .metavar = "N",
         INT(min_nodes, 0, 1000000),
         .help = "a service left with fewer live render nodes and nothing\n"
                 "running exits with status 75, to be restarted at full\n"
                 "size (default 1; 0 = never)"},
        {.name = "keep-jobs",
         .metavar = "N",
         INT(keep_jobs, 0, 100000000),
         .help = "keep the N most recently finished jobs listed, delete\n"
                 "older ones from the job table (default 10000; 0 = no\n"
                 "limit); their frames stay on disk"},
        {.name = "keep-for",
         .metavar = "DURATION",
         CALL(set_keep_for),
         .help = "delete finished jobs from the job table this long after\n"
                 "they ended: 90s, 30m, 12h, 7d, 2w (default 7d; 0 = no\n"
                 "limit); their frames stay on disk"},
        {.section = "Messages:",
         .name = "quiet",
         .letter = 'q',
         CALL(set_quiet),
         .help = "errors and the summary only"},
        {.name = "verbose",
         .letter = 'v',
         CALL(set_verbose),
         .help = "more detail, and Blender's own output"},
        {.name = "help", .letter = 'h', CALL(set_help), .help = "this help"},
        {.name = "version", CALL(set_version), .help = "version"},
};

#define NROWS (sizeof rows / sizeof rows[0])

/* The code getopt_long returns for ROW: its letter, else 256 + its index. */
static int code_of(const opt_row *row)
{
	return row->letter ? row->letter : 256 + (int)(row - rows);
}

/* The option whose getopt_long code is C, or NULL (':', '?', or not ours). */
static const opt_row *row_of(int c)
{
	for (size_t i = 0; i < NROWS; i++)
		if (rows[i].name && code_of(&rows[i]) == c)
			return &rows[i];
	return NULL;
}

/* getopt_long's tables from the rows: LONGS (NROWS + 1 entries) and SHORTS (3 * NROWS + 2). */
static void getopt_tables(struct option *longs, char *shorts)
{
	size_t n = 0, k = 0;

	shorts[k++] = ':'; /* a missing value is ':', not '?' */
	for (size_t i = 0; i < NROWS; i++) {
		if (!rows[i].name)
			continue;
		longs[n++] = (struct option){rows[i].name,
		                             rows[i].metavar ? required_argument : no_argument,
		                             NULL, code_of(&rows[i])};
		if (rows[i].letter) {
			shorts[k++] = rows[i].letter;
			if (rows[i].metavar)
				shorts[k++] = ':';
		}
	}
	longs[n] = (struct option){NULL, 0, NULL, 0};
	shorts[k] = '\0';
}

/* Parse an integer option in [MIN, MAX]; message names the option. */
static int parse_int(const char *s, const char *opt, long min, long max, int *out, char *err,
                     size_t errlen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v < min || v > max)
		return dr_seterr(err, errlen, "%s wants a whole number from %ld to %ld, not '%s'",
		                 opt, min, max, s);
	*out = (int)v;
	return 0;
}

/* Parse seconds greater than 0 and at most a week; message names the option. */
static int parse_seconds(const char *s, const char *opt, double *out, char *err, size_t errlen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v <= 0 || v > 7 * 24 * 3600.0)
		return dr_seterr(err, errlen,
		                 "%s wants seconds greater than 0 (and at most a week), not '%s'",
		                 opt, s);
	*out = v;
	return 0;
}

static int set_format(parse_state *s, const char *arg, char *err, size_t errlen)
{
	const char *f = dr_format_canonical(arg);

	if (!f)
		return dr_seterr(
		        err, errlen,
		        "unknown --format '%s' (try PNG, JPEG, OPEN_EXR, TIFF, BMP, TARGA, "
		        "HDR, WEBP, JPEG2000)",
		        arg);
	s->r.format = f;
	return GO_ON;
}

static int set_still(parse_state *s, const char *arg, char *err, size_t errlen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < 0 || v > 9999999)
		return dr_seterr(err, errlen, "--still wants a frame number 0..9999999");
	s->r.still = (int)v;
	s->r.has_still = true;
	return GO_ON;
}

static int set_split(parse_state *s, const char *arg, char *err, size_t errlen)
{
	char *end;
	long v;

	if (strcmp(arg, "auto") == 0) {
		s->r.split = -1;
		return GO_ON;
	}
	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < 2 || v > DR_RANGES_MAX)
		return dr_seterr(err, errlen, "--split wants auto or a number of ranges 2..%d",
		                 DR_RANGES_MAX);
	s->r.split = (int)v;
	return GO_ON;
}

static int set_video(parse_state *s, const char *arg, char *err, size_t errlen)
{
	if (dr_video_check_path(arg, err, errlen) != 0)
		return -1;
	s->r.video = arg;
	return GO_ON;
}

static int set_fps(parse_state *s, const char *arg, char *err, size_t errlen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || v <= 0 || dr_video_check_fps(v, err, errlen) != 0)
		return dr_seterr(err, errlen, "--fps wants a frame rate above 0 and at most %g",
		                 DR_VIDEO_FPS_MAX);
	s->r.fps = v;
	return GO_ON;
}

static int set_engine(parse_state *s, const char *arg, char *err, size_t errlen)
{
	const char *e = dr_engine_canonical(arg);

	if (!e)
		return dr_seterr(err, errlen,
		                 "unknown --engine '%s' (try CYCLES, BLENDER_EEVEE or "
		                 "BLENDER_WORKBENCH)",
		                 arg);
	s->r.engine = e;
	return GO_ON;
}

static int set_device(parse_state *s, const char *arg, char *err, size_t errlen)
{
	const char *d = dr_device_canonical(arg);

	if (!d)
		return dr_seterr(
		        err, errlen,
		        "unknown --device '%s' (use cpu, cuda, optix, hip, oneapi or auto)", arg);
	s->r.device = d;
	return GO_ON;
}

static int set_stage(parse_state *s, const char *arg, char *err, size_t errlen)
{
	if (strcmp(arg, "auto") == 0)
		s->r.stage = DR_STAGE_AUTO;
	else if (strcmp(arg, "always") == 0)
		s->r.stage = DR_STAGE_ALWAYS;
	else if (strcmp(arg, "never") == 0)
		s->r.stage = DR_STAGE_NEVER;
	else
		return dr_seterr(err, errlen, "unknown --stage '%s' (use auto, always or never)",
		                 arg);
	return GO_ON;
}

/* --cache-max SIZE: bytes with an optional binary unit k, M, G, T (dr_parse_size). */
static int set_cache_max(parse_state *s, const char *arg, char *err, size_t errlen)
{
	uint64_t v;

	if (dr_parse_size(arg, &v) != 0)
		return dr_seterr(err, errlen,
		                 "--cache-max wants a size such as 500M or 20G, not '%s'", arg);
	s->r.cache_max = v;
	return GO_ON;
}

/* --keep-for DURATION: a number with an optional unit s, m, h, d or w (seconds by default); 0 is
 * no limit. */
static int set_keep_for(parse_state *s, const char *arg, char *err, size_t errlen)
{
	static const struct {
		char unit;
		double secs;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	char *end;
	double v, mult = 1;
	bool known = true;

	errno = 0;
	v = strtod(arg, &end);
	if (end != arg && *end) {
		known = false;
		for (size_t i = 0; i < sizeof units / sizeof units[0] && !end[1]; i++)
			if (*end == units[i].unit) {
				mult = units[i].secs;
				known = true;
			}
	}
	if (end == arg || !known || errno || !isfinite(v) || v < 0 ||
	    v * mult > 100 * 365 * 86400.0)
		return dr_seterr(err, errlen,
		                 "--keep-for wants a duration such as 90s, 30m, 12h, 7d or 2w (0 = "
		                 "no limit), not '%s'",
		                 arg);
	s->r.keep_for = v * mult;
	return GO_ON;
}

/* --frames SPEC is parsed after the loop, once the positional arguments are known. */
static int set_frames(parse_state *s, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	s->spec = arg;
	return GO_ON;
}

static int set_quiet(parse_state *s, const char *arg, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	s->r.verbosity = -1;
	return GO_ON;
}

/* Each -v adds one level; after -q, -v starts over at 1. */
static int set_verbose(parse_state *s, const char *arg, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	s->r.verbosity = s->r.verbosity < 0 ? 1 : s->r.verbosity + 1;
	return GO_ON;
}

static int set_help(parse_state *s, const char *arg, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	s->r.help = true;
	return STOP;
}

static int set_version(parse_state *s, const char *arg, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	s->r.version = true;
	return STOP;
}

/* Apply ROW's value ARG to S: GO_ON, STOP, or -1 with ERR (S may then be half changed). */
static int apply(const opt_row *row, const char *arg, parse_state *s, char *err, size_t errlen)
{
	char *field = (char *)&s->r + row->field;
	char opt[64];

	snprintf(opt, sizeof opt, "--%s", row->name);
	switch (row->kind) {
	case ARG_FLAG:
		*(bool *)(void *)field = true;
		return GO_ON;
	case ARG_INT:
		return parse_int(arg, opt, row->min, row->max, (int *)(void *)field, err, errlen);
	case ARG_SECONDS:
		return parse_seconds(arg, opt, (double *)(void *)field, err, errlen);
	case ARG_STRING:
		if (!*arg)
			return dr_seterr(err, errlen, "%s %s, not ''", opt,
			                 row->wants ? row->wants : "needs a value");
		*(const char **)(void *)field = arg;
		return GO_ON;
	case ARG_CALL:
		return row->handler(s, arg, err, errlen);
	}
	return dr_seterr(err, errlen, "%s: internal error (unknown kind)", opt);
}

/* The message for what getopt_long refused: C is ':' (missing value) or '?'. */
static int refused(int c, char **argv, char *err, size_t errlen)
{
	if (c == ':')
		return dr_seterr(err, errlen, "option '%s' needs a value", argv[optind - 1]);
	if (optopt && row_of(optopt)) /* glibc: a value given to a long option that takes none */
		return dr_seterr(err, errlen, "option '%s' takes no value", argv[optind - 1]);
	if (optopt)
		return dr_seterr(err, errlen, "unknown option '-%c' (see drender --help)", optopt);
	return dr_seterr(err, errlen, "unknown option '%s' (see drender --help)", argv[optind - 1]);
}

/* --blend-root's default for a service: the directory of its --scene SCENE, in BUF; NULL when
 * that is / (never offered by default) or too long. Only the text: the service resolves it. */
static const char *scene_dir(const char *scene, char *buf, size_t len)
{
	const char *slash = strrchr(scene, '/');
	size_t n;

	if (!slash)
		return ".";
	while (slash > scene && slash[-1] == '/')
		slash--;
	n = (size_t)(slash - scene);
	if (n == 0 || n >= len)
		return NULL;
	memcpy(buf, scene, n);
	buf[n] = '\0';
	return buf;
}

/* After the options of --serve: NARGS positional arguments. */
static int finish_serve(parse_state *s, int nargs, char *err, size_t errlen)
{
	if (nargs > 0)
		return dr_seterr(
		        err, errlen,
		        "--serve takes no SCENE or frames (jobs come over HTTP; --scene sets "
		        "the default scene)");
	if (s->spec || s->r.http)
		return dr_seterr(err, errlen, "%s is for a batch run, not --serve",
		                 s->spec ? "--frames" : "--http (use --listen)");
	if (s->r.video || s->r.fps > 0)
		return dr_seterr(err, errlen,
		                 "--video and --fps are for a batch run, not --serve (a request "
		                 "asks with \"video\": true)");
	if (!s->r.listen)
		s->r.listen = "127.0.0.1:4000";
	return 0;
}

/* After the options of a batch run: the NARGS positional arguments ARGS (SCENE and frames). */
static int finish_batch(parse_state *s, int nargs, char **args, char *err, size_t errlen)
{
	if (s->r.listen || s->r.blend_root || s->r.output_root || s->r.scene)
		return dr_seterr(err, errlen,
		                 "--listen, --scene, --blend-root and --output-root need --serve");
	if (s->r.fps > 0 && !s->r.video)
		return dr_seterr(err, errlen,
		                 "--fps sets the video's frame rate: it needs --video");
	if (nargs < 1)
		return dr_seterr(
		        err, errlen,
		        "missing SCENE.blend (usage: drender [OPTIONS] SCENE.blend START END)");
	s->r.scene = args[0];
	if (s->r.split && !s->r.has_still)
		return dr_seterr(err, errlen, "--split cuts a still: it needs --still FRAME");
	if (s->r.has_still) {
		if (nargs != 1 || s->spec)
			return dr_seterr(
			        err, errlen,
			        "--still FRAME names the frame: give no START END or --frames");
		if (s->r.video || s->r.one_shot || s->r.chunk > 1)
			return dr_seterr(err, errlen,
			                 "--still does not go with --video, --one-shot or --chunk");
		if (!s->r.split)
			s->r.split = -1;
		return 0;
	}
	if (s->spec) {
		if (nargs != 1)
			return dr_seterr(err, errlen,
			                 "give either START END or --frames SPEC, not both");
		return dr_frames_parse(s->spec, &s->r.frames, err, errlen);
	}
	if (nargs != 3)
		return dr_seterr(err, errlen, "%s",
		                 nargs < 3 ? "missing frame range: give START END or --frames SPEC"
		                           : "too many arguments after SCENE.blend START END");
	return dr_frames_range(args[1], args[2], &s->r.frames, err, errlen);
}

int dr_opts_parse(int argc, char **argv, const char *env_blender, dr_opts *o, char *err,
                  size_t errlen)
{
	struct option longs[NROWS + 1];
	char shorts[3 * NROWS + 2];
	parse_state s = {.r = {.format = "PNG",
	                       .chunk = 1,
	                       .retries = 3,
	                       .node_timeout = 0, /* the default: dr_opts_resolve */
	                       .load_timeout = 300,
	                       .stall = 600,
	                       .min_nodes = 1,
	                       .max_queued = 100,
	                       .max_frames = 100000,
	                       .max_queued_frames = 1000000,
	                       .rate_limit = 50,
	                       .cache_max = DR_CACHE_MAX_DEFAULT,
	                       .keep_jobs = DR_JOBS_KEEP_JOBS,
	                       .keep_for = DR_JOBS_KEEP_FOR,
	                       .blender = env_blender && *env_blender ? env_blender : "blender"}};
	const opt_row *row;
	int c, rc;

	getopt_tables(longs, shorts);
	optind = 0; /* glibc: full re-initialisation, so the parser can run more than once */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		if (!(row = row_of(c)))
			return refused(c, argv, err, errlen);
		rc = apply(row, optarg, &s, err, errlen);
		if (rc < 0)
			return -1;
		if (rc == STOP) { /* --help or --version: print and exit; nothing else is filled */
			if (s.r.help)
				o->help = true;
			else
				o->version = true;
			return 0;
		}
	}
	if (s.r.serve ? finish_serve(&s, argc - optind, err, errlen)
	              : finish_batch(&s, argc - optind, argv + optind, err, errlen))
		return -1;
	*o = s.r;
	if (o->serve && !o->blend_root && o->scene)
		o->blend_root = scene_dir(o->scene, o->blend_root_dflt, sizeof o->blend_root_dflt);
	return 0;
}

int dr_opts_still_frames(dr_opts *o, int nodes, char *err, size_t errlen)
{
	char spec[32];

	if (!o->has_still)
		return 0;
	if (o->split < 0)
		o->split = nodes < 1 ? 2 : nodes * 2 > DR_RANGES_MAX ? DR_RANGES_MAX : nodes * 2;
	snprintf(spec, sizeof spec, "0-%d", o->split - 1);
	return dr_frames_parse(spec, &o->frames, err, errlen);
}

int dr_opts_resolve(dr_opts *o, int nodes, bool recovery, char *err, size_t errlen)
{
	/* No --node-timeout: 10 s under --enable-recovery (heartbeats come every 2 s, and a lost
	 * node's frames should move on soon); without it 30 s, so that Open MPI's own detection of
	 * a lost host (about 20 s with the launch scripts' keepalive) ends the job first: an
	 * MPI_Abort while mpirun still waits for a cut-off daemon can hang. */
	if (o->node_timeout <= 0)
		o->node_timeout = recovery ? DR_NODE_TIMEOUT_RECOVERY : DR_NODE_TIMEOUT;
	return dr_opts_still_frames(o, nodes, err, errlen);
}

void dr_opts_free(dr_opts *o)
{
	dr_frames_free(&o->frames);
	free(o->token_read);
	o->token_read = NULL;
}

int dr_opts_load_token(dr_opts *o, const char *env, char *err, size_t errlen)
{
	char buf[1024];
	ssize_t n = 0, k;
	int fd;

	if (o->token && o->token_file)
		return dr_seterr(err, errlen, "give --token or --token-file, not both");
	if (!o->token_file) {
		if (!o->token && env && *env)
			o->token = env;
		return 0;
	}
	fd = open(o->token_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dr_seterr(err, errlen, "--token-file %s: %s", o->token_file,
		                 strerror(errno));
	while (n < (ssize_t)sizeof buf - 1 &&
	       ((k = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0 ||
	        (k < 0 && errno == EINTR)))
		n += k > 0 ? k : 0;
	close(fd);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0])
		return dr_seterr(err, errlen, "--token-file %s: no token on its first line",
		                 o->token_file);
	free(o->token_read);
	if (!(o->token_read = strdup(buf)))
		return dr_seterr(err, errlen, "out of memory");
	o->token = o->token_read;
	return 0;
}

void dr_opts_node_cfg(const dr_opts *o, dr_node_cfg *c)
{
	*c = (dr_node_cfg){
	        .blender = o->blender,
	        .scene = o->scene,
	        .format = o->format,
	        .engine = o->engine,
	        .samples = o->samples,
	        .serve = o->serve,
	        .one_shot = o->one_shot,
	        .allow_autoexec = o->allow_autoexec,
	        .verbose = o->verbosity > 0,
	        .timeout = o->timeout,
	        .device = o->device,
	        .gpu = -1,
	        .persistent_data = !o->no_persistent_data,
	        .threads_set = o->threads > 0,
	        .load_timeout = o->load_timeout,
	        .stall = o->stall,
	        .allow_missing = o->allow_missing,
	        .still = o->still,
	        .split = o->has_still && o->split > 0 ? o->split : 0,
	};
}

void dr_opts_orch_cfg(const dr_opts *o, dr_orch_cfg *r)
{
	*r = (dr_orch_cfg){
	        .chunk = o->chunk,
	        .retries = o->retries,
	        .node_timeout = o->node_timeout,
	        .no_speculate = o->no_speculate,
	        .overwrite = o->overwrite,
	        .quiet = o->verbosity < 0,
	        .serve = o->serve,
	        .min_nodes = o->min_nodes,
	};
}

void dr_opts_jobs_cfg(const dr_opts *o, dr_jobs_cfg *c)
{
	*c = (dr_jobs_cfg){
	        .max_queued = (size_t)o->max_queued,
	        .keep_jobs = (size_t)o->keep_jobs,
	        .keep_for = o->keep_for,
	        .max_frames = (size_t)o->max_queued_frames,
	};
}

/* --help's left column is this wide; a longer option name puts its text on the next line. */
#define HELP_COL 28

/* ROW's lines of --help. */
static void usage_row(FILE *f, const opt_row *row)
{
	char left[128];
	const char *t = row->help;
	int w;

	if (!row->name)
		w = snprintf(left, sizeof left, "  %s", row->metavar);
	else if (row->letter)
		w = snprintf(left, sizeof left, "  -%c, --%s%s%s", row->letter, row->name,
		             row->metavar ? " " : "", row->metavar ? row->metavar : "");
	else
		w = snprintf(left, sizeof left, "      --%s%s%s", row->name,
		             row->metavar ? " " : "", row->metavar ? row->metavar : "");
	if (w > HELP_COL - 2)
		fprintf(f, "%s\n%*s", left, HELP_COL, "");
	else
		fprintf(f, "%-*s", HELP_COL, left);
	for (;;) {
		size_t n = strcspn(t, "\n");
		fprintf(f, "%.*s\n", (int)n, t);
		if (!t[n])
			break;
		t += n + 1;
		fprintf(f, "%*s", HELP_COL, "");
	}
}

void dr_opts_usage(FILE *f)
{
	fputs("Usage: drender-mpirun -np N drender [OPTIONS] SCENE.blend START END\n"
	      "       drender-mpirun -np N drender [OPTIONS] SCENE.blend --frames SPEC\n"
	      "       drender-mpirun -np N drender --serve [--listen ADDR:PORT] [OPTIONS]\n"
	      "       drender [OPTIONS] SCENE.blend START END     (one process renders alone)\n"
	      "\n"
	      "Render frames of a Blender scene in parallel. Rank 0 hands out frames and needs\n"
	      "no core of its own; ranks 1..N-1 each keep one Blender running with the scene\n"
	      "loaded. drender-mpirun, installed with drender, is mpirun with what drender\n"
	      "needs (--enable-recovery, --bind-to none, --oversubscribe without a hostfile)\n"
	      "and rank 0's exit status: see drender-mpirun --help. Frames already on disk are\n"
	      "skipped, so re-running the same command resumes an interrupted render.\n"
	      "\n"
	      "  drender-mpirun -np 4 drender scene.blend 1 20   3 render nodes on this machine\n"
	      "\n",
	      f);
	for (size_t i = 0; i < NROWS; i++) {
		if (rows[i].section)
			fprintf(f, "%s\n", rows[i].section);
		usage_row(f, &rows[i]);
	}
	fputs("\n"
	      "Exit status: 0 every requested frame is on disk (a service: stopped by a\n"
	      "signal); 1 some frames failed (listed); 2 bad usage or input, nothing rendered;\n"
	      "3 runtime failure (also: every render node lost); 75 a service below\n"
	      "--min-nodes; 130 interrupted.\n"
	      "\n"
	      "Environment:\n"
	      "  DRENDER_BLENDER     Blender executable when --blender is not given\n"
	      "  DRENDER_TOKEN       the service's token when --token is not given\n"
	      "  TMPDIR              Blender's driver script and --cache-dir's default (/tmp)\n"
	      "  PATH                where blender, ffmpeg and ffprobe are looked for\n"
	      "  CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES\n"
	      "                      the GPUs a host's render nodes share (--device)\n"
	      "  DRENDER_STATUS_FILE\n"
	      "                      rank 0 writes its exit status there (drender-mpirun)\n"
	      "  OMPI_COMM_WORLD_LOCAL_RANK, OMPI_MCA_orte_enable_recovery\n"
	      "                      set by mpirun: a rank's place on its host; whether a\n"
	      "                      lost node is survived (--node-timeout's default)\n"
	      "  DRENDER_COLD_MERGE  1: a still's merge starts its own Blender (measurements)\n"
	      "drender-mpirun reads DRENDER_FINAL_GRACE, DRENDER_KILL_GRACE, DRENDER_STATUS_DIR,\n"
	      "DRENDER_MPIRUN and OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM): drender-mpirun --help.\n",
	      f);
}
