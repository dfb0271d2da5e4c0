#!/bin/bash
# End-to-end: the scene's external files are checked before any frame renders. A missing file is
# exit 2 listing it (batch) or a failed job whose /status says why (--serve), with no frame
# rendered; --allow-missing renders anyway; the packed copy (dr_assets_pack), moved alone to
# another directory, renders the same image as the original. The fake Blender covers the
# protocol cheaply; real Blender covers what bpy lists and packs.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
unset FAKE_BLENDER_ASSETS FAKE_BLENDER_UNPACKABLE

# same_pixels A.png B.png: exit 0 when both decode to the same pixels. Their bytes may differ:
# Blender stamps the .blend's path into a PNG's metadata. Same encoder, same pixels: the same
# compressed-then-inflated IDAT stream.
same_pixels() {
	python3 - "$1" "$2" <<'PY'
import struct, sys, zlib
def pixels(path):
    data = open(path, "rb").read()
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            head = data[pos + 8:pos + 8 + n]
        elif kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return head, zlib.decompress(idat)
sys.exit(0 if pixels(sys.argv[1]) == pixels(sys.argv[2]) else 1)
PY
}

# frames DIR: how many frame files (not hidden) DIR holds (0 when it is not there).
frames() {
	find "$1" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | wc -l
}

# --- the fake Blender: the protocol, the exit code, the messages ------------------------------
mkdir -p fake/tex
fake_scene fake/s.blend
export FAKE_BLENDER_LOG=$WORK/fake.log FAKE_BLENDER_COST=0.02

# 1. A missing texture on every node: exit 2 before any frame, one line naming it.
FAKE_BLENDER_ASSETS="image://tex/a.png,font:/usr/share/fonts/none.ttf" \
	"${MPIRUN[@]}" -np 3 "$DRENDER" --blender "$FAKE" fake/s.blend 1 4 -o fake/out1/f_#### \
	>o1.txt 2>e1.txt
is $? 2 "fake: a missing texture and font on every node: exit 2"
grep -q 'the scene needs 2 files that are missing on' e1.txt
ok $? "  the message counts them" || sed 's/^/#   /' e1.txt
grep -q "^  image \"a.png\": //tex/a.png (not found at $WORK/fake/tex/a.png)" e1.txt
ok $? "  one line names the texture's datablock, path and where it was looked for"
grep -q '^  font "none.ttf": /usr/share/fonts/none.ttf' e1.txt
ok $? "  one line names the font"
is "$(frames fake/out1)" 0 "  no frame file"
is "$(grep -c '^render ' fake.log)" 0 "  Blender was never asked for a frame"
is "$(leftovers)" 0 "  nothing left running"

# 1b. The same with --one-shot (a warm Blender lists the files first, then quits).
: >fake.log
FAKE_BLENDER_ASSETS="image://tex/a.png" "$DRENDER" --blender "$FAKE" --one-shot fake/s.blend 1 4 \
	-o fake/out1b/f_#### >o1b.txt 2>e1b.txt
is $? 2 "fake: --one-shot, the texture missing: exit 2"
grep -q '^  image "a.png": //tex/a.png' e1b.txt
ok $? "  listing it"
is "$(grep -c '^render ' fake.log)" 0 "  Blender was never asked for a frame"

# 2. --allow-missing: renders, and says what it renders without (once: rank 1 speaks).
: >fake.log
FAKE_BLENDER_ASSETS="image://tex/a.png" "${MPIRUN[@]}" -np 3 "$DRENDER" --blender "$FAKE" \
	--allow-missing fake/s.blend 1 4 -o fake/out2/f_#### >o2.txt 2>e2.txt
is $? 0 "fake: --allow-missing: exit 0"
is "$(valid_pngs fake/out2)" 4 "  4 frames"
is "$(grep -c 'rendering without 1 missing file (--allow-missing)' e2.txt)" 1 "  one warning lists it"

