#!/bin/bash
# End-to-end: the service's token kept off the command line (--token-file, DRENDER_TOKEN), said in
# --help, and a short token refused for a listener beyond loopback (exit 2, with the reason).
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
cd "$WORK" || exit 1
mkdir -p blends out
fake_scene blends/shot.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_COST=0.05
unset DRENDER_TOKEN

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2034 # read by svc_start (lib.sh)
SVC_ARGS=(--scene "$WORK/blends/shot.blend" --blend-root "$WORK/blends" --output-root "$WORK/out")

"$DRENDER" --help >help.txt 2>&1
grep -q -- "--token-file FILE" help.txt && grep -q "shows in ps" help.txt
ok $? "--help offers --token-file and says why"

printf 'file-token-0123456789\n' >tok
chmod 600 tok
svc_start 2 --token-file "$WORK/tok"
ok $? "drender --serve --token-file FILE starts"
http GET /jobs
is "$CODE" 401 "without the token: 401"
http GET /jobs '' -H 'Authorization: Bearer file-token-0123456789'
is "$CODE" 200 "with the file's token: 200"
tr '\0' ' ' </proc/"$(rank_pid 0)"/cmdline | grep -q file-token
ok $((! $?)) "the token is not on rank 0's command line"
svc_stop

DRENDER_TOKEN=env-token-0123456789 svc_start 2
http GET /jobs '' -H 'Authorization: Bearer env-token-0123456789'
is "$CODE" 200 "DRENDER_TOKEN: its token works"
svc_stop

timeout 30 "${MPIRUN[@]}" -np 2 "$DRENDER" --serve --listen "127.0.0.1:$PORT" "${SVC_ARGS[@]}" \
	--token-file "$WORK/missing" >m.out 2>m.err
is $? 2 "a missing --token-file: exit 2"
grep -q "token-file $WORK/missing" m.err
ok $? "naming it ($(head -n 1 m.err))"

timeout 30 "${MPIRUN[@]}" -np 2 "$DRENDER" --serve --listen "0.0.0.0:$PORT" "${SVC_ARGS[@]}" \
	--token abc >s.out 2>s.err
is $? 2 "--listen 0.0.0.0 with a 3-character token: exit 2"
grep -q "needs a token of 16 characters or more (this one has 3)" s.err
ok $? "with the reason ($(head -n 1 s.err))"
svc_start 2 --token abc
ok $? "a short token is still fine on loopback"
svc_stop
is "$(leftovers)" 0 "nothing left running"
done_testing
