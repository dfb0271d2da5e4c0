/* What rank 0 shows of its jobs: the progress line (terminal or log), each job's status JSON and
 * per-frame cells for the job table, and a job's report. */
#ifndef DR_OVIEW_H
#define DR_OVIEW_H

#include "dr_ojob.h"

/* The progress line of J into BUF. */
void dr_oview_line(const dr_orch *r, const dr_ojob *j, char *buf, size_t len);

/* Redraw the progress display (FORCE: now, else at most twice a second; without a terminal a log
 * line every 30 s). */
void dr_oview_draw(dr_orch *r, bool force);

/* The log line of FRAME of J done by SLOT in SEC seconds (NOTE after the time). */
void dr_oview_done(dr_orch *r, const dr_ojob *j, int slot, int frame, double sec, const char *note);

/* J's status fields as a cJSON object (see dr_jobs_publish_json), or NULL on OOM. */
cJSON *dr_oview_status(const dr_orch *r, const dr_ojob *j);

/* Publish the frames of J that changed since the last publish to TABLE (all the first time). */
void dr_oview_publish_frames(dr_orch *r, dr_ojob *j, dr_jobs *table);

/* Fill a report for job J. */
void dr_oview_report(const dr_orch *r, const dr_ojob *j, dr_report *rep, int exit_code,
                     const char *status, const char *message);

#endif
