#!/usr/bin/env python
"""Steady-state timing of the Young et al. 2022 reference training loop (JAX, CPU).

It does NOT re-implement anything.  It executes the reference script
($MBRL_REFERENCE/src/train_*.py, set up by scripts/reference/setup.sh) verbatim up to (but not including) its main
`for i in tqdm(...)` loop, i.e. all network / optimiser / replay-buffer / env
construction and the jit(vmap(...)) of the interaction loop over `num_seeds`
seeds.  Then it repeatedly executes the reference's own "# Train step" lines
(copied out of the script's loop body at run time, unchanged), blocking on the
results after every call.  The "# Evaluation step", logging and parameter
saving lines of the loop are skipped, so evaluation is excluded from timing
(and never even compiled: jit is lazy).

One call of the train step = `eval_frequency` env steps for every seed
(lax.scan of length eval_frequency inside a vmap over num_seeds seeds), with
`updates_per_step` (=1, "high data") gradient updates per env step once
time >= training_start_time (=1000).

Reported: seconds per env step (one env step of ALL seeds together, i.e. one
iteration of the vmapped scan), measured over calls after the first training
call (which contains the JIT compile of the train=True graph).
"""
import argparse
import ast
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time as _time

REF = os.environ.get("MBRL_REFERENCE") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", ".reference")
SRC = os.path.join(REF, "src")

AGENTS = {
    "ER": ("train_ER_DQN.py", "configs/ER.json"),
    "perfect_model": ("train_perfect_model_DQN.py", "configs/perfect_model.json"),
    "simple_model": ("train_simple_model_DQN.py", "configs/simple_model.json"),
    "gaussian_latent_model": ("train_latent_model_DQN.py", "configs/gaussian_latent_model.json"),
    "categorical_latent_model": ("train_latent_model_DQN.py", "configs/categorical_latent_model.json"),
}

LOOP_MARKER = "\nfor i in tqdm(range(config.num_steps//config.eval_frequency)):\n"


