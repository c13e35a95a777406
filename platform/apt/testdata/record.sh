#!/bin/sh
# record.sh re-records the fixtures in bookworm/ from the host's apt state.
# It only runs read-only queries (plus `apt-get update` if you pass -u):
# nothing is installed or removed. Run it on a Debian host whose installed
# packages lag behind its sources, so that some updates come from the
# -security archive.
set -eu
out=$(dirname "$0")/bookworm
mkdir -p "$out"
export LC_ALL=C.UTF-8
[ "${1:-}" = "-u" ] && apt-get update -q
apt-cache policy > "$out/policy-files.txt"
pkgs=$(apt list --upgradable 2>/dev/null | sed -n 's,^\([^/]*\)/.*,\1,p')
# Upgradable packages plus a few that are current, so that the parser sees
# both kinds of version table.
apt-cache policy $pkgs coreutils libc6 > "$out/policy-packages.txt"
cands=$(apt list --upgradable 2>/dev/null | sed -n 's,^\([^/]*\)/[^ ]* \([^ ]*\) .*,\1=\2,p')
(cd /tmp && apt-get download --print-uris $cands) > "$out/print-uris.txt"
apt-cache show apt=2.6.2 libcap2=1:2.66-4+deb12u3+b1 krb5-locales > "$out/apt-cache-show.txt"
apt-get -s -o Debug::NoLocking=1 dist-upgrade > "$out/simulate-dist-upgrade.txt"
apt list --upgradable > "$out/apt-list-upgradable.txt" 2>/dev/null
date -u +%Y-%m-%dT%H:%M:%SZ > "$out/RECORDED_AT"
