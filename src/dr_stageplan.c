/* Rank 0's staging plan: probe shared storage, ask, pack, and send the scene where it is lacking.
 */
#include "dr_stageplan.h"

#include "dr_log.h"
#include "dr_outdir.h"
#include "dr_stage.h"
#include "dr_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Rank 0's probe file in its output directory DIR: a node that reads TOKEN there shares the
 * directory; the others send their frames home (dr_collect). 0 with PATH, or -1 (no probe: every
 * node is taken to share it). */
static int write_probe(const char *dir, char *path, size_t len, char *token, size_t toklen)
{
	char host[256], tag[300];
	unsigned char rnd[16];
	int fd, n;

	if (toklen < 2 * sizeof rnd + 1 || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return -1;
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "unknown-host");
	host[sizeof host - 1] = '\0';
	dr_outdir_tag(host, tag, sizeof tag);
	n = snprintf(path, len, "%s/.drender-probe-%s", dir, tag);
	if (n < 0 || (size_t)n >= len)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = (int)write(fd, token, strlen(token));
	close(fd);
	if (n != (int)strlen(token)) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* The offers: the file sent is a packed copy of the scene (its textures, libraries and fonts
 * inside, see dr_assets_pack), made only when some node lacks the scene: an ask round first,
 * unless --stage always. Without a packed copy the scene itself goes, and a node's check of its
 * external files says what it then lacks. A service's jobs name their own scenes (fetched as
 * they come): only the probe is asked about (the offer names a file that exists; the nodes do
 * not open it). 0 with R, or -1 with ERR. */
static int offer(const dr_stageplan_cfg *o, dr_stage_cfg *c, MPI_Comm comm, dr_stage_result *r,
                 char *err, size_t errlen)
{
	char packed[DR_PATH_MAX + 128] = "";
	int k = 0;

	if (!c->never && !c->always) {
		c->ask = c->more = true;
		k = dr_stage_source(comm, c, o->scene, r, err, errlen);
		c->ask = c->more = false;
	}
	if (k == 0 && !c->never && (c->always || r->need > 0)) {
		if (dr_stage_pack(o->blender, o->scene, o->cache_dir, NULL, packed, sizeof packed,
		                  err, errlen) != 0) {
			dr_warn("%s; staging the scene without them", err);
			packed[0] = '\0';
		}
		c->same_as = packed[0] ? o->scene : NULL;
		k = dr_stage_source(comm, c, packed[0] ? packed : o->scene, r, err, errlen);
	} else if (k == 0 && c->never) {
		k = dr_stage_source(comm, c,
		                    !o->serve  ? o->scene
		                    : c->probe ? c->probe
		                               : "/",
		                    r, err, errlen);
	}
	return k;
}

void dr_stageplan_run(const dr_stageplan_cfg *o, MPI_Comm comm, dr_report_stage *rep)
{
	char err[DR_ERRLEN], probe[DR_PATH_MAX + 64], token[64];
	dr_stage_result r = {0};
	dr_stage_cfg c = {
	        .always = o->always,
	        .never = o->never || o->serve,
	        .cache_dir = o->cache_dir,
	        .cache_max = o->cache_max,
	        .timeout = o->timeout,
	        .interrupted = o->interrupted,
	};
	double t0 = dr_now();
	int size = 1;

	/* NULL: every node is asked every time */
	c.silent = MPI_Comm_size(comm, &size) == MPI_SUCCESS ? calloc((size_t)size, 1) : NULL;
	if (o->outdir && write_probe(o->outdir, probe, sizeof probe, token, sizeof token) == 0) {
		c.probe = probe;
		c.token = token;
	}
	if (offer(o, &c, comm, &r, err, sizeof err) != 0)
		dr_warn("%s", err);
	free(c.silent);
	if (c.probe)
		unlink(c.probe);
	if (r.collect)
		dr_info("%d node%s cannot see the output directory: %s frames come home over MPI",
		        r.collect, r.collect == 1 ? "" : "s", r.collect == 1 ? "its" : "their");
	*rep = (dr_report_stage){.ran = !c.never,
	                         .size = r.size,
	                         .bytes = r.bytes,
	                         /* the whole of it: the ask round and the packing too */
	                         .seconds = c.never ? 0 : dr_now() - t0,
	                         .same = r.same,
	                         .cached = r.cached,
	                         .staged = r.staged,
	                         .failed = r.failed};
}
