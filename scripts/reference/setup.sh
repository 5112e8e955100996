#!/usr/bin/env bash
# Sets up the Young et al. 2022 JAX reference (kenjyoung/Model_Generalization_Code_supplement)
# for side-by-side timing on the CPU, in $MBRL_REFERENCE (default: .reference/, ignored by git):
# its source in src/ with the two compatibility fixes jax 0.10 needs (no algorithmic change),
# and a venv with jax 0.10.2 (CPU), dm-haiku 0.0.17, numpy and tqdm.
# Fixes: `jx.tree_map` -> `jx.tree_util.tree_map` (removed from jax's top level), and the
# simple-model buffer's `sample`, which takes no argument 2, jitted with static_argnums=(0,).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
ref="${MBRL_REFERENCE:-$root/.reference}"
mkdir -p "$ref"
if [ ! -d "$ref/src" ]; then
    # Without network access, put a copy of the repository in $ref/src first.
    git clone --quiet https://github.com/kenjyoung/Model_Generalization_Code_supplement "$ref/src"
fi
(cd "$ref/src" &&
    sed -i 's/jx\.tree_map(/jx.tree_util.tree_map(/g' ./*.py &&
    python3 - <<'PY'
p = "train_simple_model_DQN.py"
s = open(p).read()
s = s.replace("@partial(jit, static_argnums=(0,2))\n    def sample(self, state):",
              "@partial(jit, static_argnums=(0,))\n    def sample(self, state):")
open(p, "w").write(s)
PY
)
if [ ! -x "$ref/venv/bin/python" ]; then
    python3 -m venv "$ref/venv"
    "$ref/venv/bin/pip" install --quiet "jax[cpu]==0.10.2" "dm-haiku==0.0.17" numpy tqdm
fi
echo "reference ready in $ref; time an agent with scripts/reference/time.sh AGENT"
