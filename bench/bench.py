#!/usr/bin/python3
"""drender benchmarks: real Blender against the alternatives, the scheduler at scale, the tail.

Run through bench/run.sh (see bench/README.md). Subcommands:
  real   real Blender on bench/make_scene.py's scene: drender warm and --one-shot against one
         `blender -a`, one Blender per frame (as many at a time as cores), fixed batches of 5
  scale  the fake Blender with heavy-tailed per-frame costs on 4..64 render nodes
  tail   a job whose last frames cost the most, with and without tail control
  rusage OUT -- CMD...   run CMD, write its CPU time (rusage of the child) to OUT as JSON
Each writes a plain-text table to stdout and raw data plus medians as JSON. Contenders run
alternately, several repetitions, and the tables show medians and ratios. A contender that fails
shows as failed; it never ends the run. Python 3 standard library only.
"""
import argparse
import atexit
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAKE_TIMED = os.path.join(HERE, "fake-blender-timed")

# ---------------------------------------------------------------- processes and cleanup

_live = set()  # process group ids still running
_live_lock = threading.Lock()
_tmpdirs = []


def _cleanup():
    with _live_lock:
        groups = list(_live)
    for pg in groups:
        try:
            os.killpg(pg, signal.SIGTERM)
        except OSError:
            pass
    if groups:
        time.sleep(1.0)
    for pg in groups:
        try:
            os.killpg(pg, signal.SIGKILL)
        except OSError:
            pass
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


def make_tmpdir(tag):
    d = tempfile.mkdtemp(prefix="drender-bench-%s-" % tag)
    _tmpdirs.append(d)
    return d


def drop_tmpdir(d):
    shutil.rmtree(d, ignore_errors=True)
    if d in _tmpdirs:
        _tmpdirs.remove(d)


def run(argv, env=None, timeout=600, cwd=None, capture=True):
    """Run ARGV in its own process group; return dict(rc, wall, out, error). Never raises."""
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                             stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
                             start_new_session=True)
    except OSError as e:
        return {"rc": None, "wall": 0.0, "out": "", "error": "cannot start %s: %s" % (argv[0], e),
                "t0": t0}
    with _live_lock:
        _live.add(p.pid)
    error = None
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        error = "timed out after %d s" % timeout
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(p.pid, sig)
            except OSError:
                pass
            try:
                out, _ = p.communicate(timeout=5)
                break
            except subprocess.TimeoutExpired:
                out = b""
    wall = time.monotonic() - t0
    # Anything the command left behind in its group (it should be nothing) goes too.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    with _live_lock:
        _live.discard(p.pid)
    text = (out or b"").decode("utf-8", "replace")
    if error is None and p.returncode != 0:
        last = [ln for ln in text.strip().splitlines() if ln.strip()][-3:]
        error = "exit %s: %s" % (p.returncode, " | ".join(last)[:300])
    return {"rc": p.returncode, "wall": wall, "out": text, "error": error, "t0": t0}


def mpi_env(extra=None):
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.update(extra or {})
    return env


def drender_help(drender):
    r = run([drender, "--help"], timeout=30)
    return r["out"] if r["rc"] == 0 else ""


# ---------------------------------------------------------------- statistics and tables

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt(x, spec="%.2f", none="-"):
    return none if x is None else spec % x


def table(headers, rows):
    cols = list(zip(*([headers] + rows))) if rows else [[h] for h in headers]
    widths = [max(len(str(c)) for c in col) for col in cols]
    lines = ["  ".join(str(h).rjust(w) if i else str(h).ljust(w)
                       for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def machine():
    model, mem = "?", "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576.0)
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "memory": mem, "kernel": platform.release(),
            "load_before": os.getloadavg()}


def rotate(items, k):
    k %= max(1, len(items))
    return items[k:] + items[:k]


# ---------------------------------------------------------------- rusage helper

def cmd_rusage(args):
    """Run a command, forward INT/TERM to it, write its rusage (user+sys seconds) as JSON."""
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(args.cmd)
    except OSError as e:
        sys.stderr.write("bench rusage: %s\n" % e)
        return 127
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda n, _f: p.send_signal(n))
    while True:
        try:
            _, status, ru = os.wait4(p.pid, 0)
            break
        except InterruptedError:
            continue
    write_json(args.out, {"user_seconds": ru.ru_utime, "sys_seconds": ru.ru_stime,
                          "cpu_seconds": ru.ru_utime + ru.ru_stime,
                          "wall_seconds": time.monotonic() - t0,
                          "max_rss_kib": ru.ru_maxrss})
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128 + os.WTERMSIG(status)


