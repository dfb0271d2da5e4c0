/* TAP tests of dr_blender (warm and one-shot supervision) against tests/fixtures/fake-blender. */
#include "dr_blender.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "testproc.h"

struct env {
	char dir[64];
	char scene[128];
	char state[128];
	char log[128];
	char exe[4096];
};

static void make_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "path too long: %s/%s\n", dir, name);
		exit(1);
	}
}

static void tmp_path(const struct env *e, int frame, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/.drender-tmp-test-%07d", e->dir, frame);

	if (n < 0 || (size_t)n >= len)
		exit(1);
}

static dr_blender_cfg base_cfg(const struct env *e)
{
	dr_blender_cfg c;

	memset(&c, 0, sizeof(c));
	c.exe = e->exe;
	snprintf(c.render.scene, sizeof c.render.scene, "%s", e->scene);
	memcpy(c.render.format, "PNG", sizeof "PNG");
	c.threads = 1;
	c.verbose = getenv("DR_TEST_VERBOSE") != NULL;
	return c;
}

/* Poll until something other than NONE happens, or SECONDS pass. */
static dr_bl_event wait_event(dr_blender *b, double seconds)
{
	double end = testproc_now() + seconds;
	dr_bl_event ev;

	while (dr_blender_poll(b, 200, &ev) == 0 && ev.kind == DR_BL_NONE && testproc_now() <= end)
		;
	return ev;
}

/* Ask for FRAME and wait for its DONE or FAILED (READY events in between are skipped). */
static dr_bl_event render(dr_blender *b, const struct env *e, int frame)
{
	char path[256], err[256];
	dr_bl_event ev;

	memset(&ev, 0, sizeof(ev));
	tmp_path(e, frame, path, sizeof(path));
	if (dr_blender_render(b, frame, path, err, sizeof(err)) < 0) {
		ev.kind = DR_BL_NONE;
		snprintf(ev.error, sizeof(ev.error), "render: %s", err);
		return ev;
	}
	do
		ev = wait_event(b, 15);
	while (ev.kind == DR_BL_READY);
	return ev;
}

/* Print TEXT as TAP diagnostics, one "# " per line. */
static void diag(const char *text)
{
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		printf("#   %.*s\n", len, p);
		p += len + (nl ? 1 : 0);
	}
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static bool is_png(const char *path)
{
	unsigned char sig[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok_ = false;

	if (fd >= 0) {
		ok_ = read(fd, sig, 8) == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0;
		close(fd);
	}
	return ok_;
}

/* Count lines in the fake's log that start with PREFIX. */
static int log_count(const struct env *e, const char *prefix)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(e->log, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			n++;
	fclose(f);
	return n;
}

static bool gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static void test_warm(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512], path[256];
	dr_blender *b = dr_blender_create(&c, err, sizeof(err));
	dr_bl_event ev;
	pid_t pid;
	bool all = true;

	ok(b != NULL, "warm: create (%s)", b ? "ok" : err);
	if (!b)
		return;
	pid = dr_blender_pid(b);
	ok(pid > 0, "warm: Blender runs (pid %ld)", (long)pid);
	ev = wait_event(b, 10);
	is_int(ev.kind, DR_BL_READY, "warm: READY");
	for (int f = 1; f <= 4; f++) {
		ev = render(b, e, f);
		tmp_path(e, f, path, sizeof(path));
		if (ev.kind != DR_BL_DONE || ev.frame != f || !is_png(path) ||
		    file_size(path) <= 0) {
			all = false;
			printf("# frame %d: kind %d frame %d\n", f, ev.kind, ev.frame);
			diag(ev.error);
		}
	}
	ok(all, "warm: frames 1-4 done and written as PNG");
	is_int(dr_blender_pid(b), pid, "warm: the same Blender rendered them all");
	is_int(log_count(e, "start "), 1, "warm: Blender started once");
	ok(!dr_blender_busy(b), "warm: not busy after DONE");

	tmp_path(e, 5, path, sizeof(path));
	ok(dr_blender_render(b, 5, path, err, sizeof(err)) == 0 && dr_blender_busy(b),
	   "warm: busy while a frame is in flight");
	ok(dr_blender_render(b, 6, path, err, sizeof(err)) < 0, "warm: a second frame is refused");
	ev = wait_event(b, 10);
	is_int(ev.kind, DR_BL_DONE, "warm: frame 5 done");

	dr_blender_destroy(b);
	ok(gone(pid), "warm: destroy leaves no process");
	is_int(log_count(e, "quit "), 1, "warm: destroy asked Blender to quit");
}

