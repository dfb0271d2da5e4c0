#!/bin/bash
# End-to-end: scripts/drender-mpirun, the launcher every shipped command uses, returns rank 0's
# exit status (mpirun --enable-recovery itself exits 0 whatever rank 0 returns), forwards
# Ctrl-C/SIGTERM, and ends an mpirun that does not exit after rank 0's last word (grace, TERM,
# KILL) with nothing left running. Fake Blender, one machine.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
fake_scene s.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/fb.log
WRAP=$TOP/scripts/drender-mpirun
mkdir -p st
export DRENDER_STATUS_DIR=$WORK/st
L=("$WRAP" --oversubscribe)
none_left() { [ "$(leftovers)" -eq 0 ]; }
no_status_dirs() { [ -z "$(ls -A st)" ]; }

# --help
"$WRAP" --help >help.txt
is $? 0 "--help exits 0"
grep -q DRENDER_STATUS_DIR help.txt && grep -q DRENDER_FINAL_GRACE help.txt
ok $? "--help names DRENDER_STATUS_DIR and DRENDER_FINAL_GRACE"

# 1. Success: 0.
"${L[@]}" -np 3 "$DRENDER" s.blend 1 8 -o out1/f_### >o1.txt 2>e1.txt
is $? 0 "a job that renders every frame: 0"
is "$(valid_pngs out1)" 8 "its 8 frames are there"
check "no status directory left behind" -- no_status_dirs

# 2. Bad input: 2 (a bad option, a missing scene).
"${L[@]}" -np 3 "$DRENDER" s.blend 1 8 --no-such-option >o2.txt 2>e2.txt
is $? 2 "a bad option: 2"
"${L[@]}" -np 3 "$DRENDER" missing.blend 1 8 -o out2/f_### >o2b.txt 2>e2b.txt
is $? 2 "a missing scene: 2"
grep -q "cannot open scene missing.blend" e2b.txt
ok $? "with drender's own message"
# What the wrapper is for: the same under mpirun --enable-recovery alone (a note, not a test).
"${MPIRUN[@]}" --enable-recovery -np 3 "$DRENDER" missing.blend 1 8 >/dev/null 2>&1
echo "# for comparison, plain mpirun --enable-recovery exits $? for the missing scene"

# 3. Every render node killed: 3.
FAKE_BLENDER_COST=0.3 "${L[@]}" -np 2 "$DRENDER" s.blend 1 30 -o out3/f_### --node-timeout 3 \
	>o3.txt 2>e3.txt &
pid=$!
wait_for 60 has_files 2 out3
kill -9 "$(rank_pid 1)"
wait "$pid"
is $? 3 "every render node killed: 3"
grep -q "every render node was lost" e3.txt
ok $? "rank 0 says why"
wait_for 30 none_left
is "$(leftovers)" 0 "nothing left running"

# 4. A service below --min-nodes after a node loss: 75 (what Compose's restart policy sees).
mkdir -p blends srv
cp s.blend blends/s.blend
PORT=$(free_port)
FAKE_BLENDER_COST=0.2 "${L[@]}" -np 3 "$DRENDER" --serve --listen "127.0.0.1:$PORT" \
	--scene "$WORK/blends/s.blend" --blend-root "$WORK/blends" --output-root "$WORK/srv" \
	--node-timeout 3 --min-nodes 2 >o4.txt 2>e4.txt &
pid=$!
wait_for 60 curl -sf "http://127.0.0.1:$PORT/health"
ok $? "service up"
kill -9 "$(rank_pid 2)"
wait "$pid"
is $? 75 "--serve --min-nodes 2 after a node loss: 75"
wait_for 30 none_left
is "$(leftovers)" 0 "nothing left running"

# 5. Ctrl-C and SIGTERM: 130. The wrapper runs in its own process group with job control on, as
# at a terminal (a background job of a script would start with SIGINT ignored).
for sig in INT TERM; do
	set -m
	FAKE_BLENDER_COST=0.5 "${L[@]}" -np 3 "$DRENDER" s.blend 1 60 -o "out5$sig/f_###" \
		>"o5$sig.txt" 2>"e5$sig.txt" &
	pid=$!
	set +m
	wait_for 60 has_files 2 "out5$sig"
	t0=$(date +%s)
	kill "-$sig" "$pid"
	wait "$pid"
	is $? 130 "SIG$sig: 130"
	took=$(($(date +%s) - t0))
	ok "$([ "$took" -le 20 ] && echo 0 || echo 1)" "SIG$sig: ended in $took s"
	ok "$(grep -q 'wrote no exit status' "e5$sig.txt" && echo 1 || echo 0)" \
		"SIG$sig: the status is rank 0's, from its status file"
	wait_for 30 none_left
	is "$(leftovers)" 0 "SIG$sig: nothing left running"
	show_leftovers
done

