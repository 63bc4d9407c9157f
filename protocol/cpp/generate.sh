#!/usr/bin/env bash
# Regenerate protocol/cpp/include/ppx/ppx_generated.h from protocol/ppx.fbs with
# flatc (Debian's flatbuffers-compiler 2.0.8). The schema is compiled as is,
# except that its namespace `ppx` becomes `ppx.wire`: the C++ API keeps the
# plain names (ppx::Normal is the simulator author's distribution, ppx::wire::Normal
# the generated table). Namespaces are not part of the FlatBuffers binary
# format, so the bytes are those of protocol/ppx.fbs exactly.
# The generated header only compiles against the flatbuffers headers of the
# same version (wire.hpp and CMakeLists.txt check it). Never edit it by hand.
#
#   protocol/cpp/generate.sh [OUTDIR]   # default: protocol/cpp/include/ppx
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/include/ppx}"
command -v flatc >/dev/null || { echo "flatc not found: apt-get install flatbuffers-compiler" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed 's/^namespace ppx;$/namespace ppx.wire;/' "$here/../ppx.fbs" > "$tmp/ppx.fbs"
grep -q '^namespace ppx.wire;$' "$tmp/ppx.fbs" || { echo "ppx.fbs has no 'namespace ppx;' line" >&2; exit 1; }
flatc --cpp --scoped-enums -o "$tmp" "$tmp/ppx.fbs"
mv "$tmp/ppx_generated.h" "$out/ppx_generated.h"
version="$(flatc --version | awk '{print $3}')"
IFS=. read -r major minor revision <<<"$version"
cat > "$out/generated_version.hpp" <<HEADER
// Written by protocol/cpp/generate.sh: the flatc version that generated
// ppx_generated.h, whose flatbuffers headers it needs. Do not edit.
#pragma once
#define PPX_FLATC_VERSION_MAJOR $major
#define PPX_FLATC_VERSION_MINOR $minor
#define PPX_FLATC_VERSION_REVISION $revision
#define PPX_FLATC_VERSION_STRING "$version"
HEADER
echo "generated $out/ppx_generated.h and generated_version.hpp with flatc $version"
