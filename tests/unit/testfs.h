/* File-system helper shared by the unit tests: remove a scratch directory tree. */
#ifndef DR_TESTFS_H
#define DR_TESTFS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int testfs_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Remove TOP and everything below it (symlinks are removed, not followed). 0 or -1. */
static inline int testfs_rm_tree(const char *top)
{
	return nftw(top, testfs_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
