/* Job specs: parse and validate HTTP request bodies (paths confined to their roots), journal form.
 */
#include "dr_jobspec.h"

#include "dr_util.h"
#include "dr_video.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define PRIORITY_MAX    1000
#define OUTPUT_NAME_MAX 255

/* Fields a POST /render body may carry. */
static const char *const body_fields[] = {"from",   "to",     "frames",  "blend",    "output",
                                          "engine", "format", "samples", "priority", "device",
                                          "still",  "split",  "video",   "fps"};
#define NFIELDS (sizeof(body_fields) / sizeof(body_fields[0]))

/* The body's members by field, each NULL when absent (or JSON null). */
struct members {
	const cJSON *v[NFIELDS];
};

enum {
	F_FROM,
	F_TO,
	F_FRAMES,
	F_BLEND,
	F_OUTPUT,
	F_ENGINE,
	F_FORMAT,
	F_SAMPLES,
	F_PRIORITY,
	F_DEVICE,
	F_STILL,
	F_SPLIT,
	F_VIDEO,
	F_FPS
};

/* What kind of JSON value J is, for messages. */
static const char *json_kind(const cJSON *j)
{
	if (cJSON_IsString(j))
		return "a string";
	if (cJSON_IsNumber(j))
		return "a number";
	if (cJSON_IsBool(j))
		return "a boolean";
	if (cJSON_IsArray(j))
		return "an array";
	if (cJSON_IsObject(j))
		return "an object";
	return "null";
}

/* Integer member NAME in MIN..MAX; 0, or DR_E_INVALID with ERR. */
static dr_err get_int(const cJSON *j, const char *name, long min, long max, int *out, char *err,
                      size_t errlen)
{
	double d;

	if (!cJSON_IsNumber(j)) {
		snprintf(err, errlen, "\"%s\" must be an integer from %ld to %ld, not %s", name,
		         min, max, json_kind(j));
		return DR_E_INVALID;
	}
	d = j->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) {
		snprintf(err, errlen, "\"%s\" must be an integer from %ld to %ld (got %.17g)", name,
		         min, max, d);
		return DR_E_INVALID;
	}
	*out = (int)d;
	return 0;
}

/* String member NAME, non-empty; 0, or DR_E_INVALID with ERR. */
static dr_err get_str(const cJSON *j, const char *name, const char **out, char *err, size_t errlen)
{
	if (!cJSON_IsString(j) || !j->valuestring) {
		snprintf(err, errlen, "\"%s\" must be a string, not %s", name, json_kind(j));
		return DR_E_INVALID;
	}
	if (!*j->valuestring) {
		snprintf(err, errlen, "\"%s\" must not be empty", name);
		return DR_E_INVALID;
	}
	*out = j->valuestring;
	return 0;
}

/* Is S well-formed UTF-8 (shortest forms, no surrogates, at most U+10FFFF)? */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, cp, n;
		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

/* The ordinal (0 = first in the text) of the first string token of JSON TEXT (already parsed, so
 * well-formed) with a \u0000 escape, or -1. cJSON decodes it into a NUL that cuts the string. */
static long nul_string(const char *text)
{
	long ord = -1;
	bool in = false;

	for (const char *p = text; *p; p++) {
		if (!in) {
			if (*p == '"')
				in = true, ord++;
		} else if (*p == '"') {
			in = false;
		} else if (*p == '\\') {
			if (p[1] == 'u' && strncmp(p + 2, "0000", 4) == 0)
				return ord;
			if (p[1])
				p++;
		}
	}
	return -1;
}

struct strwalk {
	long ord, nul; /* strings seen so far; the one with a NUL, or -1 */
	char *err;
	size_t errlen;
};

/* Check J's strings (keys and values, in document order) against W; TOP is the body member they
 * belong to (NULL for the body's own keys). 0, or DR_E_INVALID with the field named. */