static void test_python_error(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512];
	dr_blender *b;
	dr_bl_event ev;
	pid_t pid;

	setenv("FAKE_BLENDER_FAIL", "7,9@1", 1);
	b = dr_blender_create(&c, err, sizeof(err));
	unsetenv("FAKE_BLENDER_FAIL");
	ok(b != NULL, "pyerror: create");
	if (!b)
		return;
	pid = dr_blender_pid(b);
	ev = render(b, e, 7);
	is_int(ev.kind, DR_BL_FAILED, "pyerror: frame 7 FAILED");
	is_int(ev.frame, 7, "pyerror: the event names frame 7");
	ok(strstr(ev.error, "Python error while rendering frame 7") &&
	           strstr(ev.error, "RuntimeError: fake Python error at frame 7"),
	   "pyerror: the error carries the Python text");
	ev = render(b, e, 8);
	is_int(ev.kind, DR_BL_DONE, "pyerror: the same Blender renders frame 8");
	is_int(dr_blender_pid(b), pid, "pyerror: no restart after a Python error");
	ev = render(b, e, 9);
	is_int(ev.kind, DR_BL_FAILED, "pyerror: 9@1 fails the first time");
	ev = render(b, e, 9);
	is_int(ev.kind, DR_BL_DONE, "pyerror: 9@1 works the second time");
	dr_blender_destroy(b);
}

static void test_crash(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512];
	dr_blender *b;
	dr_bl_event ev;
	pid_t pid, pid2;
	int starts = log_count(e, "start ");

	setenv("FAKE_BLENDER_CRASH", "12", 1);
	setenv("FAKE_BLENDER_EXIT", "14", 1);
	b = dr_blender_create(&c, err, sizeof(err));
	ok(b != NULL, "crash: create");
	if (!b)
		goto out;
	pid = dr_blender_pid(b);
	ev = render(b, e, 12);
	is_int(ev.kind, DR_BL_FAILED, "crash: frame 12 FAILED");
	ok(strstr(ev.error, "Blender was killed by signal 9 (Killed) while rendering frame 12") !=
	           NULL,
	   "crash: the error names the signal and the frame");
	if (!strstr(ev.error, "signal 9"))
		diag(ev.error);
	ok(strstr(ev.error, "Writing:") != NULL, "crash: the error ends with Blender's output");
	is_int(dr_blender_pid(b), 0, "crash: no Blender after the crash");
	ok(gone(pid), "crash: the dead Blender was reaped");
	ev = render(b, e, 13);
	is_int(ev.kind, DR_BL_DONE, "crash: the next frame restarts Blender and renders");
	pid2 = dr_blender_pid(b);
	ok(pid2 > 0 && pid2 != pid, "crash: a new Blender (pid %ld, was %ld)", (long)pid2,
	   (long)pid);
	is_int(log_count(e, "start ") - starts, 2, "crash: the scene was loaded again");
	ev = render(b, e, 14);
	ok(ev.kind == DR_BL_FAILED &&
	           strstr(ev.error, "Blender exited with status 1 while rendering frame 14"),
	   "crash: exit status 1 mid-frame is reported");
	if (ev.kind != DR_BL_FAILED)
		diag(ev.error);
	dr_blender_destroy(b);
out:
	unsetenv("FAKE_BLENDER_CRASH");
	unsetenv("FAKE_BLENDER_EXIT");
}

