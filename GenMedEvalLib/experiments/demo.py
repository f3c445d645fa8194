"""The demo job behind ``make demo``: cohort -> Phase 1 sweep at the paper's levels -> Phase 2 -> report.

Builds (or reuses) the demo cohort, runs the default sweep (every condition of the study) on the
cohort's *eval* split against its *reference* split (*train*/*test* for duplication, AuthPct, CT)
at reduced sizes, then Phase 2: samples of the shipped generators (VAE, GAN, DDPM, memoriser, all
trained on the cohort's *train* split) compared with the reference split beside the real held-out
*eval* split, upstream and downstream, then the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..features.slicing import DEFAULT_SLICES
from ..io import write_text
from .config import Condition, DataSet, SweepConfig, paper_conditions

__all__ = ["Condition", "choose_encoder", "demo_config", "paper_conditions", "run_demo"]

PHASE2_KINDS = ("vae", "gan", "ddpm", "memoriser")
PHASE2_BASELINE = "real (eval, 64 grid)"
PHASE2_VOLUMES = "real (eval volumes)"
PHASE2_NOTE = ("Phase 2 compares the shipped generators, trained on the cohort's train split "
               "(Resources/Models/README.md), with the reference split. Generated slices are one-slice volumes on "
               "the generators' 64 x 64 grid (3.6 mm pixels), their masks generated with the images. The baseline "
               "every z-score is measured from is the real held-out eval split cut onto that same grid (slices "
               "chosen like the generators' training mix), so what the grid costs (resolution) is not charged to "
               "the generators; the eval split's own volumes are shown beside it.")
PHASE2_REAL_NOTE = ("Phase 2 on real cases needs generators trained on them (genmedeval train-generator --data DIR, "
                    "then genmedeval compare --model NAME=DIR); the shipped generators learnt the built-in cohort "
                    "and are not compared with real scans.")


def choose_encoder(name: str | None):
    """The requested encoder, else the offline domain encoder, else the FID Inception network."""
    from ..features import get_encoder

    if name:
        return get_encoder(name)
    try:
        return get_encoder("domain")
    except Exception:  # noqa: BLE001 - fall back to the always-available network
        return get_encoder("inception")


def demo_config(cohort_dir: Path, *, encoder: str = "domain", max_slices: int = DEFAULT_SLICES.max_slices,
                tumour_slices: int = DEFAULT_SLICES.tumour_slices,
                bootstrap: int = 20, seed: int = 0, metrics: str = "all", downstream: bool = True,
                downstream_max_volumes: int | None = None) -> SweepConfig:
    """The default sweep (the paper's conditions) on the demo cohort's splits."""
    images = cohort_dir / "images"
    data = {name: DataSet(images, split) for name, split in
            (("base", "eval"), ("reference", "reference"), ("train", "train"), ("test", "test"))}
    return SweepConfig(name="demo (paper conditions, reduced sizes)", data=data, conditions=paper_conditions(seed),
                       encoder=encoder, max_slices=max_slices, tumour_slices=tumour_slices, metrics=metrics,
                       bootstrap=bootstrap, seed=seed, downstream=downstream,
                       downstream_max_volumes=downstream_max_volumes)


def run_demo(out: str | Path, *, n: int = 40, seed: int = 0, spacing: float = 2.0, encoder: str | None = "domain",
             max_slices: int = DEFAULT_SLICES.max_slices, tumour_slices: int = DEFAULT_SLICES.tumour_slices,
             bootstrap: int = 20, metrics: str = "all",
             downstream: bool = True, downstream_max_volumes: int | None = None, phase2: bool = True,
             data: str | Path | None = None, samples: int = 80) -> Path:
    """Run the demo end to end and return the path of ``report.html``.

    ``data``: a folder of real case folders with labels; the study then runs on them
    (``realdemo``: alternating eval/reference split) instead of on the built-in cohort, without
    Phase 2 (``PHASE2_REAL_NOTE``). ``samples``: generated slices per model in Phase 2.
    """
    from ..cohort import make_cohort
    from .compare import run_compare
    from .report import write_report
    from .sweep import run_sweep

    out = Path(out)
    cohort_dir = out / "cohort"
    if data is not None:
        from .realdemo import link_real_cohort, real_config

        config = real_config(link_real_cohort(data, out), encoder=encoder or "domain", bootstrap=bootstrap, seed=seed,
                             metrics=metrics, downstream=downstream, downstream_max_volumes=downstream_max_volumes)
        config.max_slices, config.tumour_slices = max_slices, tumour_slices
    else:
        if not (cohort_dir / "cohort.csv").exists():
            make_cohort(cohort_dir, n=n, seed=seed, spacing=spacing)
        config = demo_config(cohort_dir, encoder=encoder or "domain", max_slices=max_slices,
                             tumour_slices=tumour_slices, bootstrap=bootstrap, seed=seed, metrics=metrics,
                             downstream=downstream, downstream_max_volumes=downstream_max_volumes)
    run_sweep(config, out, report=False)
    if phase2 and data is not None:
        from ..io import read_json

        run = read_json(out / "run.json")
        write_text(out / "run.json", json.dumps({**run, "phase2_note": PHASE2_REAL_NOTE}, indent=1))
    if phase2 and data is None:
        models = {PHASE2_BASELINE: real_grid_set(config.data["base"], out / "generated" / "real_grid", samples, seed),
                  PHASE2_VOLUMES: config.data["base"], **generated_sets(out / "generated", samples, seed)}
        run_compare(config.data["reference"], models, out / "phase2", encoder=config.encoder, metrics=metrics,
                    slices=config.slice_settings, cases=config.cases, train=config.data["train"],
                    test=config.data["test"], downstream=downstream, seed=seed, bootstrap=bootstrap,
                    note=PHASE2_NOTE, report=False, downstream_max_volumes=downstream_max_volumes,
                    baseline=PHASE2_BASELINE)
    return write_report(out)


def _written(target: Path, n: int, seed: int, weights: str | None = None, sampler: dict | None = None) -> bool:
    """Whether ``target`` already holds ``n`` samples written with ``seed`` (and these weights' SHA-256 and sampler
    settings): a second demo run reuses them; other weights or another sampler (an update) are sampled again."""
    from ..io import read_json

    done = target / "generated.json"
    if not done.is_file():
        return False
    info = read_json(done)
    same_sampler = sampler is None or all(info.get(key) == value for key, value in sampler.items())
    return (info.get("n") == n and info.get("seed") == seed and same_sampler
            and (weights is None or info.get("weights_sha256") == weights))


def real_grid_set(base: DataSet, target: Path, n: int, seed: int) -> DataSet:
    """``n`` real slices of the base set on the generators' grid (``generate.write.write_real_slices``)."""
    from ..generate.write import write_real_slices

    if not _written(target, n, seed):
        write_real_slices(base.folder, target, n=n, seed=seed, split=base.split, overwrite=True)
    return DataSet(target)


def generated_sets(folder: Path, n: int, seed: int) -> dict[str, DataSet]:
    """``n`` samples of each shipped generator under ``folder/KIND`` (reused when already there, same seed)."""
    from ..generate.model import DEFAULT_DDIM_ETA, DEFAULT_DDIM_STEPS, SHIPPED_SHA256, resolve_generator
    from ..generate.write import sampler_record, write_samples

    sets = {}
    for kind in PHASE2_KINDS:
        target = folder / kind
        sampler = sampler_record(kind, DEFAULT_DDIM_STEPS, DEFAULT_DDIM_ETA)
        if not _written(target, n, seed, SHIPPED_SHA256[kind], sampler):
            write_samples(resolve_generator(kind), target, n=n, seed=seed, steps=DEFAULT_DDIM_STEPS, overwrite=True)
        sets[kind] = DataSet(target)
    return sets
