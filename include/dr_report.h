/* Run report: the end-of-run summary for people and the --report JSON for programs. */
#ifndef DR_REPORT_H
#define DR_REPORT_H

#include "dr_frames.h"
#include "dr_outpath.h"
#include "dr_sched.h"

#include <stdbool.h>
#include <stdio.h>

/* The exit code tells the truth (DESIGN.md); the report carries it too. */
enum {
	DR_EXIT_ALL_DONE = 0,       /* every requested frame is there */
	DR_EXIT_FRAMES_FAILED = 1,  /* some frames failed (listed) */
	DR_EXIT_USAGE = 2,          /* bad usage or input, nothing rendered */
	DR_EXIT_RUNTIME = 3,        /* runtime failure (also: every render node was lost) */
	DR_EXIT_TOO_FEW_NODES = 75, /* a service below --min-nodes: restart it at full size */
	DR_EXIT_INTERRUPTED = 130
};

#define DR_LOST_FRAMES_MAX 16 /* frames of a lost node listed in the report */

typedef struct dr_report_node {
	int rank;
	char host[256];
	int threads;
	char device[128];   /* the devices its Blender renders on, as it said ("" = not said) */
	double peak_mb;     /* its Blender's peak memory (MiB), 0 = unknown */
	bool lost;          /* declared lost during the run */
	double lost_at;     /* seconds after the run started */
	char lost_why[160]; /* what gave it away */
	int lost_frames[DR_LOST_FRAMES_MAX]; /* frames it held then (in flight first) */
	int nlost_frames;                    /* how many of them (may exceed the list) */
} dr_report_node;

/* A still split by sample ranges: the report's frames are its ranges; this says what became of
 * the still (JSON "still"). */
typedef struct dr_report_still {
	int frame;
	int ranges;
	const int *range_samples; /* per range (range order), 0 = not reported */
	double samples;           /* their sum */
	double samples_per_s;     /* over the ranges' wall time, 0 = unknown */
	char path[DR_PATH_MAX];   /* the merged image */
	const char *state;        /* "made", "failed", "not merged" */
	int merged_by;            /* rank, -1 = none */
	const char *merged_host;
	double merge_seconds; /* the merge on that node */
	double merge_wall;    /* from the last range to the still validated on rank 0 */
	const char *error;    /* why it was not made, or NULL */
} dr_report_still;

/* Staging (dr_stage) as the report shows it: per run, the bytes and seconds spent sending the
 * scene to render nodes. */
typedef struct dr_report_stage {
	bool ran;                 /* staging was on (not --stage never, more than one rank) */
	unsigned long long size;  /* the staged file's size */
	unsigned long long bytes; /* bytes delivered to nodes that needed the file */
	double seconds;           /* from the first offer to the last answer, packing included */
	int same, cached, staged, failed; /* nodes: had it at the path, in their cache, received
	                                   * it, could not get it */
} dr_report_stage;

/* One frame brought home from a node without rank 0's output directory (dr_collect). */
typedef struct dr_report_home {
	int frame;
	unsigned long long bytes;
	double seconds; /* from its first byte to its rename on rank 0's disk */
} dr_report_home;

/* One frame's timings as rank 0 saw them. */
typedef struct dr_report_times {
	double dispatch;    /* seconds its render node waited for the task */
	double finished_at; /* seconds after the start it was done */
} dr_report_times;

typedef struct dr_report {
	const char *scene;
	const dr_sched *sched;
	const dr_outpath *out;
	const dr_report_node *nodes; /* one per scheduler slot */
	int nslots;
	double wall; /* seconds */
	int exit_code;
	const char *status;           /* "done", "failed", "interrupted", "error" */
	const char *message;          /* why the run ended early, or NULL */
	const dr_report_times *times; /* per frame (frame order), or NULL */
	size_t times_stride;          /* bytes from one frame's times to the next (0: packed) */
	double rank0_cpu;             /* CPU seconds rank 0 used, < 0 = unknown */
	size_t clamped;               /* frame times from Blender that were out of range */
	bool has_still;               /* a still split: STILL says what became of it */
	dr_report_still still;
	dr_report_stage stage;      /* staging, if it ran */
	const dr_report_home *home; /* frames brought home, sorted by frame (NULL = none) */
	size_t nhome;
	unsigned long long home_bytes; /* their total bytes and seconds */
	double home_seconds;
	double home_max_turn; /* the longest rank 0's loop was held up receiving them (seconds) */
} dr_report;

/* A frame time S reported by a render node, made sane: not finite or negative becomes 0, more
 * than MAX (the time that can have passed) becomes MAX; *CLAMPED says whether it changed. */
double dr_report_clamp_seconds(double s, double max, bool *clamped);

/* Human summary: totals, per-rank table, failed frames with their last error. */
void dr_report_print(const dr_report *r, FILE *f);

/* Write the JSON report to PATH (through a temporary file and rename). 0, or -1 with ERR. */
int dr_report_write(const dr_report *r, const char *path, char *err, size_t errlen);

/* Check before anything renders that the JSON report can go to PATH: its directory exists and is
 * writable, and PATH is neither the scene SCENE (same file, whatever the name) nor the final path
 * of one of frames F of the job written through OUT. 0, or -1 with ERR naming what is wrong. */
int dr_report_check_path(const char *path, const char *scene, const dr_outpath *out,
                         const dr_frames *f, char *err, size_t errlen);

/* "1:02:03", "4:05", "12.3 s" */
void dr_fmt_duration(double s, char *buf, size_t len);

#endif
