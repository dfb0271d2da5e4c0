/* Process helpers shared by the unit tests: wait for a child to be killed, the orphan check, and
 * counting open file descriptors. */
#ifndef DR_TESTPROC_H
#define DR_TESTPROC_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline double testproc_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Wait up to SECONDS for PID (a child of ours, or an orphan handed to us as subreaper) to end,
 * and reap it: true if it was killed by SIGKILL. */
static inline bool testproc_killed(pid_t pid, double seconds)
{
	double end = testproc_now() + seconds;
	struct timespec pause = {0, 50 * 1000 * 1000};
	int st;

	if (pid <= 0)
		return false;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
		if (r < 0 || testproc_now() > end)
			return false;
		nanosleep(&pause, NULL);
	}
}

/* The orphan check: a helper process calls SPAWN(ARG), which starts a child and returns its pid
 * (0 on failure), then the helper exits without cleaning up. The child, handed to us as
 * subreaper, must then die by SIGKILL within SECONDS. Its pid goes to *CHILD. */
static inline bool testproc_orphan_killed(pid_t (*spawn)(void *), void *arg, double seconds,
                                          pid_t *child)
{
	int fds[2], st;
	pid_t helper, c = 0;
	bool dead;

	*child = 0;
	if (pipe(fds) < 0)
		return false;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	fflush(stdout);
	helper = fork();
	if (helper == 0) {
		c = spawn(arg);
		_exit(write(fds[1], &c, sizeof c) == (ssize_t)sizeof c ? 0 : 2);
	}
	close(fds[1]);
	if (helper < 0 || read(fds[0], &c, sizeof c) != (ssize_t)sizeof c)
		c = 0;
	close(fds[0]);
	if (helper > 0)
		waitpid(helper, &st, 0);
	dead = testproc_killed(c, seconds);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	*child = c;
	return dead;
}

/* How many file descriptors below 1024 are open. */
static inline int testproc_count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

#endif
