"""``genmedeval perturb`` (per volume, file or folder) and ``genmedeval perturb-set`` (set level)."""

from __future__ import annotations

import argparse
import csv
import io as stdio
import shutil
from pathlib import Path
from typing import Any

from ..cases import (
    add_case_arguments,
    list_cases,
    options_from_args,
    perturb_case,
    read_item,
    target_mask,
    write_case,
)
from ..errors import InputError, ParameterError
from ..io import (
    atomic_path,
    is_volume_file,
    normalize_intensity,
    read_cohort,
    read_mask,
    read_volume,
    write_text,
    write_volume,
)
from ..outputs import atomic_folder, check_output_file, check_output_folder
from ..perturb import PERTURBATIONS, apply_perturbation, apply_set_perturbation, get_perturbation
from ..progress import progress
from ..threads import add_compute_options
from . import at_least

ORDER = 20


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``perturb`` and ``perturb-set``."""
    p = sub.add_parser("perturb", help="apply a per-volume perturbation to a file or a folder",
                       description="Apply a per-volume perturbation. Parameters are given as --NAME VALUE "
                       "(see --list); --level picks one of its levels (the paper's, or 1-3 for the artefacts beyond it).")
    p.add_argument("input", nargs="?", type=Path,
                   help="volume file, or folder of volumes or of case folders (every contrast is perturbed)")
    p.add_argument("output", nargs="?", type=Path, help="output file or folder")
    p.add_argument("--kind", help="perturbation name (see --list)")
    p.add_argument("--mask", type=Path, help="tumour mask (file input); folders find masks automatically")
    p.add_argument("--level", help="one of this perturbation's levels (see --list)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--list", action="store_true", help="list every perturbation with its parameters and levels")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input)")
    add_case_arguments(p, contrast=False)
    add_compute_options(p)
    p.set_defaults(func=run_perturb, accepts_params=True)

    s = sub.add_parser("perturb-set", help="apply a set-level perturbation to a folder (duplication, collapse, shift)")
    s.add_argument("input", type=Path, help="folder of volumes (with cohort.csv for labels and groups)")
    s.add_argument("output", type=Path, help="output folder")
    s.add_argument("--kind", required=True, help="external_duplication, internal_duplication, mode_collapse, density_shift")
    s.add_argument("--train", type=Path, help="training folder (external_duplication)")
    s.add_argument("--level", help="one of the paper's levels")
    s.add_argument("--seed", type=at_least(0), default=0)
    s.add_argument("--overwrite", action="store_true", help="replace an output folder GenMedEval wrote before")
    s.set_defaults(func=run_perturb_set, accepts_params=True)


def parse_params(extra: list[str], kind: str) -> dict[str, Any]:
    """``['--sigma', '0.1']`` -> ``{'sigma': '0.1'}``; values are checked by the registry."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            raise ParameterError(f"unexpected argument {token!r}")
        name = token[2:]
        if "=" in name:
            name, value = name.split("=", 1)  # only the name's dashes become underscores, never the value's
            i += 1
        elif i + 1 < len(extra):
            value = extra[i + 1]
            i += 2
        else:
            raise ParameterError(f"parameter --{name} of {kind} needs a value")
        params[name.replace("-", "_")] = value
    return params


def describe_registry() -> str:
    """A readable listing of every perturbation, its parameters (range, unit) and levels.

    Perturbations beyond the paper (the TorchIO artefacts) say so, as they are not in its sweep.
    """
    out = stdio.StringIO()
    for spec in PERTURBATIONS.values():
        mask = ", needs a tumour mask" if spec.needs_mask else ""
        beyond = ", beyond the paper" if spec.beyond_paper else ""
        out.write(f"{spec.name}  [{spec.kind}, {spec.family}{mask}{beyond}]  {spec.description}\n")
        for name, param in spec.params.items():
            rng = f"one of {', '.join(param.choices)}" if param.choices else (
                f"[{param.low}, {param.high}]" if param.low is not None else "")
            out.write(f"    --{name} (default {param.default!r}) {rng} {param.unit}  {param.help}\n".replace("  \n", "\n"))
        out.write(f"    levels: {', '.join(spec.presets)}\n")
    return out.getvalue()


def _resolve_params(spec, level: str | None, extra: list[str]) -> dict[str, Any]:
    params = spec.preset(level) if level is not None else {}
    params.update(parse_params(extra, spec.name))
    return spec.validate(params)


def perturb_file(kind: str, image_path: Path, output: Path, mask_path: Path | None, seed: int,
                 params: dict[str, Any], options=None) -> Path:
    """Read, normalise, perturb and write one volume with its geometry unchanged."""
    volume = read_volume(image_path)
    spec = get_perturbation(kind)
    mask = None
    if mask_path is not None:
        mask = read_mask(mask_path, like=volume).array
        if options is not None:
            mask = target_mask(mask, options.target, options.convention, source=mask_path)
    elif spec.needs_mask:
        raise InputError(f"{kind} needs a tumour mask (--mask)", image_path)
    if mask is not None and spec.needs_mask and not mask.any():
        raise InputError(f"mask is empty; {kind} needs a non-empty tumour mask", mask_path)
    normalised = normalize_intensity(volume.array)
    result = apply_perturbation(kind, normalised, mask=mask, spacing=volume.spacing_zyx, seed=seed, **params)
    return write_volume(volume, output, result)


