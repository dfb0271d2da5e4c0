#!/bin/bash
# End-to-end: the web dashboard in a real headless browser (Debian chromium + chromedriver, driven by
# python3-selenium through tests/e2e/dashboard.py) against `mpirun -np 3 drender --serve` and
# `--http` with the fake Blender: load, submit, finish, cancel, token, XSS, and the 10,000-frame grid
# timing. Screenshots go to $DR_E2E_OUT (default build/e2e/dashboard).
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/chromium ] || skip_all "chromium is not installed (scripts/install-deps.sh)"
[ -x /usr/bin/chromedriver ] || skip_all "chromium-driver is not installed (scripts/install-deps.sh)"
PY=/usr/bin/python3 # Debian's, where python3-selenium lives (not a virtualenv's or pyenv's)
"$PY" -c 'import selenium' 2>/dev/null || skip_all "python3-selenium is not installed (scripts/install-deps.sh)"
OUTDIR=${DR_E2E_OUT:-$TOP/build/e2e/dashboard}
rm -rf "$OUTDIR" && mkdir -p "$OUTDIR" || exit 1
# The service's directories, PORT and URL (svc_setup, lib.sh); up() starts it.
svc_setup
fake_scene "blends/<img src=x onerror=alert(1)>.blend"
# 0.1 s a frame: 2 render nodes do 20 frames a second, slow enough to watch and cancel.
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_COST=0.1 FAKE_BLENDER_FAIL=900
# Chromium's profile and temporary files under $WORK, so that the leftover check sees them.
export TMPDIR=$WORK
T0=$(date +%s.%N)

PID=

# up MODE-ARGS...: drender on $PORT with 2 render nodes; waits until /health answers.
up() {
	LAST=("$@")
	# (stdin from /dev/null: mpirun forwards its stdin, and browse's loop reads the driver's)
	"${MPIRUN[@]}" -np 3 "$DRENDER" "$@" </dev/null >>serve.out 2>>serve.err &
	PID=$!
	local _
	for _ in $(seq 150); do
		curl -s -o /dev/null "$URL/health" && return 0
		kill -0 "$PID" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}
down() {
	kill -TERM "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	PID=
}
# browse PART [TOKEN]: the selenium checks, as TAP.
browse() {
	local st desc
	while read -r st desc <&3; do
		case "$st" in
		'#') echo "# $desc" ;;
		0 | 1) ok "$st" "$desc" ;;
		RESTART) # the page's server goes away and comes back on the same port
			down
			up "${LAST[@]}"
			ok $? "drender restarts on the same port"
			;;
		*) echo "# $st $desc" ;;
		esac
	done 3< <("$PY" "$TOP/tests/e2e/dashboard.py" "$1" "$URL" "$OUTDIR" "${2-}" 2>>browser.err)
}

SERVE=(--serve --listen "127.0.0.1:$PORT" --blend-root "$WORK/blends" --output-root "$WORK/out")
up "${SERVE[@]}"
ok $? "drender --serve starts with 2 render nodes"
CODE=$(curl -s -o page.html -D head.txt -w '%{http_code}' "$URL/")
is "$CODE" 200 "GET / serves the page"
grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" head.txt
ok $? "the page has a strict Content-Security-Policy"
grep -q '<script src="/ui/app.js"' page.html && ! grep -q '<script>' page.html
ok $? "no inline script: app.js is its own asset"
browse serve
down

up "${SERVE[@]}" --token s3cret-dash
ok $? "drender --serve --token starts"
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$URL/")
is "$CODE" 200 "the page itself loads without the token"
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$URL/updates?wait=0")
is "$CODE" 401 "its data does not"
browse token s3cret-dash
down

# 10,000 frames on real data: the fake Blender at a tiny cost, the page timed applying updates.
export FAKE_BLENDER_COST=0.002
up "${SERVE[@]}"
ok $? "drender --serve starts for the 10,000-frame job"
browse big
down
export FAKE_BLENDER_COST=0.1

# The demo scene rendered by real Blender (when installed and built: make demo): the README's
# screenshot, docs/dashboard.png, is $OUTDIR/demo.png from this part.
if command -v blender >/dev/null && [ -s "$TOP/blend/demo.blend" ]; then
	mkdir -p out-demo
	DRENDER_BLENDER=$(command -v blender) up --serve --listen "127.0.0.1:$PORT" \
		--blend-root "$TOP/blend" --output-root "$WORK/out-demo"
	ok $? "drender --serve starts with real Blender"
	browse demo
	down
else
	echo "# no real Blender or no blend/demo.blend (make demo): demo screenshot skipped"
fi

up --http "127.0.0.1:$PORT" "$WORK/blends/shot.blend" 1 2000 -o "$WORK/out/batch/f_####"
ok $? "drender --http during a batch starts"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"from":1,"to":2}' "$URL/render")
is "$CODE" 405 "it answers 405 to POST"
browse http
down

is "$(leftovers)" 0 "nothing left running (drender, Blender, chromium)"
echo "# dashboard test ran in $(python3 -c "import sys; print('%.1f' % ($(date +%s.%N) - $T0))") s; screenshots in $OUTDIR"
if [ "$T_FAILED" -ne 0 ]; then
	sed 's/^/#   serve: /' serve.err | tail -n 20
	sed 's/^/#   browser: /' browser.err | tail -n 20
fi
done_testing
