#!/usr/bin/env bash
# screenshot.sh takes the tray screenshots of docs/tray.md: the tray runs
# (with traydemo's in-memory daemon, a restart pending) under Xvfb next to a
# real StatusNotifierItem host, gtk-sni-tray-standalone, which draws the icon
# and, when clicked, the menu through libdbusmenu-gtk3, as a desktop does.
#
#   cmd/traydemo/screenshot.sh [OUTDIR]    (default docs/img)
#
# Needs the Debian packages xvfb, haskell-gtk-sni-tray-utils, xdotool,
# x11-apps (xwd), imagemagick and dbus-daemon (dbus-run-session).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/docs/img}
mkdir -p "$out"
for tool in Xvfb gtk-sni-tray-standalone xdotool xwd dbus-run-session; do
	command -v "$tool" >/dev/null || { echo "screenshot.sh: $tool missing (apt-get install xvfb haskell-gtk-sni-tray-utils xdotool x11-apps dbus-daemon)" >&2; exit 1; }
done
# Debian's ImageMagick 6; a convert earlier on PATH may be something else.
convert=/usr/bin/convert
[ -x "$convert" ] || { echo "screenshot.sh: /usr/bin/convert missing (apt-get install imagemagick)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/traydemo" ./cmd/traydemo)

# A free display: Xvfb writes the number it took to fd 3.
exec 3>"$work/display"
Xvfb -displayfd 3 -screen 0 800x360x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/display" ] && break; sleep 0.1; done
export DISPLAY=":$(cat "$work/display")"

# Everything else shares one private session bus.
cat >"$work/session.sh" <<'INNER'
set -euo pipefail
work=$1 out=$2 convert=$3
gtk-sni-tray-standalone --top --end --watcher --size 32 --color '#353a40' >"$work/host.log" 2>&1 &
host=$!
for _ in $(seq 50); do
	dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
		string:org.kde.StatusNotifierWatcher 2>/dev/null | grep -q true && break
	sleep 0.1
done
TZ=${TZ:-UTC} "$work/traydemo" -left 2 -refuse >"$work/tray.log" 2>&1 &
tray=$!
trap 'kill $tray $host 2>/dev/null || true' EXIT
sleep 2 # the host fetches the icon and the menu

shot() { # name: screenshot of the panel's right end and the open menu
	xwd -root -silent | "$convert" xwd:- -crop 480x260+320+0 +repage "$out/$1"
}
open_menu() { xdotool mousemove 784 16 click 1; sleep 1; }

open_menu
shot tray-menu.png
# Defer 4 hours, as a user would: the fourth line of the menu.
xdotool mousemove 640 124 click 1
sleep 1
open_menu
shot tray-menu-deferred.png
xdotool key Escape
INNER
dbus-run-session -- bash "$work/session.sh" "$work" "$out" "$convert"
grep -q 'user deferred the restart' "$work/tray.log" || { echo "screenshot.sh: the click on Defer 4 hours did not reach the tray:" >&2; cat "$work/tray.log" >&2; exit 1; }
echo "wrote $out/tray-menu.png and $out/tray-menu-deferred.png"
