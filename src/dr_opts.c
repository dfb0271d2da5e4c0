/* Command line: parse drender's options and arguments into a plain struct; no I/O, no MPI. */
#include "dr_opts.h"

#include "dr_render_cfg.h"

#include "dr_outpath.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	OPT_SAMPLES = 256,
	OPT_CHUNK,
	OPT_RETRIES,
	OPT_TIMEOUT,
	OPT_BLENDER,
	OPT_ONE_SHOT,
	OPT_OVERWRITE,
	OPT_AUTOEXEC,
	OPT_REPORT,
	OPT_FRAMES,
	OPT_VERSION,
	OPT_NODE_TIMEOUT,
	OPT_NO_SPECULATE,
	OPT_SERVE,
	OPT_LISTEN,
	OPT_HTTP,
	OPT_SCENE,
	OPT_BLEND_ROOT,
	OPT_OUTPUT_ROOT,
	OPT_TOKEN,
	OPT_MAX_QUEUED,
	OPT_RATE_LIMIT,
};

static const struct option long_opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'F'},
        {"engine", required_argument, NULL, 'E'},
        {"threads", required_argument, NULL, 't'},
        {"samples", required_argument, NULL, OPT_SAMPLES},
        {"chunk", required_argument, NULL, OPT_CHUNK},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"blender", required_argument, NULL, OPT_BLENDER},
        {"one-shot", no_argument, NULL, OPT_ONE_SHOT},
        {"overwrite", no_argument, NULL, OPT_OVERWRITE},
        {"allow-autoexec", no_argument, NULL, OPT_AUTOEXEC},
        {"report", required_argument, NULL, OPT_REPORT},
        {"frames", required_argument, NULL, OPT_FRAMES},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"node-timeout", required_argument, NULL, OPT_NODE_TIMEOUT},
        {"no-speculate", no_argument, NULL, OPT_NO_SPECULATE},
        {"serve", no_argument, NULL, OPT_SERVE},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"http", required_argument, NULL, OPT_HTTP},
        {"scene", required_argument, NULL, OPT_SCENE},
        {"blend-root", required_argument, NULL, OPT_BLEND_ROOT},
        {"output-root", required_argument, NULL, OPT_OUTPUT_ROOT},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"max-queued", required_argument, NULL, OPT_MAX_QUEUED},
        {"rate-limit", required_argument, NULL, OPT_RATE_LIMIT},
        {NULL, 0, NULL, 0},
};

/* The long name of option code C (for messages). */
static const char *long_name(int c)
{
	for (const struct option *p = long_opts; p->name; p++)
		if (p->val == c)
			return p->name;
	return "?";
}

/* Is VAL one of our options' codes (what getopt_long leaves in optopt)? */
static bool is_option(int val)
{
	for (size_t i = 0; long_opts[i].name; i++)
		if (long_opts[i].val == val)
			return true;
	return false;
}

