/* Pure transfer planning: fixed-size chunks and a pipelined forwarding tree that survives loss. */
#include "dr_xfer.h"

#include <stdlib.h>

int64_t dr_xfer_nchunks(uint64_t size, uint32_t chunk)
{
	if (chunk == 0)
		return 0;
	return (int64_t)((size + chunk - 1) / chunk);
}

uint32_t dr_xfer_chunk_len(uint64_t size, uint32_t chunk, int64_t k)
{
	uint64_t off;

	if (chunk == 0 || k < 0 || k >= dr_xfer_nchunks(size, chunk))
		return 0;
	off = (uint64_t)k * chunk;
	return size - off < chunk ? (uint32_t)(size - off) : chunk;
}

int dr_xfer_plan_init(dr_xfer_plan *p, const int *ranks, int n, int fanout, int64_t nchunks)
{
	dr_xfer_plan np = {.n = n, .nchunks = nchunks};

	if (n < 1 || fanout < 1 || nchunks < 0)
		return -1;
	np.rank = calloc((size_t)n, sizeof *np.rank);
	np.parent = calloc((size_t)n, sizeof *np.parent);
	np.lost = calloc((size_t)n, sizeof *np.lost);
	np.have = calloc((size_t)n, sizeof *np.have);
	if (!np.rank || !np.parent || !np.lost || !np.have) {
		dr_xfer_plan_free(&np);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		np.rank[i] = ranks[i];
		np.parent[i] = i == 0 ? -1 : (i - 1) / fanout;
	}
	np.have[0] = nchunks;
	*p = np;
	return 0;
}

void dr_xfer_plan_free(dr_xfer_plan *p)
{
	free(p->rank);
	free(p->parent);
	free(p->lost);
	free(p->have);
	p->rank = p->parent = NULL;
	p->lost = NULL;
	p->have = NULL;
	p->n = 0;
}

int dr_xfer_member(const dr_xfer_plan *p, int rank)
{
	for (int i = 0; i < p->n; i++)
		if (p->rank[i] == rank)
			return i;
	return -1;
}

int dr_xfer_children(const dr_xfer_plan *p, int m, int *out)
{
	int k = 0;

	for (int i = 0; i < p->n; i++)
		if (p->parent[i] == m && !p->lost[i])
			out[k++] = i;
	return k;
}

void dr_xfer_progress(dr_xfer_plan *p, int m, int64_t have)
{
	if (m <= 0 || m >= p->n)
		return;
	if (have > p->nchunks)
		have = p->nchunks;
	if (have > p->have[m])
		p->have[m] = have;
}

int dr_xfer_lose(dr_xfer_plan *p, int m, int *orphans, int *adopter)
{
	int a, k = 0;

	if (m <= 0 || m >= p->n || p->lost[m])
		return 0;
	p->lost[m] = true;
	for (a = p->parent[m]; a > 0 && p->lost[a]; a = p->parent[a])
		;
	*adopter = a;
	for (int i = 0; i < p->n; i++)
		if (p->parent[i] == m) {
			p->parent[i] = a;
			if (!p->lost[i])
				orphans[k++] = i;
		}
	return k;
}

bool dr_xfer_complete(const dr_xfer_plan *p)
{
	for (int i = 1; i < p->n; i++)
		if (!p->lost[i] && p->have[i] < p->nchunks)
			return false;
	return true;
}

int64_t dr_xfer_next(int64_t nchunks, int64_t sender_have, int64_t sent, int inflight, int window)
{
	if (sent >= nchunks || inflight >= window || sent >= sender_have)
		return -1;
	return sent;
}