static dr_err check_strings(const cJSON *j, const char *top, struct strwalk *w)
{
	for (const cJSON *c = j->child; c; c = c->next) {
		const char *name = top ? top : c->string;
		if (cJSON_IsObject(j)) {
			bool valid = c->string && utf8_valid(c->string);
			if (!valid || w->ord++ == w->nul) {
				const char *what =
				        !valid ? "is not valid UTF-8" : "contains a NUL byte";
				if (top)
					snprintf(w->err, w->errlen, "a field name inside \"%s\" %s",
					         top, what);
				else
					snprintf(w->err, w->errlen, "a field name %s", what);
				return DR_E_INVALID;
			}
		}
		if (cJSON_IsString(c)) {
			bool valid = c->valuestring && utf8_valid(c->valuestring);
			if (!valid || w->ord++ == w->nul) {
				snprintf(w->err, w->errlen, "\"%s\" %s",
				         name ? name : "(array item)",
				         !valid ? "is not valid UTF-8"
				                : "contains a NUL byte (\\u0000)");
				return DR_E_INVALID;
			}
		} else if (c->child) {
			dr_err rc = check_strings(c, name, w);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Sort the body's members into M: DR_E_INVALID for a non-object, unknown or repeated fields. */
static dr_err collect(const cJSON *root, struct members *m, char *err, size_t errlen)
{
	const cJSON *c;

	memset(m, 0, sizeof(*m));
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen,
		         "the body must be a JSON object like {\"from\":1,\"to\":20}, not %s",
		         json_kind(root));
		return DR_E_INVALID;
	}
	cJSON_ArrayForEach(c, root)
	{
		size_t i;
		bool seen = false;

		for (i = 0; i < NFIELDS; i++)
			if (c->string && strcmp(c->string, body_fields[i]) == 0)
				break;
		if (i == NFIELDS) {
			snprintf(err, errlen,
			         "unknown field \"%.64s\" (known: from, to, frames, blend, output, "
			         "engine, format, samples, priority, device, still, split, video, "
			         "fps)",
			         c->string ? c->string : "");
			return DR_E_INVALID;
		}
		for (const cJSON *p = root->child; p != c; p = p->next)
			if (p->string && strcmp(p->string, c->string) == 0)
				seen = true;
		if (seen) {
			snprintf(err, errlen, "field \"%s\" is given twice", c->string);
			return DR_E_INVALID;
		}
		if (!cJSON_IsNull(c))
			m->v[i] = c;
	}
	return 0;
}

/* Frames from "from"/"to" or "frames"; the count is checked against MAX before allocating. */
static dr_err parse_frames(const struct members *m, size_t max, dr_frames *out, char *err,
                           size_t errlen)
{
	int a, b;
	dr_err rc;
	char ferr[DR_ERRLEN];

	if (m->v[F_FRAMES] && (m->v[F_FROM] || m->v[F_TO])) {
		snprintf(err, errlen, "give either \"from\" and \"to\", or \"frames\", not both");
		return DR_E_INVALID;
	}
	if (m->v[F_FRAMES]) {
		const char *spec;
		dr_frames f = {0};

		if (!cJSON_IsString(m->v[F_FRAMES])) {
			snprintf(err, errlen,
			         "\"frames\" must be a string like \"1-20,30\", not %s",
			         json_kind(m->v[F_FRAMES]));
			return DR_E_INVALID;
		}
		spec = m->v[F_FRAMES]->valuestring;
		if (dr_frames_parse(spec, &f, ferr, sizeof(ferr)) < 0) {
			snprintf(err, errlen, "\"frames\": %s", ferr);
			return DR_E_INVALID;
		}
		if (f.n > max) {
			snprintf(err, errlen,
			         "\"frames\" gives %zu frames, more than the limit of %zu per job "
			         "(--max-frames)",
			         f.n, max);
			dr_frames_free(&f);
			return DR_E_TOO_LARGE;
		}
		*out = f;
		return 0;
	}
	if (!m->v[F_FROM] && !m->v[F_TO]) {
		snprintf(err, errlen,
		         "no frames: give \"from\" and \"to\" (e.g. {\"from\":1,\"to\":20}) or "
		         "\"frames\" (e.g. \"1-20,30\")");
		return DR_E_INVALID;
	}
	if (!m->v[F_FROM] || !m->v[F_TO]) {
		snprintf(err, errlen, "\"%s\" is missing: give both \"from\" and \"to\"",
		         m->v[F_FROM] ? "to" : "from");
		return DR_E_INVALID;
	}
	if ((rc = get_int(m->v[F_FROM], "from", 0, DR_FRAME_MAX, &a, err, errlen)))
		return rc;
	if (!cJSON_IsNumber(m->v[F_TO]) || m->v[F_TO]->valuedouble < (double)a) {
		if (cJSON_IsNumber(m->v[F_TO]))
			snprintf(err, errlen,
			         "\"to\" must be an integer >= \"from\" (%d), got %.17g", a,
			         m->v[F_TO]->valuedouble);
		else
			snprintf(err, errlen, "\"to\" must be an integer >= \"from\", not %s",
			         json_kind(m->v[F_TO]));
		return DR_E_INVALID;
	}
	if ((rc = get_int(m->v[F_TO], "to", a, DR_FRAME_MAX, &b, err, errlen)))
		return rc;
	if ((size_t)b - (size_t)a + 1 > max) {
		snprintf(err, errlen,
		         "\"from\" %d to \"to\" %d are %zu frames, more than the limit of %zu per "
		         "job (--max-frames)",
		         a, b, (size_t)b - (size_t)a + 1, max);
		return DR_E_TOO_LARGE;
	}
	out->n = (size_t)b - (size_t)a + 1;
	out->v = malloc(out->n * sizeof(*out->v));
	if (!out->v) {
		snprintf(err, errlen, "out of memory for %zu frames", out->n);
		out->n = 0;
		return DR_E_NOMEM;
	}
	for (size_t i = 0; i < out->n; i++)
		out->v[i] = a + (int)i;
	return 0;
}

/* Does relative path P have a ".." component? */
static bool has_dotdot(const char *p)
{
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n;
		while (*p == '/')
			p++;
	}
	return false;
}