# ---------------------------------------------------------------- 1. real Blender

TIME_RE = re.compile(r"^(?:\[blender \d+\] )? Time: ([0-9:.]+)", re.M)


def blender_times(text):
    """Per-frame render seconds from Blender's ' Time: MM:SS.ss (Saving: ...)' lines."""
    result = []
    for m in TIME_RE.finditer(text):
        secs = 0.0
        for part in m.group(1).split(":"):
            secs = secs * 60 + float(part)
        result.append(secs)
    return result


def count_frames(outdir, frames):
    have = 0
    for f in frames:
        p = os.path.join(outdir, "f_%04d.png" % f)
        if os.path.isfile(p) and os.path.getsize(p) > 0:
            have += 1
    return have


def real_drender(ctx, tmp, one_shot):
    report = os.path.join(tmp, "report.json")
    argv = ["mpirun", "--oversubscribe", "-np", str(ctx.nodes + 1), ctx.drender,
            "--blender", ctx.blender, ctx.scene, str(ctx.first), str(ctx.last),
            "-o", os.path.join(tmp, "out", "f_####"), "--report", report, "-v" if one_shot else "-q"]
    if ctx.threads:
        argv += ["-t", str(ctx.threads)]
    if one_shot:
        argv.append("--one-shot")
    r = run(argv, env=mpi_env(), timeout=ctx.timeout)
    rep = load_json(report) or {}
    frames = rep.get("frames", [])
    # Blender's own ' Time:' lines (shown with -v) where it prints them (one-shot); the warm
    # driver prints none, so there the report's per-frame 'seconds' (render + save) count.
    times = blender_times(r["out"])
    pure = sum(times) if times else sum(f.get("seconds") or 0 for f in frames
                                        if f.get("state") == "done")
    threads = sorted({rk.get("threads") for rk in rep.get("ranks", [])})
    return r, pure, ctx.nodes, ",".join(str(t) for t in threads) or "?"


def real_single(ctx, tmp):
    argv = [ctx.blender, "-b", ctx.scene, "-o", os.path.join(tmp, "out", "f_####"), "-F", "PNG",
            "-x", "1", "-t", str(ctx.cores), "-s", str(ctx.first), "-e", str(ctx.last), "-a"]
    r = run(argv, timeout=ctx.timeout)
    return r, sum(blender_times(r["out"])), 1, str(ctx.cores)


def _pool(jobs, width):
    """Run argv lists JOBS with WIDTH workers; return (wall, [run results])."""
    results = [None] * len(jobs)
    lock = threading.Lock()
    nxt = [0]

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(jobs):
                return
            results[i] = [run(argv, timeout=ctx_timeout[0]) for argv in jobs[i]]

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(width)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, [x for group in results for x in group]


ctx_timeout = [600]


def _pool_result(wall, results):
    errors = [x["error"] for x in results if x["error"]]
    out = "".join(x["out"] for x in results)
    return {"rc": 0 if not errors else 1, "wall": wall, "out": out,
            "error": errors[0] if errors else None}, sum(blender_times(out))


def real_per_frame(ctx, tmp):
    out = os.path.join(tmp, "out", "f_####")
    jobs = [[[ctx.blender, "-b", ctx.scene, "-o", out, "-F", "PNG", "-x", "1", "-t", "1",
              "-f", str(f)]] for f in range(ctx.first, ctx.last + 1)]
    wall, results = _pool(jobs, ctx.cores)
    r, pure = _pool_result(wall, results)
    return r, pure, ctx.cores, "1"


def real_batches(ctx, tmp):
    """Fixed batches of 5 frames, batch i to process i mod cores; each process runs its list."""
    out = os.path.join(tmp, "out", "f_####")
    batches = [(s, min(s + 4, ctx.last)) for s in range(ctx.first, ctx.last + 1, 5)]
    lists = [[] for _ in range(ctx.cores)]
    for i, (s, e) in enumerate(batches):
        lists[i % ctx.cores].append([ctx.blender, "-b", ctx.scene, "-o", out, "-F", "PNG",
                                     "-x", "1", "-t", "1", "-s", str(s), "-e", str(e), "-a"])
    wall, results = _pool(lists, ctx.cores)
    r, pure = _pool_result(wall, results)
    return r, pure, ctx.cores, "1"


