/* Output naming: expand Blender-style '#' padding into each frame's final and temporary path. */
#ifndef DR_OUTPATH_H
#define DR_OUTPATH_H

#include <stdbool.h>
#include <stddef.h>

#define DR_PATH_MAX 4096

/* Temporary files are named "<dir of final>/.drender-tmp-<tag>-<frame as 7 digits>": the marker
 * lets any later run find and remove leftovers, and the fixed 7-digit tail lets a one-shot Blender
 * write the name itself (its -o pattern is the same name with the digits replaced by '#######'). */
#define DR_TMP_MARKER ".drender-tmp-"
#define DR_TMP_DIGITS 7

typedef struct dr_outpath {
	char pattern[DR_PATH_MAX]; /* as given (or the default), "####" added if it had no '#';
	                            * every '#' run becomes the frame number, zero-padded to the
	                            * run's width (wider frames are printed in full) */
	char ext[16];              /* ".png" etc., appended unless the pattern already ends in it */
} dr_outpath;

/* Blender file format name (PNG, JPEG, OPEN_EXR, ...) -> extension with dot, or NULL if unknown.
 * Accepts any letter case. */
const char *dr_format_ext(const char *format);

/* Canonical upper-case Blender name for FORMAT (also accepts aliases: jpg, exr, tif, tga and
 * Blender's -F spellings TGA, RAWTGA, JP2, EXR, MULTILAYER), or NULL. Movie formats: NULL. */
const char *dr_format_canonical(const char *format);

/* The name Blender's command line (-F / --render-format) accepts for FORMAT, which differs from
 * the canonical (Python API) name for some: TARGA -> TGA, TARGA_RAW -> RAWTGA, JPEG2000 -> JP2,
 * OPEN_EXR -> EXR, OPEN_EXR_MULTILAYER -> MULTILAYER. NULL if unknown. */
const char *dr_format_blender_arg(const char *format);

/* Set up naming for PATTERN (NULL: "output/<scene basename without .blend>_####") and FORMAT.
 * A pattern without '#' gets "####" appended, as Blender does. Refused: an unknown or movie
 * format, an empty pattern, one starting with Blender's "//" (relative to the .blend), and one
 * whose paths would not fit in DR_PATH_MAX. Returns 0, or -1 with ERR and O untouched. */
int dr_outpath_init(dr_outpath *o, const char *pattern, const char *scene, const char *format,
                    char *err, size_t errlen);

/* Final path of FRAME. Returns 0, or -1 if FRAME < 0 or it does not fit in LEN (BUF then ""). */
int dr_outpath_frame(const dr_outpath *o, int frame, char *buf, size_t len);

/* Temporary path of FRAME for the writer identified by TAG (letters, digits, '-', '_', '.').
 * Returns 0, or -1 if TAG is empty or has other characters, FRAME is outside 0..9999999, or it
 * does not fit (BUF then ""). */
int dr_outpath_temp(const dr_outpath *o, int frame, const char *tag, char *buf, size_t len);

/* Directory part of the final path of FRAME ("." when the pattern has none, "/" for the root).
 * Returns 0, or -1 if it does not fit. */
int dr_outpath_dir(const dr_outpath *o, int frame, char *buf, size_t len);

/* True if NAME (a basename) is one of our temporary files: DR_TMP_MARKER, a valid tag, '-' and
 * DR_TMP_DIGITS digits, optionally followed by an extension (".png") in case Blender added one. */
bool dr_outpath_is_temp(const char *name);

#endif