def perturb_item(kind: str, item, out_dir: Path, seed: int, params: dict[str, Any], options) -> Path:
    """Read, normalise and perturb one case (every contrast, one tumour mask) and write it as it was read.

    A case folder ``X/`` becomes ``out_dir/X/`` with the same file names and its label; a volume
    file keeps its name. Contrasts get independent seeds from ``seed`` (``cases.contrast_seeds``).
    """
    spec = get_perturbation(kind)
    case = read_item(item).normalized()
    mask = None
    if spec.needs_mask:
        mask = case.tumour(options.target, options.convention)
        if mask is None:
            raise InputError(f"{kind} needs a tumour mask (a label in the case folder, or NAME_mask beside the volume)",
                             item.image)
        if not mask.any():
            raise InputError(f"mask is empty; {kind} needs a non-empty tumour mask", item.mask)
    return write_case(perturb_case(case, kind, params, seed=seed, mask=mask), out_dir)


def run_perturb(args: argparse.Namespace) -> int:
    """``genmedeval perturb``."""
    if args.list:
        print(describe_registry(), end="")
        return 0
    if args.input is None or args.output is None or not args.kind:
        raise ParameterError("perturb needs INPUT, OUTPUT and --kind (or --list)")
    spec = get_perturbation(args.kind)
    if spec.kind != "volume":
        raise ParameterError(f"{spec.name} is a set-level perturbation: use 'genmedeval perturb-set'")
    params = _resolve_params(spec, args.level, args.params)
    if not args.input.exists():
        raise InputError("file not found", args.input)
    if args.input.is_dir():
        check_output_folder(args.output, inputs=[args.input], overwrite=args.overwrite)
        items = list_cases(args.input)
        options = options_from_args(args)
        with atomic_folder(args.output, "perturb") as work:  # a failed case leaves no half-filled folder
            for item in progress(items, desc=f"{spec.name}"):
                perturb_item(spec.name, item, work, args.seed, params, options)
        print(f"{len(items)} volumes perturbed with {spec.name} {params} (seed {args.seed}) -> {args.output}")
        return 0
    if not is_volume_file(args.output):
        raise InputError("output must be a volume file (.nii.gz, .nii, .nrrd, .mha)", args.output)
    check_output_file(args.output, inputs=[args.input, args.mask], overwrite=args.overwrite)
    perturb_file(spec.name, args.input, args.output, args.mask, args.seed, params, options_from_args(args))
    print(f"{args.input} -> {args.output}: {spec.name} {params} (seed {args.seed})")
    return 0


def run_perturb_set(args: argparse.Namespace) -> int:
    """``genmedeval perturb-set``: copy files per the returned provenance, write provenance and cohort CSVs."""
    spec = get_perturbation(args.kind)
    if spec.kind != "set":
        raise ParameterError(f"{spec.name} is a per-volume perturbation: use 'genmedeval perturb'")
    params = _resolve_params(spec, args.level, args.params)
    check_output_folder(args.output, inputs=[args.input, args.train], overwrite=args.overwrite)
    items = read_cohort(args.input)
    train = read_cohort(args.train) if args.train is not None else []
    if spec.name == "external_duplication" and not train:
        raise ParameterError("external_duplication needs --train FOLDER")
    labels = [i.label for i in items] if all(i.label for i in items) else None
    groups = [i.group for i in items] if all(i.group for i in items) else None
    new_items, provenance = apply_set_perturbation(spec.name, items, labels=labels, groups=groups, train_set=train,
                                                   seed=args.seed, **params)
    with atomic_folder(args.output, "perturb-set") as work:
        rows = _copy_set(new_items, provenance, work, spec.name)
        write_text(work / "provenance.csv", _csv(rows))
        write_text(work / "cohort.csv", _csv([{k: r[k] for k in ("name", "label", "group", "split")} for r in rows]))
    print(f"{len(rows)} volumes ({spec.name} {params}, seed {args.seed}) -> {args.output}")
    return 0


def _copy_set(new_items, provenance, out: Path, desc: str) -> list[dict[str, Any]]:
    """Copy each chosen volume (and mask) into ``out`` under its position; one provenance row each."""
    rows = []
    for k, (item, (source, index)) in enumerate(progress(list(zip(new_items, provenance, strict=True)), desc=desc)):
        name = f"{k:04d}_{item.name}"
        suffix = next(s for s in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd") if item.image.name.lower().endswith(s))
        with atomic_path(out / f"{name}{suffix}") as tmp:
            shutil.copyfile(item.image, tmp)
        if item.mask is not None:
            with atomic_path(out / f"{name}_mask{suffix}") as tmp:
                shutil.copyfile(item.mask, tmp)
        rows.append({"name": name, "source_set": source, "source_index": index, "source_name": item.name,
                     "label": item.label or "", "group": item.group or "", "split": item.split or ""})
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["name"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