REAL_CONTENDERS = [
    ("drender warm", "drender (warm), mpirun -np {np}", lambda c, t: real_drender(c, t, False)),
    ("drender --one-shot", "drender --one-shot, mpirun -np {np}",
     lambda c, t: real_drender(c, t, True)),
    ("blender -a", "one `blender -b -s A -e B -a`, -t {cores}", real_single),
    ("per frame x{cores}", "one `blender -f N` per frame, {cores} at a time, -t 1", real_per_frame),
    ("batches of 5 x{cores}", "batches of 5 frames round-robin to {cores} processes, -t 1",
     real_batches),
]


def ensure_scene(ctx):
    src = os.path.join(HERE, "make_scene.py")
    if (os.path.isfile(ctx.scene) and os.path.getmtime(ctx.scene) >= os.path.getmtime(src)):
        return None
    os.makedirs(os.path.dirname(ctx.scene), exist_ok=True)
    tmp = ctx.scene + ".tmp.blend"
    r = run([ctx.blender, "-b", "--factory-startup", "--python", src, "--", tmp], timeout=300)
    if r["error"] or not os.path.isfile(tmp):
        return "cannot build the benchmark scene: %s" % (r["error"] or "no file written")
    os.replace(tmp, ctx.scene)
    return None


def cmd_real(args):
    ctx = args
    ctx.cores = args.cores or len(os.sched_getaffinity(0))
    ctx.nodes = ctx.cores
    ctx_timeout[0] = args.timeout
    ctx.scene = os.path.abspath(args.scene)
    ctx.drender = os.path.abspath(args.drender)
    frames = list(range(args.first, args.last + 1))
    err = ensure_scene(ctx)
    data = {"benchmark": "real", "machine": machine(), "scene": ctx.scene,
            "frames": [args.first, args.last], "reps": args.reps, "cores": ctx.cores,
            "blender": ctx.blender, "runs": [], "summary": []}
    if err:
        print("real Blender benchmark: FAILED: %s" % err)
        data["error"] = err
        write_json(args.json, data)
        return 0
    names = [(n.format(cores=ctx.cores), d.format(np=ctx.nodes + 1, cores=ctx.cores), fn)
             for n, d, fn in REAL_CONTENDERS]
    only = [s.strip() for s in (args.only or "").split(",") if s.strip()]
    if only:
        names = [x for x in names if any(o in x[0] for o in only)]
    for rep in range(args.reps):
        for name, desc, fn in rotate(names, rep):
            tmp = make_tmpdir("real")
            try:
                r, pure, nodes, threads = fn(ctx, tmp)
                have = count_frames(os.path.join(tmp, "out"), frames)
            except Exception as e:  # a broken contender must not end the run
                r, pure, nodes, threads, have = ({"wall": None, "error": "bench error: %r" % e},
                                                 0.0, ctx.cores, "?", 0)
            finally:
                drop_tmpdir(tmp)
            error = r.get("error")
            if not error and have != len(frames):
                error = "%d of %d frames on disk" % (have, len(frames))
            run_rec = {"contender": name, "rep": rep, "wall": r.get("wall"), "pure": pure,
                       "nodes": nodes, "threads": threads, "frames_on_disk": have,
                       "ok": not error, "error": error}
            data["runs"].append(run_rec)
            sys.stderr.write("  real rep %d %-22s %s\n" % (
                rep + 1, name, "%.2f s" % r["wall"] if not error else "FAILED: %s" % error))
            write_json(args.json, data)
    base = {}
    for name, desc, _ in names:
        ok = [x for x in data["runs"] if x["contender"] == name and x["ok"]]
        s = {"contender": name, "what": desc, "ok_runs": len(ok),
             "failed_runs": len([x for x in data["runs"] if x["contender"] == name]) - len(ok),
             "wall_median": median([x["wall"] for x in ok]),
             "wall_min": min([x["wall"] for x in ok]) if ok else None,
             "wall_max": max([x["wall"] for x in ok]) if ok else None,
             "pure_median": median([x["pure"] for x in ok]),
             "nodes": ok[0]["nodes"] if ok else None, "threads": ok[0]["threads"] if ok else None,
             "overhead_per_frame": median([(x["wall"] * x["nodes"] - x["pure"]) / len(frames)
                                           for x in ok])}
        base[name] = s["wall_median"]
        data["summary"].append(s)
    by_rep = {}
    for x in data["runs"]:
        if x["ok"]:
            by_rep.setdefault(x["rep"], {})[x["contender"]] = x["wall"]
    for s in data["summary"]:
        pr = [r[s["contender"]] / r["blender -a"] for r in by_rep.values()
              if s["contender"] in r and r.get("blender -a")]
        s["paired_ratio_to_single"] = median(pr)
    single = base.get("blender -a")
    per_frame = base.get("per frame x%d" % ctx.cores)
    rows = []
    for s in data["summary"]:
        w = s["wall_median"]
        s["ratio_to_single"] = w / single if w and single else None
        s["ratio_to_per_frame"] = w / per_frame if w and per_frame else None
        if s["ok_runs"] == 0:
            rows.append([s["contender"], "FAILED", "-", "-", "-", "-", "-", "-", "-"])
            continue
        note = "" if not s["failed_runs"] else " (%d failed)" % s["failed_runs"]
        rows.append([s["contender"], fmt(w) + note,
                     "%s-%s" % (fmt(s["wall_min"], "%.1f"), fmt(s["wall_max"], "%.1f")),
                     fmt(s["ratio_to_single"], "%.2fx"), fmt(s["paired_ratio_to_single"], "%.2fx"),
                     fmt(s["ratio_to_per_frame"], "%.2fx"),
                     fmt(s["pure_median"], "%.1f"), "%s x %s" % (s["nodes"], s["threads"]),
                     fmt(s["overhead_per_frame"], "%.3f")])
    print("Real Blender, one machine: frames %d-%d of %s, %d cores, median of %d alternating runs"
          % (args.first, args.last, os.path.basename(ctx.scene), ctx.cores, args.reps))
    print(table(["contender", "wall s", "range", "vs -a", "paired vs -a", "vs per-frame",
                 "render s",
                 "procs x thr", "overhead s/frame"], rows))
    print("  overhead per frame = (wall x processes - pure render time) / frames; render s = sum"
          " of per-frame render times:\n  Blender's ' Time:' lines (drender --one-shot shows them"
          " with -v), for warm drender the report's per-frame 'seconds' (render + save);\n  vs = ratio"
          " of medians; paired vs -a = median over repetitions of wall / the same repetition's "
          "blender -a wall.")
    for s in data["summary"]:
        if s["failed_runs"]:
            errs = [x["error"] for x in data["runs"] if x["contender"] == s["contender"]
                    and not x["ok"]]
            print("  %s failed %d time(s): %s" % (s["contender"], s["failed_runs"], errs[0]))
    print()
    write_json(args.json, data)
    return 0


