"""The study on a folder of real cases (``genmedeval demo --data DIR``): Phase 1, downstream, Phase 2, report.

Real case folders (e.g. BraTS: FLAIR, T1c and a label each) become the demo's sets without being
copied or modified: ``OUT/cohort/images/`` holds links to them and ``OUT/cohort/cohort.csv`` their
split, class and group.

Split (sorted by name, alternating): even positions form the *evaluated* set (the one that is
perturbed and segmented), odd positions the *reference* set. Real collections are small, so the
reference set doubles as the *training* set (external duplication copies it, AuthPct and the CT
score compare against it) and the evaluated set doubles as the *test* set; the report's findings
say "not testable" where the sizes are too small. Class = the hemisphere of the tumour's centre of
mass (left / right, from the label's physical coordinates), used by mode collapse (left out when the
evaluated set holds one class, and its 1:5 re-balancing when it holds two). Real cases carry
no scanner information, so all are one group and density shift, which needs two, is left out.
"""

from __future__ import annotations

import csv
import io as stdio
from pathlib import Path

import numpy as np

from ..errors import InputError
from .config import Condition, DataSet, SweepConfig, paper_conditions

NEEDS_GROUPS = ("density_shift",)


def tumour_side(label) -> str:
    """``left`` or ``right``: the hemisphere (LPS x > 0 is left) of a label Volume's centre of mass; ``none`` if empty."""
    index = np.argwhere(label.array > 0)
    if len(index) == 0:
        return "none"
    ijk = index.mean(axis=0)[::-1]
    direction = np.array(label.direction).reshape(3, 3)
    x = (np.array(label.origin) + direction @ (ijk * np.array(label.spacing)))[0]
    return "left" if x > 0 else "right"


def real_splits(names: list[str]) -> dict[str, str]:
    """Alternating split by sorted name: even -> eval, odd -> reference."""
    return {name: ("eval" if i % 2 == 0 else "reference") for i, name in enumerate(sorted(names))}


def link_real_cohort(data_dir: str | Path, out: str | Path) -> Path:
    """``OUT/cohort`` with links to the case folders of ``data_dir`` and their ``cohort.csv``; returns it."""
    from ..cases import case_files
    from ..io import read_mask, write_text
    from ..segment.train import training_case_folders

    folders = training_case_folders(data_dir)
    if len(folders) < 2:
        raise InputError("the real-data study needs at least 2 case folders (one evaluated, one reference)", data_dir)
    cohort = Path(out) / "cohort"
    images = cohort / "images"
    images.mkdir(parents=True, exist_ok=True)
    splits = real_splits([f.name for f in folders])
    buffer = stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["name", "label", "group", "split"])
    writer.writeheader()
    for folder in folders:
        label_file = case_files(folder).label  # only the label is read here; the sweep reads the case once
        if label_file is None:
            raise InputError("has no label file: the real-data study needs the tumour labels", folder)
        label = read_mask(label_file)
        link = images / folder.name
        if not link.exists():
            link.symlink_to(folder.resolve(), target_is_directory=True)
        writer.writerow({"name": folder.name, "label": tumour_side(label), "group": "site", "split": splits[folder.name]})
    write_text(cohort / "cohort.csv", buffer.getvalue())
    return cohort


def real_conditions(seed: int = 0, *, eval_classes: int = 2) -> list[Condition]:
    """The paper's conditions that these sets allow: no density shift (one group), mode collapse by class count."""
    def kept(c: Condition) -> bool:
        if c.perturbation in NEEDS_GROUPS:
            return False
        if c.perturbation == "mode_collapse":  # dropping a class needs two; re-balancing the rest needs three
            return eval_classes >= (3 if c.params.get("ratio") else 2)
        return True

    return [c for c in paper_conditions(seed) if kept(c)]


def eval_classes(cohort: Path) -> int:
    """How many tumour classes the evaluated split of ``cohort/cohort.csv`` holds."""
    with (cohort / "cohort.csv").open(newline="", encoding="utf-8") as fh:
        return len({row["label"] for row in csv.DictReader(fh) if row["split"] == "eval"})


def real_config(cohort: Path, *, encoder: str, bootstrap: int, seed: int, metrics: str, downstream: bool,
                downstream_max_volumes: int | None) -> SweepConfig:
    """The sweep on the linked real cohort (sets as in the module docstring)."""
    images = cohort / "images"
    data = {"base": DataSet(images, "eval"), "reference": DataSet(images, "reference"),
            "train": DataSet(images, "reference"), "test": DataSet(images, "eval")}
    return SweepConfig(name=f"real cases ({images.resolve()})", data=data, conditions=real_conditions(seed, eval_classes=eval_classes(cohort)),
                       encoder=encoder, metrics=metrics, bootstrap=bootstrap, seed=seed, downstream=downstream,
                       downstream_max_volumes=downstream_max_volumes)
