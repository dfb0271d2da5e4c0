/* A node's content-addressed file cache: entries named by SHA-256, checked before use, LRU-bounded.
 */
#ifndef DR_CACHE_H
#define DR_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nettle/sha2.h>

/* Hex SHA-256 plus its terminator. */
#define DR_SHA256_HEX 65

/* Longest extension an entry keeps (".blend"), terminator included. */
#define DR_CACHE_EXT_MAX 16

/*
 * A cache directory holds entries named "<64 hex digits of the content's SHA-256><ext>" (ext
 * from the original name, e.g. ".blend", so that Blender sees what it expects). An entry is only
 * ever created by renaming a temporary file ("<hex>.tmp-<pid>") whose size and hash checked out,
 * and a lookup hashes it again before use (a file changed in place is removed). Every use touches
 * the entry's times (the LRU order) and pins it for this process: eviction, which keeps the
 * directory under max_bytes, never removes a pinned entry (a file a Blender of this run may have
 * open).
 */
typedef struct dr_cache {
	char dir[4096];
	uint64_t max_bytes; /* 0 = no bound */
	char **pinned;      /* entry names in use by this process */
	size_t npinned, cappinned;
	bool warned_over; /* said once that what is pinned exceeds max_bytes */
} dr_cache;

/* An entry being written: bytes appended in order, hashed as they come. */
typedef struct dr_cache_wr {
	dr_cache *c;
	int fd;
	char hex[DR_SHA256_HEX];
	char ext[DR_CACHE_EXT_MAX];
	char tmp[4200];
	uint64_t size, written;
	struct sha256_ctx sha;
} dr_cache_wr;

/* One entry as eviction sees it. */
typedef struct dr_cache_entry {
	char name[96];
	uint64_t size;
	double mtime; /* last use (seconds since the epoch) */
	bool pinned;
} dr_cache_entry;

/* Use DIR (created with its parents if missing, mode 0700) as a cache bounded to MAX_BYTES
 * (0 = unbounded); DIR must pass dr_cache_check_dir. 0, or -1 with ERR and C untouched. */
int dr_cache_open(dr_cache *c, const char *dir, uint64_t max_bytes, char *err, size_t errlen);

/* The default cache directory, one per user: $TMPDIR/drender-cache-<euid> (TMPDIR unset or
 * empty: /tmp). */
void dr_cache_default_dir(char *buf, size_t len);

/* Is the existing directory PATH safe to trust entries from: owned by this user, not writable by
 * group or others, and not a symbolic link of another user (root's are fine)? 0, or -1 with ERR
 * saying which and what to do. */
int dr_cache_check_dir(const char *path, char *err, size_t errlen);

/* Seconds a dead process's temporary file must be old before dr_cache_open removes it (a cache
 * directory shared by hosts would show other hosts' live writers as dead pids: the age spares
 * them). */
#define DR_CACHE_STALE_S 600.0

/* Remove temporary files ("<hex>.tmp-<pid>") of processes that no longer run, last written at
 * least MIN_AGE seconds ago. Returns how many. */
int dr_cache_clean_stale(dr_cache *c, double min_age);

/* Forget the pins and free C (the directory stays). */
void dr_cache_close(dr_cache *c);

/* SHA-256 of the file at PATH as hex into HEX and its size into *SIZE. 0, or -1 with ERR. */
int dr_sha256_file(const char *path, char hex[DR_SHA256_HEX], uint64_t *size, char *err,
                   size_t errlen);

/* The version of the scene at PATH as a job names it (dr_render_cfg's version): its content's
 * SHA-256 in hex into OUT (LEN >= DR_SHA256_HEX). A file hashed lately in this process (by
 * dr_sha256_file, dr_cache_lookup or this) and unchanged since (same device, inode, size,
 * modification and change times) is not read again. 0, or -1 with ERR. */
int dr_cache_version(const char *path, char *out, size_t len, char *err, size_t errlen);

/* True for 64 lowercase hex digits. */
bool dr_sha256_hex_valid(const char *hex);

/* The extension of PATH's file name (".blend"), "" if none or longer than DR_CACHE_EXT_MAX - 1
 * or not made of letters and digits. Returns a pointer into PATH or to "". */
const char *dr_cache_ext(const char *path);

/* Is the entry for HEX (with extension EXT) there, of SIZE bytes, and does its content hash to
 * HEX? 1 with its path in PATH (it is touched and pinned), 0 if not (an entry whose content does
 * not match is removed, with a warning), -1 with ERR for a bad key or a path too long. */
int dr_cache_lookup(dr_cache *c, const char *hex, const char *ext, uint64_t size, char *path,
                    size_t len, char *err, size_t errlen);

/* Start writing the entry for HEX/EXT, SIZE bytes, to a temporary name; space is made first by
 * eviction. 0, or -1 with ERR. */
int dr_cache_begin(dr_cache *c, const char *hex, const char *ext, uint64_t size, dr_cache_wr *w,
                   char *err, size_t errlen);

/* Append LEN bytes. 0, or -1 with ERR (more than the announced size, or a write error). */
int dr_cache_append(dr_cache_wr *w, const void *buf, size_t len, char *err, size_t errlen);

/* Read LEN bytes at OFF of what was written so far (a node forwards chunks it received).
 * 0, or -1 with ERR. */
int dr_cache_read_at(const dr_cache_wr *w, uint64_t off, void *buf, size_t len, char *err,
                     size_t errlen);

/* Finish: the size and the hash must match, then the temporary file is renamed into place,
 * pinned, and its path put in PATH. 0, or -1 with ERR (the temporary file is removed). W is
 * finished either way. */
int dr_cache_commit(dr_cache_wr *w, char *path, size_t len, char *err, size_t errlen);

/* Give up on W: remove its temporary file. Safe on a finished W. */
void dr_cache_abort(dr_cache_wr *w);

/* Make room for INCOMING more bytes: remove unpinned entries, least recently used first, until
 * the cache fits its bound (or nothing more can go). Returns the number removed, or -1 with ERR. */
int dr_cache_evict(dr_cache *c, uint64_t incoming, char *err, size_t errlen);

/* Pure: which of E[0..N) to remove so that their total plus INCOMING fits MAX: oldest unpinned
 * first, only as many as needed. Their indices go to VICTIMS (N of room), in removal order.
 * Returns how many. MAX 0 = unbounded (none). */
size_t dr_cache_plan_evict(const dr_cache_entry *e, size_t n, uint64_t max, uint64_t incoming,
                           size_t *victims);

#endif