# ---------------------------------------------------------------- fake Blender timelines

def read_timeline(path):
    """Events from fake-blender-timed: list of (kind, rank, pid, frame, t)."""
    events = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 5 and p[0] in ("S", "E"):
                    events.append((p[0], int(p[1]), int(p[2]), int(p[3]), float(p[4])))
    except (OSError, ValueError):
        pass
    events.sort(key=lambda e: e[4])
    return events


def attempts_of(events):
    """Render attempts as dicts(rank, pid, frame, start, end or None)."""
    open_by_pid, result = {}, []
    for kind, rank, pid, frame, t in events:
        if kind == "S":
            a = {"rank": rank, "pid": pid, "frame": frame, "start": t, "end": None}
            open_by_pid[pid] = a
            result.append(a)
        else:
            a = open_by_pid.pop(pid, None)
            if a and a["frame"] == frame:
                a["end"] = t
    return result


def gaps_between_frames(attempts):
    """Per process: the time its Blender sat idle between finishing a frame and starting the next."""
    by_pid = {}
    for a in attempts:
        by_pid.setdefault(a["pid"], []).append(a)
    gaps = []
    for lst in by_pid.values():
        lst.sort(key=lambda a: a["start"])
        for prev, cur in zip(lst, lst[1:]):
            if prev["end"] is not None:
                gaps.append(max(0.0, cur["start"] - prev["end"]))
    return gaps


def staggered_bound(ready, total, biggest):
    """Shortest makespan (from min(ready)) for work TOTAL on nodes free from times READY."""
    t0 = min(ready)
    lo, hi = t0, max(ready) + total / len(ready) + biggest
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(max(0.0, mid - a) for a in ready) >= total:
            hi = mid
        else:
            lo = mid
    return max(hi, t0 + biggest) - t0


def heavy_tailed_costs(n, mean, sigma, seed):
    """N lognormal costs with the given mean (seconds) and shape, rounded to 0.1 ms."""
    rng = random.Random(seed)
    mu = math.log(mean) - sigma * sigma / 2
    return [round(rng.lognormvariate(mu, sigma), 4) for _ in range(n)]


