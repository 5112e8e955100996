#!/usr/bin/env bash
# Builds `mbrl` with the `cuda` feature on a machine without CUDA: CUDA 13.0
# nvcc, NVRTC and headers from NVIDIA's PyPI wheels (downloaded once: 186 MB,
# unpacked to 490 MB in .cuda/), a stand-in `nvidia-smi` reporting compute capability 9.0 (H100/H200),
# and link-time stub libraries with the real SONAMEs. The binary needs the
# real libcuda.so.1, libnvrtc.so.13 and libcublas.so.13 at run time.
# Usage: scripts/build-cuda.sh [--check] [extra cargo args]; output target/release/mbrl.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cuda"
mkdir -p "$dest/wheels" "$dest/fakebin" "$dest/stubs"
cd "$dest/wheels"
if [ ! -d "$dest/x/nvidia/cu13/bin" ]; then
    echo "build-cuda: downloading CUDA 13.0's compiler, runtime and NVRTC wheels from PyPI (186 MB, unpacked to 490 MB in $dest)" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d . \
        "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-crt==13.0.*" \
        "nvidia-cuda-nvrtc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-cccl==13.0.*"
    for w in *.whl; do python3 -m zipfile -e "$w" "$dest/x/"; done
fi
R="$dest/x/nvidia/cu13"
chmod +x "$R"/bin/* "$R"/nvvm/bin/*
printf '#!/bin/sh\necho compute_cap\necho 9.0\n' > "$dest/fakebin/nvidia-smi"
chmod +x "$dest/fakebin/nvidia-smi"
cudarc="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.9.* | head -n 1)"
python3 - "$cudarc" "$dest/stubs" <<'PY'
import re, sys
src, out = sys.argv[1], sys.argv[2]
for name, path in [("cuda", "driver/sys.rs"), ("cublas", "cublas/sys.rs"), ("cublasLt", "cublaslt/sys.rs")]:
    fns = sorted(set(re.findall(r"pub fn (\w+)\(", open(f"{src}/src/{path}").read())))
    open(f"{out}/{name}.c", "w").write("".join(f"void {f}(void){{}}\n" for f in fns))
PY
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$dest/stubs/libcuda.so" "$dest/stubs/cuda.c"
gcc -shared -fPIC -Wl,-soname,libcublas.so.13 -o "$dest/stubs/libcublas.so" "$dest/stubs/cublas.c"
gcc -shared -fPIC -Wl,-soname,libcublasLt.so.13 -o "$dest/stubs/libcublasLt.so" "$dest/stubs/cublasLt.c"
ln -sf "$R/lib/libnvrtc.so.13" "$dest/stubs/libnvrtc.so"
cd "$root"
# `--check`: type-check the library, the binary and the tests instead (what the test suite does, so
# that the CUDA path keeps compiling on machines that never build it).
if [ "${1:-}" = "--check" ]; then
    shift
    cargo=(check --features cuda --lib --bins --tests)
else
    cargo=(build --release --features cuda)
fi
CUDA_ROOT="$R" PATH="$R/bin:$dest/fakebin:$PATH" RUSTFLAGS="-L native=$dest/stubs" \
    cargo "${cargo[@]}" "$@"
