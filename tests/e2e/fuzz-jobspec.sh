#!/bin/bash
# End-to-end: fuzz the POST /render body parser for 10 s under ASan/UBSan; no crash, no leak.
. "$(dirname "$0")/lib.sh"
[ -n "${DR_E2E_FAST_ONLY:-}" ] && skip_all "DR_E2E_FAST_ONLY is set (sanitizer run): the fuzz run is itself under ASan, make check runs it"
FUZZ_OUT=$WORK/fuzz "$TOP/tests/fuzz/run.sh" "${DR_FUZZ_SECONDS:-10}" >"$WORK/run.out" 2>&1
rc=$?
[ $rc -eq 77 ] && skip_all "clang with libFuzzer is not installed (libclang-rt-14-dev)"
ok $rc "fuzz_jobspec ran ${DR_FUZZ_SECONDS:-10} s without a crash or a leak"
[ $rc -eq 0 ] || sed 's/^/#   /' "$WORK/run.out"
grep -q '^stat::number_of_executed_units: [1-9]' "$WORK/run.out"
ok $? "it executed inputs ($(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/run.out") runs)"
done_testing
