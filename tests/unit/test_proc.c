/* TAP tests of dr_proc (spawn, exit, output tail, pipes, group kill) with ordinary programs. */
#include "dr_proc.h"

#include "dr_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "testproc.h"

static dr_proc *make(int cmd_fd, int reply_fd, const cpu_set_t *cpus)
{
	dr_proc_cfg c = {.what = "Test", .cmd_fd = cmd_fd, .reply_fd = reply_fd, .cpus = cpus};
	char err[DR_ERRLEN];
	dr_proc *p = dr_proc_create(&c, err, sizeof(err));

	if (!p)
		printf("# create: %s\n", err);
	return p;
}

/* Start /bin/sh -c SCRIPT; 0 or -1 (ERR printed). */
static int sh(dr_proc *p, const char *script)
{
	char *const argv[] = {"sh", "-c", (char *)script, NULL};
	char err[DR_ERRLEN];

	if (dr_proc_spawn(p, "/bin/sh", argv, err, sizeof(err)) == 0)
		return 0;
	printf("# spawn: %s\n", err);
	return -1;
}

/* Poll until the child has exited (or SECONDS pass), then reap it: its wait status. */
static int run_out(dr_proc *p, double seconds)
{
	double end = dr_now() + seconds;

	while (!dr_proc_exited(p) && dr_now() < end)
		dr_proc_poll(p, 100);
	return dr_proc_kill(p);
}

static void test_exit_status(void)
{
	dr_proc *p = make(-1, -1, NULL);
	char how[128], tail[DR_PROC_TAIL_SIZE + 1];
	int st;

	ok(p && dr_proc_pid(p) == 0, "exit: no child before spawn");
	if (!p || sh(p, "echo hello; echo oops >&2; exit 3") < 0)
		return;
	ok(dr_proc_pid(p) > 0, "exit: child runs (pid %ld)", (long)dr_proc_pid(p));
	st = run_out(p, 10);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 3, "exit: status 3 comes back");
	dr_proc_describe(st, how, sizeof(how));
	is_str(how, "exited with status 3", "exit: described");
	is_int(dr_proc_pid(p), 0, "exit: no child after the reap");
	dr_proc_tail(p, tail, sizeof(tail));
	is_str(tail, "hello\noops\n", "exit: stdout and stderr in the tail, kept after the reap");
	is_int(dr_proc_kill(p), -1, "exit: a second kill has nothing to reap");
	dr_proc_destroy(p);
}

static void test_killed(void)
{
	dr_proc *p = make(-1, -1, NULL);
	char how[128];
	int st;

	if (!p || sh(p, "kill -9 $$") < 0)
		return;
	st = run_out(p, 10);
	dr_proc_describe(st, how, sizeof(how));
	is_str(how, "was killed by signal 9 (Killed)", "killed: described");

	/* one that hangs is killed on purpose */
	if (sh(p, "sleep 300") < 0)
		return;
	ok(!dr_proc_wait_exit(p, 100), "killed: wait_exit gives up on a hung child");
	st = dr_proc_kill(p);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "killed: kill ends it with SIGKILL");
	dr_proc_destroy(p);
}

static void test_tail(void)
{
	dr_proc *p = make(-1, -1, NULL);
	char tail[DR_PROC_TAIL_SIZE + 1], small[16];
	size_t n;

	if (!p || sh(p, "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done") < 0)
		return;
	run_out(p, 20);
	n = dr_proc_tail(p, tail, sizeof(tail));
	is_int(n, DR_PROC_TAIL_SIZE, "tail: holds exactly DR_PROC_TAIL_SIZE bytes of ~17 KiB");
	ok(n >= 9 && strcmp(tail + n - 9, "line1999\n") == 0, "tail: ends with the last line");
	ok(strstr(tail, "line0\n") == NULL, "tail: the first lines are gone");
	n = dr_proc_tail(p, small, sizeof(small));
	is_int(n, sizeof(small) - 1, "tail: a small buffer gets what fits");
	is_str(small, "line1998\nline1999\n" + 3, "tail: ... the newest bytes");
	if (sh(p, "true") == 0) {
		run_out(p, 10);
		is_int(dr_proc_tail(p, tail, sizeof(tail)), 0, "tail: a new spawn starts empty");
	}
	dr_proc_destroy(p);
}

static void test_group(void)
{
	dr_proc *p = make(-1, -1, NULL);
	char tail[DR_PROC_TAIL_SIZE + 1] = "", *end;
	long gpid = 0;
	pid_t pid;

	prctl(PR_SET_CHILD_SUBREAPER, 1); /* the orphaned grandchild comes to us, to be reaped */
	if (!p || sh(p, "sleep 300 & echo $!; wait") < 0)
		return;
	pid = dr_proc_pid(p);
	is_int(getpgid(pid), pid, "group: the child leads its own process group");
	for (int i = 0; i < 100 && !strchr(tail, '\n'); i++) {
		dr_proc_poll(p, 100);
		dr_proc_tail(p, tail, sizeof(tail));
	}
	gpid = strtol(tail, &end, 10);
	ok(gpid > 0 && *end == '\n', "group: grandchild started (pid %ld)", gpid);
	dr_proc_kill(p);
	ok(testproc_killed((pid_t)gpid, 10), "group: the grandchild died with the group (SIGKILL)");
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	dr_proc_destroy(p);
}