def fake_scene(tmp):
    path = os.path.join(tmp, "scene.blend")
    with open(path, "wb") as f:
        f.write(b"BLENDER-v300 drender benchmark stand-in")
    return path


def run_fake_job(args, tmp, nodes, first, last, env_extra, extra_args=(), rank0_cpu=True):
    """One drender job on the fake Blender; returns a dict of raw measurements."""
    scene = fake_scene(tmp)
    timelog = os.path.join(tmp, "timeline.txt")
    report = os.path.join(tmp, "report.json")
    rus = os.path.join(tmp, "rank0-rusage.json")
    env = mpi_env({"BENCH_TIMELOG": timelog, "BENCH_STATE": os.path.join(tmp, "state")})
    env.update(env_extra)
    dargs = ["--blender", FAKE_TIMED, scene, str(first), str(last),
             "-o", os.path.join(tmp, "out", "f_####"), "--report", report, "-q",
             "--node-timeout", "300"] + list(extra_args)
    if rank0_cpu:
        argv = ["mpirun", "--oversubscribe", "-np", "1", sys.executable, os.path.abspath(__file__),
                "rusage", rus, "--", args.drender] + dargs + \
               [":", "-np", str(nodes), args.drender] + dargs
    else:
        argv = ["mpirun", "--oversubscribe", "-np", str(nodes + 1), args.drender] + dargs
    r = run(argv, env=env, timeout=args.timeout)
    rep = load_json(report) or {}
    atts = attempts_of(read_timeline(timelog))
    counts = rep.get("counts", {})
    error = r["error"]
    want = last - first + 1
    if not error and counts.get("rendered") != want:
        error = "report: %s of %d frames rendered" % (counts.get("rendered"), want)
    return {"r": r, "report": rep, "attempts": atts, "rusage": load_json(rus), "error": error,
            "launch": r["t0"]}


# ---------------------------------------------------------------- 2. scheduler at scale

def scale_metrics(job, costs, nodes):
    rep, atts = job["report"], job["attempts"]
    m = {"ok": not job["error"], "error": job["error"], "wall_process": job["r"]["wall"],
         "wall_report": rep.get("wall_seconds")}
    total, biggest = sum(costs), max(costs)
    m["bound_plain"] = max(total / nodes, biggest)
    done = [a for a in atts if a["end"] is not None]
    if atts and done:
        ready = {}
        for a in atts:
            ready[a["rank"]] = min(ready.get(a["rank"], a["start"]), a["start"])
        t_first = min(ready.values())
        t_end = max(a["end"] for a in done)
        m["startup"] = t_first - job["launch"]
        m["all_ready"] = max(ready.values()) - job["launch"]
        m["nodes_seen"] = len(ready)
        m["wall_sched"] = t_end - t_first
        m["shutdown"] = job["launch"] + job["r"]["wall"] - t_end
        rl = list(ready.values()) + [t_first] * max(0, nodes - len(ready))
        m["bound_staggered"] = staggered_bound(rl, total, biggest)
        m["eff_plain"] = m["bound_plain"] / m["wall_sched"] if m["wall_sched"] > 0 else None
        m["eff_staggered"] = (m["bound_staggered"] / m["wall_sched"]
                              if m["wall_sched"] > 0 else None)
        gaps = gaps_between_frames(atts)
        m["gap_p50_ms"] = fmt_ms(percentile(gaps, 50))
        m["gap_p99_ms"] = fmt_ms(percentile(gaps, 99))
        m["gap_max_ms"] = fmt_ms(max(gaps) if gaps else None)
        m["render_overrun"] = sum(a["end"] - a["start"] for a in done) / total - 1
        m["attempts"] = len(atts)
    disp = [f.get("dispatch_seconds") for f in rep.get("frames", [])
            if f.get("dispatch_seconds") is not None]
    if disp:
        m["dispatch_p50_ms"] = fmt_ms(percentile(disp, 50))
        m["dispatch_p99_ms"] = fmt_ms(percentile(disp, 99))
    if rep.get("rank0_cpu_seconds") is not None:
        m["rank0_cpu_report"] = rep["rank0_cpu_seconds"]
    ru = job["rusage"]
    if ru:
        m["rank0_cpu"] = ru["cpu_seconds"]
        m["rank0_wall"] = ru["wall_seconds"]
        m["rank0_share"] = ru["cpu_seconds"] / ru["wall_seconds"] if ru["wall_seconds"] else None
    return m


def fmt_ms(x):
    return None if x is None else x * 1000.0


