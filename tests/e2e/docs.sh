#!/bin/bash
# The docs that must not drift from the code: docs/cli.md's options reference, the man pages and
# the bash completion are what scripts/gen-docs.py makes from --help now; every route the HTTP
# code answers is in docs/service.md's route table; every relative link in the docs resolves.
. "$(dirname "$0")/lib.sh"
cd "$TOP" || exit 1

[ -x "$DRENDER" ] || skip_all "no drender binary at $DRENDER (make)"
command -v python3 >/dev/null || skip_all "python3 missing (scripts/install-deps.sh)"

# 1. Generated files are current.
DRENDER=$DRENDER scripts/gen-docs.py --check >"$WORK/gen.diff" 2>&1
st=$?
ok $st "docs/cli.md, docs/man/*.1 and scripts/completion/drender.bash match --help (else: scripts/gen-docs.py)"
[ $st -eq 0 ] || sed 's/^/#   /' "$WORK/gen.diff" | head -40

# 2. The route table: tests/unit/test_http.c compares dr_http's routes[] with docs/service.md's
# table both ways; here only that the table is there and has the route most often forgotten.
# shellcheck disable=SC2016 # backquotes, not an expansion
routes=$(grep -h '^| `' docs/service.md | cut -d'|' -f2 | grep -o '`[^`]*`' | tr -d '`' |
	sed -E 's/^(GET|HEAD|POST|DELETE|PUT) +//; s/\?.*//')
grep -q '/jobs/<id>/frames/<n>/thumb' <<<"$routes"
ok $? "the route table has the thumbnail route"

# 3. The completion loads and completes options, their values and drender after drender-mpirun.
comp() { # comp WORDS...: what the completion offers for the last word
	bash -c '. scripts/completion/drender.bash; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		if [ "$1" = drender ]; then _drender; else _drender_mpirun; fi; echo "${COMPREPLY[*]}"' \
		comp "$@"
}
is "$(comp drender --form)" "--format" "completion: an option"
is "$(comp drender --engine BLENDER_W)" "BLENDER_WORKBENCH" "completion: an option's values"
is "$(comp drender-mpirun -np 4 drender --dev)" "--device" "completion: drender's options after drender-mpirun"

# 4. The man pages format without warnings.
if command -v groff >/dev/null; then
	for m in docs/man/drender.1 docs/man/drender-mpirun.1; do
		w=$(groff -man -ww -z "$m" 2>&1)
		is "$w" "" "$m formats without warnings"
	done
fi

# 5. Relative links in README.md and docs/ point at files in the repository, and at headings
# that exist (GitHub's anchors: lower case, punctuation dropped, spaces to hyphens).
bad=$(python3 - "$TOP" README.md docs/*.md <<'PY'
import os, re, sys
top = sys.argv[1]
def anchors(path):
    out = set()
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^#+ (.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out
bad = []
for f in sys.argv[2:]:
    text = re.sub(r"```.*?```", "", open(f, encoding="utf-8").read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.realpath(dest).startswith(os.path.realpath(top) + os.sep):
            bad.append(f + ": " + target + " (outside the repository)")
        elif not os.path.exists(dest):
            bad.append(f + ": " + target)
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            bad.append(f + ": " + target + " (no such heading)")
print(" ".join(bad))
PY
)
is "${bad:-none}" none "every link in README.md and docs/ resolves inside the repository"

# 6. The README shows the overview picture as it is in docs/overview.txt.
grep -qF -- "$(head -n 5 docs/overview.txt)" README.md && python3 -c '
import sys; sys.exit(open("docs/overview.txt").read() not in open("README.md").read())'
ok $? "README.md shows docs/overview.txt unchanged"

done_testing