# 2b. --one-shot with the texture there renders, and no lister is left running.
mkdir -p fake/ok/tex && fake_scene fake/ok/s.blend && printf 'png' >fake/ok/tex/a.png
FAKE_BLENDER_ASSETS="image://tex/a.png" "$DRENDER" --blender "$FAKE" --one-shot fake/ok/s.blend \
	1 3 -o fake/out2b/f_#### >o2b.txt 2>e2b.txt
is $? 0 "fake: --one-shot, every file there: exit 0"
is "$(valid_pngs fake/out2b)" 3 "  3 frames"
is "$(leftovers)" 0 "  nothing left running"

# 3. The texture there, one referred to by an absolute path: renders, with a warning about the
# absolute path only.
printf 'png' >fake/tex/a.png
printf 'png' >abs.png
FAKE_BLENDER_ASSETS="image://tex/a.png,image:$WORK/abs.png" "${MPIRUN[@]}" -np 3 "$DRENDER" \
	--blender "$FAKE" fake/s.blend 1 4 -o fake/out3/f_#### >o3.txt 2>e3.txt
is $? 0 "fake: every file there: exit 0"
is "$(valid_pngs fake/out3)" 4 "  4 frames"
is "$(grep -c '1 file is referenced by an absolute path' e3.txt)" 1 "  one warning about the absolute path"
grep -q "^  image \"abs.png\": $WORK/abs.png" e3.txt
ok $? "  naming it"
grep -q 'missing' e3.txt
ok $((!$?)) "  nothing said missing"

# 4. --serve: a job whose scene lacks a file fails, and /status says which (the check runs when a
# node loads the job's scene, before its first frame: POST /render answers at once); a job of a
# scene with every file renders on the same service. The fake lists //tex/x.png for every scene:
# it is next to whole.blend, not next to lacking.blend.
if command -v curl >/dev/null; then
	mkdir -p blends/a/tex blends/b out
	fake_scene blends/a/whole.blend
	fake_scene blends/b/lacking.blend
	printf 'png' >blends/a/tex/x.png
	PORT=$(free_port)
	URL=http://127.0.0.1:$PORT
	FAKE_BLENDER_ASSETS="image://tex/x.png" "${MPIRUN[@]}" -np 3 "$DRENDER" --serve \
		--blender "$FAKE" --listen "127.0.0.1:$PORT" --blend-root "$WORK/blends" \
		--output-root "$WORK/out" >serve.out 2>serve.err &
	SERVE_PID=$!
	up=1
	for _ in $(seq 150); do
		curl -s -o /dev/null "$URL/health" && up=0 && break
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.2
	done
	ok $up "serve: the service is up"
	http POST /render '{"blend":"b/lacking.blend","from":1,"to":3,"output":"lacking"}'
	is "$CODE" 202 "serve: a job of a scene that lacks a file: 202 (checked when loaded)"
	L=$(field 'd["jobId"]')
	wait_state "$L" failed 60
	ok $? "  the job fails"
	field 'd["error"]' >err.txt
	grep -q '^the scene needs 1 file that is missing on' err.txt &&
		grep -q "^  image \"x.png\": //tex/x.png (not found at $WORK/blends/b/tex/x.png)" err.txt
	ok $? "  /status's error lists the missing file" || sed 's/^/#   /' "$WORK/body"
	is "$(frames out/lacking)" 0 "  no frame of it rendered"
	http POST /render '{"blend":"a/whole.blend","from":1,"to":3,"output":"whole"}'
	is "$CODE" 202 "serve: then a job of a scene with every file: 202"
	W=$(field 'd["jobId"]')
	wait_state "$W" done 60
	ok $? "  it renders (done)"
	is "$(valid_pngs out/whole)" 3 "  3 frames"
	kill -TERM "$SERVE_PID" 2>/dev/null
	wait "$SERVE_PID" 2>/dev/null
else
	for _ in 1 2 3 4 5 6 7 8; do skip "curl is not installed"; done
