/* Child processes: spawn without a shell, watch them exit, keep their output's tail, kill the
 * group. */
#ifndef DR_PROC_H
#define DR_PROC_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* cpu_set_t; the Makefile passes -D_GNU_SOURCE too */
#endif
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Bytes of a child's output (stdout and stderr together) kept for error messages. */
#define DR_PROC_TAIL_SIZE 4096

/*
 * A dr_proc supervises at most one child at a time and may start one after another (a warm
 * process restarted, one process per frame). Every child:
 *   - is started with fork + execv of an argv array, never through a shell;
 *   - leads its own process group, so that dr_proc_kill reaches everything it started;
 *   - gets PR_SET_PDEATHSIG(SIGKILL), so that it dies with us (no orphans after a crash);
 *   - has default signal dispositions and an empty signal mask, stdin from /dev/null, stdout and
 *     stderr into one pipe whose last DR_PROC_TAIL_SIZE bytes are kept (and echoed line by line to
 *     our stderr when asked), and no other descriptor of ours but the optional command and reply
 *     pipes at the numbers the configuration names;
 *   - reports a failure before exec (which step, errno) through a close-on-exec pipe, so that
 *     dr_proc_spawn fails with a message instead of a child that exits 127.
 * Nothing here blocks for long: output is read when it is there, exit is noticed through a pidfd
 * (or by looking now and then where there is none).
 */

typedef struct dr_proc_cfg {
	const char *what; /* what the child is, for messages ("Blender"); copied */
	const char
	        *echo_tag; /* non-NULL: echo output lines to stderr as "[TAG PID] line"; copied */
	int cmd_fd;        /* 3..8: the child reads our commands here; -1 = no command pipe */
	int reply_fd;      /* 3..8: the child writes replies here; -1 = no reply pipe */
	const cpu_set_t *cpus; /* affinity for the child, NULL = inherit ours; copied */
} dr_proc_cfg;

typedef struct dr_proc dr_proc;

/* A supervisor with no child yet. NULL with ERR on a bad configuration or out of memory. */
dr_proc *dr_proc_create(const dr_proc_cfg *cfg, char *err, size_t errlen);

/* Start EXE (a path, not looked up in PATH) with ARGV (NULL-terminated; ARGV[0] as the child sees
 * it). Clears the output tail. Returns 0, or -1 with ERR (a pipe, fork or a step in the child
 * failed, or a child is still there) and P as it was. */
int dr_proc_spawn(dr_proc *p, const char *exe, char *const argv[], char *err, size_t errlen);

/* Pid of the child, 0 when there is none (never started, or reaped by dr_proc_kill). */
pid_t dr_proc_pid(const dr_proc *p);

/* CPU time (user + system, seconds) process PID has used so far, from /proc; -1 if unknown. */
double dr_proc_cpu_seconds(pid_t pid);

/* True once the child has exited (it stays a zombie until dr_proc_kill reaps it). */
bool dr_proc_exited(const dr_proc *p);

/* Read whatever output the child has written, without blocking, into the tail. */
void dr_proc_drain(dr_proc *p);

/* Wait up to MS milliseconds for output, a reply or the child's exit (or just sleep when there is
 * no child), then read the output that came. Returns 0, or -1 with errno (EINTR: a signal came, so
 * that the caller may look at its flags). */
int dr_proc_poll(dr_proc *p, int ms);

/* Wait up to MS milliseconds for the child to exit by itself, reading its output meanwhile.
 * True if it has exited (or there is none). */
bool dr_proc_wait_exit(dr_proc *p, int ms);

/* Kill what is left of the child's process group (SIGKILL), reap the child, read the rest of its
 * output and close every pipe. Returns the wait status, or -1 without a child or when it could not
 * be had. The output tail stays until the next spawn. */
int dr_proc_kill(dr_proc *p);

/* Write all LEN bytes of DATA to the command pipe, immune to SIGPIPE (no handler needed). Returns
 * 0, or -1 with ERR (EPIPE's message when the child has gone, or no command pipe). */
int dr_proc_write(dr_proc *p, const char *data, size_t len, char *err, size_t errlen);

/* Close the command pipe: the child reads EOF. */
void dr_proc_close_cmd(dr_proc *p);

/* Read up to LEN bytes from the reply pipe without blocking: the number read, 0 at EOF (the pipe
 * is closed then, see dr_proc_reply_open), or -1 with errno (EAGAIN: nothing yet). */
ssize_t dr_proc_read_reply(dr_proc *p, char *buf, size_t len);

/* True while the reply pipe is open (a child with a reply pipe that has not reached EOF). */
bool dr_proc_reply_open(const dr_proc *p);

/* The output tail, oldest byte first, NUL-terminated into BUF (LEN bytes; DR_PROC_TAIL_SIZE + 1
 * holds all of it; a smaller BUF gets the newest bytes). Returns its length. */
size_t dr_proc_tail(const dr_proc *p, char *buf, size_t len);

/* Describe a wait STATUS, e.g. "exited with status 3" or "was killed by signal 9 (Killed)". */
void dr_proc_describe(int status, char *buf, size_t len);

/* Kill and reap the child, if any, and free P. NULL is fine. */
void dr_proc_destroy(dr_proc *p);

#endif