/* Join ROOT and NAME with one '/' into BUF; -1 if it does not fit. */
static int join(char *buf, size_t len, const char *root, const char *name)
{
	size_t n = strlen(root);
	int w = snprintf(buf, len, "%s%s%s", root, n && root[n - 1] == '/' ? "" : "/", name);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

/* Resolve "blend" under the blend root into SCENE (a real path to a regular file). */
static dr_err resolve_blend(const char *rel, const dr_jobspec_limits *lim, char *scene, char *err,
                            size_t errlen)
{
	char joined[DR_PATH_MAX], real[PATH_MAX];
	struct stat st;

	if (!lim->blend_root) {
		snprintf(err, errlen,
		         "\"blend\" is not accepted here: the service has no --blend-root");
		return DR_E_FORBIDDEN;
	}
	if (rel[0] == '/') {
		snprintf(err, errlen,
		         "\"blend\" must be a path relative to --blend-root, not an "
		         "absolute path");
		return DR_E_FORBIDDEN;
	}
	if (has_dotdot(rel)) {
		snprintf(err, errlen, "\"blend\" must not contain '..': it escapes --blend-root");
		return DR_E_FORBIDDEN;
	}
	if (join(joined, sizeof(joined), lim->blend_root, rel) < 0) {
		snprintf(err, errlen, "\"blend\" is too long");
		return DR_E_INVALID;
	}
	if (!realpath(joined, real)) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR) {
			snprintf(err, errlen,
			         "\"blend\" '%.200s' does not exist under --blend-root", rel);
			return DR_E_NOT_FOUND;
		}
		if (e == ENAMETOOLONG) {
			snprintf(err, errlen, "\"blend\" is too long");
			return DR_E_INVALID;
		}
		snprintf(err, errlen, "\"blend\" '%.200s' cannot be opened: %s", rel, strerror(e));
		return e == EACCES || e == ELOOP ? DR_E_FORBIDDEN : DR_E_NOT_FOUND;
	}
	if (!dr_path_under(real, lim->blend_root)) {
		snprintf(err, errlen,
		         "\"blend\" '%.200s' escapes --blend-root (a symlink leads "
		         "outside)",
		         rel);
		return DR_E_FORBIDDEN;
	}
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "\"blend\" '%.200s' is not a regular file", rel);
		return DR_E_INVALID;
	}
	if (strlen(real) >= DR_PATH_MAX) {
		snprintf(err, errlen, "\"blend\" is too long");
		return DR_E_INVALID;
	}
	memcpy(scene, real, strlen(real) + 1);
	return 0;
}