static void test_load_failure(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512], bad[256];
	dr_blender *b;
	dr_bl_event ev;
	FILE *f;

	snprintf(c.render.scene, sizeof c.render.scene, "%s", "/nonexistent/drender-test.blend");
	b = dr_blender_create(&c, err, sizeof(err));
	ok(b != NULL, "load: create starts Blender even for a missing scene");
	if (b) {
		ev = wait_event(b, 10);
		is_int(ev.kind, DR_BL_LOAD_FAILED, "load: missing scene -> LOAD_FAILED");
		ok(strstr(ev.error, "Cannot read file '/nonexistent/drender-test.blend'") != NULL,
		   "load: the error quotes Blender's reason");
		diag(ev.error);
		is_int(dr_blender_pid(b), 0, "load: Blender is gone");
		dr_blender_destroy(b);
	}

	make_path(bad, sizeof(bad), e->dir, "bad.blend");
	f = fopen(bad, "w");
	if (f) {
		fputs("not a blend file\n", f);
		fclose(f);
	}
	snprintf(c.render.scene, sizeof c.render.scene, "%s", bad);
	b = dr_blender_create(&c, err, sizeof(err));
	ev = b ? wait_event(b, 10) : (dr_bl_event){0};
	ok(b && ev.kind == DR_BL_LOAD_FAILED && strstr(ev.error, "Cannot read file"),
	   "load: a file that is not a .blend -> LOAD_FAILED");
	dr_blender_destroy(b);

	snprintf(c.render.scene, sizeof c.render.scene, "%s", e->scene);
	setenv("FAKE_BLENDER_LOADFAIL", "1", 1);
	b = dr_blender_create(&c, err, sizeof(err));
	unsetenv("FAKE_BLENDER_LOADFAIL");
	ev = b ? wait_event(b, 10) : (dr_bl_event){0};
	ok(b && ev.kind == DR_BL_LOAD_FAILED, "load: FAKE_BLENDER_LOADFAIL -> LOAD_FAILED");
	dr_blender_destroy(b);
}

/* A Blender that never finishes loading is killed after load_timeout and reported as a load
 * failure (issue 10, item 2). The stand-in answers nothing and sleeps, in its own group. */
static void test_load_timeout(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512], hang[256];
	struct timespec t0, t;
	dr_blender *b;
	dr_bl_event ev;
	double took;
	pid_t pid;
	FILE *f;

	make_path(hang, sizeof(hang), e->dir, "hang-blender");
	f = fopen(hang, "w");
	if (f) {
		fputs("#!/bin/sh\nexec sleep 100000\n", f);
		fclose(f);
	}
	chmod(hang, 0700);
	c.exe = hang;
	c.load_timeout = 0.5;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	b = dr_blender_create(&c, err, sizeof(err));
	ok(b != NULL, "load timeout: a Blender that hangs starts");
	pid = b ? dr_blender_pid(b) : 0;
	ev = b ? wait_event(b, 10) : (dr_bl_event){0};
	clock_gettime(CLOCK_MONOTONIC, &t);
	took = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
	is_int(ev.kind, DR_BL_LOAD_FAILED, "load timeout: LOAD_FAILED when the load runs out");
	ok(strstr(ev.error, "--load-timeout") != NULL, "load timeout: the error names the option");
	diag(ev.error);
	ok(took < 3, "load timeout: within the bound (%.2f s)", took);
	ok(b && dr_blender_pid(b) == 0 && pid > 0 && gone(pid), "load timeout: Blender is killed");
	dr_blender_destroy(b);
	unlink(hang);
}

static void test_not_found(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512];
	dr_blender *b;

	c.exe = "drender-no-such-blender";
	err[0] = '\0';
	b = dr_blender_create(&c, err, sizeof(err));
	ok(b == NULL, "not found: create fails for a name not in PATH");
	is_str(err,
	       "Blender executable 'drender-no-such-blender' not found (set --blender or "
	       "DRENDER_BLENDER)",
	       "not found: the message says what to do");
	c.exe = "/nonexistent/blender";
	c.one_shot = true;
	b = dr_blender_create(&c, err, sizeof(err));
	ok(b == NULL && strstr(err, "Blender executable '/nonexistent/blender' not found"),
	   "not found: one-shot create fails early too");
	c.exe = e->scene; /* mode 0644 */
	b = dr_blender_create(&c, err, sizeof(err));
	ok(b == NULL && strstr(err, "not found"), "not found: a file that is not executable");
	dr_blender_destroy(b);
}

