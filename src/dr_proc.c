/* Child processes: spawn without a shell, watch them exit, keep their output's tail, kill the
 * group. */
#include "dr_proc.h"

#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ECHO_SIZE 512 /* longest line echoed as one */
#define SLICE_MS  200 /* poll slice without a pidfd, to notice an exit */
#define EXIT_MS   20  /* the same while waiting for an exit on purpose */
#define FD_MAX    8   /* highest child fd a configuration may name */
#define HIGH_FD   10  /* where the child parks descriptors while it remaps them */

struct dr_proc {
	char *what;
	char *echo_tag;
	int cmd_fd, reply_fd; /* the child's numbers, -1 = none */
	bool has_cpus;
	cpu_set_t cpus;

	/* the current child, if any */
	pid_t pid;
	int pidfd; /* -1 without pidfd_open */
	int out;   /* read end of its stdout+stderr */
	int cmd;   /* write end of the command pipe */
	int reply; /* read end of the reply pipe (closed at EOF) */

	/* last DR_PROC_TAIL_SIZE bytes of output, and a partial line for the echo */
	char tail[DR_PROC_TAIL_SIZE];
	size_t tail_pos;
	bool tail_full;
	char echo[ECHO_SIZE];
	size_t echo_len;
};

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* ---- output tail and echo ---- */

static void echo_flush(dr_proc *p)
{
	if (p->echo_len == 0)
		return;
	fprintf(stderr, "[%s %ld] %.*s\n", p->echo_tag, (long)p->pid, (int)p->echo_len, p->echo);
	p->echo_len = 0;
}

static void take_output(dr_proc *p, const char *data, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p->tail[p->tail_pos++] = data[i];
		if (p->tail_pos == DR_PROC_TAIL_SIZE) {
			p->tail_pos = 0;
			p->tail_full = true;
		}
		if (!p->echo_tag)
			continue;
		if (data[i] == '\n') {
			if (p->echo_len == 0)
				p->echo[p->echo_len++] = ' ';
			echo_flush(p);
		} else {
			if (p->echo_len == ECHO_SIZE)
				echo_flush(p);
			p->echo[p->echo_len++] = data[i];
		}
	}
}

