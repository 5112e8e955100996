#!/usr/bin/env python
"""Learning curves from the Young et al. 2022 reference, unchanged, as a CSV mbrl can compare.

Runs the reference's own training script ($MBRL_REFERENCE/src/train_*.py, set up by
scripts/reference/setup.sh) with its shipped config and a few entries overridden (seed count,
step budget, parameter saving off), then writes one row per seed and evaluation:

    seed,env_steps,reward_rate

`env_steps` is the number of environment steps taken before that evaluation. The reference logs
an evaluation under the time its chunk *started* (`time = eval_frequency * i`, evaluated after
the chunk's `eval_frequency` steps), so env_steps = time + eval_frequency here; mbrl's metrics.csv
counts the same way.

Training starts at the first chunk whose start is >= training_start_time, so keep
eval_frequency a divisor of training_start_time (the shipped 500 is) or training starts late.
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile

REF = os.environ.get("MBRL_REFERENCE") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", ".reference")
SRC = os.path.join(REF, "src")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from time_ref import AGENTS  # noqa: E402  (script and config of each agent)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("agent", choices=sorted(AGENTS))
    ap.add_argument("--seeds", type=int, required=True, help="num_seeds (vmapped in one process)")
    ap.add_argument("--steps", type=int, required=True, help="num_steps")
    ap.add_argument("--seed", type=int, default=0, help="the script's --seed (its PRNG key)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override another config entry, e.g. --set alpha_adam=2e-4")
    ap.add_argument("--out", required=True, help="CSV to write")
    args = ap.parse_args()

    script, cfg_rel = AGENTS[args.agent]
    with open(os.path.join(SRC, cfg_rel)) as f:
        cfg = json.load(f)
    cfg.update(num_seeds=args.seeds, num_steps=args.steps, save_params=False)
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg[k] = json.loads(v)
    if cfg["training_start_time"] % cfg["eval_frequency"]:
        sys.exit("eval_frequency must divide training_start_time, or training starts late")
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        stem = os.path.join(tmp, "run")
        env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="1")
        subprocess.run([sys.executable, "-u", script, f"--seed={args.seed}", f"--config={cfg_path}",
                        f"--output={stem}"], cwd=SRC, env=env, check=True)
        with open(stem + ".out", "rb") as f:
            out = pickle.load(f)
    metrics = out["metrics"]
    every = cfg["eval_frequency"]
    part = args.out + ".part"
    with open(part, "w") as f:
        f.write("seed,env_steps,reward_rate\n")
        for time, rates in zip(metrics["eval_times"], metrics["reward_rates"]):
            for seed, rate in enumerate(list(rates)):
                f.write(f"{seed},{time + every},{float(rate)!r}\n")
    os.replace(part, args.out)
    print(f"wrote {args.out}: {len(metrics['eval_times'])} evaluations x {args.seeds} seeds "
          f"({args.agent}, config {json.dumps({k: cfg[k] for k in ('alpha_adam', 'softmax_temp', 'environment', 'env_config')})})")


if __name__ == "__main__":
    main()
