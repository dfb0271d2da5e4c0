/* Output validation: is an image file complete (non-empty, with a valid header for its format)? */
#ifndef DR_IMGCHECK_H
#define DR_IMGCHECK_H

#include <stddef.h>

/* Check PATH as an image of Blender file FORMAT (canonical name, e.g. "PNG").
 * PNG must start with its signature and end with an IEND chunk; JPEG must start with SOI and end
 * with EOI; formats with a magic number must carry it; every format must be non-empty.
 * Returns 0 when valid, -1 with a message naming the path and the problem in ERR. */
int dr_imgcheck(const char *path, const char *format, char *err, size_t errlen);

#endif