/* Parse an integer option in [MIN, MAX]; message names the option. */
static int parse_int(const char *s, const char *opt, long min, long max, int *out, char *err,
                     size_t errlen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v < min || v > max) {
		snprintf(err, errlen, "%s wants a whole number from %ld to %ld, not '%s'", opt, min,
		         max, s);
		return -1;
	}
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
	if (end == s || *end || errno || !isfinite(v) || v <= 0 || v > 7 * 24 * 3600.0) {
		snprintf(err, errlen,
		         "%s wants seconds greater than 0 (and at most a week), not '%s'", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

int dr_opts_parse(int argc, char **argv, const char *env_blender, dr_opts *o, char *err,
                  size_t errlen)
{
	dr_opts r = {0};
	const char *spec = NULL;
	int c, rc = -1;

	r.format = "PNG";
	r.chunk = 1;
	r.retries = 3;
	r.node_timeout = 30;
	r.max_queued = 100;
	r.rate_limit = 50;
	r.blender = env_blender && *env_blender ? env_blender : "blender";

	optind = 0; /* glibc: full re-initialisation, so the parser can run more than once */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:F:E:t:qvh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (!*optarg) {
				snprintf(err, errlen, "--output wants a path pattern, not ''");
				goto out;
			}
			r.output = optarg;
			break;
		case 'F':
			r.format = dr_format_canonical(optarg);
			if (!r.format) {
				snprintf(err, errlen,
				         "unknown --format '%s' (try PNG, JPEG, OPEN_EXR, TIFF, "
				         "BMP, TARGA, HDR, WEBP, JPEG2000)",
				         optarg);
				goto out;
			}
			break;
		case 'E':
			r.engine = dr_engine_canonical(optarg);
			if (!r.engine) {
				snprintf(err, errlen,
				         "unknown --engine '%s' (try CYCLES, BLENDER_EEVEE or "
				         "BLENDER_WORKBENCH)",
				         optarg);
				goto out;
			}
			break;
		case 't':
			if (parse_int(optarg, "--threads", 1, 1024, &r.threads, err, errlen))
				goto out;
			break;
		case OPT_SAMPLES:
			if (parse_int(optarg, "--samples", 1, 1 << 24, &r.samples, err, errlen))
				goto out;
			break;
		case OPT_CHUNK:
			if (parse_int(optarg, "--chunk", 1, DR_CHUNK_MAX, &r.chunk, err, errlen))
				goto out;
			break;
		case OPT_RETRIES:
			if (parse_int(optarg, "--retries", 0, 100, &r.retries, err, errlen))
				goto out;
			break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, "--timeout", &r.timeout, err, errlen))
				goto out;
			break;
		case OPT_NO_SPECULATE:
			r.no_speculate = true;
			break;
		case OPT_SERVE:
			r.serve = true;
			break;
		case OPT_LISTEN:
		case OPT_HTTP:
		case OPT_SCENE:
		case OPT_BLEND_ROOT:
		case OPT_OUTPUT_ROOT:
		case OPT_TOKEN:
			if (!*optarg) {
				snprintf(err, errlen, "--%s needs a value, not ''", long_name(c));
				goto out;
			}
			*(c == OPT_LISTEN        ? &r.listen
			  : c == OPT_HTTP        ? &r.http
			  : c == OPT_SCENE       ? &r.scene
			  : c == OPT_BLEND_ROOT  ? &r.blend_root
			  : c == OPT_OUTPUT_ROOT ? &r.output_root
			                         : &r.token) = optarg;
			break;
		case OPT_RATE_LIMIT:
			if (parse_int(optarg, "--rate-limit", 0, 1000000, &r.rate_limit, err,
			              errlen))
				goto out;
			break;
		case OPT_MAX_QUEUED:
			if (parse_int(optarg, "--max-queued", 1, 100000, &r.max_queued, err,
			              errlen))
				goto out;
			break;
		case OPT_NODE_TIMEOUT:
			if (parse_seconds(optarg, "--node-timeout", &r.node_timeout, err, errlen))
				goto out;
			break;
		case OPT_BLENDER:
			if (!*optarg) {
				snprintf(err, errlen, "--blender wants a path, not ''");
				goto out;
			}
			r.blender = optarg;
			break;
		case OPT_ONE_SHOT:
			r.one_shot = true;
			break;
		case OPT_OVERWRITE:
			r.overwrite = true;
			break;
		case OPT_AUTOEXEC:
			r.allow_autoexec = true;
			break;
		case OPT_REPORT:
			if (!*optarg) {
				snprintf(err, errlen, "--report wants a file name, not ''");
				goto out;
			}
			r.report = optarg;
			break;
		case OPT_FRAMES:
			spec = optarg;
			break;
		case 'q':
			r.verbosity = -1;
			break;
		case 'v':
			r.verbosity = r.verbosity < 0 ? 1 : r.verbosity + 1;
			break;
		case 'h':
			o->help = true;
			return 0;
		case OPT_VERSION:
			o->version = true;
			return 0;
		case ':':
			snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
			goto out;
		default:
			if (optopt && is_option(optopt))
				/* glibc: a value given to a long option that takes none */
				snprintf(err, errlen, "option '%s' takes no value",
				         argv[optind - 1]);
			else if (optopt)
				snprintf(err, errlen, "unknown option '-%c' (see drender --help)",
				         optopt);
			else
				snprintf(err, errlen, "unknown option '%s' (see drender --help)",
				         argv[optind - 1]);
			goto out;
		}
	}

	int nargs = argc - optind;
	if (r.serve) {
		if (nargs > 0) {
			snprintf(err, errlen,
			         "--serve takes no SCENE or frames (jobs come over HTTP; --scene "
			         "sets "
			         "the default scene)");
			goto out;
		}
		if (spec || r.http) {
			snprintf(err, errlen, "%s is for a batch run, not --serve",
			         spec ? "--frames" : "--http (use --listen)");
			goto out;
		}
		if (!r.listen)
			r.listen = "127.0.0.1:4000";
		*o = r;
		return 0;
	}
	if (r.listen || r.blend_root || r.output_root || r.scene) {
		snprintf(err, errlen,
		         "--listen, --scene, --blend-root and --output-root need --serve");
		goto out;
	}
	if (nargs < 1) {
		snprintf(err, errlen,
		         "missing SCENE.blend (usage: drender [OPTIONS] SCENE.blend START END)");
		goto out;
	}
	r.scene = argv[optind];
	if (spec) {
		if (nargs != 1) {
			snprintf(err, errlen, "give either START END or --frames SPEC, not both");
			goto out;
		}
		if (dr_frames_parse(spec, &r.frames, err, errlen))
			goto out;
	} else {
		if (nargs != 3) {
			snprintf(err, errlen,
			         nargs < 3 ? "missing frame range: give START END or --frames SPEC"
			                   : "too many arguments after SCENE.blend START END");
			goto out;
		}
		if (dr_frames_range(argv[optind + 1], argv[optind + 2], &r.frames, err, errlen))
			goto out;
	}
	*o = r;
	rc = 0;
