/* Job settings: what Blender renders and where frames go, one type from request to render node. */
#include "dr_render_cfg.h"

#include "dr_util.h"
#include "dr_video.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *dr_engine_canonical(const char *name)
{
	static const char *const names[][2] = {
	        {"CYCLES", "CYCLES"},
	        {"BLENDER_EEVEE", "BLENDER_EEVEE"},
	        {"EEVEE", "BLENDER_EEVEE"},
	        {"BLENDER_WORKBENCH", "BLENDER_WORKBENCH"},
	        {"WORKBENCH", "BLENDER_WORKBENCH"},
	};
	for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(name, names[i][0]) == 0)
			return names[i][1];
	return NULL;
}

const char *dr_device_canonical(const char *name)
{
	static const char *const names[] = {"CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "AUTO"};

	for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(name, names[i]) == 0)
			return names[i];
	return NULL;
}

bool dr_device_is_gpu(const char *canon)
{
	return canon && canon[0] && strcmp(canon, "CPU") != 0 && strcmp(canon, "AUTO") != 0;
}

int dr_render_cfg_set_device(dr_render_cfg *c, const char *name, char *err, size_t errlen)
{
	const char *canon = "";

	if (name && name[0] && !(canon = dr_device_canonical(name)))
		return dr_seterr(
		        err, errlen,
		        "unknown device '%.64s' (use cpu, cuda, optix, hip, oneapi or auto)", name);
	snprintf(c->device, sizeof c->device, "%s", canon);
	return 0;
}

int dr_render_cfg_init(dr_render_cfg *c, const char *scene, const char *output, const char *format,
                       const char *engine, int samples, char *err, size_t errlen)
{
	dr_render_cfg n;
	const char *canon;

	memset(&n, 0, sizeof n);
	if (!scene || !scene[0])
		return dr_seterr(err, errlen, "the scene is empty");
	if (strlen(scene) >= sizeof n.scene)
		return dr_seterr(err, errlen, "the scene path is too long");
	memcpy(n.scene, scene, strlen(scene) + 1);
	if (output && strlen(output) >= sizeof n.output)
		return dr_seterr(err, errlen, "the output pattern is too long");
	if (output)
		memcpy(n.output, output, strlen(output) + 1);
	if (!(canon = dr_format_canonical(format ? format : "PNG")))
		return dr_seterr(err, errlen, "unknown format '%.64s'", format);
	snprintf(n.format, sizeof n.format, "%s", canon);
	if (engine && engine[0]) {
		if (!(canon = dr_engine_canonical(engine)))
			return dr_seterr(err, errlen,
			                 "unknown engine '%.64s' (use CYCLES, BLENDER_EEVEE or "
			                 "BLENDER_WORKBENCH)",
			                 engine);
		snprintf(n.engine, sizeof n.engine, "%s", canon);
	}
	if (samples < 0 || samples > DR_SAMPLES_MAX)
		return dr_seterr(err, errlen, "samples must be 0..%d", DR_SAMPLES_MAX);
	n.samples = samples;
	*c = n;
	return 0;
}

int dr_render_cfg_build(dr_render_cfg *c, const dr_render_args *a, char *err, size_t errlen)
{
	dr_render_cfg n;
	dr_outpath out;

	if (dr_render_cfg_init(&n, a->scene, a->output, a->format, a->engine, a->samples, err,
	                       errlen) != 0 ||
	    dr_render_cfg_set_video(&n, a->video, a->fps, err, errlen) != 0)
		return -1;
	if (a->resolve) {
		if (dr_render_cfg_outpath(&n, &out, err, errlen) != 0)
			return -1;
		snprintf(n.output, sizeof n.output, "%s", out.pattern);
	}
	if (a->ranges > 0 && dr_render_cfg_set_still(&n, a->still, a->ranges, err, errlen) != 0)
		return -1;
	*c = n;
	return 0;
}

int dr_render_cfg_add_json(const dr_render_cfg *c, cJSON *o)
{
	if (!cJSON_AddStringToObject(o, "scene", c->scene) ||
	    !cJSON_AddStringToObject(o, "output", c->output) ||
	    !cJSON_AddStringToObject(o, "format", c->format) ||
	    !cJSON_AddStringToObject(o, "engine", c->engine) ||
	    !cJSON_AddNumberToObject(o, "samples", c->samples) ||
	    !cJSON_AddStringToObject(o, "device", c->device))
		return -1;
	if (c->video[0] && !cJSON_AddStringToObject(o, "video", c->video))
		return -1;
	if (c->ranges > 0 && (!cJSON_AddNumberToObject(o, "still", c->still) ||
	                      !cJSON_AddNumberToObject(o, "ranges", c->ranges) ||
	                      !cJSON_AddStringToObject(o, "stillOutput", c->still_output) ||
	                      !cJSON_AddStringToObject(o, "stillFormat", c->still_format)))
		return -1;
	if (c->fps > 0 && !cJSON_AddNumberToObject(o, "fps", c->fps))
		return -1;
	if (c->merge && !cJSON_AddBoolToObject(o, "merge", true))
		return -1;
	if (c->version[0] && !cJSON_AddStringToObject(o, "sceneVersion", c->version))
		return -1;
	return 0;
}