def split_script(src_text):
    """Return (prefix_source, train_step_source) from a reference script."""
    assert src_text.count(LOOP_MARKER) == 1, "main loop marker not found exactly once"
    prefix, rest = src_text.split(LOOP_MARKER, 1)
    body = rest.split("\n    # Evaluation step\n", 1)[0]
    train = body.split("    # Train step\n", 1)[1]
    train = textwrap.dedent(train)
    return prefix, train


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("agent", choices=sorted(AGENTS))
    ap.add_argument("--chunk", type=int, default=None,
                    help="env steps per call of the vmapped interaction loop (= config eval_frequency). "
                         "Reference value is 500; default here: keep the config's value. "
                         "Smaller values only shorten the lax.scan per call (finer timing granularity); "
                         "training_start_time (1000) should stay a multiple of it.")
    ap.add_argument("--budget", type=float, default=90.0,
                    help="wall seconds for the timed (steady-state) phase; stops after the first call that passes it")
    ap.add_argument("--min-timed", type=int, default=3, help="minimum number of timed calls")
    ap.add_argument("--skip", type=int, default=1,
                    help="training calls to discard after the first (compile) training call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a config entry (NOT the reference setting; for smoke tests only), e.g. --set num_seeds=2")
    args = ap.parse_args()

    script, cfg_rel = AGENTS[args.agent]
    with open(os.path.join(SRC, cfg_rel)) as f:
        cfg = json.load(f)
    if args.chunk is not None:
        cfg["eval_frequency"] = args.chunk
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v)
    cfg.update(overrides)
    chunk = cfg["eval_frequency"]
    if cfg["training_start_time"] % chunk:
        print(f"warning: training_start_time {cfg['training_start_time']} not a multiple of chunk {chunk}; "
              "training would start later than in the reference", file=sys.stderr)

    tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(cfg, tmp)
    tmp.close()

    with open(os.path.join(SRC, script)) as f:
        prefix, train_src = split_script(f.read())
    # names assigned by the train-step call (to block on them)
    tree = ast.parse(train_src)
    call_assign = tree.body[-1]
    assert isinstance(call_assign, ast.Assign)
    out_names = [e.id for e in call_assign.targets[0].elts if isinstance(e, ast.Name) and e.id != "_"]
    train_code = compile(train_src, f"<{script}: train step>", "exec")

    sys.path.insert(0, SRC)
    os.chdir(SRC)
    sys.argv = [script, f"--seed={args.seed}", f"--config={tmp.name}", "--output=/tmp/refjax_timing_unused"]

    import jax
    print(f"jax {jax.__version__} devices={jax.devices()} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} "
          f"affinity_cpus={len(os.sched_getaffinity(0))}", flush=True)
    print(f"agent={args.agent} script={script} config={cfg_rel} num_seeds={cfg['num_seeds']} "
          f"batch_size={cfg['batch_size']} updates_per_step={cfg.get('updates_per_step', 1)} "
          f"rollout_length={cfg.get('rollout_length', '-')} buffer_size={cfg['buffer_size']} "
          f"env={cfg['environment']} {cfg['env_config']} chunk(eval_frequency)={chunk} "
          f"training_start_time={cfg['training_start_time']} overrides={overrides}", flush=True)

    ns = {"__name__": "__refjax_timing__", "__file__": os.path.join(SRC, script)}
    t0 = _time.perf_counter()
    exec(compile(prefix, os.path.join(SRC, script), "exec"), ns)
    print(f"setup (reference prefix, incl. buffer allocation): {_time.perf_counter() - t0:.1f}s", flush=True)

    config = ns["config"]
    n_pre = -(-config.training_start_time // chunk)  # calls with train=False
    timed = []
    first_train_s = None
    pre_s = 0.0
    t_phase = None
    i = 0
    while True:
        ns["time"] = chunk * i  # exactly what the reference loop sets
        training = ns["time"] >= config.training_start_time
        ts = _time.perf_counter()
        exec(train_code, ns)
        jax.block_until_ready([ns[n] for n in out_names])
        dt = _time.perf_counter() - ts
        if not training:
            pre_s += dt
            tag = "pre-training (train=False)" + (" [incl. compile]" if i == 0 else "")
        elif first_train_s is None:
            first_train_s = dt
            tag = "first train call [incl. compile]"
        elif i < n_pre + 1 + args.skip:
            tag = "discarded warmup"
        else:
            if t_phase is None:
                t_phase = ts
            timed.append(dt)
            tag = "timed"
        print(f"call {i:4d} steps {chunk * i:7d}-{chunk * (i + 1) - 1:7d}: {dt:8.3f}s  "
              f"({dt / chunk * 1e3:8.3f} ms/env-step all seeds)  {tag}", flush=True)
        i += 1
        if timed and len(timed) >= args.min_timed and _time.perf_counter() - t_phase >= args.budget:
            break

    steps = chunk * len(timed)
    tot = sum(timed)
    med = statistics.median(timed)
    print("---- result ----")
    print(f"agent={args.agent} num_seeds={config.num_seeds} chunk={chunk} timed_calls={len(timed)} timed_env_steps={steps}")
    print(f"pre-training phase ({n_pre} calls, {n_pre * chunk} steps, train=False, incl. its compile): {pre_s:.2f}s")
    print(f"first train call (compile + {chunk} steps): {first_train_s:.2f}s")
    print(f"steady-state seconds per env step (all {config.num_seeds} seeds together): mean {tot / steps:.6f}  "
          f"median-of-calls {med / chunk:.6f}")
    print(f"steady-state seconds per seed-step: {tot / steps / config.num_seeds:.3e}")
    print(f"extrapolated 1M env steps x {config.num_seeds} seeds (training only, no eval): "
          f"{tot / steps * config.num_steps / 3600:.2f} h")
    os.unlink(tmp.name)


if __name__ == "__main__":
    main()
