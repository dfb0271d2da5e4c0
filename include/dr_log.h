/* Logging: rank-aware, levelled messages on stderr; the only process-wide mutable settings. */
#ifndef DR_LOG_H
#define DR_LOG_H

enum dr_log_level { DR_LOG_ERROR = 0, DR_LOG_WARN, DR_LOG_INFO, DR_LOG_DEBUG };

/* RANK < 0 means "not started under MPI yet": messages carry no rank. LEVEL is the most verbose
 * level printed. */
void dr_log_init(int rank, int level);

/* File descriptor of a terminal showing a live progress line that must be cleared before a log
 * line is printed, or -1. */
void dr_log_set_tty(int fd);

int dr_log_level(void);

void dr_log(enum dr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dr_error(...) dr_log(DR_LOG_ERROR, __VA_ARGS__)
#define dr_warn(...)  dr_log(DR_LOG_WARN, __VA_ARGS__)
#define dr_info(...)  dr_log(DR_LOG_INFO, __VA_ARGS__)
#define dr_debug(...) dr_log(DR_LOG_DEBUG, __VA_ARGS__)

#endif
