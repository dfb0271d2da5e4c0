/* A still split's last phase: once every sample range is on disk, a render node merges them into
 * the still (a merge job of one frame), and rank 0 checks it and removes the ranges. */
#ifndef DR_STILL_H
#define DR_STILL_H

#include "dr_ojob.h"

/* Give ranges job J (render.ranges > 0, not a merge) its merge phase; notes whether the still is
 * already made (a re-run after a good merge renders nothing: J's nothing_to_do). Any other job is
 * left as it is. 0, or -1 with ERR. */
int dr_still_attach(dr_orch *r, dr_ojob *j, char *err, size_t errlen);

#endif
