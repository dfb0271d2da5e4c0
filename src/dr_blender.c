/* Blender supervision: spawn it without a shell, keep one warm over pipes or run one per frame. */
#include "dr_blender.h"

#include "dr_outpath.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "driver_py.h"

#define TAIL_SIZE      4096      /* bytes of Blender's output kept for error messages */
#define TAIL_LINES     6         /* lines of it quoted in an error */
#define ECHO_SIZE      512       /* longest line echoed as one when verbose */
#define REPLY_MAX      (1 << 20) /* longest reply line accepted from the driver */
#define CHILD_CMD_FD   3         /* where the warm driver finds its command pipe */
#define CHILD_REPLY_FD 4         /* ... and its reply pipe */
#define CHILD_ERR_FD   5         /* exec-failure report pipe, closed by exec */
#define EOF_GRACE_MS   2000      /* how long a Blender that closed its pipes may take to exit */
#define QUIT_GRACE_MS  3000      /* how long a warm Blender may take to quit */
#define SLICE_MS       200       /* poll slice without a pidfd to notice one-shot exits */
#define TMP_DIGITS     7         /* digits at the end of a temporary path (dr_outpath) */

struct dr_blender {
	/* configuration (owned copies) */
	char *exe;            /* resolved executable path */
	dr_render_cfg render; /* render.engine "" = the scene's */
	int threads;
	bool one_shot;
	bool allow_autoexec;
	bool verbose;
	bool has_cpus;
	cpu_set_t cpus;

	/* the current Blender process, if any */
	pid_t pid;
	int pidfd;    /* -1 without pidfd_open */
	int cmd_fd;   /* warm: write end of the command pipe */
	int reply_fd; /* warm: read end of the reply pipe */
	int out_fd;   /* read end of Blender's stdout+stderr */
	bool ready;   /* warm: "ready" seen */
	bool reply_eof;
	bool ready_pending; /* one-shot: READY not yet reported */
	struct timespec started;

	/* the frame in flight */
	bool busy;
	int frame;
	char *tmp_path; /* one-shot: where Blender writes */

	/* reply line buffer */
	char *rbuf;
	size_t rlen, rcap;

	/* last TAIL_SIZE bytes of output, and a partial line for the verbose echo */
	char tail[TAIL_SIZE];
	size_t tail_pos;
	bool tail_full;
	char echo[ECHO_SIZE];
	size_t echo_len;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap); /* a truncated message is still a message */
	va_end(ap);
}

/* Append formatted text at *POS in BUF (LEN bytes), truncating quietly; keeps BUF terminated. */
static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos = (size_t)n >= len - *pos ? len - 1 : *pos + (size_t)n;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - t0->tv_sec) + (double)(ts.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Find EXE: a name with a '/' is used as is, a bare name is looked up in PATH.
 * Returns a malloc'ed path or NULL with ERR. */
static char *resolve_exe(const char *exe, char *err, size_t errlen)
{
	const char *path, *p, *end;
	struct stat st;
	char buf[PATH_MAX];
	char *found = NULL;
	int n;

	if (!exe || !*exe) {
		set_err(err, errlen,
		        "Blender executable '' not found (set --blender or DRENDER_BLENDER)");
		return NULL;
	}
	if (strchr(exe, '/')) {
		if (access(exe, X_OK) == 0 && stat(exe, &st) == 0 && S_ISREG(st.st_mode))
			found = strdup(exe);
		else {
			set_err(err, errlen,
			        "Blender executable '%s' not found (set --blender or "
			        "DRENDER_BLENDER): %s",
			        exe,
			        access(exe, X_OK) == 0 ? "not a regular file" : strerror(errno));
			return NULL;
		}
	} else {
		path = getenv("PATH");
		if (!path)
			path = "/usr/local/bin:/usr/bin:/bin";
		for (p = path; !found; p = end + 1) {
			end = strchr(p, ':');
			if (!end)
				end = p + strlen(p);
			if (end == p)
				n = snprintf(buf, sizeof(buf), "./%s", exe);
			else
				n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - p), p, exe);
			if (n > 0 && (size_t)n < sizeof(buf) && access(buf, X_OK) == 0 &&
			    stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
				found = strdup(buf);
				if (!found)
					break;
			}
			if (!*end)
				break;
		}
		if (!found && errno != ENOMEM) {
			set_err(err, errlen,
			        "Blender executable '%s' not found (set --blender or "
			        "DRENDER_BLENDER)",
			        exe);
			return NULL;
		}
	}
	if (!found)
		set_err(err, errlen, "out of memory");
	return found;
}

