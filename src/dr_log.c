/* Logging: rank-aware, levelled messages on stderr; the only process-wide mutable settings. */
#include "dr_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int log_rank = -1;
static int log_level = DR_LOG_INFO;
static int log_tty = -1;

void dr_log_init(int rank, int level)
{
	log_rank = rank;
	log_level = level;
}

void dr_log_set_tty(int fd)
{
	log_tty = fd;
}

int dr_log_level(void)
{
	return log_level;
}

void dr_log(enum dr_log_level level, const char *fmt, ...)
{
	static const char *const tags[] = {"error: ", "warning: ", "", "debug: "};
	char msg[2048];
	va_list ap;

	if ((int)level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap); /* a long message is cut, never overflows */
	va_end(ap);
	if (log_tty >= 0) {
		ssize_t w = write(log_tty, "\r\033[K", 4);
		(void)w;
	}
	if (log_rank > 0)
		fprintf(stderr, "drender[%d]: %s%s\n", log_rank, tags[level], msg);
	else
		fprintf(stderr, "drender: %s%s\n", tags[level], msg);
	fflush(stderr);
}