/* Check "output": a plain name whose directory (if it exists already) stays under the root. */
static dr_err check_output(const char *name, const dr_jobspec_limits *lim, char *err, size_t errlen)
{
	char joined[DR_PATH_MAX], real[PATH_MAX];
	struct stat st;

	if (!lim->output_root) {
		snprintf(err, errlen,
		         "\"output\" is not accepted here: the service has no --output-root");
		return DR_E_FORBIDDEN;
	}
	if (name[0] == '/') {
		snprintf(err, errlen,
		         "\"output\" must be a name under --output-root, not an "
		         "absolute path");
		return DR_E_FORBIDDEN;
	}
	if (has_dotdot(name)) {
		snprintf(err, errlen, "\"output\" must not contain '..': it escapes --output-root");
		return DR_E_FORBIDDEN;
	}
	if (strlen(name) > OUTPUT_NAME_MAX) {
		snprintf(err, errlen, "\"output\" is longer than %d characters", OUTPUT_NAME_MAX);
		return DR_E_INVALID;
	}
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;
		bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
		if (!okc) {
			if (c == '/')
				snprintf(err, errlen,
				         "\"output\" must be a single name, not a path "
				         "(no '/')");
			else if (c < 0x20 || c >= 0x7f)
				snprintf(err, errlen,
				         "\"output\" must be a name of ASCII letters, "
				         "digits, '-', '_' and '.'");
			else
				snprintf(err, errlen,
				         "\"output\" must be a name of letters, digits, '-', '_' "
				         "and "
				         "'.' (no '%c')",
				         c);
			return DR_E_INVALID;
		}
	}
	if (name[0] == '.') {
		snprintf(err, errlen, "\"output\" must not start with '.'");
		return DR_E_INVALID;
	}
	if (join(joined, sizeof(joined), lim->output_root, name) < 0) {
		snprintf(err, errlen, "\"output\" is too long");
		return DR_E_INVALID;
	}
	if (lstat(joined, &st) == 0) {
		if (!realpath(joined, real) || !dr_path_under(real, lim->output_root)) {
			snprintf(err, errlen,
			         "\"output\" '%s' escapes --output-root (a symlink "
			         "leads outside)",
			         name);
			return DR_E_FORBIDDEN;
		}
		if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen,
			         "\"output\" '%s' exists under --output-root and is not "
			         "a directory",
			         name);
			return DR_E_INVALID;
		}
	}
	return 0;
}

int dr_jobspec_set_output(dr_jobspec *s, const char *root, const char *dir, char *err,
                          size_t errlen)
{
	char name[256], sub[DR_PATH_MAX], pattern[DR_PATH_MAX], oerr[DR_ERRLEN];
	const char *base = strrchr(s->render.scene, '/');
	size_t n;
	dr_outpath o;
	int w;

	base = base ? base + 1 : s->render.scene;
	n = strlen(base);
	if (n > 6 && strcasecmp(base + n - 6, ".blend") == 0)
		n -= 6;
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	memcpy(name, base, n);
	name[n] = '\0';
	if (!n)
		memcpy(name, "scene", sizeof("scene"));
	for (char *p = name; *p; p++)
		if (*p == '#')
			*p = '_';
	if (join(sub, sizeof(sub), root, dir) < 0)
		goto too_long;
	w = snprintf(pattern, sizeof(pattern), "%s/%s_####", sub, name);
	if (w < 0 || (size_t)w >= sizeof(pattern))
		goto too_long;
	if (dr_outpath_init(&o, pattern, s->render.scene,
	                    s->render.format[0] ? s->render.format : "PNG", oerr,
	                    sizeof(oerr)) < 0) {
		return dr_seterr(err, errlen, "output pattern: %s", oerr);
	}
	memcpy(s->render.output, pattern, (size_t)w + 1);
	return 0;
too_long:
	return dr_seterr(err, errlen, "the output path under '%s' is too long", root);
}

/* The settings members of a request (all but the frames) from M into S. Returns 0, or an error
 * kind with ERR. */