fi

# 5. dr_assets_pack's wiring, with the fake: a copy renamed into place; unpackable files listed.
PACK=$TOP/build/tests/dr-pack
[ -x "$PACK" ] || make -s -C "$TOP" build/tests/dr-pack >make-pack.log 2>&1
[ -x "$PACK" ]
ok $? "the pack helper is built (build/tests/dr-pack)" || sed 's/^/#   /' make-pack.log
mkdir -p packed
"$PACK" "$FAKE" fake/s.blend packed/s.blend 2>p1.txt
is $? 0 "fake: pack: exit 0"
cmp -s fake/s.blend packed/s.blend
ok $? "  the copy is in place"
is "$(ls -A packed | wc -l)" 1 "  and alone (no temporary left)"
FAKE_BLENDER_UNPACKABLE="movieclip://clips/shot.mov" "$PACK" "$FAKE" fake/s.blend packed/u.blend 2>p2.txt
is $? 1 "fake: a file Blender cannot pack: the copy fails"
grep -q '^  movieclip "shot.mov": //clips/shot.mov' p2.txt
ok $? "  naming it" || sed 's/^/#   /' p2.txt
[ ! -e packed/u.blend ]
ok $? "  and leaving no copy"

# --- real Blender ---------------------------------------------------------------------------
if ! command -v blender >/dev/null || [ -n "${DR_E2E_FAST_ONLY:-}" ]; then
	for _ in $(seq 25); do skip "no real Blender (or DR_E2E_FAST_ONLY)"; done
	done_testing
	exit
fi
unset FAKE_BLENDER_LOG
blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_textured.py" \
	-- "$WORK/real" >make.log 2>&1
ok $? "real: textured.blend built with //tex/checker.png" || sed 's/^/#   /' make.log

# 6. The texture removed: exit 2 listing it, no frame.
mv real/tex/checker.png checker.png
"${MPIRUN[@]}" -np 2 "$DRENDER" real/textured.blend 1 2 -o real/out1/f_#### >r1.txt 2>re1.txt
is $? 2 "real: the texture missing: exit 2"
grep -q "^  image \"checker.png\": //tex/checker.png (not found at $WORK/real/tex/checker.png)" re1.txt
ok $? "  the message lists it" || sed 's/^/#   /' re1.txt
is "$(frames real/out1)" 0 "  no frame file"

"$DRENDER" --one-shot real/textured.blend 1 2 -o real/out1b/f_#### >r1b.txt 2>re1b.txt
is $? 2 "real: --one-shot, the texture missing: exit 2"
grep -q '^  image "checker.png": //tex/checker.png' re1b.txt
ok $? "  the message lists it"
is "$(frames real/out1b)" 0 "  no frame file"

# 7. --allow-missing renders (without the texture).
"${MPIRUN[@]}" -np 2 "$DRENDER" --allow-missing real/textured.blend 1 2 -o real/out2/f_#### \
	>r2.txt 2>re2.txt
is $? 0 "real: --allow-missing: exit 0"
is "$(valid_pngs real/out2)" 2 "  2 frames"

# 8. The texture back: renders, and the frame differs from the one without it (the check is
# about a file that matters).
mv checker.png real/tex/checker.png
"${MPIRUN[@]}" -np 2 "$DRENDER" real/textured.blend 1 2 -o real/out3/f_#### >r3.txt 2>re3.txt
is $? 0 "real: the texture there: exit 0"
is "$(valid_pngs real/out3)" 2 "  2 frames"
same_pixels real/out2/f_0001.png real/out3/f_0001.png
ok $((!$?)) "  frame 1 differs from the one rendered without the texture"