static void test_one_shot(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512], path[256];
	dr_blender *b;
	dr_bl_event ev;
	int renders = log_count(e, "render ");

	c.one_shot = true;
	memcpy(c.render.engine, "CYCLES", sizeof "CYCLES");
	c.render.samples = 4;
	setenv("FAKE_BLENDER_NOFILE", "22", 1);
	setenv("FAKE_BLENDER_CRASH", "23", 1);
	setenv("FAKE_BLENDER_EXIT", "24", 1);
	b = dr_blender_create(&c, err, sizeof(err));
	ok(b != NULL, "one-shot: create");
	if (!b)
		goto out;
	is_int(dr_blender_pid(b), 0, "one-shot: no Blender before the first frame");
	ev = wait_event(b, 1);
	is_int(ev.kind, DR_BL_READY, "one-shot: READY at once");
	ev = render(b, e, 20);
	tmp_path(e, 20, path, sizeof(path));
	ok(ev.kind == DR_BL_DONE && ev.frame == 20 && is_png(path),
	   "one-shot: frame 20 done, PNG at the temporary path");
	ev = render(b, e, 21);
	is_int(ev.kind, DR_BL_DONE, "one-shot: frame 21 done");
	is_int(log_count(e, "render ") - renders, 2, "one-shot: one render per frame");
	is_int(dr_blender_pid(b), 0, "one-shot: no Blender between frames");
	ev = render(b, e, 22);
	ok(ev.kind == DR_BL_FAILED && strstr(ev.error, "without writing frame 22"),
	   "one-shot: no output file -> FAILED");
	ev = render(b, e, 23);
	ok(ev.kind == DR_BL_FAILED && strstr(ev.error, "killed by signal 9 (Killed)"),
	   "one-shot: crash -> FAILED naming the signal");
	ev = render(b, e, 24);
	ok(ev.kind == DR_BL_FAILED && strstr(ev.error, "exited with status 1") &&
	           strstr(ev.error, "fake failure"),
	   "one-shot: exit 1 -> FAILED with the output tail");
	diag(ev.error);
	ok(dr_blender_render(b, 25, "/tmp/no-digits-here", err, sizeof(err)) < 0,
	   "one-shot: a temporary path without 7 digits is refused");
	dr_blender_destroy(b);

	snprintf(c.render.scene, sizeof c.render.scene, "%s", "/nonexistent/x.blend");
	b = dr_blender_create(&c, err, sizeof(err));
	ev = b ? render(b, e, 26) : (dr_bl_event){0};
	ok(b && ev.kind == DR_BL_FAILED && strstr(ev.error, "Cannot read file"),
	   "one-shot: unreadable scene -> FAILED with Blender's reason");
	dr_blender_destroy(b);