def cmd_scale(args):
    args.drender = os.path.abspath(args.drender)
    node_counts = [int(x) for x in args.nodes.split(",")]
    costs = heavy_tailed_costs(args.frames, args.mean, args.sigma, args.seed)
    env_costs = {"FAKE_BLENDER_COSTS": ",".join("%d:%g" % (i + 1, c) for i, c in
                                                enumerate(costs)),
                 "FAKE_BLENDER_COST": "%g" % args.mean}
    scosts = sorted(costs)
    data = {"benchmark": "scale", "machine": machine(), "frames": args.frames,
            "cost_model": {"distribution": "lognormal", "mean_s": args.mean, "sigma": args.sigma,
                           "seed": args.seed, "total_s": sum(costs), "max_s": max(costs),
                           "p50_s": percentile(scosts, 50), "p99_s": percentile(scosts, 99)},
            "reps": args.reps, "runs": [], "summary": []}
    report_has = {"dispatch": False, "rank0": False}
    for rep in range(args.reps):
        for n in rotate(node_counts, rep):
            tmp = make_tmpdir("scale")
            try:
                job = run_fake_job(args, tmp, n, 1, args.frames, env_costs)
                m = scale_metrics(job, costs, n)
            except Exception as e:
                m = {"ok": False, "error": "bench error: %r" % e}
            finally:
                drop_tmpdir(tmp)
            m.update({"nodes": n, "rep": rep})
            report_has["dispatch"] |= "dispatch_p50_ms" in m
            report_has["rank0"] |= "rank0_cpu_report" in m
            data["runs"].append(m)
            sys.stderr.write("  scale rep %d %3d nodes %s\n" % (
                rep + 1, n, "sched %.2f s, eff %.3f" % (m["wall_sched"], m["eff_staggered"])
                if m.get("ok") and m.get("wall_sched") else "FAILED: %s" % m.get("error")))
            write_json(args.json, data)
    keys = ["wall_process", "wall_report", "startup", "all_ready", "wall_sched", "shutdown",
            "bound_plain", "bound_staggered", "eff_plain", "eff_staggered", "gap_p50_ms",
            "gap_p99_ms", "gap_max_ms", "dispatch_p50_ms", "dispatch_p99_ms", "rank0_cpu",
            "rank0_cpu_report", "rank0_share", "render_overrun"]
    rows = []
    for n in node_counts:
        ok = [x for x in data["runs"] if x["nodes"] == n and x.get("ok")]
        s = {"nodes": n, "ok_runs": len(ok),
             "failed_runs": len([x for x in data["runs"] if x["nodes"] == n]) - len(ok)}
        for k in keys:
            s[k] = median([x.get(k) for x in ok])
        data["summary"].append(s)
        if not ok:
            rows.append([str(n), "FAILED"] + ["-"] * 10)
            continue
        rows.append([str(n), fmt(s["bound_plain"]), fmt(s["wall_sched"]),
                     fmt(s["eff_plain"], "%.3f"), fmt(s["eff_staggered"], "%.3f"),
                     fmt(s["dispatch_p50_ms"], "%.2f"), fmt(s["dispatch_p99_ms"], "%.2f"),
                     "%s/%s" % (fmt(s["gap_p50_ms"], "%.1f"), fmt(s["gap_p99_ms"], "%.1f")),
                     "%s/%s" % (fmt(s["rank0_cpu"], "%.2f"), fmt(s["rank0_cpu_report"], "%.2f")),
                     fmt(s["rank0_share"] and
                                                       100 * s["rank0_share"], "%.2f%%"),
                     fmt(s["startup"], "%.1f") + "/" + fmt(s["all_ready"], "%.1f"),
                     fmt(s["wall_process"], "%.1f")])
    cm = data["cost_model"]
    print("Scheduler at scale (fake Blender): %d frames, lognormal costs mean %.0f ms sigma %.1f "
          "seed %d (total %.1f s, p50 %.0f ms, p99 %.0f ms, max %.0f ms), median of %d "
          "alternating runs" % (args.frames, 1000 * args.mean, args.sigma, args.seed,
                                cm["total_s"], 1000 * cm["p50_s"], 1000 * cm["p99_s"],
                                1000 * cm["max_s"], args.reps))
    print(table(["nodes", "bound s", "wall s", "eff", "eff(start)", "disp p50 ms",
                 "disp p99 ms", "gap p50/p99 ms", "rank0 cpu s", "rank0 %core",
                 "first/all ready s", "process s"], rows))
    print("  wall = first frame start to last frame end (start-up excluded); bound = max(total "
          "cost / nodes, largest frame); eff = bound / wall;\n  eff(start) = same against the "
          "bound for the nodes' actual ready times (staggered start-up of the fake Blenders "
          "excluded too);\n  disp = report 'dispatch_seconds'%s; gap = a node's Blender idle "
          "between finishing a frame and starting the next (fake Blender timestamps);\n  rank0 "
          "cpu = user+sys of rank 0 over the whole job, wait4 rusage / the report's "
          "'rank0_cpu_seconds'; %%core = the first / rank 0's wall;\n  ready = seconds from mpirun start to a node's first frame."
          % ("" if report_has["dispatch"] else " (not in this drender's report: '-')"))
    print()
    dat = os.path.join(os.path.dirname(os.path.abspath(args.json)), "efficiency.dat")
    with open(dat, "w") as f:
        f.write("# nodes eff_plain eff_staggered\n")
        for s in data["summary"]:
            f.write("%d %s %s\n" % (s["nodes"], fmt(s["eff_plain"], "%.4f", "NaN"),
                                    fmt(s["eff_staggered"], "%.4f", "NaN")))
    write_json(args.json, data)
    return 0


