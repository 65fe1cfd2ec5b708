#!/usr/bin/env bash
# ONNX Runtime's C/C++ headers: no PyPI or npm package ships them, Debian trixie's
# libonnxruntime-dev does. Fetch that one .deb with a private apt configuration (the
# system's apt setup is not touched) and unpack only its headers into DEST.
# The runner links against the onnxruntime *wheel's* library; the 1.21 headers use
# API level 21, which the newer runtime serves.
set -euo pipefail
DEST=${1:?usage: fetch_onnxruntime_headers.sh DEST}
[ -f "$DEST/include/onnxruntime/onnxruntime_cxx_api.h" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{sources,lists/partial,cache/archives/partial,debs}
touch "$work/status"
cat > "$work/sources/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$work/sources"
          -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache"
          -o Dir::State::status="$work/status" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" -qq update
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download libonnxruntime-dev)
dpkg-deb -x "$work"/debs/libonnxruntime-dev_*.deb "$work/root"
mkdir -p "$DEST/include"
cp -r "$work/root/usr/include/onnxruntime" "$DEST/include/"
echo "ONNX Runtime headers -> $DEST/include/onnxruntime"