/* ---- output tail and verbose echo ---- */

static void echo_flush(dr_blender *b)
{
	if (b->echo_len == 0)
		return;
	fprintf(stderr, "[blender %ld] %.*s\n", (long)b->pid, (int)b->echo_len, b->echo);
	b->echo_len = 0;
}

static void take_output(dr_blender *b, const char *data, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		b->tail[b->tail_pos++] = data[i];
		if (b->tail_pos == TAIL_SIZE) {
			b->tail_pos = 0;
			b->tail_full = true;
		}
		if (!b->verbose)
			continue;
		if (data[i] == '\n') {
			if (b->echo_len == 0)
				b->echo[b->echo_len++] = ' ';
			echo_flush(b);
		} else {
			if (b->echo_len == ECHO_SIZE)
				echo_flush(b);
			b->echo[b->echo_len++] = data[i];
		}
	}
}

/* Read whatever Blender has written to its output pipe, without blocking. Closes it at EOF. */
static void drain_output(dr_blender *b)
{
	char buf[4096];
	ssize_t n;

	while (b->out_fd >= 0) {
		n = read(b->out_fd, buf, sizeof(buf));
		if (n > 0) {
			take_output(b, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		echo_flush(b);
		close(b->out_fd);
		b->out_fd = -1;
	}
}

static void tail_reset(dr_blender *b)
{
	b->tail_pos = 0;
	b->tail_full = false;
	b->echo_len = 0;
}

/* The last line of Blender's output that starts with "Error:", if any, into LINE. */
static bool tail_error_line(const dr_blender *b, char *line, size_t len)
{
	char lin[TAIL_SIZE + 1];
	size_t n = 0;
	const char *p, *best = NULL;

	if (b->tail_full) {
		memcpy(lin, b->tail + b->tail_pos, TAIL_SIZE - b->tail_pos);
		n = TAIL_SIZE - b->tail_pos;
	}
	memcpy(lin + n, b->tail, b->tail_pos);
	n += b->tail_pos;
	lin[n] = '\0';
	for (p = lin; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, "Error:", 6) == 0)
			best = p;
	if (!best)
		return false;
	n = strcspn(best, "\r\n");
	snprintf(line, len, "%.*s", (int)n, best);
	return true;
}

/* Append the last few lines of Blender's output to MSG, as many as fit. */
static void append_tail(const dr_blender *b, char *msg, size_t len, size_t *pos)
{
	static const char head[] = "; Blender's last output:\n";
	char lin[TAIL_SIZE + 1];
	size_t n = 0, start, room;
	int lines = 0;

	if (b->tail_full) {
		memcpy(lin, b->tail + b->tail_pos, TAIL_SIZE - b->tail_pos);
		n = TAIL_SIZE - b->tail_pos;
	}
	memcpy(lin + n, b->tail, b->tail_pos);
	n += b->tail_pos;
	while (n > 0 && (lin[n - 1] == '\n' || lin[n - 1] == '\r' || lin[n - 1] == ' '))
		n--;
	lin[n] = '\0';
	if (n == 0 || *pos + sizeof(head) + 16 >= len)
		return;
	start = n;
	while (start > 0 && lines < TAIL_LINES) {
		size_t end = start;

		while (start > 0 && lin[start - 1] != '\n')
			start--;
		if (end > start)
			lines++;
		if (lines < TAIL_LINES && start > 0)
			start--; /* step over the newline before this line */
	}
	room = len - *pos - sizeof(head);
	if (n - start > room) {
		const char *nl;

		start = n - room;
		nl = memchr(lin + start, '\n', n - start);
		if (nl && (size_t)(nl + 1 - lin) < n)
			start = (size_t)(nl + 1 - lin); /* begin at a line */
	}
	while (start < n && lin[start] == '\n')
		start++;
	append(msg, len, pos, "%s%s", head, lin + start);
}

/* Format an int into BUF; false if it does not fit (it always does for the sizes used here). */
static bool format_int(char *buf, size_t len, int v)
{
	int n = snprintf(buf, len, "%d", v);

	return n > 0 && (size_t)n < len;
}

/* ---- spawning ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* In the child: report ERR through FD and exit. Only async-signal-safe calls. */
static void child_fail(int fd, int stage)
{
	int msg[2] = {stage, errno};

	if (write(fd, msg, sizeof(msg)) < 0) {
		/* nothing more to do */
	}
	_exit(127);
}

/* Move FD out of the way of 0..CHILD_ERR_FD (in the child). */
static int child_high(int fd, int errfd, bool cloexec)
{
	int n = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 10);

	if (n < 0)
		child_fail(errfd, 1);
	return n;
}

