/* Error kinds: what went wrong as a code that callers switch on (never on the message text). */
#ifndef DR_ERR_H
#define DR_ERR_H

/*
 * A function that can fail in more than one way a caller must tell apart returns one of these
 * (DR_OK = 0, so `if (f(...) != 0)` still reads "failed") and writes the message, for people,
 * into the caller's error buffer. What a kind means on the wire (an HTTP status) is decided in
 * one place, dr_http.c, not by the module that failed.
 */
typedef enum dr_err {
	DR_OK = 0,
	DR_E_INVALID,     /* malformed or impossible input: wrong type, bad range, unknown name */
	DR_E_TOO_LARGE,   /* more than a configured limit allows (frames, ranges, a body) */
	DR_E_FORBIDDEN,   /* a path that escapes its root, or a file that is not a plain one */
	DR_E_NOT_FOUND,   /* what the input names does not exist */
	DR_E_CONFLICT,    /* an output directory holds frames made from other settings */
	DR_E_BUSY,        /* a queue or frame limit is reached: try again later */
	DR_E_UNAVAILABLE, /* cannot be recorded now (disk full, I/O error): nothing was changed */
	DR_E_NOMEM,       /* out of memory */
	DR_E_INTERNAL,    /* anything else: a bug or a broken environment */
} dr_err;

/* The kind's name for logs and tests ("invalid", "too-large", ...); "unknown" for others. */
const char *dr_err_name(dr_err e);

#endif