static dr_err read_settings(const struct members *m, const dr_jobspec_limits *lim, dr_jobspec *s,
                            char *err, size_t errlen)
{
	const char *str, *canon;
	dr_err rc;

	memcpy(s->render.format, "PNG", sizeof("PNG"));
	if (m->v[F_ENGINE]) {
		if ((rc = get_str(m->v[F_ENGINE], "engine", &str, err, errlen)))
			return rc;
		if (!(canon = dr_engine_canonical(str))) {
			snprintf(err, errlen,
			         "\"engine\" '%.64s' is unknown (use CYCLES, BLENDER_EEVEE or "
			         "BLENDER_WORKBENCH)",
			         str);
			return DR_E_INVALID;
		}
		snprintf(s->render.engine, sizeof(s->render.engine), "%s", canon);
	}
	if (m->v[F_FORMAT]) {
		char oerr[DR_ERRLEN];
		dr_outpath o;

		if ((rc = get_str(m->v[F_FORMAT], "format", &str, err, errlen)))
			return rc;
		if (dr_outpath_init(&o, "x_####", "x.blend", str, oerr, sizeof(oerr)) < 0) {
			snprintf(err, errlen, "\"format\": %s", oerr);
			return DR_E_INVALID;
		}
		snprintf(s->render.format, sizeof(s->render.format), "%s",
		         dr_format_canonical(str));
	}
	if (m->v[F_DEVICE]) {
		if ((rc = get_str(m->v[F_DEVICE], "device", &str, err, errlen)))
			return rc;
		if (!(canon = dr_device_canonical(str))) {
			snprintf(err, errlen,
			         "\"device\" '%.64s' is unknown (use cpu, cuda, optix, hip, oneapi "
			         "or "
			         "auto)",
			         str);
			return DR_E_INVALID;
		}
		snprintf(s->render.device, sizeof(s->render.device), "%s", canon);
	}
	if (m->v[F_SAMPLES] && (rc = get_int(m->v[F_SAMPLES], "samples", 1, DR_SAMPLES_MAX,
	                                     &s->render.samples, err, errlen)))
		return rc;
	if (m->v[F_PRIORITY] && (rc = get_int(m->v[F_PRIORITY], "priority", -PRIORITY_MAX,
	                                      PRIORITY_MAX, &s->priority, err, errlen)))
		return rc;
	if (m->v[F_OUTPUT]) {
		if ((rc = get_str(m->v[F_OUTPUT], "output", &str, err, errlen)) ||
		    (rc = check_output(str, lim, err, errlen)))
			return rc;
	}
	if (m->v[F_BLEND]) {
		if ((rc = get_str(m->v[F_BLEND], "blend", &str, err, errlen)) ||
		    (rc = resolve_blend(str, lim, s->render.scene, err, errlen)))
			return rc;
	} else if (lim->default_scene) {
		if (strlen(lim->default_scene) >= sizeof(s->render.scene)) {
			snprintf(err, errlen, "the default scene path is too long");
			return DR_E_INTERNAL;
		}
		snprintf(s->render.scene, sizeof(s->render.scene), "%s", lim->default_scene);
	} else {
		snprintf(err, errlen,
		         "\"blend\" is missing and the service has no default scene (--scene)");
		return DR_E_INVALID;
	}
	if (m->v[F_OUTPUT] && dr_jobspec_set_output(s, lim->output_root,
	                                            m->v[F_OUTPUT]->valuestring, err, errlen) < 0) {
		return DR_E_INVALID;
	}
	return 0;
}

/* "still", "split", "video", "fps" from M into S (frames 0..N-1 for a still). 0, or DR_E_INVALID
 * with ERR naming the field (DR_E_TOO_LARGE for more ranges than LIM allows frames). */