# 9. The packed copy, moved alone to another directory, renders the same image.
"$PACK" blender real/textured.blend "$WORK/real/packed.blend" 2>rp.txt
is $? 0 "real: pack: exit 0" || sed 's/^/#   /' rp.txt
mkdir -p alone
mv real/packed.blend alone/textured.blend
mv real/tex real/tex.away # nothing of the original's files is reachable
"${MPIRUN[@]}" -np 2 "$DRENDER" alone/textured.blend 1 2 -o alone/out/f_#### >r4.txt 2>re4.txt
is $? 0 "real: the packed copy alone: exit 0 (no file missing)" || sed 's/^/#   /' re4.txt
same_pixels real/out3/f_0001.png alone/out/f_0001.png &&
	same_pixels real/out3/f_0002.png alone/out/f_0002.png
ok $? "  frames 1 and 2 have the original's pixels"
mv real/tex.away real/tex

# 10. A sequencer strip cannot be packed: the copy fails naming it.
blender -b --factory-startup real/textured.blend --python-exit-code 1 --python-expr '
import bpy
s = bpy.context.scene
s.sequence_editor_create().sequences.new_image("Title", "//tex/checker.png", 1, 1)
bpy.ops.wm.save_as_mainfile(filepath=bpy.path.abspath("//strip.blend"))' >make2.log 2>&1
ok $? "real: a scene with an image strip built" || sed 's/^/#   /' make2.log
"$PACK" blender real/strip.blend "$WORK/real/strip-packed.blend" 2>rp2.txt
is $? 1 "real: pack of a scene with a strip: fails"
grep -q '^  strip "Title (strip in Textured)": //tex/checker.png' rp2.txt
ok $? "  naming the strip" || sed 's/^/#   /' rp2.txt
[ ! -e real/strip-packed.blend ] && [ -z "$(find real -name '*.drender-pack-*')" ]
ok $? "  no copy, no temporary left"

# 11. A linked library: missing, it is exit 2 naming it; packed, the copy alone holds its data.
mkdir -p lib/alone
blender -b --factory-startup --python-exit-code 1 --python-expr '
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.preferences.filepaths.save_version = 0
bpy.ops.mesh.primitive_monkey_add()
bpy.ops.wm.save_as_mainfile(filepath="'"$WORK"'/lib/props.blend")
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.wm.save_as_mainfile(filepath="'"$WORK"'/lib/main.blend")
with bpy.data.libraries.load("//props.blend", link=True, relative=True) as (src, dst):
    dst.objects = ["Suzanne"]
for ob in dst.objects:
    bpy.context.scene.collection.objects.link(ob)
bpy.ops.wm.save_as_mainfile(filepath="'"$WORK"'/lib/main.blend")' >make3.log 2>&1
ok $? "real: main.blend links Suzanne from //props.blend" || sed 's/^/#   /' make3.log
mv lib/props.blend lib/props.away
"$DRENDER" lib/main.blend 1 1 -o lib/out/f_#### >r5.txt 2>re5.txt
is $? 2 "real: the library missing: exit 2"
grep -q "^  library \"props.blend\": //props.blend (not found at $WORK/lib/props.blend)" re5.txt
ok $? "  naming it" || sed 's/^/#   /' re5.txt
mv lib/props.away lib/props.blend
"$PACK" blender lib/main.blend "$WORK/lib/alone/main.blend" 2>rp3.txt
is $? 0 "real: pack with a linked library: exit 0" || sed 's/^/#   /' rp3.txt
mv lib/props.blend lib/props.away
blender -b --factory-startup lib/alone/main.blend --python-exit-code 1 --python-expr '
import bpy, sys
ob = bpy.data.objects["Suzanne"]
print("drender-test: library %s packed %s, %d vertices" % (ob.library.filepath,
      ob.library.packed_file is not None, len(ob.data.vertices)))
sys.exit(0 if ob.library.packed_file is not None and len(ob.data.vertices) == 507 else 1)' >r6.txt 2>&1
ok $? "  the copy alone holds the library: Suzanne's 507 vertices" || grep 'drender-test\|rror' r6.txt | sed 's/^/#   /'
is "$(leftovers)" 0 "nothing left running"
done_testing
