/* The scene's external files: what a node's Blender found (parsed), what is fatal, and the
 * self-contained (packed) copy of a scene for staging. */
#ifndef DR_ASSETS_H
#define DR_ASSETS_H

#include "dr_util.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * A warm Blender started with the setting "assets": true lists the scene's external files in its
 * "ready" reply (see dr_blender.h): images (and sequences, movies, UDIM tiles), linked libraries,
 * fonts, sounds, movie clips, volumes, Alembic/USD and mesh caches, sequencer strips, point
 * caches and fluid caches on disk, plus whatever bpy.utils.blend_paths() names beyond those. Each
 * entry: {"kind": "image", "name": "checker.png", "path": "//tex/checker.png",
 *         "abs": "/scenes/tex/checker.png", "exists": false, "packed": false}.
 * dr_assets_parse reads that list, dr_assets_judge decides; neither does any I/O.
 */

typedef struct dr_asset {
	char kind[32];  /* image, image_sequence, movie, udim, library, font, sound, movieclip,
	                 * volume, cache, strip, point_cache, fluid_cache, text, other */
	char name[256]; /* the datablock that uses it ("" = not known) */
	char *path;     /* as the .blend says ("//" = relative to it) */
	char *abs;      /* where the node looked */
	bool exists;    /* there on the node (a packed file always is) */
	bool packed;    /* stored inside the .blend */
} dr_asset;

typedef struct dr_assets {
	dr_asset *v;
	size_t n, cap;
	bool truncated; /* Blender listed only the first entries */
} dr_assets;

/* Parse the JSON array TEXT into A (emptied first). 0, or -1 with ERR (A left empty). */
int dr_assets_parse(const char *text, dr_assets *a, char *err, size_t errlen);

void dr_assets_free(dr_assets *a);

/* How an asset counts. */
enum dr_asset_verdict {
	DR_ASSET_FINE = 0,   /* packed, stored inside the .blend, or there by a relative path */
	DR_ASSET_MISSING,    /* not there: the render would be wrong (fatal unless allowed) */
	DR_ASSET_RESIMULATE, /* a baked cache on disk that is not there: Blender simulates again on
	                      * each node, which may differ between nodes (a warning) */
	DR_ASSET_ABSOLUTE,   /* there, by an absolute path another host may not have (a warning) */
};

/* The verdict on one asset (pure). */
enum dr_asset_verdict dr_asset_verdict(const dr_asset *x);

/* True when PATH is absolute on some system: "/x", "C:\x", "C:/x", "\\server\x" (not "//x",
 * which Blender means relative to the .blend). */
bool dr_asset_path_absolute(const char *path);

typedef struct dr_assets_summary {
	size_t missing;    /* DR_ASSET_MISSING entries */
	size_t resimulate; /* DR_ASSET_RESIMULATE entries */
	size_t absolute;   /* DR_ASSET_ABSOLUTE entries */
	bool fatal;        /* missing > 0 and not ALLOW_MISSING */
} dr_assets_summary;

/* Judge A as seen on HOST. FATAL (FATALLEN bytes) gets, when the render must not start, the
 * message "the scene needs N files that are missing on HOST ...", then one line per file
 * ("  image "checker.png": //tex/checker.png (not found at /x/tex/checker.png)"), as many as fit
 * with "  ... and K more"; WARN gets the warnings (absolute paths, caches that will be
 * simulated again, missing files rendered without under ALLOW_MISSING), one per line; either
 * is "" when there is nothing to say. Returns the counts. */
dr_assets_summary dr_assets_judge(const dr_assets *a, const char *host, bool allow_missing,
                                  char *fatal, size_t fatallen, char *warn, size_t warnlen);

/* True when TEXT is dr_assets_judge's FATAL message (e.g. a job's load error): a scene's missing
 * files, not a Blender that could not start. */
bool dr_assets_missing_text(const char *text);

/*
 * The packed copy for staging (acts: runs Blender once on SCENE, on this host):
 *
 *   blender -b SCENE --disable-autoexec --python DRIVER -- --drender-pack '{"output": TMP}'
 *
 * packs linked libraries (bpy.ops.file.pack_libraries) and every file Blender can pack
 * (bpy.ops.file.pack_all: images, fonts, sounds, volumes) into a copy saved at OUT's temporary
 * name, then renamed to OUT once it is there and starts like a .blend; the original is never
 * changed. What Blender cannot pack (movie clips, movies and image sequences, sequencer strips,
 * Alembic/USD caches, point and fluid caches on disk) fails the copy, with ERR naming each: a
 * copy without them would render differently elsewhere, quietly. Returns 0, or -1 with ERR
 * (nothing left at OUT). BLENDER: path, or a name looked up in PATH. The scene's own Python never
 * runs (--disable-autoexec): packing needs none. Blocks while Blender works (seconds).
 */
/* Whether the packed copy at OUT is still what packing the scene now would give: every file that
 * went into it has the size and modification time it had then (dr_assets_pack lists them in
 * "OUT.files"). False when that list is missing or unreadable: pack again. */
bool dr_assets_pack_fresh(const char *out);

int dr_assets_pack(const char *blender, const char *scene, const char *out, char *err,
                   size_t errlen);

#endif