int dr_render_cfg_set_video(dr_render_cfg *c, const char *video, double fps, char *err,
                            size_t errlen)
{
	if (video && video[0] && dr_video_check_path(video, err, errlen) != 0)
		return -1;
	if (dr_video_check_fps(fps, err, errlen) != 0)
		return -1;
	if (video && strlen(video) >= sizeof c->video)
		return dr_seterr(err, errlen, "the video's name is too long");
	snprintf(c->video, sizeof c->video, "%s", video ? video : "");
	c->fps = fps;
	return 0;
}

/* String member NAME of O, or NULL with ERR. */
static const char *member(const cJSON *o, const char *name, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsString(v) || !v->valuestring) {
		dr_seterr(err, errlen, "\"%s\" is missing or not a string", name);
		return NULL;
	}
	return v->valuestring;
}

int dr_render_cfg_from_json(const cJSON *o, dr_render_cfg *c, char *err, size_t errlen)
{
	const char *scene, *output, *format, *engine;
	const cJSON *samples = cJSON_GetObjectItemCaseSensitive(o, "samples");
	const cJSON *video = cJSON_GetObjectItemCaseSensitive(o, "video");
	const cJSON *fps = cJSON_GetObjectItemCaseSensitive(o, "fps");
	const cJSON *device = cJSON_GetObjectItemCaseSensitive(o, "device");
	const cJSON *ranges = cJSON_GetObjectItemCaseSensitive(o, "ranges");
	const cJSON *merge = cJSON_GetObjectItemCaseSensitive(o, "merge");
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(o, "sceneVersion");
	dr_render_cfg n;
	char why[DR_ERRLEN];

	if (!cJSON_IsObject(o))
		return dr_seterr(err, errlen, "job settings are not an object");
	if (!(scene = member(o, "scene", err, errlen)) ||
	    !(output = member(o, "output", err, errlen)) ||
	    !(format = member(o, "format", err, errlen)) ||
	    !(engine = member(o, "engine", err, errlen)))
		return -1;
	if (!cJSON_IsNumber(samples) || samples->valuedouble != (double)samples->valueint)
		return dr_seterr(err, errlen, "\"samples\" is missing or not an integer");
	if ((video && !cJSON_IsString(video)) || (fps && !cJSON_IsNumber(fps)))
		return dr_seterr(err, errlen, "\"video\" is not a string or \"fps\" not a number");
	if (device && !cJSON_IsString(device))
		return dr_seterr(err, errlen, "\"device\" is not a string");
	if (version &&
	    (!cJSON_IsString(version) ||
	     strspn(version->valuestring, "0123456789abcdef") != strlen(version->valuestring) ||
	     strlen(version->valuestring) >= sizeof n.version))
		return dr_seterr(err, errlen, "\"sceneVersion\" is not a hex digest");
	if (merge && (!cJSON_IsBool(merge) || (cJSON_IsTrue(merge) && !ranges)))
		return dr_seterr(err, errlen, "\"merge\" is not a boolean or has no \"ranges\"");
	if (ranges) {
		const cJSON *still = cJSON_GetObjectItemCaseSensitive(o, "still");
		const char *so, *sf;

		if (!cJSON_IsNumber(ranges) || !cJSON_IsNumber(still) ||
		    ranges->valuedouble != (double)ranges->valueint ||
		    still->valuedouble != (double)still->valueint)
			return dr_seterr(err, errlen, "\"still\" or \"ranges\" is not an integer");
		if (!(so = member(o, "stillOutput", err, errlen)) ||
		    !(sf = member(o, "stillFormat", err, errlen)))
			return -1;
		/* rebuilt from the merged image's settings: the ranges' names follow from them */
		output = so;
		format = sf;
	}
	if (dr_render_cfg_init(&n, scene, output, format, engine, samples->valueint, why,
	                       sizeof why) != 0 ||
	    dr_render_cfg_set_video(&n, video ? video->valuestring : NULL,
	                            fps ? fps->valuedouble : 0, why, sizeof why) != 0 ||
	    dr_render_cfg_set_device(&n, device ? device->valuestring : NULL, why, sizeof why) !=
	            0 ||
	    (ranges &&
	     dr_render_cfg_set_still(&n, cJSON_GetObjectItemCaseSensitive(o, "still")->valueint,
	                             ranges->valueint, why, sizeof why) != 0) ||
	    (cJSON_IsTrue(merge) && dr_render_cfg_set_merge(&n, why, sizeof why) != 0))
		return dr_seterr(err, errlen, "job settings: %s", why);
	if (version)
		snprintf(n.version, sizeof n.version, "%s", version->valuestring);
	*c = n;
	return 0;
}

int dr_render_cfg_encode(const dr_render_cfg *c, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int rc = -1;

	if (o && dr_render_cfg_add_json(c, o) == 0)
		text = cJSON_PrintUnformatted(o);
	if (text && strlen(text) < len) {
		memcpy(buf, text, strlen(text) + 1);
		rc = 0;
	}
	cJSON_free(text);
	cJSON_Delete(o);
	return rc;
}

