"""The headless batch script (``GenMedEval/Scripts/batch.py``): Slicer's command line, exit status on every path."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "GenMedEval" / "Scripts" / "batch.py"


@pytest.fixture(scope="module")
def batch():
    spec = importlib.util.spec_from_file_location("genmedeval_batch_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    from GenMedEvalLib.io import Volume, write_volume

    folder = tmp_path_factory.mktemp("batch")
    array = np.random.default_rng(0).normal(0.5, 0.1, (6, 24, 24)).astype(np.float32)
    write_volume(Volume(array, spacing=(1.0, 1.0, 3.0)), folder / "case.nii.gz")
    return folder / "case.nii.gz"


def test_batch_is_not_in_the_module_folder():
    """Slicer loads every .py of the module's folder as a module: only GenMedEval.py may be there."""
    assert [p.name for p in (ROOT / "GenMedEval").glob("*.py")] == ["GenMedEval.py"]


def test_arguments_as_slicer_passes_them(batch, case, tmp_path, monkeypatch):
    """``Slicer --no-main-window --python-script SCRIPT --volume ...`` leaves ``sys.argv == [SCRIPT, '--volume', ...]``."""
    args = ["--volume", str(case), "--perturbation", "gaussian_noise", "--param", "sigma=0.1", "--out", str(tmp_path)]
    for argv in ([str(SCRIPT), *args], [str(SCRIPT), "--", *args]):  # with and without the old '--'
        monkeypatch.setattr(sys, "argv", argv)
        parsed = batch.parse_args(sys.argv[1:])
        assert parsed.volume == str(case) and parsed.param == ["sigma=0.1"] and parsed.out == str(tmp_path)
    assert batch.main(["--volume", str(case)]) == 2  # --out missing: argparse's message, status 2
    assert batch.main(["--help"]) == 0


def test_exit_status_on_every_path_under_python(case, tmp_path):
    """Run as a script on the wheels: 0 with the outputs written, 2 with one line for bad input, 1 for a crash."""
    def run(*args):
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)

    ok = run("--volume", str(case), "--perturbation", "gaussian_noise", "--param", "sigma=0.1", "--out",
             str(tmp_path / "ok"))
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "ok" / "case_gaussian_noise.nii.gz").is_file() and "voxels changed" in ok.stdout
    bad = run("--volume", str(tmp_path / "absent.nii.gz"), "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "absent.nii.gz" in bad.stderr
    assert not (tmp_path / "bad").exists()
    crash = run("--volume", str(case), "--perturbation", "gaussian_noise", "--out", str(tmp_path / "crash"),
                "--scene", str(tmp_path))  # a folder as the scene file: an OS error no check anticipates
    assert crash.returncode == 1, crash.stderr[-2000:]
    assert "Traceback" in crash.stderr and "GenMedEval batch: failed: IsADirectoryError" in crash.stderr


def test_an_unexpected_exception_exits_1_with_its_traceback(batch, case, tmp_path, monkeypatch, capsys):
    def explode(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(batch, "run", explode)
    assert batch.main(["--volume", str(case), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err


def test_inside_slicer_the_status_goes_through_slicer_util_exit(batch, monkeypatch):
    """In the application ``slicer.util.exit(status)`` ends the event loop; the script must not leave it running."""
    import slicer

    codes = []
    monkeypatch.setattr(slicer, "app", object(), raising=False)
    monkeypatch.setattr(slicer.util, "exit", codes.append)
    for status in (0, 1, 2):
        batch.finish(status)  # returns: Slicer quits once the script ends
    assert codes == [0, 1, 2]
    monkeypatch.delattr(slicer, "app")
    with pytest.raises(SystemExit) as leaving:
        batch.finish(2)
    assert leaving.value.code == 2
