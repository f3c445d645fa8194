"""GenMedEval headless: the module's logic from the command line, inside Slicer or on the slicer-core wheel.

    Slicer --no-main-window --python-script Scripts/batch.py --volume case.nii.gz --mask mask.nii.gz \\
        --perturbation boundary_blur --param sigma=2 --segment --out results/ [--scene results/scene.mrb]
    Slicer --no-main-window --python-script Scripts/batch.py --job job.yaml   (a `genmedeval batch` job)
    python GenMedEval/Scripts/batch.py --volume ...   (the same with the slicer-core / trame-slicer wheels)

Loads the volume (and mask) into the MRML scene, optionally perturbs it, evaluates a folder against a
reference folder, segments and predicts the Dice, writes the nodes' contents to --out and, with
--scene, the whole scene as a .mrb bundle. Exit status on every path: 0 done, 2 bad input (one line
on stderr), 1 anything else (with its traceback); inside Slicer through ``slicer.util.exit``, so a
windowless Slicer never stays running.

The script lives in the module's ``Scripts/`` folder (installed there as a resource): a ``.py`` in the
module's top folder would be loaded by Slicer as a module at every start.
"""

import argparse
import os
import sys
import traceback


def _library_on_path() -> None:
    """``GenMedEvalLib`` beside the module (installed: ``Scripts/..``) or at the repository root (``GenMedEval/..``)."""
    scripts = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.dirname(scripts), os.path.dirname(os.path.dirname(scripts))):
        if os.path.isdir(os.path.join(candidate, "GenMedEvalLib")):
            if candidate not in sys.path:
                sys.path.insert(0, candidate)
            return


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", help="a batch job file (YAML, as `genmedeval batch`): runs it instead, resumably; "
                        "the scene bundle is saved by this Slicer")
    parser.add_argument("--restart", action="store_true", help="with --job: forget its journal and start again")
    parser.add_argument("--volume", help="input volume (NIfTI, NRRD, MHA)")
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
    parser.add_argument("--out", help="output folder (with --volume)")
    parser.add_argument("--scene", help="also save the scene as this .mrb bundle")
    return parser


def script_arguments(argv: list) -> list:
    """The script's own arguments from what Slicer (or Python) put after the script in ``sys.argv``.

    ``Slicer --python-script SCRIPT ARGS`` gives ``sys.argv == [SCRIPT, *ARGS]``; a leading ``--``
    (written by older instructions) is dropped instead of ending argparse's option parsing.
    """
    return argv[1:] if argv[:1] == ["--"] else list(argv)


def parse_args(argv):
    return build_parser().parse_args(script_arguments(argv))


def in_slicer() -> bool:
    """True inside the Slicer application (``slicer.app`` exists only there, not in PythonSlicer or the wheels)."""
    slicer = sys.modules.get("slicer")
    return slicer is not None and getattr(slicer, "app", None) is not None


def scene_and_app():
    """Slicer's scene when running inside Slicer, else a scene from the trame-slicer wheel."""
    if in_slicer():
        import slicer

        return slicer.mrmlScene, None
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


def run_job(args) -> list:
    """``--job``: the batch job of ``genmedeval batch``, in this process (inside Slicer: its scene saves the bundle)."""
    from GenMedEvalLib.batch import load_job, run_batch
    from GenMedEvalLib.threads import set_default_device, set_threads

    job = load_job(args.job)
    set_default_device(job.device)
    set_threads(job.threads)
    done = run_batch(job, restart=args.restart)
    print(f"{job.name}: {len(done.journal.this_run)} units ({done.seconds} s)")
    return [done.folder]


def run(args) -> list:
    """Do what the arguments ask; return the paths written. Inputs are read before any scene is built."""
    from pathlib import Path

    from GenMedEvalLib import mrml
    from GenMedEvalLib.errors import ParameterError
    from GenMedEvalLib.io import read_mask, read_volume, write_volume
    from GenMedEvalLib.scene_logic import SceneLogic

    if args.job:
        if args.volume:
            raise ParameterError("give --job or --volume, not both")
        return run_job(args)
    if not args.volume or not args.out:
        raise ParameterError("give --volume and --out (or --job JOB.yaml)")
    if bool(args.reference) != bool(args.evaluated):
        raise ParameterError("give both --reference and --evaluated")
    params = parse_params(args.param)
    volume = read_volume(args.volume)
    mask = read_mask(args.mask, like=volume) if args.mask else None
    scene, app = scene_and_app()
    logic = SceneLogic(scene)
    out = Path(args.out)
    volume_node = mrml.add_volume_node(scene, volume, volume.name)
    mask_node = None
    if mask is not None:
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
        segmented = mrml.mask_from_node(scene, segmentation, volume_node)
        written.append(write_volume(volume, out / f"{volume.name}_segmentation.nii.gz", segmented))
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
    """Parse, run, report: 0 done, 2 bad input or arguments (one line), 1 any other failure (traceback)."""
    try:
        _library_on_path()
        from GenMedEvalLib.errors import GenMedEvalError
    except Exception:
        traceback.print_exc()
        return 1
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        for path in run(args):
            print(f"wrote {path}")
        return 0
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2, its message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    except GenMedEvalError as exc:
        print(f"GenMedEval batch: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        traceback.print_exc()
        print(f"GenMedEval batch: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def finish(status: int) -> None:
    """Leave with ``status``: Slicer's own exit inside the application (it stops the event loop), else sys.exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    if in_slicer():
        import slicer

        slicer.util.exit(status)
        return
    sys.exit(status)


if __name__ == "__main__":
    finish(main())