void dr_proc_drain(dr_proc *p)
{
	char buf[4096];
	ssize_t n;

	while (p && p->out >= 0) {
		n = read(p->out, buf, sizeof(buf));
		if (n > 0) {
			take_output(p, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		echo_flush(p); /* EOF (or worse): the output is over */
		close_fd(&p->out);
	}
}

size_t dr_proc_tail(const dr_proc *p, char *buf, size_t len)
{
	size_t n = 0, have, skip;

	if (!buf || len == 0)
		return 0;
	have = p->tail_full ? DR_PROC_TAIL_SIZE : p->tail_pos;
	skip = have >= len ? have - (len - 1) : 0; /* keep the newest bytes */
	for (size_t i = skip; i < have; i++) {
		size_t at = p->tail_full ? (p->tail_pos + i) % DR_PROC_TAIL_SIZE : i;
		buf[n++] = p->tail[at];
	}
	buf[n] = '\0';
	return n;
}

/* ---- spawning ---- */

enum { STAGE_FDS = 1, STAGE_DEVNULL, STAGE_PGID, STAGE_PDEATH, STAGE_AFFINITY, STAGE_EXEC };

/* In the child: report STAGE and errno through FD and exit. Only async-signal-safe calls. */
static void child_fail(int fd, int stage)
{
	int msg[2] = {stage, errno};

	if (write(fd, msg, sizeof(msg)) < 0) {
		/* nothing more to do */
	}
	_exit(127);
}

/* Move FD out of the way of the child's fixed numbers (in the child). */
static int child_high(int fd, int errfd, bool cloexec)
{
	int n = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, HIGH_FD);

	if (n < 0)
		child_fail(errfd, STAGE_FDS);
	return n;
}

static void stage_message(const dr_proc *p, int stage, char *buf, size_t len)
{
	switch (stage) {
	case STAGE_DEVNULL:
		snprintf(buf, len, "cannot open /dev/null");
		break;
	case STAGE_PGID:
		snprintf(buf, len, "cannot create a process group");
		break;
	case STAGE_PDEATH:
		snprintf(buf, len, "cannot tie %s's life to ours", p->what);
		break;
	case STAGE_AFFINITY:
		snprintf(buf, len, "cannot set CPU affinity");
		break;
	case STAGE_EXEC:
		snprintf(buf, len, "cannot execute");
		break;
	default:
		snprintf(buf, len, "cannot set up file descriptors");
		break;
	}
}

/* The child, between fork and exec: only async-signal-safe calls, failures reported on ERRFD. */
static void child_main(const dr_proc *p, const char *exe, char *const argv[], pid_t parent,
                       int errfd, int outw, int cmdr, int replyw, int max_fd)
{
	struct sigaction sa;
	sigset_t none;
	int devnull, top = 2;

	/* own process group, so that a kill reaches everything the child starts */
	if (setpgid(0, 0) < 0)
		child_fail(errfd, STAGE_PGID);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(errfd, STAGE_PDEATH);
	if (getppid() != parent)
		_exit(127); /* the parent died before PDEATHSIG was armed */

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* fails harmlessly for SIGKILL, SIGSTOP, ... */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0)
		child_fail(errfd, STAGE_DEVNULL);
	errfd = child_high(errfd, errfd, true);
	devnull = child_high(devnull, errfd, false);
	outw = child_high(outw, errfd, false);
	if (cmdr >= 0)
		cmdr = child_high(cmdr, errfd, false);
	if (replyw >= 0)
		replyw = child_high(replyw, errfd, false);
	if (dup2(devnull, 0) < 0 || dup2(outw, 1) < 0 || dup2(outw, 2) < 0)
		child_fail(errfd, STAGE_FDS);
	if (cmdr >= 0 && dup2(cmdr, p->cmd_fd) < 0)
		child_fail(errfd, STAGE_FDS);
	if (replyw >= 0 && dup2(replyw, p->reply_fd) < 0)
		child_fail(errfd, STAGE_FDS);
	if (p->cmd_fd > top)
		top = p->cmd_fd;
	if (p->reply_fd > top)
		top = p->reply_fd;
	/* the report pipe goes just above the child's numbers; exec closes it */
	if (dup3(errfd, top + 1, O_CLOEXEC) < 0)
		child_fail(errfd, STAGE_FDS);
	errfd = top + 1;
	for (int fd = 3; fd < errfd; fd++)
		if (fd != p->cmd_fd && fd != p->reply_fd)
			close(fd);
#ifdef SYS_close_range
	if (syscall(SYS_close_range, errfd + 1, ~0U, 0) == 0)
		max_fd = 0;
#endif
	for (int fd = errfd + 1; fd < max_fd; fd++)
		close(fd);
	if (p->has_cpus && sched_setaffinity(0, sizeof(p->cpus), &p->cpus) < 0)
		child_fail(errfd, STAGE_AFFINITY);
	execv(exe, argv);
	child_fail(errfd, STAGE_EXEC);
}

static int make_pipe(const dr_proc *p, int fds[2], char *err, size_t errlen)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return dr_seterr(err, errlen, "cannot create a pipe for %s: %s", p->what,
		                 strerror(errno));
	return 0;
}