static dr_err read_still_video(const struct members *m, const dr_jobspec_limits *lim, dr_jobspec *s,
                               char *err, size_t errlen)
{
	size_t max = lim->max_frames ? lim->max_frames : DR_FRAMES_COUNT_MAX;
	dr_err rc;
	int ranges = lim->auto_ranges >= 2 ? lim->auto_ranges : 4;
	char verr[DR_ERRLEN];

	if (m->v[F_SPLIT] && !m->v[F_STILL])
		return dr_seterr(err, errlen, "\"split\" cuts a still: it needs \"still\": FRAME"),
		       DR_E_INVALID;
	if (m->v[F_FPS] && !m->v[F_VIDEO])
		return dr_seterr(err, errlen,
		                 "\"fps\" is the video's frame rate: it needs "
		                 "\"video\": true"),
		       DR_E_INVALID;
	if (m->v[F_VIDEO]) {
		if (!cJSON_IsBool(m->v[F_VIDEO]))
			return dr_seterr(err, errlen, "\"video\" must be true or false, not %s",
			                 json_kind(m->v[F_VIDEO])),
			       DR_E_INVALID;
		s->video_pending = cJSON_IsTrue(m->v[F_VIDEO]);
	}
	if (m->v[F_FPS]) {
		if (!cJSON_IsNumber(m->v[F_FPS]) || m->v[F_FPS]->valuedouble <= 0 ||
		    dr_video_check_fps(m->v[F_FPS]->valuedouble, verr, sizeof verr) != 0)
			return dr_seterr(err, errlen,
			                 "\"fps\" must be a number above 0, at most %g (got %s)",
			                 DR_VIDEO_FPS_MAX,
			                 cJSON_IsNumber(m->v[F_FPS]) ? "a number out of range"
			                                             : json_kind(m->v[F_FPS])),
			       DR_E_INVALID;
		s->video_fps = m->v[F_FPS]->valuedouble;
	}
	if (!m->v[F_STILL])
		return 0;
	if (m->v[F_FROM] || m->v[F_TO] || m->v[F_FRAMES])
		return dr_seterr(err, errlen,
		                 "\"still\" names the frame: give no \"from\", \"to\" "
		                 "or \"frames\" with it"),
		       DR_E_INVALID;
	if (s->video_pending)
		return dr_seterr(err, errlen, "\"video\" is made of frames: a \"still\" has none"),
		       DR_E_INVALID;
	if ((rc = get_int(m->v[F_STILL], "still", 0, DR_FRAME_MAX, &s->still_frame, err, errlen)))
		return rc;
	if (m->v[F_SPLIT] &&
	    !(cJSON_IsString(m->v[F_SPLIT]) && strcmp(m->v[F_SPLIT]->valuestring, "auto") == 0)) {
		if (cJSON_IsString(m->v[F_SPLIT]))
			return dr_seterr(err, errlen,
			                 "\"split\" must be \"auto\" or a number of ranges from 2 "
			                 "to %d, not '%.32s'",
			                 DR_RANGES_MAX, m->v[F_SPLIT]->valuestring),
			       DR_E_INVALID;
		if ((rc = get_int(m->v[F_SPLIT], "split", 2, DR_RANGES_MAX, &ranges, err, errlen)))
			return rc;
	}
	if (ranges > DR_RANGES_MAX)
		ranges = DR_RANGES_MAX;
	if ((size_t)ranges > max)
		return dr_seterr(err, errlen,
		                 "\"split\" gives %d ranges, more than the limit of %zu frames per "
		                 "job (--max-frames)",
		                 ranges, max),
		       DR_E_TOO_LARGE;
	s->frames.v = malloc((size_t)ranges * sizeof *s->frames.v);
	if (!s->frames.v)
		return dr_seterr(err, errlen, "out of memory"), DR_E_NOMEM;
	s->frames.n = (size_t)ranges;
	for (int k = 0; k < ranges; k++)
		s->frames.v[k] = k;
	s->still_ranges = ranges;
	return 0;
}