enum { STAGE_FDS = 1, STAGE_DEVNULL, STAGE_PGID, STAGE_PDEATH, STAGE_AFFINITY, STAGE_EXEC };

static const char *stage_name(int stage)
{
	switch (stage) {
	case STAGE_DEVNULL:
		return "cannot open /dev/null";
	case STAGE_PGID:
		return "cannot create a process group";
	case STAGE_PDEATH:
		return "cannot tie Blender's life to ours";
	case STAGE_AFFINITY:
		return "cannot set CPU affinity";
	case STAGE_EXEC:
		return "cannot execute";
	default:
		return "cannot set up file descriptors";
	}
}

static void child_main(const dr_blender *b, char *const argv[], pid_t parent, int errfd, int outw,
                       int cmdr, int replyw, int max_fd)
{
	struct sigaction sa;
	sigset_t none;
	int devnull;

	/* own process group, so that a kill reaches everything Blender starts */
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
	if (cmdr >= 0) {
		cmdr = child_high(cmdr, errfd, false);
		replyw = child_high(replyw, errfd, false);
	}
	if (dup2(devnull, 0) < 0 || dup2(outw, 1) < 0 || dup2(outw, 2) < 0)
		child_fail(errfd, STAGE_FDS);
	if (cmdr >= 0 && (dup2(cmdr, CHILD_CMD_FD) < 0 || dup2(replyw, CHILD_REPLY_FD) < 0))
		child_fail(errfd, STAGE_FDS);
	if (dup3(errfd, CHILD_ERR_FD, O_CLOEXEC) < 0)
		child_fail(errfd, STAGE_FDS);
	errfd = CHILD_ERR_FD;
#ifdef SYS_close_range
	if (syscall(SYS_close_range, CHILD_ERR_FD + 1, ~0U, 0) == 0)
		max_fd = 0;
#endif
	for (int fd = CHILD_ERR_FD + 1; fd < max_fd; fd++)
		close(fd);
	if (cmdr < 0) {
		close(CHILD_CMD_FD);
		close(CHILD_REPLY_FD);
	}
	if (b->has_cpus && sched_setaffinity(0, sizeof(b->cpus), &b->cpus) < 0)
		child_fail(errfd, STAGE_AFFINITY);
	execv(b->exe, argv);
	child_fail(errfd, STAGE_EXEC);
}