int dr_proc_spawn(dr_proc *p, const char *exe, char *const argv[], char *err, size_t errlen)
{
	int outp[2] = {-1, -1}, cmdp[2] = {-1, -1}, replyp[2] = {-1, -1}, errp[2] = {-1, -1};
	struct rlimit rl;
	int max_fd = 65536, report[2];
	pid_t parent = getpid(), pid;
	ssize_t n;
	int rc = -1;

	if (!p || !exe || !argv || !argv[0])
		return dr_seterr(err, errlen, "internal error: bad spawn request");
	if (p->pid > 0)
		return dr_seterr(err, errlen, "internal error: %s (pid %ld) is still there",
		                 p->what, (long)p->pid);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)max_fd)
		max_fd = (int)rl.rlim_cur; /* for closing fds in the child without close_range */
	if (make_pipe(p, outp, err, errlen) < 0 || make_pipe(p, errp, err, errlen) < 0)
		goto out;
	if (p->cmd_fd >= 0 && make_pipe(p, cmdp, err, errlen) < 0)
		goto out;
	if (p->reply_fd >= 0 && make_pipe(p, replyp, err, errlen) < 0)
		goto out;

	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		dr_seterr(err, errlen, "cannot start %s: fork: %s", p->what, strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_main(p, exe, argv, parent, errp[1], outp[1], cmdp[0], replyp[1], max_fd);

	setpgid(pid, pid); /* also from here, so that kill(-pid) works at once; races are fine */
	close_fd(&errp[1]);
	do
		n = read(errp[0], report, sizeof(report));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(report)) {
		char stage[128];
		int status;

		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		stage_message(p, report[0], stage, sizeof(stage));
		dr_seterr(err, errlen, "cannot start %s '%s': %s: %s", p->what, exe, stage,
		          strerror(report[1]));
		goto out;
	}

	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	p->pid = pid;
#ifdef SYS_pidfd_open
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* readable at exit; close-on-exec */
#else
	p->pidfd = -1;
#endif
	p->out = outp[0];
	outp[0] = -1;
	p->cmd = cmdp[1];
	cmdp[1] = -1;
	if (replyp[0] >= 0)
		fcntl(replyp[0], F_SETFL, O_NONBLOCK);
	p->reply = replyp[0];
	replyp[0] = -1;
	p->tail_pos = 0;
	p->tail_full = false;
	p->echo_len = 0;
	rc = 0;
