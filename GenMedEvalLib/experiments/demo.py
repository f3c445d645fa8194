"""The demo job behind ``make demo``: cohort -> Phase 1 sweep at the paper's levels -> Phase 2 -> report.

Builds (or reuses) the demo cohort, runs the default sweep (every condition of the study) on the
cohort's *eval* split against its *reference* split (*train*/*test* for duplication, AuthPct, CT)
at reduced sizes, then a Phase 2 comparison in which, until generators ship, the unperturbed eval
split and some perturbed copies of it stand in for models (the report says so), then the report.
"""

from __future__ import annotations

from pathlib import Path

from ..features.slicing import DEFAULT_SLICES
from .config import Condition, DataSet, SweepConfig, paper_conditions

__all__ = ["Condition", "choose_encoder", "demo_config", "paper_conditions", "run_demo"]

PHASE2_STAND_INS = {"gaussian 0.05": "gaussian_noise/0.05", "rician 0.1": "rician_noise/0.1",
                    "boundary blur 3": "boundary_blur/3", "contrast 0.1": "contrast_invention/0.1"}
PHASE2_NOTE = ("No generative models ship with GenMedEval yet: in this demo, Phase 2 compares the reference split "
               "with the unperturbed eval split and with perturbed copies of it, as if they were models.")


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
             data: str | Path | None = None) -> Path:
    """Run the demo end to end and return the path of ``report.html``.

    ``data``: a folder of real case folders with labels; the study then runs on them
    (``realdemo``: alternating eval/reference split) instead of on the built-in cohort.
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
    if phase2:
        models = {"unperturbed": config.data["base"]}
        models.update({name: DataSet(out / "perturbed" / rel) for name, rel in PHASE2_STAND_INS.items()
                       if (out / "perturbed" / rel).is_dir()})
        run_compare(config.data["reference"], models, out / "phase2", encoder=config.encoder, metrics=metrics,
                    slices=config.slice_settings, cases=config.cases, train=config.data["train"],
                    downstream=downstream, seed=seed,
                    note=PHASE2_NOTE, report=False, downstream_max_volumes=downstream_max_volumes)
    return write_report(out)