out:
	unsetenv("FAKE_BLENDER_NOFILE");
	unsetenv("FAKE_BLENDER_CRASH");
	unsetenv("FAKE_BLENDER_EXIT");
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void test_kill(const struct env *e)
{
	dr_blender_cfg c = base_cfg(e);
	char err[512], path[256];
	dr_blender *b;
	dr_bl_event ev;
	pid_t pid;
	struct sigaction sa;
	struct itimerval it;
	struct timespec t0, t1;
	int rc;

	b = dr_blender_create(&c, err, sizeof(err));
	ok(b != NULL, "kill: create");
	if (!b)
		return;
	pid = dr_blender_pid(b);
	dr_blender_kill(b);
	is_int(dr_blender_pid(b), 0, "kill: no Blender after kill");
	ok(gone(pid), "kill: the process is gone and reaped (ESRCH)");

	setenv("FAKE_BLENDER_HANG", "30", 1);
	tmp_path(e, 30, path, sizeof(path));
	rc = dr_blender_render(b, 30, path, err, sizeof(err));
	unsetenv("FAKE_BLENDER_HANG");
	ok(rc == 0, "hang: render restarts Blender after a kill");
	pid = dr_blender_pid(b);
	ev = wait_event(b, 10);
	is_int(ev.kind, DR_BL_READY, "hang: READY from the new Blender");
	ev = wait_event(b, 0.5);
	ok(ev.kind == DR_BL_NONE && dr_blender_busy(b), "hang: nothing happens, still busy");

	/* a signal makes poll return at once */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	memset(&it, 0, sizeof(it));
	it.it_value.tv_usec = 100000;
	setitimer(ITIMER_REAL, &it, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = dr_blender_poll(b, 5000, &ev);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(rc == 0 && ev.kind == DR_BL_NONE && t1.tv_sec - t0.tv_sec < 2,
	   "hang: poll returns NONE promptly on EINTR");
	signal(SIGALRM, SIG_DFL);

	dr_blender_kill(b);
	ok(!dr_blender_busy(b) && gone(pid), "hang: kill ends the hung Blender");
	ev = render(b, e, 31);
	is_int(ev.kind, DR_BL_DONE, "hang: the next frame works with a fresh Blender");
	dr_blender_destroy(b);
}

/* A Blender must die with its parent: run a helper that starts one and exits without cleanup. */
static pid_t spawn_blender(void *arg)
{
	dr_blender_cfg c = base_cfg(arg);
	char err[512];
	dr_blender *b = dr_blender_create(&c, err, sizeof(err));

	usleep(200000); /* the helper lives on a little while its Blender starts */
	return b ? dr_blender_pid(b) : 0;
}

static void test_orphan(const struct env *e)
{
	pid_t blender;
	bool dead = testproc_orphan_killed(spawn_blender, (void *)e, 10, &blender);

	ok(blender > 0 && dead, "orphan: Blender is killed when its parent dies");
}

static void cleanup(const struct env *e)
{
	char path[256], cmd_dir[128];
	const char *names[] = {"scene.blend", "bad.blend", "fake.log"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		make_path(path, sizeof(path), e->dir, names[i]);
		unlink(path);
	}
	for (int f = 0; f < 100; f++) {
		tmp_path(e, f, path, sizeof(path));
		unlink(path);
	}
	make_path(cmd_dir, sizeof(cmd_dir), e->dir, "state");
	for (int f = 0; f < 100; f++) {
		const char *knobs[] = {"fail", "crash", "hang", "junk", "nofile", "exit"};

		for (size_t k = 0; k < 6; k++) {
			int n = snprintf(path, sizeof(path), "%s/%s-%d", cmd_dir, knobs[k], f);

			if (n > 0 && (size_t)n < sizeof(path))
				unlink(path);
		}
	}
	rmdir(cmd_dir);
	if (rmdir(e->dir) < 0)
		printf("# could not remove %s: %s\n", e->dir, strerror(errno));
}

int main(void)
{
	struct env e;
	const char *exe = getenv("DR_FAKE_BLENDER");
	FILE *f;
	int n, fds;

	memset(&e, 0, sizeof(e));
	snprintf(e.dir, sizeof(e.dir), "/tmp/drender-test-blender-XXXXXX");
	if (!mkdtemp(e.dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	if (!exe) {
		char cwd[2048];

		if (!getcwd(cwd, sizeof(cwd)))
			return 1;
		n = snprintf(e.exe, sizeof(e.exe), "%s/tests/fixtures/fake-blender", cwd);
	} else {
		n = snprintf(e.exe, sizeof(e.exe), "%s", exe);
	}
	if (n < 0 || (size_t)n >= sizeof(e.exe))
		return 1;
	make_path(e.scene, sizeof(e.scene), e.dir, "scene.blend");
	make_path(e.state, sizeof(e.state), e.dir, "state");
	make_path(e.log, sizeof(e.log), e.dir, "fake.log");
	f = fopen(e.scene, "w");
	if (!f) {
		printf("Bail out! cannot write %s\n", e.scene);
		return 1;
	}
	fputs("BLENDER-v304 fake scene for drender tests\n", f);
	fclose(f);
	setenv("FAKE_BLENDER_STATE", e.state, 1);
	setenv("FAKE_BLENDER_LOG", e.log, 1);
	setenv("FAKE_BLENDER_COST", "0.02", 1);
	signal(SIGPIPE, SIG_DFL); /* dr_blender must cope without our help */

	fds = testproc_count_fds();
	test_warm(&e);
	test_python_error(&e);
	test_crash(&e);
	test_load_failure(&e);
	test_load_timeout(&e);
	test_not_found(&e);
	test_one_shot(&e);
	test_kill(&e);
	is_int(testproc_count_fds(), fds, "no file descriptors leaked");
	test_orphan(&e);

	cleanup(&e);
	return done_testing();
}