int dr_jobspec_finish(dr_jobspec *s, char *err, size_t errlen)
{
	char dir[DR_PATH_MAX], video[DR_PATH_MAX], why[DR_ERRLEN];
	const char *slash, *base;
	size_t n;
	int w;

	if (s->still_ranges > 0) {
		if (dr_render_cfg_set_still(&s->render, s->still_frame, s->still_ranges, why,
		                            sizeof why) != 0)
			return dr_seterr(err, errlen, "\"still\": %s", why);
		s->still_ranges = 0;
	}
	if (!s->video_pending)
		return 0;
	slash = strrchr(s->render.output, '/');
	base = strrchr(s->render.scene, '/');
	base = base ? base + 1 : s->render.scene;
	n = strlen(base);
	if (n > 6 && strcasecmp(base + n - 6, ".blend") == 0)
		n -= 6;
	w = snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - s->render.output) : 1,
	             slash ? s->render.output : ".");
	if (w < 0 || (size_t)w >= sizeof dir)
		return dr_seterr(err, errlen, "\"video\": the output path is too long");
	w = snprintf(video, sizeof video, "%s/%.*s.mp4", dir, (int)(n > 200 ? 200 : n), base);
	if (w < 0 || (size_t)w >= sizeof video)
		return dr_seterr(err, errlen, "\"video\": the output path is too long");
	for (char *p = video + strlen(dir) + 1; *p; p++)
		if (*p == '#')
			*p = '_';
	if (dr_render_cfg_set_video(&s->render, video, s->video_fps, why, sizeof why) != 0)
		return dr_seterr(err, errlen, "\"video\": %s", why);
	s->video_pending = false;
	return 0;
}

dr_err dr_jobspec_from_json(const char *body, size_t len, const dr_jobspec_limits *lim,
                            dr_jobspec *out, char *err, size_t errlen)
{
	dr_jobspec s;
	struct members m;
	cJSON *root = NULL;
	char *text = NULL;
	size_t max = lim->max_frames ? lim->max_frames : DR_FRAMES_COUNT_MAX;
	dr_err rc;

	memset(&s, 0, sizeof(s));
	if (!body || !len) {
		snprintf(err, errlen, "the body is empty: send JSON like {\"from\":1,\"to\":20}");
		return DR_E_INVALID;
	}
	if (memchr(body, '\0', len)) {
		snprintf(err, errlen, "malformed JSON: the body contains a NUL byte");
		return DR_E_INVALID;
	}
	text = malloc(len + 1);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return DR_E_NOMEM;
	}
	memcpy(text, body, len);
	text[len] = '\0';
	root = cJSON_ParseWithOpts(text, NULL, true);
	if (!root) {
		snprintf(err, errlen, "malformed JSON: send an object like {\"from\":1,\"to\":20}");
		rc = DR_E_INVALID;
		goto out;
	}
	if (cJSON_IsString(root) || root->child) {
		struct strwalk w = {
		        .ord = 0, .nul = nul_string(text), .err = err, .errlen = errlen};
		if (cJSON_IsString(root)) /* not an object: collect says so */
			w.nul = -1;
		else if ((rc = check_strings(root, NULL, &w)))
			goto out;
	}
	if ((rc = collect(root, &m, err, errlen)))
		goto out;
	if ((rc = read_settings(&m, lim, &s, err, errlen)))
		goto out;
	if ((rc = read_still_video(&m, lim, &s, err, errlen)))
		goto out;
	if (!s.still_ranges && (rc = parse_frames(&m, max, &s.frames, err, errlen)))
		goto out;
	if (s.render.output[0] && dr_jobspec_finish(&s, err, errlen) != 0) {
		dr_frames_free(&s.frames);
		rc = DR_E_INVALID;
		goto out;
	}
	*out = s;
out:
	cJSON_Delete(root);
	free(text);
	return rc;
}

/* Write frames F as a compact spec ("1-20,25,30-40:2") into a malloc'd string. */
static char *frames_spec(const dr_frames *f)
{
	size_t cap = 0, pos = 0;
	char *buf = NULL;

	if (dr_grow(&buf, &cap, 1, 1) != 0)
		return NULL;
	buf[0] = '\0';
	for (size_t i = 0; i < f->n;) {
		size_t j = i;
		int step = i + 1 < f->n ? f->v[i + 1] - f->v[i] : 1;
		char item[64];
		int w;

		while (j + 1 < f->n && f->v[j + 1] - f->v[j] == step)
			j++;
		if (j == i || (step != 1 && j == i + 1)) {
			w = snprintf(item, sizeof(item), "%s%d", pos ? "," : "", f->v[i]);
			j = i;
		} else if (step == 1) {
			w = snprintf(item, sizeof(item), "%s%d-%d", pos ? "," : "", f->v[i],
			             f->v[j]);
		} else {
			w = snprintf(item, sizeof(item), "%s%d-%d:%d", pos ? "," : "", f->v[i],
			             f->v[j], step);
		}
		if (w < 0 || (size_t)w >= sizeof(item) ||
		    dr_grow(&buf, &cap, pos + (size_t)w + 1, 1) != 0)
			goto fail;
		memcpy(buf + pos, item, (size_t)w + 1);
		pos += (size_t)w;
		i = j + 1;
	}
	return buf;
fail:
	free(buf);
	return NULL;
}

