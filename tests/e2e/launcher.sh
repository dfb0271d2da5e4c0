#!/bin/bash
# End-to-end: the first commands a new user types. scripts/drender-mpirun adds what drender needs
# (--bind-to none, --oversubscribe unless slots are given, no "PMIX ERROR" lines), stops as root
# without Open MPI's opt-in, says what mpirun said when mpirun itself fails, refuses a drender that
# is not on PATH; a service stopped by SIGTERM exits 0 (under drender-mpirun and alone); --help
# shows drender-mpirun and the environment; --blend-root defaults to --scene's directory, never to
# the working directory. Fake Blender, one machine.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
fake_scene s.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/fb.log
WRAP=$TOP/scripts/drender-mpirun
mkdir -p st bin
export DRENDER_STATUS_DIR=$WORK/st
none_left() { [ "$(leftovers)" -eq 0 ]; }
no_pmix() { ! grep -q "PMIX ERROR" "$@"; }
no_status_dirs() { [ -z "$(ls -A st)" ]; }
CORES=$(nproc)

# The mpirun the wrapper runs, as it ran it: a shim that logs its arguments, then runs mpirun.
cat >bin/mpirun-log <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>$WORK/mpirun-args
exec $(command -v mpirun) "\$@"
EOF
chmod +x bin/mpirun-log
args_of() { # args_of WRAPPER-ARGS...: the mpirun command line the wrapper makes (drender --version)
	rm -f mpirun-args
	DRENDER_MPIRUN=$WORK/bin/mpirun-log "$WRAP" "$@" "$DRENDER" --version >/dev/null 2>&1
	cat mpirun-args 2>/dev/null
}

# 1. The README's first command, on however many cores: 4 ranks, no --oversubscribe typed.
"$WRAP" -np 4 "$DRENDER" s.blend 1 20 -o out1/f_### --report r1.json >o1.txt 2>e1.txt
is $? 0 "drender-mpirun -np 4 drender s.blend 1 20 on $CORES cores: 0"
is "$(valid_pngs out1)" 20 "its 20 frames are there"
check "no PMIX ERROR line" -- no_pmix e1.txt
a=$(args_of -np 4)
case $a in *"--bind-to none"*"--oversubscribe"*"--mca orte_abort_on_non_zero_status 0"*) r=0 ;; *) r=1 ;; esac
ok $r "defaults added: --bind-to none --oversubscribe --mca orte_abort_on_non_zero_status 0"
echo "#   mpirun $a"
printf 'localhost slots=8\n' >hosts
a=$(args_of --hostfile hosts -np 2)
case $a in *--oversubscribe*) r=1 ;; *) r=0 ;; esac
ok $r "with --hostfile: no --oversubscribe (the slots listed are the limit)"
a=$(args_of --map-by node -np 2)
case $a in *--oversubscribe*) r=1 ;; *) r=0 ;; esac
ok $r "with --map-by: no --oversubscribe"
a=$(SLURM_JOB_ID=1 args_of -np 2)
case $a in *--oversubscribe*) r=1 ;; *) r=0 ;; esac
ok $r "inside a Slurm allocation: no --oversubscribe"
a=$(args_of --bind-to core -np 2)
case $a in *"--bind-to none"*) r=1 ;; *"--bind-to core"*) r=0 ;; *) r=1 ;; esac
ok $r "--bind-to core given: kept, no --bind-to none"
a=$(args_of --oversubscribe --bind-to none -np 2)
is "$(echo "$a" | grep -o -e --oversubscribe -e '--bind-to none' | wc -l)" 2 \
	"--oversubscribe --bind-to none given (as the scripts do): not added twice"

# 2. Binding: under plain mpirun -np 1 the render node was bound to one core (1 Blender thread).
"$WRAP" -np 1 "$DRENDER" s.blend 1 2 -o out2/f_### --report r2.json >o2.txt 2>e2.txt
is $? 0 "drender-mpirun -np 1: 0"
is "$(json r2.json 'd["ranks"][0]["threads"]')" "$CORES" "its Blender gets all $CORES cores' threads"

