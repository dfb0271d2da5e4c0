/* Unit tests for dr_xfer: chunking, the forwarding chain/tree, and re-feeding orphans. */
#include "dr_wire.h"
#include "dr_xfer.h"
#include "tap.h"

#include <stdlib.h>

static void test_chunks(void)
{
	is_int(dr_xfer_nchunks(0, 10), 0, "an empty file has no chunks");
	is_int(dr_xfer_nchunks(10, 10), 1, "exactly one chunk");
	is_int(dr_xfer_nchunks(11, 10), 2, "one byte more: two");
	is_int(dr_xfer_nchunks(200ULL << 20, DR_WIRE_STAGE_CHUNK), 200, "200 MiB in 1 MiB chunks");
	is_int(dr_xfer_chunk_len(25, 10, 0), 10, "full chunk");
	is_int(dr_xfer_chunk_len(25, 10, 2), 5, "short last chunk");
	is_int(dr_xfer_chunk_len(25, 10, 3), 0, "past the end");
	is_int(dr_xfer_chunk_len(25, 10, -1), 0, "negative");
	is_int(dr_xfer_nchunks(5, 0), 0, "a zero chunk size cuts nothing");
	/* the chunks cover the file exactly */
	uint64_t sum = 0, size = 5 * 1000003ULL + 17;
	for (int64_t k = 0; k < dr_xfer_nchunks(size, 1000003); k++)
		sum += dr_xfer_chunk_len(size, 1000003, k);
	is_int(sum, size, "chunk lengths add up to the file");
}

static void test_chain(void)
{
	int ranks[] = {0, 3, 1, 2}, kids[4];
	dr_xfer_plan p;

	ok(dr_xfer_plan_init(&p, ranks, 4, 1, 10) == 0, "a chain of 3 nodes");
	is_int(dr_xfer_children(&p, 0, kids), 1, "the source sends one copy");
	is_int(p.rank[kids[0]], 3, "to the first node");
	is_int(dr_xfer_children(&p, 1, kids), 1, "which forwards to one");
	is_int(p.rank[kids[0]], 1, "the next");
	is_int(dr_xfer_children(&p, 3, kids), 0, "the last forwards to none");
	is_int(dr_xfer_member(&p, 2), 3, "member of a rank");
	is_int(dr_xfer_member(&p, 9), -1, "not a member");

	/* pipelining: a node forwards what it has received, window-bounded */
	is_int(dr_xfer_next(10, 0, 0, 0, 4), -1, "nothing received: nothing to forward");
	is_int(dr_xfer_next(10, 3, 0, 0, 4), 0, "chunk 0 goes as soon as it is in");
	is_int(dr_xfer_next(10, 3, 2, 1, 4), 2, "then the next received");
	is_int(dr_xfer_next(10, 3, 3, 0, 4), -1, "not ahead of what it has");
	is_int(dr_xfer_next(10, 10, 5, 4, 4), -1, "the window bounds sends in flight");
	is_int(dr_xfer_next(10, 10, 10, 0, 4), -1, "all sent");

	ok(!dr_xfer_complete(&p), "not complete at first");
	dr_xfer_progress(&p, 1, 10);
	dr_xfer_progress(&p, 2, 10);
	dr_xfer_progress(&p, 3, 4);
	dr_xfer_progress(&p, 3, 2);
	is_int(p.have[3], 4, "progress never goes back");
	dr_xfer_progress(&p, 3, 99);
	is_int(p.have[3], 10, "nor past the end");
	ok(dr_xfer_complete(&p), "complete when every live node has all");
	dr_xfer_plan_free(&p);
}

static void test_loss(void)
{
	int ranks[] = {0, 1, 2, 3, 4}, orph[5], adopter = -9, kids[5];
	dr_xfer_plan p;

	ok(dr_xfer_plan_init(&p, ranks, 5, 1, 8) == 0, "a chain 0-1-2-3-4");
	dr_xfer_progress(&p, 1, 6);
	dr_xfer_progress(&p, 2, 5);
	dr_xfer_progress(&p, 3, 3);
	is_int(dr_xfer_lose(&p, 2, orph, &adopter), 1, "losing member 2 orphans one");
	is_int(orph[0], 3, "member 3");
	is_int(adopter, 1, "adopted by its parent, member 1");
	is_int(dr_xfer_children(&p, 1, kids), 1, "member 1 now feeds member 3");
	is_int(kids[0], 3, "(it)");
	/* the adopter resumes from what the orphan has */
	is_int(dr_xfer_next(8, p.have[1], p.have[3], 0, 4), 3, "from the orphan's own count");
	is_int(dr_xfer_lose(&p, 2, orph, &adopter), 0, "losing it twice changes nothing");
	is_int(dr_xfer_lose(&p, 1, orph, &adopter), 1, "losing member 1 too");
	is_int(adopter, 0, "the source adopts when every ancestor is gone");
	is_int(orph[0], 3, "member 3 again");
	is_int(dr_xfer_lose(&p, 0, orph, &adopter), 0, "the source is never lost");
	dr_xfer_progress(&p, 3, 8);
	ok(!dr_xfer_complete(&p), "member 4 still lacks chunks");
	dr_xfer_progress(&p, 4, 8);
	ok(dr_xfer_complete(&p), "lost members do not hold completion back");
	/* the last in the chain: nobody orphaned */
	is_int(dr_xfer_lose(&p, 4, orph, &adopter), 0, "losing a leaf orphans none");
	dr_xfer_plan_free(&p);
}

static void test_tree(void)
{
	int ranks[] = {0, 1, 2, 3, 4, 5, 6}, kids[7], orph[7], adopter;
	dr_xfer_plan p;

	ok(dr_xfer_plan_init(&p, ranks, 7, 2, 4) == 0, "a binary tree of 6 nodes");
	is_int(dr_xfer_children(&p, 0, kids), 2, "the source feeds two");
	is_int(dr_xfer_children(&p, 1, kids), 2, "so does member 1");
	ok(kids[0] == 3 && kids[1] == 4, "members 3 and 4");
	is_int(dr_xfer_lose(&p, 1, orph, &adopter), 2, "losing member 1 orphans two");
	is_int(adopter, 0, "the source adopts them");
	is_int(dr_xfer_children(&p, 0, kids), 3, "the source now feeds three");
	ok(dr_xfer_plan_init(&p, ranks, 0, 1, 4) < 0, "no members is refused");
	dr_xfer_plan_free(&p);
}

int main(void)
{
	test_chunks();
	test_chain();
	test_loss();
	test_tree();
	return done_testing();
}