out:
	close_fd(&outp[0]);
	close_fd(&outp[1]);
	close_fd(&cmdp[0]);
	close_fd(&cmdp[1]);
	close_fd(&replyp[0]);
	close_fd(&replyp[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	return rc;
}

/* ---- watching and ending ---- */

pid_t dr_proc_pid(const dr_proc *p)
{
	return p ? p->pid : 0;
}

double dr_proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p, *tok, *save = NULL, *end;
	unsigned long long ticks = 0;
	long hz = sysconf(_SC_CLK_TCK);
	int field = 2; /* fields after "(comm)": 3 state ... 14 utime, 15 stime */
	ssize_t n;
	int fd;

	if (pid <= 0 || hz <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "pid (comm) state ..." : comm may hold spaces and ')', so start after the last ')' */
	if (!(p = strrchr(buf, ')')))
		return -1;
	for (tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (++field < 14)
			continue;
		errno = 0;
		ticks += strtoull(tok, &end, 10);
		if (errno || end == tok || *end)
			return -1;
		if (field == 15)
			return (double)ticks / (double)hz;
	}
	return -1;
}

bool dr_proc_exited(const dr_proc *p)
{
	siginfo_t si;

	if (!p || p->pid <= 0)
		return true;
	memset(&si, 0, sizeof(si));
	while (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		if (errno != EINTR)
			return true; /* ECHILD: someone else reaped it */
	}
	return si.si_pid == p->pid;
}

int dr_proc_poll(dr_proc *p, int ms)
{
	struct pollfd pfd[3];
	int nfds = 0;

	if (p && p->pid > 0) {
		if (p->out >= 0)
			pfd[nfds++] = (struct pollfd){.fd = p->out, .events = POLLIN};
		if (p->reply >= 0)
			pfd[nfds++] = (struct pollfd){.fd = p->reply, .events = POLLIN};
		if (p->pidfd >= 0)
			pfd[nfds++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
		else if (ms > SLICE_MS)
			ms = SLICE_MS; /* no pidfd: look at the child now and then */
	}
	if (poll(pfd, (nfds_t)nfds, ms < 0 ? 0 : ms) < 0)
		return -1;
	if (p)
		dr_proc_drain(p);
	return 0;
}

bool dr_proc_wait_exit(dr_proc *p, int ms)
{
	double deadline = dr_now() + ms / 1000.0;

	while (p->pid > 0 && !dr_proc_exited(p)) {
		struct pollfd pfd[2];
		int nfds = 0, left = (int)((deadline - dr_now()) * 1000.0);

		if (left <= 0)
			return false;
		if (p->out >= 0)
			pfd[nfds++] = (struct pollfd){.fd = p->out, .events = POLLIN};
		if (p->pidfd >= 0)
			pfd[nfds++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
		poll(pfd, (nfds_t)nfds, p->pidfd >= 0 ? left : (left < EXIT_MS ? left : EXIT_MS));
		dr_proc_drain(p);
	}
	return true;
}

int dr_proc_kill(dr_proc *p)
{
	int status = -1;

	if (!p || p->pid <= 0)
		return -1;
	kill(-p->pid, SIGKILL); /* the group's id stays ours until the reap below */
	kill(p->pid, SIGKILL);
	while (waitpid(p->pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = -1;
			break;
		}
	}
	dr_proc_drain(p);
	echo_flush(p);
	close_fd(&p->out);
	close_fd(&p->cmd);
	close_fd(&p->reply);
	close_fd(&p->pidfd);
	p->pid = 0;
	return status;
}

void dr_proc_describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

/* ---- the command and reply pipes ---- */

int dr_proc_write(dr_proc *p, const char *data, size_t len, char *err, size_t errlen)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;
	int rc = 0, saved = 0;

	if (!p || p->cmd < 0)
		return dr_seterr(err, errlen, "%s", strerror(EPIPE));
	/* SIGPIPE is blocked around the write and a SIGPIPE that it raised is taken back, so that
	 * a caller needs no handler and a SIGPIPE pending from elsewhere stays pending. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	while (len > 0) {
		ssize_t n = write(p->cmd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -1;
			saved = errno;
			break;
		}
		data += n;
		len -= (size_t)n;
	}
	if (rc < 0 && saved == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0)
		dr_seterr(err, errlen, "%s", strerror(saved));
	return rc;
}

void dr_proc_close_cmd(dr_proc *p)
{
	if (p)
		close_fd(&p->cmd);
}

ssize_t dr_proc_read_reply(dr_proc *p, char *buf, size_t len)
{
	ssize_t n;

	if (!p || p->reply < 0) {
		errno = EBADF;
		return -1;
	}
	do
		n = read(p->reply, buf, len);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		close_fd(&p->reply);
	return n;
}

bool dr_proc_reply_open(const dr_proc *p)
{
	return p && p->reply >= 0;
}

/* ---- life cycle ---- */

dr_proc *dr_proc_create(const dr_proc_cfg *cfg, char *err, size_t errlen)
{
	dr_proc *p = NULL;

	if (!cfg || !cfg->what ||
	    (cfg->cmd_fd != -1 && (cfg->cmd_fd < 3 || cfg->cmd_fd > FD_MAX)) ||
	    (cfg->reply_fd != -1 && (cfg->reply_fd < 3 || cfg->reply_fd > FD_MAX)) ||
	    (cfg->cmd_fd >= 0 && cfg->cmd_fd == cfg->reply_fd)) {
		dr_seterr(err, errlen, "internal error: bad process configuration");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto oom;
	p->pidfd = p->out = p->cmd = p->reply = -1;
	p->cmd_fd = cfg->cmd_fd;
	p->reply_fd = cfg->reply_fd;
	p->what = strdup(cfg->what);
	if (!p->what)
		goto oom;
	if (cfg->echo_tag && !(p->echo_tag = strdup(cfg->echo_tag)))
		goto oom;
	if (cfg->cpus) {
		p->has_cpus = true;
		p->cpus = *cfg->cpus;
	}
	return p;
oom:
	dr_seterr(err, errlen, "out of memory");
	dr_proc_destroy(p);
	return NULL;
}

void dr_proc_destroy(dr_proc *p)
{
	if (!p)
		return;
	dr_proc_kill(p);
	free(p->what);
	free(p->echo_tag);
	free(p);
}
