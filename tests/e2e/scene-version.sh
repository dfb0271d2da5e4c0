#!/bin/bash
# End-to-end: a warm node never renders an old version of an edited scene. `drender --serve` with
# the fake Blender (whose log says the SHA-256 of what it loaded): submit, edit the .blend,
# submit again: the second job is rendered by a Blender that loaded the new content, with shared
# storage and with --stage always; a job of an unchanged scene keeps the warm Blender.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
cd "$WORK" || exit 1
mkdir -p blends out
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/blender.log FAKE_BLENDER_COST=0.02
unset DRENDER_TOKEN

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2034 # read by svc_start (lib.sh)
SVC_ARGS=(--scene "$WORK/blends/m.blend" --blend-root "$WORK/blends" --output-root "$WORK/out")

version() { sha256sum blends/m.blend | cut -d' ' -f1; }
loads() { grep -c '^loaded ' blender.log; }
# job OUTPUT: submit frames 1-3 of the default scene into OUTPUT, wait until done
job() {
	http POST /render "{\"from\":1,\"to\":3,\"output\":\"$1\"}"
	local id
	id=$(field 'd["jobId"]')
	wait_state "$id" done 30
}
# rendered_from: the content hashes loaded by the Blenders that rendered since line $1 of the log
rendered_from() {
	awk -v mark="$1" '
		$1 == "loaded" { v[$2] = $3 }
		$1 == "render" && NR > mark { print ($2 in v) ? v[$2] : "unknown" }' blender.log |
		sort -u | tr '\n' ' ' | sed 's/ $//'
}

for mode in shared staged; do
	extra=()
	[ $mode = staged ] && extra=(--stage always --cache-dir "$WORK/cache")
	rm -rf out/* blender.log
	: >blender.log
	printf 'BLENDER-v304 scene, first version\n' >blends/m.blend
	v1=$(version)
	svc_start 2 "${extra[@]}"
	ok $? "$mode: the service starts"
	job a1
	ok $? "$mode: a first job is done"
	is "$(rendered_from 0)" "$v1" "$mode: rendered from the first version"
	n=$(loads)
	job a2
	is "$(loads)" "$n" "$mode: a job of the unchanged scene keeps the warm Blender"
	mark=$(wc -l <blender.log)
	printf 'BLENDER-v304 scene, the edited second version\n' >blends/m.blend
	v2=$(version)
	job b
	ok $? "$mode: a job after the edit is done"
	is "$(rendered_from "$mark")" "$v2" "$mode: it was rendered from the edited scene, not the old one"
	svc_stop
done
is "$(leftovers)" 0 "nothing left running"
done_testing
