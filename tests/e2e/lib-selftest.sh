#!/bin/bash
# Self-test of the e2e helpers: the leftover-process and temporary-file checks must see what they
# are meant to see (a check that cannot fail proves nothing).
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
is "$(leftovers)" 0 "no leftovers at the start"
sleep 30 &
pid=$!
is "$(leftovers)" 1 "a process started in the scratch directory is a leftover"
kill "$pid"
wait "$pid" 2>/dev/null
is "$(leftovers)" 0 "and is gone once killed"
mkdir out
: >out/.drender-tmp-host-1-0000001
is "$(tmpfiles out)" 1 "a temporary file is seen"
printf '\x89PNG\r\n\x1a\nxxxxIEND\xaeB`\x82' >out/f_1.png
printf 'junk' >out/f_2.png
is "$(valid_pngs out)" 1 "valid_pngs counts complete PNGs only, not junk or temporaries"
done_testing