# 6. mpirun does not exit after rank 0's last word (as after a lost host): a PATH shim runs the
# real mpirun, then waits in a child, ignoring SIGTERM when told to. The wrapper gives it
# DRENDER_FINAL_GRACE seconds, then SIGTERM, then SIGKILL 10 s later, to it and its children.
mkdir -p bin
cat >bin/mpirun <<EOF
#!/bin/bash
[ "\${SHIM_IGNORE_TERM:-0}" = 1 ] && trap '' TERM
$(command -v mpirun) "\$@"
sleep 300 &
echo \$! >$WORK/shim.sleep
wait \$!
wait \$!
EOF
chmod +x bin/mpirun
for ignore in 0 1; do
	rm -f shim.sleep
	t0=$(date +%s)
	PATH=$WORK/bin:$PATH SHIM_IGNORE_TERM=$ignore DRENDER_FINAL_GRACE=2 \
		"${L[@]}" -np 2 "$DRENDER" missing.blend 1 4 >o6.txt 2>"e6$ignore.txt"
	rc=$?
	took=$(($(date +%s) - t0))
	is "$rc" 2 "a hanging mpirun (ignores TERM: $ignore): rank 0's status 2, not mpirun's"
	if [ "$ignore" = 1 ]; then
		ok "$([ "$took" -ge 12 ] && [ "$took" -le 30 ] && echo 0 || echo 1)" \
			"ended after grace 2 s + 10 s to SIGKILL ($took s)"
		grep -q "killing it and every process under it" e61.txt
		ok $? "it says it killed mpirun"
	else
		ok "$([ "$took" -ge 2 ] && [ "$took" -le 15 ] && echo 0 || echo 1)" \
			"ended by SIGTERM after grace 2 s ($took s)"
	fi
	grep -q "has not exited after 2 s" "e6$ignore.txt"
	ok $? "it says why it ends mpirun"
	spid=$(cat shim.sleep 2>/dev/null)
	gone() { # not there, or a zombie awaiting its reaper
		[ -n "$spid" ] || return 1
		[ -e "/proc/$spid" ] || return 0
		[ "$(awk '{print $3}' "/proc/$spid/stat" 2>/dev/null)" = Z ]
	}
	wait_for 5 gone
	ok $? "mpirun's child ($spid) is gone too"
	wait_for 30 none_left
	is "$(leftovers)" 0 "nothing left running"
	show_leftovers
done

# 6b. A forwarded SIGTERM that mpirun ignores (here the shim ignores it, and the real mpirun under
# it never hears of it): DRENDER_KILL_GRACE seconds later, mpirun and every process under it
# (ranks, Blenders) are killed. Rank 0 is killed before it can write a status: mpirun's (137).
set -m
PATH=$WORK/bin:$PATH SHIM_IGNORE_TERM=1 DRENDER_KILL_GRACE=3 FAKE_BLENDER_COST=0.5 \
	"${L[@]}" -np 3 "$DRENDER" s.blend 1 60 -o out6b/f_### >o6b.txt 2>e6b.txt &
pid=$!
set +m
wait_for 60 has_files 2 out6b
t0=$(date +%s)
kill -TERM "$pid"
wait "$pid"
rc=$?
took=$(($(date +%s) - t0))
is "$rc" 137 "SIGTERM ignored by the launcher: killed, mpirun's status"
ok "$([ "$took" -ge 3 ] && [ "$took" -le 15 ] && echo 0 || echo 1)" \
	"ended DRENDER_KILL_GRACE 3 s after the signal ($took s)"
grep -q "rank 0 wrote no exit status" e6b.txt
ok $? "it says the status is mpirun's"
wait_for 30 none_left
is "$(leftovers)" 0 "nothing left running (ranks and Blenders killed with it)"
show_leftovers

# 7. No status from rank 0 (rank 0 elsewhere without a shared status directory; here: a launcher
# that never starts drender): mpirun's own status, and a line saying so.
cat >bin/mpirun <<'EOF'
#!/bin/sh
exit 5
EOF
PATH=$WORK/bin:$PATH "${L[@]}" -np 2 "$DRENDER" s.blend 1 4 >o7.txt 2>e7.txt
is $? 5 "no status written: mpirun's status"
grep -q "rank 0 wrote no exit status .*DRENDER_STATUS_DIR" e7.txt
ok $? "one line says so and names DRENDER_STATUS_DIR"
DRENDER_STATUS_DIR=$WORK/nowhere "${L[@]}" -np 2 "$DRENDER" s.blend 1 4 >o7b.txt 2>e7b.txt
is $? 2 "a status directory that does not exist: 2"
grep -q "DRENDER_STATUS_DIR" e7b.txt
ok $? "naming the variable"
DRENDER_FINAL_GRACE=soon "${L[@]}" -np 2 "$DRENDER" s.blend 1 4 >o7c.txt 2>e7c.txt
is $? 2 "a DRENDER_FINAL_GRACE that is not a number: 2"
DRENDER_KILL_GRACE=1m "${L[@]}" -np 2 "$DRENDER" s.blend 1 4 >o7d.txt 2>e7d.txt
is $? 2 "a DRENDER_KILL_GRACE that is not a number: 2"
check "no status directory left behind" -- no_status_dirs

wait_for 30 none_left
is "$(leftovers)" 0 "nothing left running"
show_leftovers
done_testing
