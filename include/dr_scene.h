/* Scene files: check that a path is a readable .blend before anything is started for it. */
#ifndef DR_SCENE_H
#define DR_SCENE_H

#include <stddef.h>

/* 0 if PATH is a readable regular file that starts like a .blend (plain, gzip or zstd);
 * -1 with a message naming the path and the problem. */
int dr_scene_check(const char *path, char *err, size_t errlen);

#endif
