"""GenMedEval headless: the module's logic from the command line, inside Slicer or on the slicer-core wheel.

    Slicer --no-main-window --python-script GenMedEval/batch.py -- --volume case.nii.gz --mask mask.nii.gz \
        --perturbation boundary_blur --param sigma=2 --segment --out results/ [--scene results/scene.mrb]
    python GenMedEval/batch.py --volume ...          (the same with the slicer-core / trame-slicer wheels)

Loads the volume (and mask) into the MRML scene, optionally perturbs it, evaluates a folder against a
reference folder, segments and predicts the Dice, writes the nodes' contents to --out and, with
--scene, the whole scene as a .mrb bundle. Bad input: one line on stderr, exit status 2.
"""

import argparse
import os
import sys


def _library_on_path() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (here, os.path.dirname(here)):
        if os.path.isdir(os.path.join(candidate, "GenMedEvalLib")) and candidate not in sys.path:
            sys.path.insert(0, candidate)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="GenMedEval/batch.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--volume", required=True, help="input volume (NIfTI, NRRD, MHA)")
    parser.add_argument("--mask", help="tumour mask (label map) of the volume")
    parser.add_argument("--perturbation", help="a per-volume perturbation (see `genmedeval perturb --list`)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="perturbation parameter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", help="reference folder for the metric suite")
    parser.add_argument("--evaluated", help="evaluated (generated) folder for the metric suite")
    parser.add_argument("--encoder", default="domain")
    parser.add_argument("--metrics", default="all")
    parser.add_argument("--segment", action="store_true", help="run the segmenter and predict its Dice")
    parser.add_argument("--segmenter", help="segmenter file or MONAI bundle (default: the shipped one)")
    parser.add_argument("--quality-model", help="quality predictor weights (default: the shipped ones)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--scene", help="also save the scene as this .mrb bundle")
    return parser.parse_args(argv)


def scene_and_app():
    """Slicer's scene when running inside Slicer, else a scene from the trame-slicer wheel."""
    try:
        import slicer

        if getattr(slicer, "mrmlScene", None) is not None:
            return slicer.mrmlScene, None
    except ImportError:
        pass
    from GenMedEvalLib import mrml

    app = mrml.get_app()
    return app.scene, app


def parse_params(pairs):
    """``NAME=VALUE`` strings as a dict (values stay strings; the perturbation registry converts them)."""
    from GenMedEvalLib.errors import ParameterError

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"--param {pair!r}: expected NAME=VALUE")
        name, value = pair.split("=", 1)
        out[name.strip()] = value.strip()
    return out


def run(args) -> list:
    """Do what the arguments ask; return the paths written."""
    from pathlib import Path

    from GenMedEvalLib import mrml
    from GenMedEvalLib.errors import ParameterError
    from GenMedEvalLib.io import read_mask, read_volume, write_volume
    from GenMedEvalLib.scene_logic import SceneLogic

    if bool(args.reference) != bool(args.evaluated):
        raise ParameterError("give both --reference and --evaluated")
    params = parse_params(args.param)
    scene, app = scene_and_app()
    logic = SceneLogic(scene)
    out = Path(args.out)
    volume = read_volume(args.volume)
    volume_node = mrml.add_volume_node(scene, volume, volume.name)
    mask_node = None
    if args.mask:
        mask = read_mask(args.mask, like=volume)
        mask_node = mrml.add_volume_node(scene, volume, f"{volume.name}_mask", array=mask.array, label=True)
    written = []
    if args.perturbation:
        preview = logic.perturb(volume_node, args.perturbation, params, mask_node=mask_node, seed=args.seed)
        written.append(write_volume(mrml.volume_from_node(preview.volume_node),
                                    out / f"{volume.name}_{args.perturbation}.nii.gz"))
        changes = mrml.volume_from_node(preview.overlay_node)
        written.append(write_volume(changes, out / f"{volume.name}_{args.perturbation}_changes.nii.gz",
                                    changes.array.astype("uint8")))
        print(f"{args.perturbation}: {preview.changed_voxels} voxels changed")
    if args.reference:
        table = logic.evaluate_folders(args.reference, args.evaluated, encoder=args.encoder, metrics=args.metrics)
        written.append(logic.export_table(table, out / "metrics.csv"))
    if args.segment:
        segmentation, score, table = logic.segment_and_score(volume_node, segmenter=args.segmenter,
                                                             predictor=args.quality_model,
                                                             truth_node=mask_node)
        mask = mrml.mask_from_node(scene, segmentation, volume_node)
        written.append(write_volume(volume, out / f"{volume.name}_segmentation.nii.gz", mask))
        written.append(logic.export_table(table, out / "downstream.csv"))
        print(f"predicted Dice: {score:.3f}" if score == score else "the segmenter found no tumour")
    if args.scene:
        if app is None:
            import slicer

            if not slicer.util.saveScene(args.scene):
                raise ParameterError(f"Slicer could not save {args.scene}")
            written.append(Path(args.scene))
        else:
            written.append(mrml.save_bundle(app, args.scene))
    return written


def main(argv=None) -> int:
    """Parse, run, report; user errors become one line and exit status 2."""
    _library_on_path()
    from GenMedEvalLib.errors import GenMedEvalError

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        for path in run(args):
            print(f"wrote {path}")
    except GenMedEvalError as exc:
        print(f"GenMedEval batch: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    status = main()
    try:  # inside Slicer, leave the application with the status
        import slicer

        if getattr(slicer, "app", None) is not None:
            slicer.util.exit(status)
    except ImportError:
        pass
    sys.exit(status)
