"""Generation speed: 64 samples of each shipped generator on this machine's CPU, idle and under load.

Goal (issue #15): 64 samples of each kind in under 30 s on 2 cores. The reference implementation,
timed in the same run: MONAI's own ``DiffusionInferer.sample`` with the same network and a DDIM
scheduler of the same step count (our loop must not be slower), and the plain DDPM sampler
(1000 steps, timed on a few steps and scaled) that the few-step DDIM sampler replaces. Under load:
the same timings beside one competing CPU-bound process (a pure-Python busy loop), with the pools
sized as every ``genmedeval`` command sizes them (``threads.set_threads()``).

Run: ``.venv/bin/python Testing/benchmarks/bench_generate.py [--n 64] [--steps 30]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from GenMedEvalLib.threads import prepare_environment, set_threads

prepare_environment()

import torch  # noqa: E402

from GenMedEvalLib.generate.model import SHIPPED, resolve_generator  # noqa: E402

GOAL_S = 30.0


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def monai_ddim(generator, n: int, steps: int) -> float:
    """MONAI's DiffusionInferer.sample with a DDIM scheduler of ``steps`` steps, same network and schedule."""
    from monai.inferers import DiffusionInferer

    from GenMedEvalLib.generate.nets import ddpm_schedulers

    _, ddim = ddpm_schedulers(generator.arch)
    ddim.set_timesteps(steps)
    inferer = DiffusionInferer(ddim)
    noise = torch.randn(n, 2, generator.size, generator.size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return timed(lambda: inferer.sample(input_noise=noise, diffusion_model=generator.net, scheduler=ddim,
                                            verbose=False))


def ddpm_full_estimate(generator, n: int, probe_steps: int = 4) -> float:
    """Seconds the 1000-step DDPM sampler would take for ``n`` samples (``probe_steps`` steps timed, scaled)."""
    from GenMedEvalLib.generate.nets import ddpm_schedulers

    ddpm, _ = ddpm_schedulers(generator.arch)
    x = torch.randn(n, 2, generator.size, generator.size)
    with torch.inference_mode():
        def run():
            y = x
            for t in list(ddpm.timesteps)[:probe_steps]:
                y, _ = ddpm.step(generator.net(y, timesteps=torch.full((n,), int(t))), int(t), y)
        seconds = timed(run)
    return seconds / probe_steps * ddpm.num_train_timesteps


def measure(n: int, steps: int, label: str) -> dict[str, float]:
    threads = set_threads()
    print(f"-- {label}: {threads} thread(s)")
    out = {}
    for kind in sorted(SHIPPED):
        generator = resolve_generator(kind, device="cpu")
        generator.sample(2, seed=0, steps=2)  # warm-up
        seconds = timed(lambda g=generator: g.sample(n, seed=0, steps=steps))
        out[kind] = seconds
        line = f"{kind:10s} {n} samples: {seconds:6.2f} s (goal {GOAL_S:g} s: {seconds / GOAL_S:.2f} of it)"
        if kind == "ddpm":
            reference = monai_ddim(generator, n, steps)
            full = ddpm_full_estimate(generator, n)
            out["monai_ddim"], out["ddpm_1000"] = reference, full
            line += (f"; MONAI DiffusionInferer, same {steps} DDIM steps: {reference:.2f} s (ratio ours/MONAI "
                     f"{seconds / reference:.2f}); 1000-step DDPM sampler ~{full:.0f} s ({full / seconds:.0f}x ours)")
        print(line, flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    from GenMedEvalLib.generate.model import DEFAULT_DDIM_STEPS

    parser.add_argument("--steps", type=int, default=DEFAULT_DDIM_STEPS)
    args = parser.parse_args()
    idle = measure(args.n, args.steps, "idle")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        loaded = measure(args.n, args.steps, "under load (one competing busy process)")
    finally:
        busy.kill()
    print("-- under load / idle: " + ", ".join(f"{k} {loaded[k] / idle[k]:.2f}x" for k in sorted(SHIPPED)))
    worst = max(idle[k] for k in SHIPPED)
    print(f"slowest kind idle {worst:.2f} s: {'meets' if worst < GOAL_S else 'misses'} the {GOAL_S:g} s goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
