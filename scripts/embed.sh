#!/bin/sh
# Turn standard input into a C header defining one string constant named $1 (driver.py, src/ui/).
set -eu
name=$1
printf 'static const char %s[] =\n' "$name"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' -e 's/$/\\n"/'
printf ';\n'