# 3. mpirun fails by itself: what it said and its status, not a DRENDER_STATUS_DIR hint.
printf 'localhost slots=1\n' >one-slot
"$WRAP" --hostfile one-slot -np 3 "$DRENDER" s.blend 1 4 -o out3/f_### >o3.txt 2>e3.txt
is $? 1 "3 ranks on a hostfile's 1 slot: mpirun's status 1"
tail -n 1 e3.txt | grep -q "mpirun failed with exit status 1 .*mpirun said: There are not enough slots available"
ok $? "the last line repeats mpirun's words and status"
echo "#   $(tail -n 1 e3.txt)"
check "and does not blame DRENDER_STATUS_DIR" -- eval '! grep -q DRENDER_STATUS_DIR e3.txt'
"$WRAP" --no-such-mpirun-option -np 2 "$DRENDER" s.blend 1 4 >o3b.txt 2>e3b.txt
is $? 1 "an option mpirun does not know: mpirun's status 1"
tail -n 1 e3b.txt | grep -q 'mpirun said: mpirun: Error: unknown option "--no-such-mpirun-option"'
ok $? "with mpirun's own line"
DRENDER_MPIRUN=$WORK/no-mpirun-here "$WRAP" -np 2 "$DRENDER" s.blend 1 4 >o3c.txt 2>e3c.txt
is $? 127 "no mpirun at all: 127"
grep -q "mpirun said: setsid: failed to execute $WORK/no-mpirun-here" e3c.txt
ok $? "saying it could not be run"

# 4. drender not on PATH (after make without make install): refused at once; under
# --enable-recovery mpirun would wait for ever without a word.
t0=$(date +%s)
PATH=/usr/bin:/bin "$WRAP" -np 2 drender s.blend 1 4 >o4.txt 2>e4.txt
is $? 2 "drender not on PATH: 2"
ok "$([ $(($(date +%s) - t0)) -le 5 ] && echo 0 || echo 1)" "at once"
grep -q "drender is not on PATH .*./drender, or run make install" e4.txt
ok $? "saying so, and what to do"
"$WRAP" -np 2 ./drender s.blend 1 4 >o4b.txt 2>e4b.txt
is $? 2 "./drender that is not there: 2"

# 5. Root: a stand-in id says 0. No opt-in: stop with one line naming it; mpirun not started.
cat >bin/id <<'EOF'
#!/bin/sh
echo 0
EOF
chmod +x bin/id
rm -f mpirun-args
env -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM PATH="$WORK/bin:$PATH" \
	DRENDER_MPIRUN="$WORK/bin/mpirun-log" "$WRAP" -np 2 "$DRENDER" s.blend 1 4 >o5.txt 2>e5.txt
is $? 2 "as root without the opt-in: 2"
grep -q "not running as root: .*export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (or pass --allow-run-as-root)" e5.txt
ok $? "one line says what to set"
is "$(wc -l <e5.txt)" 1 "and nothing else"
check "mpirun was not started" -- test ! -e mpirun-args
env -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM PATH="$WORK/bin:$PATH" \
	"$WRAP" --allow-run-as-root -np 2 "$DRENDER" s.blend 1 4 -o out5/f_### >o5b.txt 2>e5b.txt
is $? 0 "as root with --allow-run-as-root: runs (0)"
PATH="$WORK/bin:$PATH" "$WRAP" -np 2 "$DRENDER" s.blend 1 4 -o out5c/f_### >o5c.txt 2>e5c.txt
is $? 0 "as root with OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1: runs (0)"

# 6. No "PMIX ERROR" lines: bad input (every rank exits 2) and an interrupted batch.
"$WRAP" -np 3 "$DRENDER" missing.blend 1 4 -o out6/f_### >o6.txt 2>e6.txt
is $? 2 "a missing scene under drender-mpirun: 2"
check "no PMIX ERROR line after it" -- no_pmix e6.txt
"$WRAP" -np 3 "$DRENDER" s.blend 1 4 --no-such-option >o6b.txt 2>e6b.txt
is $? 2 "a bad drender option: 2"
check "no PMIX ERROR line after it" -- no_pmix e6b.txt
set -m
FAKE_BLENDER_COST=0.5 "$WRAP" -np 3 "$DRENDER" s.blend 1 60 -o out6c/f_### >o6c.txt 2>e6c.txt &
pid=$!
set +m
wait_for 60 has_files 2 out6c
kill -INT "$pid"
wait "$pid"
is $? 130 "a batch's Ctrl-C under drender-mpirun: 130"
check "no PMIX ERROR line after it" -- no_pmix e6c.txt
wait_for 30 none_left

