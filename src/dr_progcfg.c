/* The programs' settings from the parsed options: rank 0's service, staging, a render node's. */
#include "dr_progcfg.h"

#include "dr_render_cfg.h"

void dr_progcfg_service(const dr_opts *o, int size, dr_service_cfg *c)
{
	*c = (dr_service_cfg){
	        .serve = o->serve,
	        .http = o->http,
	        .listen = o->listen,
	        .token = o->token,
	        .tls_cert = o->tls_cert,
	        .tls_key = o->tls_key,
	        .allow_host = o->allow_host,
	        .rate_limit = o->rate_limit,
	        .max_queued = (size_t)o->max_queued,
	        .max_frames = (size_t)o->max_frames,
	        .scene = o->scene,
	        .blend_root = o->blend_root,
	        .output_root = o->output_root,
	        .output = o->output,
	        .format = o->format,
	        .engine = o->engine,
	        .samples = o->samples,
	        .video = o->video,
	        .fps = o->fps,
	        .still = o->still,
	        .split = o->has_still ? o->split : 0,
	        .auto_split = size < 2                         ? 2
	                      : 2 * (size - 1) > DR_RANGES_MAX ? DR_RANGES_MAX
	                                                       : 2 * (size - 1),
	        .frames = &o->frames,
	        .report = o->report,
	        .quiet = o->verbosity < 0,
	        .cache_dir = o->cache_dir,
	        .fetch = o->stage != DR_STAGE_NEVER,
	};
	dr_opts_orch_cfg(o, &c->orch);
	dr_opts_node_cfg(o, &c->node);
	dr_opts_jobs_cfg(o, &c->jobs);
}

void dr_progcfg_node(const dr_opts *o, const dr_node_cfg *node, volatile sig_atomic_t *interrupted,
                     dr_nodeprog_cfg *c)
{
	*c = (dr_nodeprog_cfg){.node = *node,
	                       .scene = o->scene,
	                       .serve = o->serve,
	                       .still = o->has_still,
	                       .collect = o->collect,
	                       .stage_always = o->stage == DR_STAGE_ALWAYS,
	                       .stage_never = o->stage == DR_STAGE_NEVER,
	                       .cache_dir = o->cache_dir,
	                       .cache_max = o->cache_max,
	                       .timeout = o->node_timeout,
	                       .interrupted = interrupted};
}

void dr_progcfg_stage(const dr_opts *o, const char *outdir, volatile sig_atomic_t *interrupted,
                      dr_stageplan_cfg *c)
{
	*c = (dr_stageplan_cfg){.blender = o->blender,
	                        .scene = o->scene,
	                        .outdir = outdir,
	                        .serve = o->serve,
	                        .always = o->stage == DR_STAGE_ALWAYS,
	                        .never = o->stage == DR_STAGE_NEVER,
	                        .cache_dir = o->cache_dir,
	                        .cache_max = o->cache_max,
	                        .timeout = o->node_timeout,
	                        .interrupted = interrupted};
}
