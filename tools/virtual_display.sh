#!/usr/bin/env bash
# Run a command (the test suite) on a virtual screen, for the napari widget tests: they
# need a real X display for napari's OpenGL canvas (offscreen Qt is not enough).
#
# Installs Xvfb and the X libraries Qt's xcb platform needs where they are missing and
# this is root on Debian/Ubuntu (CI); a failed install fails here. Elsewhere, without
# them, the command runs without a display and the widget tests are skipped, saying why.
set -euo pipefail

PACKAGES=(xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
          libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1
          libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0)

missing=()
if command -v dpkg-query >/dev/null; then
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
elif ! command -v xvfb-run >/dev/null; then
    missing=(xvfb)
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "virtual_display: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "virtual_display: ${missing[*]} missing (apt-get install them as root);" \
             "the napari widget tests will be skipped" >&2
        exec "$@"
    fi
fi

# The widget tests must run now: ERNET_VIEWER_TESTS=required turns their skip into a failure.
exec xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb ERNET_VIEWER_TESTS=required "$@"
