#!/bin/sh
# Build the job-spec fuzz target with clang's libFuzzer + ASan + UBSan and run it for SECONDS
# (default 20). Usage: tests/fuzz/run.sh [SECONDS]   Exit 0: no crash, no leak; 1: a finding
# (the input is saved under $FUZZ_OUT, default build/fuzz); 77: clang or libFuzzer missing.
set -eu

SECS=${1:-20}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${FUZZ_OUT:-$TOP/build/fuzz}
CC=${FUZZ_CC:-clang}
BIN=$OUT/fuzz_jobspec

mkdir -p "$OUT/corpus"
# Can this clang build a libFuzzer binary at all? (Debian: the libclang-rt-NN-dev package.)
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)\n{\n\t(void)d;\n\t(void)n;\n\treturn 0;\n}\n' >"$OUT/probe.c"
if ! command -v "$CC" >/dev/null 2>&1 ||
	! "$CC" -fsanitize=fuzzer,address "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1; then
	echo "fuzz: $CC with libFuzzer is not available (apt-get install clang libclang-rt-14-dev)" >&2
	exit 77
fi
# shellcheck disable=SC2046
"$CC" -g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$TOP/include" $(pkg-config --cflags libcjson) \
	"$TOP/tests/fuzz/fuzz_jobspec.c" "$TOP/src/dr_jobspec.c" "$TOP/src/dr_frames.c" \
	"$TOP/src/dr_outpath.c" "$TOP/src/dr_opts.c" "$TOP/src/dr_log.c" "$TOP/src/dr_util.c" \
	"$TOP/src/dr_render_cfg.c" "$TOP/src/dr_video.c" "$TOP/src/dr_proc.c" \
	$(pkg-config --libs libcjson) -lm -o "$BIN.tmp" || exit 2
mv -f "$BIN.tmp" "$BIN"

# New inputs go to a scratch corpus; the seeds in the tree stay as they are.
cp "$TOP"/tests/fuzz/corpus/* "$OUT/corpus/"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$BIN" -max_total_time="$SECS" -timeout=10 \
	-rss_limit_mb=2048 -max_len=4096 -dict="$TOP/tests/fuzz/jobspec.dict" \
	-artifact_prefix="$OUT/" -print_final_stats=1 "$OUT/corpus" >"$OUT/fuzz.log" 2>&1 && rc=0 || rc=$?
if [ "$rc" -ne 0 ]; then
	tail -n 60 "$OUT/fuzz.log" >&2
	echo "fuzz: finding (exit $rc); see $OUT/fuzz.log and the crash-*/leak-* input in $OUT" >&2
	exit 1
fi
grep -E '^stat::(number_of_executed_units|new_units_added)' "$OUT/fuzz.log" || true
echo "fuzz: $SECS s, no crash, no leak"
