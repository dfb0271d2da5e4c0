/* Frame lists: parse START END or a spec like "1-20,25,30-40:2" into a sorted, unique list. */
#ifndef DR_FRAMES_H
#define DR_FRAMES_H

#include <stddef.h>

/* Blender's own limit on frame numbers (MAXFRAME). */
#define DR_FRAME_MAX 1048574
/* More frames than this in one job is refused as absurd. */
#define DR_FRAMES_COUNT_MAX 1000000

typedef struct dr_frames {
	int *v;   /* ascending, unique, each in 0..DR_FRAME_MAX */
	size_t n; /* number of frames, > 0 after a successful parse */
} dr_frames;

/* Parse a comma-separated SPEC of N, A-B and A-B:STEP items (whitespace around items is allowed).
 * Returns 0 and fills OUT, or -1 with a message in ERR and OUT untouched. */
int dr_frames_parse(const char *spec, dr_frames *out, char *err, size_t errlen);

/* Parse START and END given as strings (both inclusive). Same contract as dr_frames_parse. */
int dr_frames_range(const char *start, const char *end, dr_frames *out, char *err, size_t errlen);

/* Parse one non-negative frame number in 0..DR_FRAME_MAX; 0 or -1 with a message naming WHAT. */
int dr_frames_number(const char *s, const char *what, int *out, char *err, size_t errlen);

/* Release the list; safe on a zeroed struct. */
void dr_frames_free(dr_frames *f);

#endif
