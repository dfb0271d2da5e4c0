/* Job table: the jobs a service knows, shared by the HTTP thread and the orchestrator (one mutex),
 * recorded in an SQLite database so that a restarted service lists past jobs and resumes
 * unfinished ones. */
#ifndef DR_JOBS_H
#define DR_JOBS_H

#include "dr_jobspec.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum dr_job_state {
	DR_JOB_QUEUED = 0,
	DR_JOB_RUNNING,
	DR_JOB_DONE,
	DR_JOB_FAILED,
	DR_JOB_CANCELLED,
} dr_job_state;

#define DR_JOB_ID_MAX 32

/* "queued", "running", "done", "failed", "cancelled" */
const char *dr_job_state_name(dr_job_state st);

typedef struct dr_jobs dr_jobs;

/* Metrics the orchestrator publishes (counters since start). */
#define DR_HIST_BUCKETS 12 /* upper bounds: 0.1 0.25 0.5 1 2.5 5 10 30 60 120 300 600 s, +Inf */
typedef struct dr_metrics {
	unsigned long long frames_done, frames_failed, frames_skipped, attempts_failed;
	/* render seconds of done frames: count per bucket, not cumulative; [DR_HIST_BUCKETS] is
	 * above 600 s */
	unsigned long long hist[DR_HIST_BUCKETS + 1];
	double seconds_sum;
	int nodes_busy, nodes_idle; /* among the live render nodes */
	int nodes_lost;             /* render nodes declared lost */
} dr_metrics;

/* How a table keeps its jobs. */
typedef struct dr_jobs_cfg {
	/* Directory of the database DIR/jobs.db (NULL: in memory only). One service per directory
	 * (DIR/jobs.lock names the holder). A DIR/jobs.journal of an older drender is imported on
	 * first start and renamed DIR/jobs.journal.migrated. */
	const char *dir;
	size_t max_queued; /* refuse new jobs while this many are queued (0: no limit) */
	/* Finished jobs are deleted (from memory at once, from the database) beyond the KEEP_JOBS
	 * most recently finished (0: no count limit) or KEEP_FOR seconds after they finished (0: no
	 * age limit). Their frames stay on disk. */
	size_t keep_jobs;
	double keep_for;
	size_t max_frames; /* refuse a job that takes the frames of unfinished jobs past this (429);
	                    * 0: no limit */
	long max_pages; /* tests: the database's size limit in pages, to play a full disk; 0: none
	                 */
} dr_jobs_cfg;

#define DR_JOBS_KEEP_JOBS 10000             /* --keep-jobs default */
#define DR_JOBS_KEEP_FOR  (7 * 24 * 3600.0) /* --keep-for default: 7 days */
#define DR_JOBS_LIST_MAX  1000              /* most jobs one GET /jobs page may ask for */
#define DR_JOBS_LIST_DEF  100               /* GET /jobs page size by default */

/* A table as CFG says. The database is read: finished jobs are listed as they ended, queued and
 * running ones are queued again (their frames on disk will be skipped); memory holds only the
 * unfinished ones. NULL with ERR on failure (a second service on DIR: the message names it). */
dr_jobs *dr_jobs_create_with(const dr_jobs_cfg *cfg, char *err, size_t errlen);

/* The same with the default eviction: {JOURNAL_DIR, MAX_QUEUED, DR_JOBS_KEEP_JOBS,
 * DR_JOBS_KEEP_FOR}. */
dr_jobs *dr_jobs_create(const char *journal_dir, size_t max_queued, char *err, size_t errlen);
void dr_jobs_destroy(dr_jobs *t);

/* ---- HTTP side ---- */

/* Queue SPEC (the table takes it over on success and fills an empty output pattern with
 * "<OUTPUT_ROOT>/<id>/<scene name>_####"). Writes the new id to ID.
 * The job is accepted only once it is recorded (one SQLite transaction: whole or not at all).
 * Returns DR_OK; DR_E_BUSY if the queue is full, in jobs or in frames (ERR names the limit);
 * DR_E_UNAVAILABLE if it cannot be recorded (disk full, I/O error: ERR says why); DR_E_NOMEM or
 * DR_E_INTERNAL with ERR otherwise. On failure nothing changes. */
dr_err dr_jobs_submit(dr_jobs *t, dr_jobspec *spec, const char *output_root, char *id, size_t idlen,
                      char *err, size_t errlen);

/* The job's status as a JSON object text (malloc'd), with *STATE set; NULL if the id is unknown.
 * The object has "jobId", "state", "submitted" and "priority", then whatever the orchestrator
 * last published for it (counts, progress, ETA, failed frames, nodes). */
char *dr_jobs_status(dr_jobs *t, const char *id, dr_job_state *state);

/* One page of jobs, newest first: at most LIMIT (1..DR_JOBS_LIST_MAX) submitted before the job
 * whose cursor is AFTER (0: from the newest), as {"jobs": [...], "next": CURSOR} text (malloc'd),
 * where CURSOR is a string to pass back as AFTER for the next page, or null on the last page.
 * Cursors stay valid when jobs are evicted. NULL on OOM or a database error. */
char *dr_jobs_list(dr_jobs *t, size_t limit, long long after);

