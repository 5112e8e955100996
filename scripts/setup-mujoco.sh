#!/usr/bin/env bash
# Fetches libmujoco 3.17.0 (the version mujoco-rs 7.0.0 binds) from the PyPI
# `mujoco` wheel into .mujoco/lib, for `cargo build --features mujoco`.
# Prints the two variables to export. Needs python3 with pip; idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.mujoco"
lib="$dest/lib"
if [ ! -f "$lib/libmujoco.so.3.17.0" ]; then
    echo "setup-mujoco: downloading the mujoco 3.17.0 wheel from PyPI (26 MB) for libmujoco (about 10 MB, kept in $lib; the wheel is deleted)" >&2
    mkdir -p "$dest/wheel" "$lib"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        -d "$dest/wheel" "mujoco==3.17.0"
    python3 - "$dest/wheel" "$lib" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/mujoco-3.17.0-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with open(sys.argv[2] + "/libmujoco.so.3.17.0", "wb") as out:
        out.write(z.read("mujoco/libmujoco.so.3.17.0"))
PY
    rm -rf "$dest/wheel"
fi
ln -sf libmujoco.so.3.17.0 "$lib/libmujoco.so"
echo "export MUJOCO_DYNAMIC_LINK_DIR=$lib"
echo "export LD_LIBRARY_PATH=$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