# 7. SIGTERM stops a service with 0: under drender-mpirun (3 tries; it was 1 with "rank 0 wrote
# no exit status") and alone (it was 130); a batch alone on SIGINT stays 130.
mkdir -p blends srv
cp s.blend blends/s.blend
for try in 1 2 3; do
	PORT=$(free_port)
	"$WRAP" -np 3 "$DRENDER" --serve --listen "127.0.0.1:$PORT" --scene "$WORK/blends/s.blend" \
		--output-root "$WORK/srv" >"o7$try.txt" 2>"e7$try.txt" &
	pid=$!
	wait_for 60 curl -sf "http://127.0.0.1:$PORT/health"
	kill -TERM "$pid"
	wait "$pid"
	is $? 0 "SIGTERM to drender-mpirun ... --serve (try $try): 0"
	check "no 'wrote no exit status' line (try $try)" -- eval "! grep -q 'wrote no exit status' e7$try.txt"
	check "no PMIX ERROR line (try $try)" -- no_pmix "e7$try.txt"
	wait_for 30 none_left
done
PORT=$(free_port)
"$DRENDER" --serve --listen "127.0.0.1:$PORT" --scene "$WORK/blends/s.blend" \
	--output-root "$WORK/srv" >o7a.txt 2>e7a.txt &
pid=$!
wait_for 60 curl -sf "http://127.0.0.1:$PORT/health"
kill -TERM "$pid"
wait "$pid"
is $? 0 "SIGTERM to drender --serve alone: 0"
FAKE_BLENDER_COST=0.5 "$DRENDER" s.blend 1 40 -o out7b/f_### >o7b.txt 2>e7b.txt &
pid=$!
wait_for 60 has_files 1 out7b
kill -INT "$pid"
wait "$pid"
is $? 130 "SIGINT to a batch alone: still 130"

# 8. --blend-root: --scene's directory by default, never where the service was started.
fake_scene here.blend # in the working directory: must not be offered
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
"$DRENDER" --serve --listen "127.0.0.1:$PORT" --scene "$WORK/blends/s.blend" \
	--output-root "$WORK/srv" >o8.txt 2>e8.txt &
pid=$!
wait_for 60 curl -sf "$URL/health"
http GET /info
is "$(field 'sorted(d["scenes"])')" "['s.blend']" "scenes offered: --scene's directory's, not the working directory's"
http POST /render '{"blend":"s.blend","from":1,"to":1,"output":"b8"}'
is "$CODE" 202 "a request naming a scene there: accepted"
http POST /render '{"blend":"here.blend","from":1,"to":1,"output":"b8b"}'
ok "$([ "$CODE" != 202 ] && echo 0 || echo 1)" "one naming the working directory's scene: refused ($CODE)"
kill -TERM "$pid"
wait "$pid"
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
"$DRENDER" --serve --listen "127.0.0.1:$PORT" --output-root "$WORK/srv" >o8b.txt 2>e8b.txt &
pid=$!
wait_for 60 curl -sf "$URL/health"
grep -q "no --blend-root or --scene: requests cannot name a scene" e8b.txt
ok $? "neither --blend-root nor --scene: a warning says nothing can be rendered"
http GET /info
is "$(field 'd["scenes"]')" "[]" "and no scene is offered"
http POST /render '{"blend":"here.blend","from":1,"to":1,"output":"b8c"}'
is "$CODE" 403 "a request naming one: 403"
grep -q "no --blend-root" "$WORK/body"
ok $? "saying the service has no --blend-root"
kill -TERM "$pid"
wait "$pid"

# 9. --help: drender-mpirun is the normal launch; the environment is listed.
"$DRENDER" --help >h1.txt
grep -q "^Usage: drender-mpirun -np N drender" h1.txt
ok $? "drender --help: usage starts with drender-mpirun -np N drender"
for v in DRENDER_BLENDER DRENDER_TOKEN TMPDIR DRENDER_STATUS_FILE DRENDER_STATUS_DIR; do
	grep -q "$v" h1.txt
	ok $? "drender --help names $v"
done
"$WRAP" --help >h2.txt
grep -q "drender-mpirun -np 4 drender scene.blend 1 20" h2.txt &&
	grep -q -- "--oversubscribe" h2.txt && grep -q OMPI_ALLOW_RUN_AS_ROOT_CONFIRM h2.txt
ok $? "drender-mpirun --help: the first command, what it adds, the root opt-in"

wait_for 30 none_left
is "$(leftovers)" 0 "nothing left running"
show_leftovers
check "no status directory left behind" -- no_status_dirs
done_testing
