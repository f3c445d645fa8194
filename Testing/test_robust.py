"""Robustness: file checks, output safety, atomic folders, the one-line error handler, threads and devices,
bundle trust, parameter and config validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_corpus import grey, nifti_bytes, write_bytes, write_sitk  # noqa: E402

from GenMedEvalLib import filecheck, outputs, threads  # noqa: E402
from GenMedEvalLib.cli import main  # noqa: E402
from GenMedEvalLib.errors import InputError, OutputError, ParameterError  # noqa: E402
from GenMedEvalLib.io import read_volume  # noqa: E402

# ---------------------------------------------------------------- file checks

def test_nifti_read_matches_simpleitk_on_a_valid_file_and_refuses_what_it_zeroes(tmp_path):
    array = grey()
    good = write_bytes(tmp_path / "good.nii.gz", nifti_bytes(array))
    np.testing.assert_array_equal(read_volume(good).array, array)
    cut = write_bytes(tmp_path / "cut.nii", nifti_bytes(array)[:-1])
    with pytest.raises(InputError, match="15359 of the 15360 voxel bytes"):
        read_volume(cut)
    poisoned = array.copy()
    poisoned[1, 2, 3], poisoned[4, 5, 6] = np.nan, np.inf
    with pytest.raises(InputError, match="contains 2 NaN or infinite voxels"):
        read_volume(write_bytes(tmp_path / "nan.nii.gz", nifti_bytes(poisoned)))


def test_memory_limit_refuses_a_bomb_at_once_and_can_be_raised(tmp_path, monkeypatch):
    import time

    from fuzz_corpus import _bomb

    bomb = _bomb(tmp_path / "bomb.nii.gz")
    start = time.perf_counter()
    with pytest.raises(InputError, match="more than the limit of 512 MiB"):
        read_volume(bomb)
    assert time.perf_counter() - start < 1.0  # refused from the header, nothing inflated
    small = write_sitk(tmp_path / "small.nii.gz", grey())
    monkeypatch.setenv("GENMEDEVAL_MAX_IMAGE_MB", "0.01")
    with pytest.raises(InputError, match="limit of 0 MiB"):
        read_volume(small)
    filecheck.set_max_image_mb(1.0)  # the option wins over the environment
    try:
        assert read_volume(small).array.shape == grey().shape
    finally:
        filecheck.set_max_image_mb(None)


def test_geometry_checks_accept_real_orientations_and_refuse_shears():
    rotation = (0.8, -0.6, 0.0, 0.6, 0.8, 0.0, 0.0, 0.0, 1.0)
    filecheck.check_geometry((0.5, 0.5, 5.0), (1.0, 2.0, 3.0), rotation, (100, 100, 20), "x")
    with pytest.raises(InputError, match="orthonormal"):
        filecheck.check_direction((1.0, 0.1, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "x")
    with pytest.raises(InputError, match="origin"):
        filecheck.check_geometry((1.0, 1.0, 1.0), (np.nan, 0.0, 0.0), np.eye(3).ravel(), (4, 4, 4), "x")


def test_real_data_passes_every_check(real_dir):
    volume = read_volume(real_dir / "brain1_image.nrrd")
    assert volume.array.shape == (25, 256, 256)


@pytest.fixture
def real_dir():
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
    if not (folder / "brain1_image.nrrd").is_file():
        pytest.skip(f"real MRI not found in {folder}")
    return folder


# ---------------------------------------------------------------- output safety and atomic folders

def test_output_checks(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.nii.gz").write_bytes(b"x")
    with pytest.raises(OutputError, match="is an input"):
        outputs.check_output_file(src / "a.nii.gz", inputs=[src / "a.nii.gz"], overwrite=True)
    with pytest.raises(OutputError, match="inside the input folder"):
        outputs.check_output_file(src / "b.csv", inputs=[src], overwrite=True)
    link = tmp_path / "link.nii.gz"
    link.symlink_to(src / "a.nii.gz")
    with pytest.raises(OutputError, match="is an input"):  # a link to an input is the input
        outputs.check_output_file(link, inputs=[src / "a.nii.gz"], overwrite=True)
    with pytest.raises(OutputError, match="contains the input"):
        outputs.check_output_folder(tmp_path, inputs=[src])
    existing = tmp_path / "old.csv"
    existing.write_text("mine")
    with pytest.raises(OutputError, match="--overwrite"):
        outputs.check_output_file(existing)
    assert outputs.check_output_file(existing, overwrite=True) == existing


def test_atomic_folder_leaves_nothing_on_failure_and_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with outputs.atomic_folder(target, "test") as work:
            (work / "first.nii.gz").write_text("1")
            raise RuntimeError("case 2 is bad")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with outputs.atomic_folder(target, "test") as work:
        (work / "a.txt").write_text("run 1")
    assert (target / "a.txt").read_text() == "run 1" and outputs.written_by_genmedeval(target)
    with pytest.raises(RuntimeError):
        with outputs.atomic_folder(target, "test") as work:
            (work / "a.txt").write_text("run 2, failed")
            raise RuntimeError
    assert (target / "a.txt").read_text() == "run 1"  # the earlier complete output survives a failed re-run
    with outputs.atomic_folder(target, "test") as work:
        (work / "b.txt").write_text("run 3")
    assert sorted(p.name for p in target.iterdir()) == [outputs.MARKER, "b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_perturb_folder_failing_on_a_later_case_leaves_no_output(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_sitk(src / "a.nii.gz", grey())
    write_bytes(src / "b.nii.gz", nifti_bytes(grey())[:2000])  # truncated: read after a.nii.gz was written
    assert main(["perturb", str(src), str(tmp_path / "out"), "--kind", "gaussian_noise"]) == 2
    assert "b.nii.gz: is truncated" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]


def test_stale_temporaries_of_killed_runs_are_removed_on_the_next_run(tmp_path):
    run = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run / "perturbed" / f".case.nii.gz.genmedeval-tmp-{dead.pid}.abc.tmp.nii.gz"
    live = run / "perturbed" / f".case.nii.gz.genmedeval-tmp-{os.getpid()}.abc.tmp.nii.gz"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by a killed sweep")
    live.write_text("being written by a running process")
    outputs.write_marker(run, "sweep")
    outputs.check_output_folder(run, resume=True)
    outputs.claim_run_folder(run, "sweep")
    assert not stale.exists() and live.exists()


# ---------------------------------------------------------------- one line per error

def test_internal_failure_is_one_line_exit_1_and_debug_gives_the_traceback(monkeypatch, capsys, tmp_path):
    import GenMedEvalLib.commands.perturb as perturb_command

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(perturb_command, "describe_registry", broken)
    assert main(["perturb", "--list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (ZeroDivisionError: a bug)" in err and "--debug" in err
    assert main(["--debug", "perturb", "--list"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main(["perturb", "--list", "--debug"]) == 1  # also after the command's name
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(("exc", "status", "text"), [
    (PermissionError(13, "Permission denied", "/data/x.nii.gz"), 2, "/data/x.nii.gz: Permission denied"),
    (MemoryError(), 2, "not enough memory"),
    (json.JSONDecodeError("Expecting value", "{", 1), 2, "invalid JSON"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2, "UTF-8"),
])
def test_expected_failures_map_to_exit_2(monkeypatch, capsys, exc, status, text):
    import GenMedEvalLib.commands.perturb as perturb_command

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(perturb_command, "describe_registry", fail)
    assert main(["perturb", "--list"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and text in err


def test_non_utf8_file_name_never_reaches_simpleitk(tmp_path):
    from fuzz_corpus import non_utf8_name

    weird = non_utf8_name(tmp_path)
    script = ("import sys; from GenMedEvalLib.cli import main; "
              "sys.exit(main(['perturb', sys.argv[1], sys.argv[2], '--kind', 'gaussian_noise']))")
    run = subprocess.run([sys.executable, "-c", script, os.fsencode(weird), str(tmp_path / "o.nii.gz")],
                         capture_output=True, timeout=120)
    assert run.returncode == 2, run.stderr  # not SIGABRT (-6)
    assert b"file name is not valid UTF-8" in run.stderr and run.stderr.count(b"\n") == 1


# ---------------------------------------------------------------- threads and devices

def test_set_threads_sizes_every_loaded_pool():
    from threadpoolctl import threadpool_info

    try:
        assert threads.set_threads(1) == 1
        pools = threadpool_info()
        assert pools and all(p["num_threads"] == 1 for p in pools)
        assert os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        threads.set_threads(threads.available_cores())


def test_auto_threads_leaves_busy_cores_alone(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setattr(threads, "other_runnable", lambda: 1)
    assert threads.auto_threads() == 3
    monkeypatch.setattr(threads, "other_runnable", lambda: 9)
    assert threads.auto_threads() == 1


def test_device_and_thread_values_are_checked():
    assert threads.check_device(None) is None and threads.check_device("auto") is None
    assert threads.check_device("CPU") == "cpu"
    for bad in ("gpu", "cuda:", "cuda:x", "mps"):
        with pytest.raises(ParameterError, match="--device"):
            threads.check_device(bad)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available"):
            threads.check_device("cuda")
    for bad in (0, -1, 1.5, "x", True, 10**6):
        with pytest.raises(ParameterError, match="--threads"):
            threads.check_threads(bad)


def test_every_computing_command_takes_device_and_threads():
    from GenMedEvalLib.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    computing = ("perturb", "segment", "quality", "train-segmenter", "train-quality", "calibrate-quality", "features",
                 "metrics", "train-encoder", "sweep", "compare", "demo", "cohort")
    for name in computing:
        options = {o for action in commands[name]._actions for o in action.option_strings}
        assert {"--device", "--threads"} <= options, name
    for name in ("segment", "quality", "train-quality", "calibrate-quality", "sweep", "compare"):
        options = {o for action in commands[name]._actions for o in action.option_strings}
        assert "--trust-bundle" in options, name


# ---------------------------------------------------------------- bundles

def test_bundle_needs_trust_from_the_cli_and_the_api(tmp_path, capsys):
    import torch

    from GenMedEvalLib.segment import load_segmenter

    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    marker = tmp_path / "ran.txt"
    attack = f"$open({str(marker)!r}, 'w').write('x') and 1"
    (bundle / "configs" / "inference.json").write_text(json.dumps(
        {"network_def": {"_target_": "torch.nn.Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": attack}}))
    torch.save({"weight": torch.full((1, 1, 1, 1), 20.0), "bias": torch.tensor([-10.0])},
               bundle / "models" / "model.pt")
    src = tmp_path / "in"
    src.mkdir()
    write_sitk(src / "a.nii.gz", grey())
    assert main(["segment", str(src), str(tmp_path / "masks"), "--model", str(bundle)]) == 2
    assert "--trust-bundle" in capsys.readouterr().err and not marker.exists()
    with pytest.raises(InputError, match="trust"):
        load_segmenter(bundle)
    assert main(["segment", str(src), str(tmp_path / "masks"), "--model", str(bundle), "--trust-bundle"]) == 0
    assert marker.exists() and (tmp_path / "masks" / "a.nii.gz").is_file()  # trusted: its code ran, as MONAI does
    marker.unlink()
    assert main(["segment", str(src), str(tmp_path / "masks2"), "--model", str(bundle)]) == 2  # not sticky
    assert not marker.exists()


# ---------------------------------------------------------------- parameters and configs: one place

def test_registry_refuses_nan_inf_and_booleans():
    from GenMedEvalLib.perturb import apply_perturbation, get_perturbation

    spec = get_perturbation("gaussian_noise")
    for bad in (float("nan"), float("inf"), "nan", True, [0.1]):
        with pytest.raises(ParameterError, match="sigma"):
            spec.validate({"sigma": bad})
    with pytest.raises(ParameterError, match="finite"):
        apply_perturbation("gaussian_noise", np.zeros((2, 3, 4), np.float32), sigma=float("nan"))


@pytest.mark.parametrize(("extra", "message"), [
    ({"downstream": {"enabled": "no"}}, "downstream.enabled"),
    ({"downstream": {"segmenter": 5}}, "downstream.segmenter"),
    ({"perturbations": {"gaussian_noise": [{"sigma": True}]}}, "sigma"),
    ({"perturbations": {"gaussian_noise": [{"sigma": float("nan")}]}}, "finite"),
    ({"metrics": {}}, "metrics"),
    ({"metrics": []}, "metric"),
    ({"bootstrap": -1}, "bootstrap"),
])
def test_config_schema_refuses_what_used_to_pass(tmp_path, extra, message):
    from GenMedEvalLib.experiments.config import parse_config

    raw = {"data": {"base": str(tmp_path), "reference": str(tmp_path)}, **extra}
    with pytest.raises(InputError, match=message):
        parse_config(raw)


def test_yaml_alias_bomb_is_one_short_line(tmp_path):
    from GenMedEvalLib.experiments.config import load_config

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\ndata: {base: x, reference: *a7}\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert "expands to more than" in str(info.value) and len(str(info.value)) < 400