int dr_render_cfg_decode(const char *text, dr_render_cfg *c, char *err, size_t errlen)
{
	cJSON *o = cJSON_Parse(text);
	int rc;

	if (!o)
		return dr_seterr(err, errlen, "job settings are not JSON");
	rc = dr_render_cfg_from_json(o, c, err, errlen);
	cJSON_Delete(o);
	return rc;
}

bool dr_render_cfg_same_blender(const dr_render_cfg *a, const dr_render_cfg *b)
{
	return strcmp(a->scene, b->scene) == 0 && strcmp(a->format, b->format) == 0 &&
	       strcmp(a->engine, b->engine) == 0 && a->samples == b->samples &&
	       strcmp(a->device, b->device) == 0 && a->ranges == b->ranges &&
	       (a->ranges == 0 || a->still == b->still) && a->merge == b->merge;
}

int dr_render_cfg_set_merge(dr_render_cfg *c, char *err, size_t errlen)
{
	if (c->ranges <= 0 || c->merge)
		return dr_seterr(err, errlen, "only a still split's ranges can be merged");
	snprintf(c->output, sizeof c->output, "%s", c->still_output);
	snprintf(c->format, sizeof c->format, "%s", c->still_format);
	c->merge = true;
	return 0;
}

int dr_render_cfg_ranges_of(const dr_render_cfg *m, dr_render_cfg *ranges, char *err, size_t errlen)
{
	dr_render_cfg n = *m;

	if (!m->merge)
		return dr_seterr(err, errlen, "not a merge job");
	n.merge = false;
	snprintf(n.output, sizeof n.output, "%s", m->still_output);
	snprintf(n.format, sizeof n.format, "%s", m->still_format);
	if (dr_render_cfg_set_still(&n, m->still, m->ranges, err, errlen) != 0)
		return -1;
	*ranges = n;
	return 0;
}

bool dr_render_cfg_merges_in(const dr_render_cfg *m, const dr_render_cfg *loaded)
{
	return m->merge && !loaded->merge && loaded->ranges == m->ranges &&
	       loaded->still == m->still && strcmp(m->scene, loaded->scene) == 0 &&
	       strcmp(m->engine, loaded->engine) == 0 && m->samples == loaded->samples &&
	       strcmp(m->device, loaded->device) == 0;
}

int dr_render_cfg_range_samples(int samples, int ranges, int k, int *offset)
{
	long long total, before, start, end;

	if (samples < 1 || ranges < 1 || k < 0 || k >= ranges)
		return -1;
	/* sum of 2R - i for i < k, and for i < R */
	total = (long long)ranges * (3LL * ranges + 1) / 2;
	before = (long long)k * (4LL * ranges - k + 1) / 2;
	start = (long long)samples * before / total;
	end = (long long)samples * (before + 2LL * ranges - k) / total;
	if (offset)
		*offset = (int)start;
	return (int)(end - start);
}

int dr_render_cfg_still_path(const dr_render_cfg *c, char *buf, size_t len, char *err,
                             size_t errlen)
{
	dr_outpath o;

	if (c->ranges <= 0)
		return dr_seterr(err, errlen, "not a still split");
	if (dr_outpath_init(&o, c->still_output[0] ? c->still_output : NULL, c->scene,
	                    c->still_format, err, errlen) != 0)
		return -1;
	if (dr_outpath_frame(&o, c->still, buf, len) != 0)
		return dr_seterr(err, errlen, "the still's path is too long");
	return 0;
}

int dr_render_cfg_set_still(dr_render_cfg *c, int frame, int ranges, char *err, size_t errlen)
{
	dr_render_cfg n = *c;
	char path[DR_PATH_MAX];
	int w;

	if (frame < 0 || frame > 9999999)
		return dr_seterr(err, errlen, "the still's frame must be 0..9999999");
	if (ranges < 2 || ranges > DR_RANGES_MAX)
		return dr_seterr(err, errlen, "a still is split into 2..%d sample ranges",
		                 DR_RANGES_MAX);
	if (c->video[0])
		return dr_seterr(err, errlen, "a still makes no video");
	n.still = frame;
	n.ranges = ranges;
	snprintf(n.still_output, sizeof n.still_output, "%s", c->output);
	snprintf(n.still_format, sizeof n.still_format, "%s", c->format);
	if (dr_render_cfg_still_path(&n, path, sizeof path, err, errlen) != 0)
		return -1;
	w = snprintf(n.output, sizeof n.output, "%s.range-####.exr", path);
	if (w < 0 || (size_t)w >= sizeof n.output)
		return dr_seterr(err, errlen, "the still's path is too long");
	snprintf(n.format, sizeof n.format, "OPEN_EXR_MULTILAYER");
	*c = n;
	return 0;
}

int dr_render_cfg_outpath(const dr_render_cfg *c, dr_outpath *o, char *err, size_t errlen)
{
	return dr_outpath_init(o, c->output[0] ? c->output : NULL, c->scene, c->format, err,
	                       errlen);
}