out:
	return rc;
}

void dr_opts_free(dr_opts *o)
{
	dr_frames_free(&o->frames);
}

void dr_opts_usage(FILE *f)
{
	fputs("Usage: mpirun -np N drender [OPTIONS] SCENE.blend START END\n"
	      "       mpirun -np N drender [OPTIONS] SCENE.blend --frames SPEC\n"
	      "       mpirun -np N drender --serve [--listen ADDR:PORT] [OPTIONS]\n"
	      "\n"
	      "Render frames of a Blender scene in parallel. Rank 0 hands out frames; ranks "
	      "1..N-1\n"
	      "each keep one Blender running with the scene loaded. Run without mpirun, drender\n"
	      "renders by itself. Frames already on disk are skipped, so re-running the same\n"
	      "command resumes an interrupted render.\n"
	      "\n"
	      "Frames:\n"
	      "  START END                 render START..END inclusive\n"
	      "      --frames SPEC         e.g. 1-20,25,30-40:2 (A-B:STEP every STEP-th frame);\n"
	      "                            frames listed twice are rendered once\n"
	      "Output:\n"
	      "  -o, --output PATTERN      output path; '#' runs are the zero-padded frame number\n"
	      "                            (default output/<scene>_####); the format's extension\n"
	      "                            is added unless PATTERN ends with it\n"
	      "  -F, --format FORMAT       PNG (default), JPEG, OPEN_EXR, OPEN_EXR_MULTILAYER, "
	      "TIFF,\n"
	      "                            BMP, TARGA, HDR, WEBP, JPEG2000, ...\n"
	      "      --overwrite           render frames whose output already exists\n"
	      "      --report FILE.json    write a JSON report (per frame and per rank)\n"
	      "Rendering:\n"
	      "  -E, --engine ENGINE       CYCLES, BLENDER_EEVEE or BLENDER_WORKBENCH (default: "
	      "the\n"
	      "                            scene's)\n"
	      "      --samples N           render samples (default: the scene's)\n"
	      "  -t, --threads N           Blender threads per render node (default: the CPUs "
	      "this\n"
	      "                            node's ranks may use, shared among its render nodes)\n"
	      "      --chunk N             frames handed out per task (default 1, max 256)\n"
	      "      --retries N           retry a failed frame up to N times (default 3)\n"
	      "      --timeout SECS        kill and retry a frame that renders longer than SECS\n"
	      "      --one-shot            start Blender for every frame instead of keeping it "
	      "warm\n"
	      "      --no-speculate        hand frames out in ascending order, never copy a slow\n"
	      "                            frame to an idle node (default: sample the range,\n"
	      "                            expensive stretches first, copy stragglers at the end)\n"
	      "      --node-timeout SECS   end the job when a render node is silent that long\n"
	      "                            (stopped, hung or cut off; default 30)\n"
	      "      --blender PATH        Blender executable (default: $DRENDER_BLENDER, then\n"
	      "                            'blender' on PATH)\n"
	      "      --allow-autoexec      let the scene's embedded Python scripts run (off by\n"
	      "                            default: Blender runs with --disable-autoexec)\n"
	      "Service (HTTP API, see README):\n"
	      "      --serve               run as a service that renders jobs POSTed to /render\n"
	      "      --listen ADDR:PORT    where --serve listens (default 127.0.0.1:4000)\n"
	      "      --http ADDR:PORT      during a batch, serve its status read-only\n"
	      "      --scene FILE          default scene for requests that name none\n"
	      "      --blend-root DIR      scenes requests may name (\"blend\"), default .\n"
	      "      --output-root DIR     where requested jobs write and the job journal lives\n"
	      "                            (default output)\n"
	      "      --token TOKEN         require 'Authorization: Bearer TOKEN' (default\n"
	      "                            $DRENDER_TOKEN; needed to listen beyond loopback)\n"
	      "      --max-queued N        queued jobs before new ones get 429 (default 100)\n"
	      "      --rate-limit N        requests per second per client before 429 (default 50,\n"
	      "                            bursts of twice that; 0 = no limit)\n"
	      "Messages:\n"
	      "  -q, --quiet               errors and the summary only\n"
	      "  -v, --verbose             more detail, and Blender's own output\n"
	      "  -h, --help                this help\n"
	      "      --version             version\n"
	      "\n"
	      "Exit status: 0 every requested frame is on disk; 1 some frames failed (listed);\n"
	      "2 bad usage or input, nothing rendered; 3 runtime failure; 130 interrupted.\n",
	      f);
}