int dr_jobspec_confined(const dr_jobspec *s, const dr_jobspec_limits *lim, char *err, size_t errlen)
{
	char real[PATH_MAX], dir[DR_PATH_MAX];
	const char *scene = s->render.scene, *slash;
	bool is_default = lim->default_scene && strcmp(scene, lim->default_scene) == 0;

	if (!realpath(scene, real)) {
		snprintf(err, errlen, "scene %.300s: %s", scene, strerror(errno));
		return -1;
	}
	if (strcmp(real, scene) != 0 ||
	    (!is_default && (!lim->blend_root || !dr_path_under(real, lim->blend_root)))) {
		snprintf(err, errlen,
		         "scene %.300s now leads to %.300s (a symlink was put in its way): refused",
		         scene, real);
		return -1;
	}
	slash = strrchr(s->render.output, '/');
	if (!slash || !lim->output_root)
		return 0;
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - s->render.output), s->render.output);
	if (!realpath(dir, real)) {
		if (errno == ENOENT)
			return 0; /* made when the job starts */
		snprintf(err, errlen, "output directory %.300s: %s", dir, strerror(errno));
		return -1;
	}
	if (strcmp(real, dir) != 0 || !dr_path_under(real, lim->output_root)) {
		snprintf(err, errlen,
		         "output directory %.300s now leads to %.300s (a symlink was put in its "
		         "way): refused",
		         dir, real);
		return -1;
	}
	return 0;
}

cJSON *dr_jobspec_to_json(const dr_jobspec *s)
{
	cJSON *j = cJSON_CreateObject();
	char *spec = frames_spec(&s->frames);

	if (!j || !spec || dr_render_cfg_add_json(&s->render, j) != 0 ||
	    !cJSON_AddNumberToObject(j, "priority", s->priority) ||
	    !cJSON_AddStringToObject(j, "frames", spec)) {
		cJSON_Delete(j);
		j = NULL;
	}
	free(spec);
	return j;
}

int dr_jobspec_from_journal(const cJSON *j, dr_jobspec *out, char *err, size_t errlen)
{
	dr_jobspec s;
	char ferr[DR_ERRLEN];
	const cJSON *v;
	int rc;

	memset(&s, 0, sizeof(s));
	if (!cJSON_IsObject(j)) {
		return dr_seterr(err, errlen, "journal job spec is not an object");
	}
	if (dr_render_cfg_from_json(j, &s.render, ferr, sizeof ferr) != 0)
		return dr_seterr(err, errlen, "journal job spec: %s", ferr);
	if ((rc = get_int(cJSON_GetObjectItemCaseSensitive(j, "priority"), "priority",
	                  -PRIORITY_MAX, PRIORITY_MAX, &s.priority, err, errlen)))
		return -1;
	v = cJSON_GetObjectItemCaseSensitive(j, "frames");
	if (!cJSON_IsString(v) || !v->valuestring) {
		return dr_seterr(err, errlen, "journal job spec: \"frames\" is missing");
	}
	if (dr_frames_parse(v->valuestring, &s.frames, ferr, sizeof(ferr)) < 0) {
		return dr_seterr(err, errlen, "journal job spec: \"frames\": %s", ferr);
	}
	*out = s;
	return 0;
}

int dr_jobspec_copy(dr_jobspec *dst, const dr_jobspec *src)
{
	int *v = NULL;

	if (src->frames.n) {
		v = malloc(src->frames.n * sizeof(*v));
		if (!v)
			return -1;
		memcpy(v, src->frames.v, src->frames.n * sizeof(*v));
	}
	*dst = *src;
	dst->frames.v = v;
	return 0;
}

void dr_jobspec_free(dr_jobspec *s)
{
	if (s)
		dr_frames_free(&s->frames);
}