/* Refuse (dr_jobs_submit DR_E_BUSY) a job that would take the frames of unfinished jobs past N;
 * 0 = no limit. */
void dr_jobs_set_max_frames(dr_jobs *t, size_t n);

/* A job was submitted or a cancel asked for: FN(CTX) is called from the caller's thread (the HTTP
 * server's), after the table's lock is released, so that the program that runs jobs wakes at once
 * instead of at its next poll (rank 0: dr_loop_wake). FN NULL: none. Safe from any thread. */
typedef void (*dr_jobs_notify_fn)(void *ctx);
void dr_jobs_set_notify(dr_jobs *t, dr_jobs_notify_fn fn, void *ctx);

/* Ask for a job to be cancelled. 0 done or requested; -1 unknown id; 1 already finished. */
int dr_jobs_cancel(dr_jobs *t, const char *id);

/* Path of job ID's video ("video": true) once it is made (encoded, probed and renamed into
 * place). 0; -1 unknown job; -2 the job asked for no video; -3 not made (yet). */
int dr_jobs_video(dr_jobs *t, const char *id, char *path, size_t pathlen);

/* Path and format of frame FRAME of job ID if it has been rendered. 0; -1 unknown job; -2 frame
 * not part of the job; -3 not rendered (yet). */
int dr_jobs_frame(dr_jobs *t, const char *id, int frame, char *path, size_t pathlen, char *format,
                  size_t formatlen);

/* Prometheus text exposition (malloc'd): drender_jobs{state=...}, drender_frames_total{outcome=
 * "done"|"failed"|"skipped"}, drender_frame_attempts_failed_total, drender_frame_render_seconds
 * histogram, drender_render_nodes{state="busy"|"idle"}. NULL on OOM. */
char *dr_jobs_metrics(dr_jobs *t);

/* ---- orchestrator side ---- */

/* The next queued job not yet taken (highest priority, then oldest): its id and a deep copy of
 * its spec. Returns 1 if one was taken, 0 if none, -1 on OOM. The job stays "queued" until the
 * orchestrator publishes another state. */
int dr_jobs_take(dr_jobs *t, char *id, size_t idlen, dr_jobspec *spec);

/* Has cancellation been asked for this job? */
bool dr_jobs_cancel_requested(dr_jobs *t, const char *id);

/* Publish a job's state and its status fields (a JSON object text whose members are merged into
 * GET /status/<id> answers; may be NULL: the last one stays). Finished states are recorded with
 * the status; a finished job ignores later publishes. A taken job is never taken again. */
void dr_jobs_publish(dr_jobs *t, const char *id, dr_job_state st, const char *status_json);

/* The same with the status as a cJSON object, which the table takes over (frees) in every case:
 * the orchestrator builds it and hands it over without printing and parsing it again. */
void dr_jobs_publish_json(dr_jobs *t, const char *id, dr_job_state st, struct cJSON *status);

/* ---- per-frame state (GET /jobs/<id>/frames) ---- */

/* One frame cell as the orchestrator publishes it. */
typedef struct dr_jobs_cell {
	size_t index;   /* the cell: the frame's place in the job's frame order */
	char state;     /* 'p' pending, 'r' running, 'c' running with a speculative copy, 'd' done,
	                 * 'f' failed, 's' skipped */
	int node;       /* rank of the current or last attempt, 0 = none */
	int attempts;   /* attempts started */
	double seconds; /* render seconds of the successful attempt, else 0 */
	double started; /* dr_now() when the running attempt started; 0 = not running */
	const char *error; /* the last error (copied), or NULL */
} dr_jobs_cell;

#define DR_JOBS_FRAMES_KEEP 16 /* finished jobs whose per-frame state stays in memory */

/* Publish the per-frame state of job ID: FRAMES (N frame numbers in cell order) on the first call
 * for the job (later calls pass NULL and the same N), then the NCELLS cells that changed, and
 * HOSTS ({"rank": "host"}, taken over and freed; NULL keeps the last). One version per call that
 * changes something. FINAL: the job has ended (its state stays in memory for the
 * DR_JOBS_FRAMES_KEEP most recently finished jobs, then goes). Out of memory loses the update
 * and the next call with FRAMES starts over; returns 0, or -1 when the table needs FRAMES again
 * (the caller publishes every cell once more). */
int dr_jobs_publish_frames(dr_jobs *t, const char *id, const int *frames, size_t n,
                           const dr_jobs_cell *cells, size_t ncells, struct cJSON *hosts,
                           bool final);

/* GET /jobs/<id>/frames?since=SINCE as JSON text (malloc'd): {"jobId", "version", "full",
 * "frames" (full only), "index" (changes only), "state", "node", "attempts", "seconds",
 * "runningFor", "errors", "hosts"}; full when SINCE is 0 or from another run. *RC: 1 text;
 * 0 nothing changed after SINCE (NULL); -1 no per-frame state for ID (NULL); -2 out of memory. */
char *dr_jobs_frames(dr_jobs *t, const char *id, unsigned long long since, int *rc);

/* Also the table's housekeeping (the orchestrator calls it every 0.25 s): finished states that
 * could not be recorded are tried again, and eviction runs (at most every 10 s). */
void dr_jobs_publish_metrics(dr_jobs *t, const dr_metrics *m);

#endif