# ---------------------------------------------------------------- 3. tail

def tail_metrics(job):
    atts = job["attempts"]
    m = {"ok": not job["error"], "error": job["error"], "wall_process": job["r"]["wall"]}
    if not atts:
        return m
    first_start = {}
    for a in atts:
        if a["frame"] not in first_start:
            first_start[a["frame"]] = a["start"]
    t0 = min(first_start.values())
    t_last_fresh = max(first_start.values())
    ends = sorted(a["end"] for a in atts if a["end"] is not None)
    # The first node to find no fresh frame left: the first render to end after the last fresh
    # frame was handed out (every node asks for more work when its frame ends).
    later = [t for t in ends if t >= t_last_fresh]
    t_idle = later[0] if later else t_last_fresh
    result = {}
    for a in atts:
        if a["end"] is not None:
            result[a["frame"]] = min(result.get(a["frame"], a["end"]), a["end"])
    t_last = max(result.values()) if result else None
    m.update({"t_first_idle": t_idle - t0, "t_last_result": t_last - t0 if t_last else None,
              "idle_to_end": t_last - t_idle if t_last else None,
              "idle_to_exit": job["launch"] + job["r"]["wall"] - t_idle,
              "attempts": len(atts), "frames": len(first_start),
              "duplicates": len(atts) - len(first_start)})
    fin = [f.get("finished_at") for f in job["report"].get("frames", [])
           if f.get("finished_at") is not None]
    if fin:
        m["report_last_finished_at"] = max(fin)
    return m