static int make_pipe(int fds[2], char *err, size_t errlen)
{
	if (pipe2(fds, O_CLOEXEC) < 0) {
		set_err(err, errlen, "cannot create a pipe for Blender: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Start Blender with ARGV; warm mode also gets the protocol pipes. Returns 0 or -1 with ERR. */
static int spawn(dr_blender *b, char *const argv[], bool warm, char *err, size_t errlen)
{
	int outp[2] = {-1, -1}, cmdp[2] = {-1, -1}, replyp[2] = {-1, -1}, errp[2] = {-1, -1};
	struct rlimit rl;
	int max_fd = 65536, report[2];
	pid_t parent = getpid(), pid;
	ssize_t n;
	int rc = -1;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)max_fd)
		max_fd = (int)rl.rlim_cur; /* for closing fds in the child without close_range */
	if (make_pipe(outp, err, errlen) < 0 || make_pipe(errp, err, errlen) < 0)
		goto out;
	if (warm && (make_pipe(cmdp, err, errlen) < 0 || make_pipe(replyp, err, errlen) < 0))
		goto out;

	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		set_err(err, errlen, "cannot start Blender: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_main(b, argv, parent, errp[1], outp[1], cmdp[0], replyp[1], max_fd);

	setpgid(pid, pid); /* also from here, so that kill(-pid) works at once; races are fine */
	close_fd(&errp[1]);
	do
		n = read(errp[0], report, sizeof(report));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(report)) {
		int status;

		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		set_err(err, errlen, "cannot start Blender '%s': %s: %s", b->exe,
		        stage_name(report[0]), strerror(report[1]));
		goto out;
	}

	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	b->pid = pid;
#ifdef SYS_pidfd_open
	b->pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* readable at exit; close-on-exec */
#else
	b->pidfd = -1;
#endif
	b->out_fd = outp[0];
	outp[0] = -1;
	if (warm) {
		fcntl(replyp[0], F_SETFL, O_NONBLOCK);
		b->cmd_fd = cmdp[1];
		b->reply_fd = replyp[0];
		cmdp[1] = replyp[0] = -1;
	}
	b->ready = false;
	b->reply_eof = false;
	b->rlen = 0;
	tail_reset(b);
	clock_gettime(CLOCK_MONOTONIC, &b->started);
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

/* The start of every Blender command line: executable, scene, auto-exec policy, threads.
 * Returns how many of ARGV it filled. */
static int common_argv(const dr_blender *b, const char **argv, const char *threads)
{
	int n = 0;
	argv[n++] = b->exe;
	argv[n++] = "-b";
	argv[n++] = b->render.scene;
	if (!b->allow_autoexec)
		argv[n++] = "--disable-autoexec";
	argv[n++] = "-t";
	argv[n++] = threads;
	return n;
}

/* Build the warm command line and start Blender. */
static int spawn_warm(dr_blender *b, char *err, size_t errlen)
{
	char fds[32], threads[16];
	char *settings = NULL;
	cJSON *json = cJSON_CreateObject();
	const char *argv[16];
	int n = 0, rc = -1;

	if (!json ||
	    !(b->render.engine[0] ? cJSON_AddStringToObject(json, "engine", b->render.engine)
	                          : cJSON_AddNullToObject(json, "engine")) ||
	    !cJSON_AddNumberToObject(json, "samples", b->render.samples) ||
	    !cJSON_AddStringToObject(json, "format", b->render.format) ||
	    !cJSON_AddNumberToObject(json, "threads", b->threads) ||
	    !(settings = cJSON_PrintUnformatted(json))) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	n = snprintf(fds, sizeof(fds), "%d,%d", CHILD_CMD_FD, CHILD_REPLY_FD);
	if (n < 0 || (size_t)n >= sizeof(fds) ||
	    !format_int(threads, sizeof(threads), b->threads)) {
		set_err(err, errlen, "internal error: Blender arguments do not fit");
		goto out;
	}
	n = common_argv(b, argv, threads);
	argv[n++] = "--python-expr";
	argv[n++] = dr_driver_py;
	argv[n++] = "--";
	argv[n++] = "--drender-fds";
	argv[n++] = fds;
	argv[n++] = "--drender-settings";
	argv[n++] = settings;
	argv[n] = NULL;
	rc = spawn(b, (char *const *)argv, true, err, errlen);
out:
	cJSON_free(settings);
	cJSON_Delete(json);
	return rc;
}

/* Build the one-shot command line for FRAME into TMP and start Blender. */
static int spawn_one_shot(dr_blender *b, int frame, const char *tmp, char *err, size_t errlen)
{
	char threads[16], frame_s[16], expr[512];
	char *pattern = NULL;
	const char *argv[24];
	size_t len = strlen(tmp);
	int n = 0, rc = -1;

	for (size_t i = 0; i < TMP_DIGITS; i++) {
		if (len < TMP_DIGITS || tmp[len - 1 - i] < '0' || tmp[len - 1 - i] > '9') {
			set_err(err, errlen,
			        "temporary path '%s' does not end in %d digits (one-shot needs "
			        "them)",
			        tmp, TMP_DIGITS);
			return -1;
		}
	}
	pattern = strdup(tmp);
	if (!pattern) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	memset(pattern + len - TMP_DIGITS, '#', TMP_DIGITS);
	if (!format_int(threads, sizeof(threads), b->threads) ||
	    !format_int(frame_s, sizeof(frame_s), frame)) {
		set_err(err, errlen, "internal error: Blender arguments do not fit");
		goto out;
	}
	n = common_argv(b, argv, threads);
	argv[n++] = "-o";
	argv[n++] = pattern;
	argv[n++] = "-x";
	argv[n++] = "0";
	argv[n++] = "-F";
	argv[n++] = dr_format_blender_arg(
	        b->render.format); /* e.g. TARGA is "TGA" on the command line */
	if (b->render.engine[0]) {
		argv[n++] = "-E";
		argv[n++] = b->render.engine;
	}
	if (b->render.samples > 0) {
		int w = snprintf(expr, sizeof(expr),
		                 "import bpy\n"
		                 "s = bpy.context.scene\n"
		                 "if s.render.engine == 'CYCLES':\n"
		                 "    s.cycles.samples = %d\n"
		                 "    s.cycles.use_adaptive_sampling = False\n"
		                 "elif hasattr(s, 'eevee'):\n"
		                 "    s.eevee.taa_render_samples = %d\n",
		                 b->render.samples, b->render.samples);
		if (w < 0 || (size_t)w >= sizeof(expr)) {
			set_err(err, errlen, "internal error: samples expression too long");
			goto out;
		}
		argv[n++] = "--python-expr";
		argv[n++] = expr;
	}
	argv[n++] = "-f";
	argv[n++] = frame_s;
	argv[n] = NULL;
	rc = spawn(b, (char *const *)argv, false, err, errlen);
out:
	free(pattern);
	return rc;
}

/* ---- process end ---- */

/* Describe how STATUS ended a process, e.g. "was killed by signal 9 (Killed)". */
static void describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

/* True once the child has exited (not yet reaped). */
static bool child_exited(const dr_blender *b)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	while (waitid(P_PID, (id_t)b->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		if (errno != EINTR)
			return true; /* ECHILD: someone else reaped it */
	}
	return si.si_pid == b->pid;
}

/* Kill what is left of the process group, reap the child, close everything; returns the wait
 * status (or -1 if it could not be had). Keeps the output tail. */
static int finish(dr_blender *b)
{
	int status = -1;

	if (b->pid <= 0)
		return -1;
	kill(-b->pid, SIGKILL); /* the group's id stays ours until the reap below */
	kill(b->pid, SIGKILL);
	while (waitpid(b->pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = -1;
			break;
		}
	}
	drain_output(b);
	echo_flush(b);
	close_fd(&b->out_fd);
	close_fd(&b->cmd_fd);
	close_fd(&b->reply_fd);
	close_fd(&b->pidfd);
	b->pid = 0;
	b->ready = false;
	b->reply_eof = false;
	b->rlen = 0;
	return status;
}

/* Wait up to MS for the child to exit on its own, draining its output meanwhile. */
static void wait_exit(dr_blender *b, int ms)
{
	long long deadline = now_ms() + ms;

	while (b->pid > 0 && !child_exited(b)) {
		struct pollfd pfd[2];
		int nfds = 0;
		long long left = deadline - now_ms();

		if (left <= 0)
			return;
		if (b->out_fd >= 0)
			pfd[nfds++] = (struct pollfd){.fd = b->out_fd, .events = POLLIN};
		if (b->pidfd >= 0)
			pfd[nfds++] = (struct pollfd){.fd = b->pidfd, .events = POLLIN};
		poll(pfd, (nfds_t)nfds, b->pidfd >= 0 ? (int)left : (left < 20 ? (int)left : 20));
		drain_output(b);
	}
}

/* ---- warm replies ---- */

/* Fill EV as a failure of the frame in flight (or a load failure) with WHY and the output tail. */
static void fail_event(dr_blender *b, dr_bl_event *ev, bool load, const char *why)
{
	size_t pos = 0;

	if (load) {
		char line[512];
		ev->kind = DR_BL_LOAD_FAILED;
		ev->frame = b->busy ? b->frame : 0;
		b->busy = false;
		if (tail_error_line(b, line, sizeof(line))) {
			/* Blender said why in one line: that is the whole story */
			append(ev->error, sizeof(ev->error), &pos,
			       "Blender could not load '%s': %s", b->render.scene, line);
			return;
		}
		append(ev->error, sizeof(ev->error), &pos, "Blender could not load '%s' (%s)",
		       b->render.scene, why);
	} else {
		ev->kind = DR_BL_FAILED;
		append(ev->error, sizeof(ev->error), &pos, "%s", why);
	}
	ev->frame = b->busy ? b->frame : 0;
	append_tail(b, ev->error, sizeof(ev->error), &pos);
	b->busy = false;
}

/* Warm Blender has gone (or must go): reap it and turn that into an event if it matters. */
static void warm_died(dr_blender *b, dr_bl_event *ev, const char *protocol_error)
{
	char how[128], why[512];
	bool was_ready = b->ready, mattered = b->busy || !b->ready;
	int status;

	if (!protocol_error)
		wait_exit(b, EOF_GRACE_MS);
	status = finish(b);
	if (!mattered) {
		if (b->verbose)
			fprintf(stderr,
			        "[blender] idle Blender %s; it restarts with the next frame\n",
			        protocol_error ? protocol_error : "ended");
		return;
	}
	if (protocol_error)
		snprintf(how, sizeof(how), "was stopped: %s", protocol_error);
	else if (status == -1)
		snprintf(how, sizeof(how), "went away");
	else
		describe_status(status, how, sizeof(how));
	if (b->busy && was_ready)
		snprintf(why, sizeof(why), "Blender %s while rendering frame %d", how, b->frame);
	else if (b->busy)
		snprintf(why, sizeof(why), "Blender %s before it was ready to render frame %d", how,
		         b->frame);
	else
		snprintf(why, sizeof(why), "Blender %s before it was ready", how);
	fail_event(b, ev, !was_ready, why);
}

/* Handle one reply line. Returns true when EV holds an event. */
static bool handle_reply(dr_blender *b, const char *line, dr_bl_event *ev)
{
	cJSON *json = cJSON_Parse(line);
	const cJSON *event, *frame, *seconds, *error;
	char why[1024];
	bool got = false;

	if (!json || !cJSON_IsObject(json) ||
	    !cJSON_IsString(event = cJSON_GetObjectItemCaseSensitive(json, "event"))) {
		cJSON_Delete(json);
		warm_died(b, ev, "it sent a reply that is not a JSON event");
		return ev->kind != DR_BL_NONE;
	}
	frame = cJSON_GetObjectItemCaseSensitive(json, "frame");
	if (strcmp(event->valuestring, "ready") == 0) {
		if (!b->ready) {
			b->ready = true;
			ev->kind = DR_BL_READY;
			got = true;
		}
	} else if (strcmp(event->valuestring, "done") == 0) {
		if (!b->busy || !cJSON_IsNumber(frame) || (int)frame->valuedouble != b->frame) {
			cJSON_Delete(json);
			warm_died(b, ev, "it reported a frame that was not asked for");
			return ev->kind != DR_BL_NONE;
		}
		seconds = cJSON_GetObjectItemCaseSensitive(json, "seconds");
		ev->kind = DR_BL_DONE;
		ev->frame = b->frame;
		ev->seconds =
		        cJSON_IsNumber(seconds) ? seconds->valuedouble : seconds_since(&b->started);
		b->busy = false;
		got = true;
	} else if (strcmp(event->valuestring, "error") == 0 && b->busy) {
		error = cJSON_GetObjectItemCaseSensitive(json, "error");
		snprintf(why, sizeof(why), "Python error while rendering frame %d: %s", b->frame,
		         cJSON_IsString(error) ? error->valuestring : "(no message)");
		/* a Python error says why by itself: no output tail */
		ev->kind = DR_BL_FAILED;
		ev->frame = b->frame;
		snprintf(ev->error, sizeof(ev->error), "%s", why);
		b->busy = false;
		got = true;
	} else if (b->verbose) {
		fprintf(stderr, "[blender %ld] ignored reply: %s\n", (long)b->pid, line);
	}
	cJSON_Delete(json);
	return got;
}

/* Take complete lines from the reply buffer until one yields an event. */
static bool process_lines(dr_blender *b, dr_bl_event *ev)
{
	while (b->pid > 0 && b->rlen > 0) {
		char *nl = memchr(b->rbuf, '\n', b->rlen);
		size_t used;
		bool got;

		if (!nl)
			return false;
		*nl = '\0';
		used = (size_t)(nl - b->rbuf) + 1;
		got = handle_reply(b, b->rbuf, ev);
		if (b->pid > 0) { /* handle_reply may have ended Blender */
			memmove(b->rbuf, b->rbuf + used, b->rlen - used);
			b->rlen -= used;
		}
		if (got)
			return true;
	}
	return false;
}

/* Read what the driver has sent. Returns -1 when the line gets absurdly long. */
static int read_replies(dr_blender *b)
{
	while (b->reply_fd >= 0 && !b->reply_eof) {
		ssize_t n;

		if (b->rcap - b->rlen < 4096) {
			size_t cap = b->rcap ? b->rcap * 2 : 8192;
			char *p;

			if (cap > REPLY_MAX)
				return -1;
			p = realloc(b->rbuf, cap);
			if (!p)
				return -1;
			b->rbuf = p;
			b->rcap = cap;
		}
		n = read(b->reply_fd, b->rbuf + b->rlen, b->rcap - b->rlen - 1);
		if (n > 0)
			b->rlen += (size_t)n;
		else if (n == 0)
			b->reply_eof = true;
		else if (errno != EINTR)
			return 0; /* EAGAIN (or worse: treated as nothing yet) */
	}
	return 0;
}

/* ---- one-shot end ---- */

static void one_shot_ended(dr_blender *b, dr_bl_event *ev)
{
	char how[128], why[1024];
	struct stat st;
	double secs = seconds_since(&b->started);
	int status = finish(b);

	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    stat(b->tmp_path, &st) == 0 && st.st_size > 0) {
		ev->kind = DR_BL_DONE;
		ev->frame = b->frame;
		ev->seconds = secs;
		b->busy = false;
		return;
	}
	if (status == -1)
		snprintf(why, sizeof(why), "Blender went away while rendering frame %d", b->frame);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		describe_status(status, how, sizeof(how));
		snprintf(why, sizeof(why), "Blender %s while rendering frame %d", how, b->frame);
	} else if (stat(b->tmp_path, &st) < 0)
		snprintf(why, sizeof(why), "Blender exited without writing frame %d to '%s'",
		         b->frame, b->tmp_path);
	else
		snprintf(why, sizeof(why), "Blender wrote an empty file for frame %d at '%s'",
		         b->frame, b->tmp_path);
	fail_event(b, ev, false, why);
}

