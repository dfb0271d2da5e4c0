/* A job's video phase: once every frame is done, its video (render.video) is encoded in the
 * background, looked at every tick and never waited for; the job is over once the encode is. */
#ifndef DR_ENCODE_H
#define DR_ENCODE_H

#include "dr_ojob.h"

/* Give J (when it asks for a video) its video phase. 0, or -1 with ERR. */
int dr_encode_attach(dr_orch *r, dr_ojob *j, char *err, size_t errlen);

#endif
