#!/bin/bash
# End-to-end: --video encodes the finished frames with FFmpeg (real Blender on the 20-frame demo,
# then the fake Blender for the failure paths).
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null ||
	skip_all "ffmpeg is not installed (scripts/install-deps.sh installs it)"
cd "$WORK" || exit 1

# probe FILE: "<frames> <rate>" as ffprobe counts them.
probe() {
	ffprobe -v error -count_frames -select_streams v:0 \
		-show_entries stream=nb_read_frames,r_frame_rate -of default=noprint_wrappers=1 "$1" |
		sort | sed 's/.*=//' | tr '\n' ' '
}

# The fake Blender first: quick, and it says the scene runs at 25 fps.
export FAKE_BLENDER_FPS=25
printf 'BLENDER-v304 fake' >fake.blend
"$DRENDER" --blender "$FAKE" fake.blend 1 6 -o f/f_## --video f/v.mp4 >o1.txt 2>e1.txt
is $? 0 "fake Blender, --video: exit 0"
is "$(probe f/v.mp4)" "6 25/1 " "the video has 6 frames at the scene's 25 fps"
grep -q 'video f/v.mp4: 6 frames at 25 fps' e1.txt
ok $? "the run says the video was made"
is "$(ls -A f | grep -c -e '^.drender-tmp' -e '^.drender-video')" 0 "no temporary file or sequence directory left"

# A re-run with every frame there only encodes (webm this time, --fps given: Blender not asked).
FAKE_BLENDER_LOG=$WORK/log2 "${MPIRUN[@]}" -np 2 "$DRENDER" --blender "$FAKE" fake.blend \
	1 6 -o f/f_## --video f/v.webm --fps 10 >o2.txt 2>e2.txt
is $? 0 "re-run with all frames there: exit 0"
grep -q '6 of 6 frames already exist' e2.txt
ok $? "  nothing rendered"
is "$(cat log2 2>/dev/null | grep -c '^render')" 0 "  no frame sent to Blender"
is "$(probe f/v.webm)" "6 10/1 " "  a 6-frame webm at --fps 10"

# Sparse frames become one gapless video in frame order.
"$DRENDER" --blender "$FAKE" fake.blend --frames 1-9:4 -o s/s_# --video s/v.mov >o3.txt 2>e3.txt
is $? 0 "--frames 1-9:4 --video .mov: exit 0"
is "$(probe s/v.mov)" "3 25/1 " "  3 frames"

# A failed encode: the frames are fine (exit 0), the failure is reported, nothing is left.
mkdir ro && chmod 555 ro
if [ "$(id -u)" -eq 0 ]; then # root writes anywhere: make FFmpeg fail another way
	ln -s /dev/null ro/blocker 2>/dev/null
	VIDEO=ro/blocker/v.mp4
else
	VIDEO=ro/v.mp4
fi
"$DRENDER" --blender "$FAKE" fake.blend 1 3 -o r/r_# --video "$VIDEO" >o4.txt 2>e4.txt
is $? 0 "a failed encode: exit 0 (the frames are there)"
is "$(valid_pngs r)" 3 "  3 frames"
grep -q "^drender: error: video $VIDEO not made (the frames are fine): " e4.txt
ok $? "  the failure is reported" || sed 's/^/#   /' e4.txt
[ ! -e "$VIDEO" ]
ok $? "  no video"

# A frame that failed: no video is attempted.
FAKE_BLENDER_FAIL=2 "$DRENDER" --blender "$FAKE" fake.blend 1 3 --retries 0 -o x/x_# \
	--video x/v.mp4 >o5.txt 2>e5.txt
is $? 1 "a failed frame: exit 1"
[ ! -e x/v.mp4 ]
ok $? "  and no video"

# Usage errors: exit 2, nothing rendered.
"$DRENDER" --blender "$FAKE" fake.blend 1 3 --video v.gif >o6.txt 2>e6.txt
is $? 2 "--video v.gif: exit 2"
grep -q '.mp4, .webm or .mov' e6.txt
ok $? "  says which names work"
"$DRENDER" --blender "$FAKE" fake.blend 1 3 --fps 0 --video v.mp4 >/dev/null 2>&1
is $? 2 "--fps 0: exit 2"
unset FAKE_BLENDER_FPS

# The real Blender on the 20-frame demo (12 fps), 1 sample so it stays quick.
if command -v blender >/dev/null && [ -z "${DR_E2E_FAST_ONLY:-}" ]; then
	if [ -s "$TOP/blend/demo.blend" ]; then
		cp "$TOP/blend/demo.blend" demo.blend
	else
		blender -b --factory-startup --python-exit-code 1 --python "$TOP/blend/make_demo.py" \
			-- "$WORK/demo.blend" >make.log 2>&1
	fi
	ok $? "demo scene there"
	"${MPIRUN[@]}" -np 3 "$DRENDER" demo.blend 1 20 --samples 1 -o d/d_## --video d/demo.mp4 \
		>o7.txt 2>e7.txt
	rc=$?
	is $rc 0 "real Blender, demo 1-20 --video: exit 0"
	[ $rc -eq 0 ] || sed 's/^/#   /' e7.txt
	is "$(probe d/demo.mp4)" "20 12/1 " "ffprobe: 20 frames at the scene's 12 fps"
else
	echo "# real Blender skipped"
fi

is "$(leftovers)" 0 "no Blender left"
show_leftovers
done_testing