/* ---- public API ---- */

dr_blender *dr_blender_create(const dr_blender_cfg *cfg, char *err, size_t errlen)
{
	dr_blender *b = NULL;

	if (!cfg || !cfg->render.scene[0] || cfg->threads < 1 || cfg->render.samples < 0) {
		set_err(err, errlen, "internal error: bad Blender configuration");
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	b->pidfd = b->cmd_fd = b->reply_fd = b->out_fd = -1;
	b->exe = resolve_exe(cfg->exe, err, errlen);
	if (!b->exe)
		goto fail;
	b->render = cfg->render;
	if (!b->render.format[0])
		memcpy(b->render.format, "PNG", sizeof "PNG");
	b->threads = cfg->threads;
	b->one_shot = cfg->one_shot;
	b->allow_autoexec = cfg->allow_autoexec;
	b->verbose = cfg->verbose;
	if (cfg->cpus) {
		b->has_cpus = true;
		b->cpus = *cfg->cpus;
	}
	if (b->one_shot)
		b->ready_pending = true;
	else if (spawn_warm(b, err, errlen) < 0)
		goto fail;
	return b;
fail:
	dr_blender_destroy(b);
	return NULL;
}

/* Write all of LEN bytes of DATA to the command pipe without dying of SIGPIPE. Returns 0, or -1
 * with errno (EPIPE when Blender is gone). */
static int write_cmd(int fd, const char *data, size_t len)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;
	int rc = 0, saved = 0;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	while (len > 0) {
		ssize_t n = write(fd, data, len);

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
	errno = saved;
	return rc;
}

static int send_render(dr_blender *b, int frame, const char *tmp_path, char *err, size_t errlen)
{
	cJSON *json = cJSON_CreateObject();
	char *text = NULL;
	int rc = -1;

	if (!json || !cJSON_AddStringToObject(json, "cmd", "render") ||
	    !cJSON_AddNumberToObject(json, "frame", frame) ||
	    !cJSON_AddStringToObject(json, "path", tmp_path) ||
	    !(text = cJSON_PrintUnformatted(json))) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	{
		size_t len = strlen(text);

		text[len] = '\n'; /* replaces the terminator; written by length */
		if (write_cmd(b->cmd_fd, text, len + 1) < 0) {
			set_err(err, errlen, "cannot send frame %d to Blender: %s", frame,
			        strerror(errno));
			text[len] = '\0';
			goto out;
		}
		text[len] = '\0';
	}
	rc = 0;
out:
	cJSON_free(text);
	cJSON_Delete(json);
	return rc;
}

int dr_blender_render(dr_blender *b, int frame, const char *tmp_path, char *err, size_t errlen)
{
	if (!b || !tmp_path || !*tmp_path) {
		set_err(err, errlen, "internal error: bad render request");
		return -1;
	}
	if (b->busy) {
		set_err(err, errlen, "internal error: frame %d is still in flight", b->frame);
		return -1;
	}
	if (b->one_shot) {
		char *copy = strdup(tmp_path);

		if (!copy) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		if (spawn_one_shot(b, frame, tmp_path, err, errlen) < 0) {
			free(copy);
			return -1;
		}
		free(b->tmp_path);
		b->tmp_path = copy;
	} else {
		/* a Blender that died (or closed its pipes) since is replaced first */
		if (b->pid > 0 && (b->reply_eof || child_exited(b))) {
			wait_exit(b, EOF_GRACE_MS);
			finish(b);
		}
		if (b->pid <= 0 && spawn_warm(b, err, errlen) < 0)
			return -1;
		if (send_render(b, frame, tmp_path, err, errlen) < 0) {
			/* it died just now: one fresh start, then give up */
			wait_exit(b, EOF_GRACE_MS);
			finish(b);
			if (spawn_warm(b, err, errlen) < 0 ||
			    send_render(b, frame, tmp_path, err, errlen) < 0)
				return -1;
		}
	}
	b->busy = true;
	b->frame = frame;
	clock_gettime(CLOCK_MONOTONIC, &b->started);
	return 0;
}

int dr_blender_poll(dr_blender *b, int timeout_ms, dr_bl_event *ev)
{
	long long deadline;

	if (!ev)
		return -1;
	memset(ev, 0, sizeof(*ev));
	ev->kind = DR_BL_NONE;
	if (!b) {
		snprintf(ev->error, sizeof(ev->error), "internal error: no Blender");
		return -1;
	}
	if (b->ready_pending) {
		b->ready_pending = false;
		ev->kind = DR_BL_READY;
		return 0;
	}
	if (timeout_ms < 0)
		timeout_ms = INT_MAX / 2;
	deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd[3];
		int nfds = 0, wait_ms, n;
		long long left;

		if (!b->one_shot && b->pid > 0) {
			if (process_lines(b, ev))
				return 0;
			if (b->pid > 0 && read_replies(b) < 0) {
				warm_died(b, ev, "its reply line is too long");
				if (ev->kind != DR_BL_NONE)
					return 0;
			}
			if (b->pid > 0 && process_lines(b, ev))
				return 0;
			if (b->pid > 0 && (b->reply_eof || child_exited(b))) {
				warm_died(b, ev, NULL);
				if (ev->kind != DR_BL_NONE)
					return 0;
			}
		} else if (b->one_shot && b->pid > 0) {
			drain_output(b);
			if (child_exited(b)) {
				one_shot_ended(b, ev);
				return 0;
			}
		}
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		wait_ms = left > INT_MAX ? INT_MAX : (int)left;
		if (b->pid > 0) {
			if (b->out_fd >= 0)
				pfd[nfds++] = (struct pollfd){.fd = b->out_fd, .events = POLLIN};
			if (b->reply_fd >= 0 && !b->reply_eof)
				pfd[nfds++] = (struct pollfd){.fd = b->reply_fd, .events = POLLIN};
			if (b->pidfd >= 0)
				pfd[nfds++] = (struct pollfd){.fd = b->pidfd, .events = POLLIN};
			else if (wait_ms > SLICE_MS)
				wait_ms = SLICE_MS; /* no pidfd: look at the child now and then */
		}
		n = poll(pfd, (nfds_t)nfds, wait_ms);
		if (n < 0 && errno == EINTR)
			return 0; /* let the caller look at its signal flags */
		if (n < 0) {
			snprintf(ev->error, sizeof(ev->error), "poll on Blender's pipes: %s",
			         strerror(errno));
			return -1;
		}
		if (b->out_fd >= 0)
			drain_output(b);
	}
}

bool dr_blender_busy(const dr_blender *b)
{
	return b && b->busy;
}

void dr_blender_kill(dr_blender *b)
{
	if (!b)
		return;
	finish(b);
	b->busy = false;
}

void dr_blender_destroy(dr_blender *b)
{
	if (!b)
		return;
	if (b->pid > 0 && b->cmd_fd >= 0) {
		static const char quit[] = "{\"cmd\":\"quit\"}\n";

		if (write_cmd(b->cmd_fd, quit, sizeof(quit) - 1) == 0) {
			close_fd(&b->cmd_fd); /* EOF also means quit */
			wait_exit(b, QUIT_GRACE_MS);
		}
	}
	finish(b);
	free(b->exe);
	free(b->tmp_path);
	free(b->rbuf);
	free(b);
}

pid_t dr_blender_pid(const dr_blender *b)
{
	return b ? b->pid : 0;
}
