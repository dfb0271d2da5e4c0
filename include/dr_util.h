/* Small shared helpers: the one clock, sleeping, error buffers, string copies, growable arrays. */
#ifndef DR_UTIL_H
#define DR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of every error buffer a caller passes down (char err[DR_ERRLEN]). Long enough for a
 * message plus the tail of Blender's output that explains it. */
#define DR_ERRLEN 2048

/* Monotonic seconds (CLOCK_MONOTONIC): the only clock for durations and deadlines. */
double dr_now(void);

/* Sleep MS milliseconds (fractions allowed); a signal may end it early. */
void dr_sleep_ms(double ms);

/* Format a message into ERR (ERRLEN bytes; a truncated message is still a message) and return -1,
 * so that a failure path reads `return dr_seterr(err, errlen, "...", ...);`. ERR may be NULL. */
int dr_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Append formatted text at *POS in BUF (LEN bytes), truncating quietly; keeps BUF terminated. */
void dr_append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* strdup(S), or NULL for a NULL S; sets *OOM when the copy fails. */
char *dr_strdup_or_null(const char *s, bool *oom);

/* Make the array at *PTR (elements of ELSIZE bytes, *CAP of them allocated) hold at least NEED
 * elements, doubling from 8. Returns 0, or -1 on out of memory with *PTR and *CAP unchanged. */
int dr_grow(void *ptr, size_t *cap, size_t need, size_t elsize);

/* Parse a size such as "10G", "500M", "64k", "1048576" (binary units) into *OUT. 0, or -1. */
int dr_parse_size(const char *s, uint64_t *out);

/* Is the real path P at or below the real directory ROOT (on a path-component boundary)? */
bool dr_path_under(const char *p, const char *root);

#endif