static void test_spawn_errors(void)
{
	dr_proc_cfg bad = {.what = "Test", .cmd_fd = 1, .reply_fd = -1};
	char err[DR_ERRLEN] = "", *const argv[] = {"prog", NULL};
	dr_proc *p;
	int st;

	ok(dr_proc_create(&bad, err, sizeof(err)) == NULL && strstr(err, "internal error"),
	   "errors: a command pipe on fd 1 is refused");
	p = make(-1, -1, NULL);
	if (!p)
		return;
	err[0] = '\0';
	ok(dr_proc_spawn(p, "/nonexistent/prog", argv, err, sizeof(err)) < 0,
	   "errors: spawning a missing program fails");
	is_str(err,
	       "cannot start Test '/nonexistent/prog': cannot execute: No such file or directory",
	       "errors: ... saying which step and why");
	is_int(dr_proc_pid(p), 0, "errors: ... leaving no child");
	ok(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD, "errors: ... and no zombie");

	if (sh(p, "sleep 300") < 0)
		return;
	err[0] = '\0';
	ok(dr_proc_spawn(p, "/bin/true", argv, err, sizeof(err)) < 0 && strstr(err, "still there"),
	   "errors: a second spawn while a child runs is refused");
	ok(dr_proc_pid(p) > 0 && !dr_proc_exited(p),
	   "errors: ... and the first child is untouched");
	dr_proc_destroy(p); /* kills and reaps */
	ok(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD, "errors: destroy reaps the child");
}

static void test_pipes(void)
{
	dr_proc *p = make(3, 4, NULL);
	char buf[256], err[DR_ERRLEN], tail[DR_PROC_TAIL_SIZE + 1];
	size_t len = 0;
	ssize_t n = -1;
	int st;

	if (!p || sh(p, "ls /proc/$$/fd; read line <&3; echo \"got $line\" >&4") < 0)
		return;
	ok(dr_proc_reply_open(p), "pipes: reply pipe open");
	ok(dr_proc_write(p, "ping\n", 5, err, sizeof(err)) == 0, "pipes: command written");
	for (int i = 0; i < 100; i++) {
		n = dr_proc_read_reply(p, buf + len, sizeof(buf) - 1 - len);
		if (n > 0)
			len += (size_t)n;
		else if (n == 0)
			break;
		else
			dr_proc_poll(p, 100);
	}
	buf[len] = '\0';
	is_str(buf, "got ping\n", "pipes: the child's reply");
	ok(n == 0 && !dr_proc_reply_open(p), "pipes: EOF closes the reply pipe");
	st = run_out(p, 10);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pipes: child exited 0");
	dr_proc_tail(p, tail, sizeof(tail));
	is_str(tail, "0\n1\n2\n3\n4\n", "pipes: the child has fds 0-4 and nothing else of ours");
	ok(dr_proc_write(p, "x\n", 2, err, sizeof(err)) < 0, "pipes: no command pipe after reap");

	/* a child that is gone: EPIPE, and no SIGPIPE kills us */
	if (sh(p, "exec 3<&-; sleep 300") < 0)
		return;
	for (int i = 0; i < 50 && dr_proc_write(p, "x\n", 2, err, sizeof(err)) == 0; i++)
		dr_sleep_ms(20);
	is_str(err, "Broken pipe", "pipes: writing to a closed command pipe is EPIPE");
	dr_proc_destroy(p);

	p = make(-1, -1, NULL);
	if (!p || sh(p, "cat; ls /proc/$$/fd; exit 0") < 0)
		return;
	run_out(p, 10);
	dr_proc_tail(p, tail, sizeof(tail));
	is_str(tail, "0\n1\n2\n", "pipes: without pipes, stdin at EOF and fds 0-2 only");
	dr_proc_destroy(p);
}

static void test_affinity(void)
{
	cpu_set_t ours, one;
	dr_proc *p;
	char tail[DR_PROC_TAIL_SIZE + 1], want[64];
	int cpu = -1;

	if (sched_getaffinity(0, sizeof(ours), &ours) < 0)
		return;
	for (int i = 0; i < CPU_SETSIZE && cpu < 0; i++)
		if (CPU_ISSET(i, &ours))
			cpu = i;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	p = make(-1, -1, &one);
	if (!p || sh(p, "grep Cpus_allowed_list /proc/self/status") < 0)
		return;
	run_out(p, 10);
	dr_proc_tail(p, tail, sizeof(tail));
	snprintf(want, sizeof(want), "Cpus_allowed_list:\t%d\n", cpu);
	is_str(tail, want, "affinity: the child runs on CPU %d only", cpu);
	dr_proc_destroy(p);
}

/* A child must die with its parent: a helper starts one and exits without cleanup. */
static pid_t spawn_sleeper(void *arg)
{
	dr_proc *p = make(-1, -1, NULL);

	(void)arg;
	return p && sh(p, "sleep 300") == 0 ? dr_proc_pid(p) : 0;
}

static void test_orphan(void)
{
	pid_t child;
	bool dead = testproc_orphan_killed(spawn_sleeper, NULL, 10, &child);

	ok(child > 0 && dead, "orphan: the child is killed when its parent dies");
}

int main(void)
{
	int fds;

	signal(SIGPIPE, SIG_DFL); /* dr_proc must cope without our help */
	fds = testproc_count_fds();
	test_exit_status();
	test_killed();
	test_tail();
	test_group();
	test_spawn_errors();
	test_pipes();
	test_affinity();
	is_int(testproc_count_fds(), fds, "no file descriptors leaked");
	test_orphan();
	return done_testing();
}
