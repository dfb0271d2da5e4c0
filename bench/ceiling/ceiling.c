/* dispatch-ceiling: rank 0's real program (dr_service, dr_orch, dr_dispatch, dr_sched, dr_msg)
 * against render nodes that answer every task at once, with no Blender: tasks per second through
 * rank 0 and its CPU per task. Usage (as drender's, under mpirun with 2 ranks or more):
 *   mpirun -np N dr-ceiling [drender options] SCENE.blend START END */
#include "dr_log.h"
#include "dr_msg.h"
#include "dr_opts.h"
#include "dr_service.h"
#include "dr_util.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static volatile sig_atomic_t interrupted;

static double cpu_now(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A render node that renders nothing: every frame of a task is reported done at once, then it
 * asks for more (as dr_node does once its last queued frame has started). Cancels find nothing
 * queued: every frame is already reported. */
static int instant_node(dr_chan *chan, long *tasks, char *err, size_t errlen)
{
	dr_msg m, out;
	int src, k, job = -1;
	double last_sent = dr_now(), idle_ms = 0.05;

	out = (dr_msg){.type = DR_MSG_HELLO, .job = -1, .threads = 1, .pid = 0};
	snprintf(out.host, sizeof out.host, "instant");
	if (dr_chan_send(chan, 0, &out, err, errlen))
		return -1;
	out = (dr_msg){.type = DR_MSG_READY, .job = -1};
	if (dr_chan_send(chan, 0, &out, err, errlen))
		return -1;
	for (;;) {
		int got = 0;
		while ((k = dr_chan_poll(chan, &m, &src, err, errlen)) == 1) {
			got++;
			if (m.type == DR_MSG_STOP)
				return 0;
			if (m.type == DR_MSG_JOB)
				job = m.job;
			if (m.type != DR_MSG_TASK || m.job != job)
				continue;
			++*tasks;
			for (int i = 0; i < m.n; i++) {
				out = (dr_msg){.type = DR_MSG_RESULT,
				               .job = job,
				               .frame = m.frames[i],
				               .ok = 1,
				               .seconds = 0.001};
				if (dr_chan_send(chan, 0, &out, err, errlen))
					return -1;
			}
			out = (dr_msg){.type = DR_MSG_REQUEST, .job = -1};
			if (dr_chan_send(chan, 0, &out, err, errlen))
				return -1;
			last_sent = dr_now();
		}
		if (k < 0)
			return -1;
		if (dr_now() - last_sent > DR_HEARTBEAT_S) {
			out = (dr_msg){.type = DR_MSG_HEARTBEAT, .job = -1};
			if (dr_chan_send(chan, 0, &out, err, errlen))
				return -1;
			last_sent = dr_now();
		}
		/* as dr_node's loop: no nap right after a message, then back off up to 5 ms */
		idle_ms = got ? 0.05 : (idle_ms * 2 > 5 ? 5 : idle_ms * 2);
		if (!got)
			dr_sleep_ms(idle_ms);
	}
}

int main(int argc, char **argv)
{
	dr_opts o = {0};
	dr_chan *chan = NULL;
	dr_service *svc = NULL;
	dr_service_cfg c;
	char err[DR_ERRLEN] = "";
	int provided, rank = 0, size = 1, code = 0;
	long tasks = 0, all_tasks = 0;

	if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
		return 3;
	if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
	    MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS ||
	    MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS || size < 2) {
		fprintf(stderr, "dr-ceiling: needs mpirun -np 2 or more\n");
		MPI_Finalize();
		return 2;
	}
	dr_log_init(rank, DR_LOG_WARN);
	if (dr_opts_parse(argc, argv, "/bin/true", &o, err, sizeof err) != 0 ||
	    dr_opts_resolve(&o, size - 1, dr_mpi_recovery(), err, sizeof err) != 0) {
		if (rank == 0)
			fprintf(stderr, "dr-ceiling: %s\n", err);
		MPI_Finalize();
		return 2;
	}
	c = (dr_service_cfg){.scene = o.scene,
	                     .output = o.output,
	                     .format = o.format,
	                     .engine = o.engine,
	                     .samples = o.samples,
	                     .frames = &o.frames,
	                     .quiet = true};
	dr_opts_orch_cfg(&o, &c.orch);
	if (rank == 0)
		code = dr_service_open(&svc, &c);
	if (MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS || code != 0 ||
	    (chan = dr_chan_create(MPI_COMM_WORLD, err, sizeof err)) == NULL) {
		fprintf(stderr, "dr-ceiling: cannot start (%s)\n", err);
		MPI_Finalize();
		return 3;
	}
	if (rank == 0) {
		cpu_set_t cpus;
		CPU_ZERO(&cpus);
		double t0 = dr_now(), c0 = cpu_now();
		code = dr_service_run(svc, chan, 1, &cpus, &interrupted);
		double wall = dr_now() - t0, cpu = cpu_now() - c0;
		dr_service_close(svc);
		dr_chan_free(chan, 5.0);
		MPI_Reduce(&tasks, &all_tasks, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
		double n = (double)o.frames.n;
		printf("CEILING nodes %d frames %zu tasks %ld tail %s wall %.3f s tasks/s %.0f "
		       "frames/s %.0f rank0_cpu %.3f s cpu/task %.1f us cpu/frame %.1f us exit "
		       "%d\n",
		       size - 1, o.frames.n, all_tasks, o.no_speculate ? "off" : "on", wall,
		       (double)all_tasks / wall, n / wall, cpu,
		       all_tasks ? cpu / (double)all_tasks * 1e6 : 0, cpu / n * 1e6, code);
	} else {
		if (instant_node(chan, &tasks, err, sizeof err) != 0)
			fprintf(stderr, "dr-ceiling: rank %d: %s\n", rank, err);
		dr_chan_free(chan, 5.0);
		MPI_Reduce(&tasks, &all_tasks, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
	}
	dr_opts_free(&o);
	MPI_Finalize();
	return code;
}