def cmd_tail(args):
    args.drender = os.path.abspath(args.drender)
    help_text = drender_help(args.drender)
    has_spec = "--no-speculate" in help_text
    costs = {f: args.cost for f in range(1, args.frames + 1)}
    for f in range(args.frames - args.expensive + 1, args.frames + 1):
        costs[f] = args.cost * args.factor
    env = {"FAKE_BLENDER_COSTS": ",".join("%d:%g" % kv for kv in costs.items())}
    scenarios = [("expensive last frames", {}),
                 ("+ slow first attempt of frame %d (x%g)" % (args.frames, args.slow),
                  {"BENCH_SLOW_FIRST": "%d:%g" % (args.frames, args.slow)})]
    modes = [("no tail control", ["--no-speculate"] if has_spec else [])]
    if has_spec:
        modes.append(("tail control", []))
    data = {"benchmark": "tail", "machine": machine(), "frames": args.frames,
            "nodes": args.nodes_tail, "cost_s": args.cost, "expensive_last": args.expensive,
            "factor": args.factor, "slow_factor": args.slow, "reps": args.reps,
            "drender_has_no_speculate": has_spec, "runs": [], "summary": []}
    combos = [(sn, se, mn, ma) for sn, se in scenarios for mn, ma in modes]
    for rep in range(args.reps):
        for sn, se, mn, ma in rotate(combos, rep):
            tmp = make_tmpdir("tail")
            try:
                e = dict(env)
                e.update(se)
                job = run_fake_job(args, tmp, args.nodes_tail, 1, args.frames, e, ma,
                                   rank0_cpu=False)
                m = tail_metrics(job)
            except Exception as ex:
                m = {"ok": False, "error": "bench error: %r" % ex}
            finally:
                drop_tmpdir(tmp)
            m.update({"scenario": sn, "mode": mn, "rep": rep})
            data["runs"].append(m)
            sys.stderr.write("  tail rep %d %-40s %-16s %s\n" % (
                rep + 1, sn, mn, "idle-to-end %.2f s" % m["idle_to_end"]
                if m.get("ok") and m.get("idle_to_end") is not None
                else "FAILED: %s" % m.get("error")))
            write_json(args.json, data)
    rows = []
    for sn, _ in scenarios:
        base = None
        for mn, _ in modes:
            ok = [x for x in data["runs"] if x["scenario"] == sn and x["mode"] == mn
                  and x.get("ok")]
            s = {"scenario": sn, "mode": mn, "ok_runs": len(ok)}
            for k in ("t_first_idle", "t_last_result", "idle_to_end", "idle_to_exit",
                      "wall_process", "duplicates"):
                s[k] = median([x.get(k) for x in ok])
            if mn == "no tail control":
                base = s["idle_to_end"]
            s["ratio"] = s["idle_to_end"] / base if base and s["idle_to_end"] is not None else None
            data["summary"].append(s)
            if not ok:
                rows.append([sn, mn, "FAILED"] + ["-"] * 6)
                continue
            rows.append([sn, mn, fmt(s["t_first_idle"]), fmt(s["t_last_result"]),
                         fmt(s["idle_to_end"]), fmt(s["ratio"], "%.2fx"),
                         fmt(s["idle_to_exit"]), fmt(s["wall_process"]),
                         fmt(s["duplicates"], "%.0f")])
    print("Tail (fake Blender): %d frames of %.2f s, the last %d cost %gx, %d render nodes, "
          "median of %d alternating runs" % (args.frames, args.cost, args.expensive, args.factor,
                                              args.nodes_tail, args.reps))
    print(table(["scenario", "mode", "first idle s", "last result s", "idle-to-end s", "ratio",
                 "idle-to-exit s", "process s", "dup. runs"], rows))
    print("  times from the first frame's start; first idle = first node to ask for work after "
          "the last fresh frame was handed out;\n  idle-to-end = until the last frame's first "
          "valid result, idle-to-exit = until drender exits (fake Blender timestamps).")
    if not has_spec:
        print("  This drender has no --no-speculate option: only the baseline (no tail control) "
              "was measured.")
    print()
    write_json(args.json, data)
    return 0


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="sub", required=True)

    def common(p, tag):
        p.add_argument("--drender", default=os.path.join(ROOT, "drender"))
        p.add_argument("--reps", type=int, default=3)
        p.add_argument("--timeout", type=int, default=600, help="per run, seconds")
        p.add_argument("--json", default=os.path.join(HERE, "out", tag + ".json"))

    p = sub.add_parser("real")
    common(p, "real")
    p.add_argument("--blender", default=os.environ.get("DRENDER_BLENDER") or "blender")
    p.add_argument("--scene", default=os.path.join(HERE, "out", "scene.blend"))
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--last", type=int, default=24)
    p.add_argument("--cores", type=int, default=0, help="default: CPUs usable here")
    p.add_argument("--threads", type=int, default=0,
                   help="drender -t (default: drender's own choice, 1 per node here)")
    p.add_argument("--only", default="", help="comma-separated contender name parts")
    p.set_defaults(fn=cmd_real)

    p = sub.add_parser("scale")
    common(p, "scale")
    p.add_argument("--nodes", default="4,8,16,32,64")
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--mean", type=float, default=0.04, help="mean frame cost, seconds")
    p.add_argument("--sigma", type=float, default=1.0, help="lognormal shape")
    p.add_argument("--seed", type=int, default=6)
    p.set_defaults(fn=cmd_scale)

    p = sub.add_parser("tail")
    common(p, "tail")
    p.add_argument("--nodes-tail", type=int, default=8)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--cost", type=float, default=0.25)
    p.add_argument("--expensive", type=int, default=4)
    p.add_argument("--factor", type=float, default=10.0)
    p.add_argument("--slow", type=float, default=3.0,
                   help="second scenario: the last frame's first attempt is this much slower")
    p.set_defaults(fn=cmd_tail)

    p = sub.add_parser("rusage")
    p.add_argument("out")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_rusage)

    args = ap.parse_args()
    if args.sub == "rusage":
        if args.cmd and args.cmd[0] == "--":
            args.cmd = args.cmd[1:]
        if not args.cmd:
            ap.error("rusage needs a command")
        return cmd_rusage(args)
    atexit.register(_cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
