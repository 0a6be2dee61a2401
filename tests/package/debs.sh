#!/bin/bash
# The .debs of this tree, built once for the suites that install them
# (package, systemd): scripts/build-deb into CACHE/dist, reused while the
# tree's files (what build-deb copies: tracked and untracked, not ignored)
# are the same. Prints the folder that holds them.
#
# usage: debs.sh SOURCE_DIR CACHE_DIR
set -euo pipefail
src=$1
cache=$2
if git -C "$src" rev-parse --git-dir > /dev/null 2>&1; then
    stamp=$(cd "$src" && git ls-files -z --cached --others --exclude-standard |
        { xargs -0 sha256sum 2> /dev/null || true; } | sha256sum | cut -d' ' -f1)
else
    stamp=none-$$-$RANDOM  # outside git: never reused
fi
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] &&
    ls "$cache"/dist/*.deb > /dev/null 2>&1; then
    echo "debs: reusing the .debs in $cache/dist (built from these same files)" >&2
else
    rm -rf "$cache"
    mkdir -p "$cache"
    "$src/scripts/build-deb" "$cache/dist" >&2
    echo "$stamp" > "$cache/stamp"
fi
echo "$cache/dist"
