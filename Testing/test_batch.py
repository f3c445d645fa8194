"""``genmedeval batch JOB.yaml``: validation, outputs, the scene bundle, and resuming after SIGKILL.

The resume test runs the same job three times on a tiny cohort: uninterrupted (its own cache and
outputs), then killed part-way with SIGKILL and started again (another cache and outputs). The
second start must recompute nothing the killed run finished (its journal says so unit by unit,
with the work each took) and end with tables byte-identical to the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from GenMedEvalLib.batch import load_job, parse_job
from GenMedEvalLib.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
#: run statistics (seconds, cache counters), not result tables: a resumed run differs there by design
STATISTICS = {"batch.json", "sweep/run.json", "sweep/reuse.json", "journal.jsonl"}

JOB = """name: tiny
seed: 0
encoder: domain
metrics: [fd, kd, prdc, fd_roi, boundary]
bootstrap: 5
slices: {max_slices: 4, tumour_slices: 2}
sets:
  reference: {folder: cohort/images, split: reference}
  evaluated: {folder: cohort/images, split: eval}
  train: {folder: cohort/images, split: train}
run: [metrics, quality, sweep]
sweep: {perturbations: {gaussian_noise: ["0.05"], boundary_blur: ["1"], mode_collapse: ["drop-rarest"]}}
outputs: {folder: OUT, scene: true, scene_volumes: 2, report: false}
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from GenMedEvalLib.cohort import make_cohort

    root = tmp_path_factory.mktemp("batch")
    make_cohort(root / "cohort", n=12, seed=0, spacing=4.0)
    return root


def _job(root: Path, out: str, text: str = JOB, name: str | None = None) -> Path:
    path = root / f"{name or out}.yaml"
    path.write_text(text.replace("OUT", out))
    return path


def _run(job: Path, cache: Path, *extra: str, wait: bool = True):
    env = dict(os.environ, GENMEDEVAL_CACHE=str(cache), GENMEDEVAL_NO_PROGRESS="1")
    command = [sys.executable, "-m", "GenMedEvalLib.cli", "batch", str(job), *extra]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=job.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    return subprocess.run(command, env=env, cwd=job.parent, capture_output=True, text=True, timeout=600)


def _journal(folder: Path) -> list[dict]:
    lines = (folder / "journal.jsonl").read_text().splitlines()[1:]
    return [json.loads(line) for line in lines if line.strip()]


def _tables(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.suffix in (".csv", ".json") and str(p.relative_to(folder)) not in STATISTICS}


@pytest.fixture(scope="module")
def uninterrupted(cohort) -> Path:
    result = _run(_job(cohort, "full"), cohort / "cache_full")
    assert result.returncode == 0, result.stderr
    assert "Info:" not in result.stderr and "Traceback" not in result.stderr  # VTK's zip notes stay quiet
    return cohort / "full"


def test_outputs_and_quality_truth(uninterrupted, cohort):
    """Tables, log, journal, scene; the quality table's true Dice recomputed from the written masks."""
    from GenMedEvalLib.io import read_mask

    for name in ("metrics.csv", "metrics.json", "quality.csv", "quality.json", "batch.log", "scene.mrb",
                 "sweep/upstream.csv", "sweep/downstream.csv", "batch.json"):
        assert (uninterrupted / name).is_file(), name
    rows = json.loads((uninterrupted / "quality.json").read_text())
    assert [r["volume"] for r in rows] == ["case_002", "case_006", "case_010"]
    for row in rows:
        predicted = read_mask(uninterrupted / "segmentations" / f"{row['volume']}.nii.gz").array > 0
        truth = read_mask(cohort / "cohort" / "masks" / f"{row['volume']}.nii.gz").array > 0
        assert row["mask_voxels"] == int(predicted.sum())
        # GenMedEval's true Dice everywhere: smoothed by one voxel (an empty pair scores 1, not 0/0)
        dice = (2 * np.logical_and(predicted, truth).sum() + 1) / (predicted.sum() + truth.sum() + 1)
        assert row["true_dice"] == pytest.approx(round(float(dice), 4), abs=1e-4)
    # the metrics stage and the sweep's baseline compare the same sets: the same numbers
    metrics = {r["metric"]: r["value"] for r in json.loads((uninterrupted / "metrics.json").read_text())}
    baseline = {r["metric"]: r["value"] for r in json.loads((uninterrupted / "sweep/baseline.json").read_text())}
    assert metrics.keys() == baseline.keys() and metrics["fd"] == baseline["fd"] and metrics["fd"] > 0
    summary = json.loads((uninterrupted / "batch.json").read_text())
    assert summary["units_done"] == len(_journal(uninterrupted)) and summary["units_reused"] == 0


def test_scene_bundle_loads_into_a_fresh_scene(uninterrupted):
    """Volumes, tumour masks and segmenter outputs as segmentation nodes, tables with the CSV's values."""
    from GenMedEvalLib import mrml
    from GenMedEvalLib.io import read_mask

    app = mrml.get_app()
    app.scene.Clear(0)
    try:
        mrml.load_bundle(app, uninterrupted / "scene.mrb")
        scene = app.scene
        for name in ("reference case_001", "reference case_005", "evaluated case_002", "evaluated case_006"):
            assert len(mrml.nodes_by_name(scene, name)) == 1, name
        volume = mrml.nodes_by_name(scene, "evaluated case_002")[0]
        segmenter = mrml.nodes_by_name(scene, "evaluated case_002 segmenter")[0]
        assert segmenter.IsA("vtkMRMLSegmentationNode")
        assert mrml.nodes_by_name(scene, "evaluated case_002 tumour")[0].IsA("vtkMRMLSegmentationNode")
        written = read_mask(uninterrupted / "segmentations" / "case_002.nii.gz").array > 0
        back = mrml.mask_from_node(scene, segmenter, volume) > 0
        assert np.array_equal(back, written)
        table = mrml.table_to_rows(mrml.nodes_by_name(scene, "metrics")[0])
        expected = {r["metric"]: r["value"] for r in json.loads((uninterrupted / "metrics.json").read_text())}
        # Slicer stores table nodes as TSV text with six significant digits
        assert {r["metric"]: r["value"] for r in table}["fd"] == pytest.approx(expected["fd"], rel=1e-5)
        assert len(mrml.table_to_rows(mrml.nodes_by_name(scene, "quality")[0])) == 3
    finally:
        app.scene.Clear(0)


@pytest.mark.parametrize(("marker", "finished"), [("segment/evaluated/", "features/"),
                                                  ('"sweep/gaussian_noise@0.05"', "metrics")])
def test_sigkill_then_resume_recomputes_nothing_done(uninterrupted, cohort, marker, finished):
    """Killed after its first segmentation (or in the sweep), started again: finished units are reused with zero
    work and the tables end byte-identical to the uninterrupted run's; no table is ever half-written."""
    tag = "killed_" + finished.strip("/")
    job, cache, out = _job(cohort, tag), cohort / f"cache_{tag}", cohort / tag
    process = _run(job, cache, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        journal = out / "journal.jsonl"
        if journal.is_file() and marker in journal.read_text():
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed_done = {e["unit"]: e for e in _journal(out)}
    assert any(u.startswith(finished) for u in killed_done) and "scene" not in killed_done
    final = _tables(uninterrupted)
    for name, data in _tables(out).items():  # whatever the kill left is complete
        assert data == final[name], f"{name} is partial after the kill"

    result = _run(job, cache)
    assert result.returncode == 0, result.stderr
    entries = _journal(out)[len(killed_done):]
    resumed = {e["unit"]: e for e in entries}
    for unit in killed_done:  # nothing already done is computed again
        assert resumed[unit]["status"] == "reused"
        assert not any(v for k, v in resumed[unit].items() if k not in ("unit", "status")), resumed[unit]
    full = {e["unit"]: e for e in _journal(uninterrupted)}
    assert set(resumed) == set(full)
    for key in ("forward_passes", "computed_results"):  # together the two runs did no more than one run's work
        assert sum(e.get(key, 0) for e in [*killed_done.values(), *entries]) <= sum(e.get(key, 0) for e in full.values())
    assert _tables(out) == final
    assert not list(out.rglob("*.genmedeval-tmp*"))
    summary = json.loads((out / "batch.json").read_text())
    assert summary["units_reused"] == len(killed_done) and summary["recomputed"] == []


def test_a_second_run_reuses_every_unit(uninterrupted, cohort):
    result = _run(_job(cohort, "full"), cohort / "cache_full")
    assert result.returncode == 0, result.stderr
    summary = json.loads((uninterrupted / "batch.json").read_text())
    assert summary["units_done"] == 0 and summary["work"] == {"forward_passes": 0, "region_forward_passes": 0,
                                                              "computed_results": 0}


def test_changed_job_refuses_the_old_journal(uninterrupted, cohort):
    changed = JOB.replace("bootstrap: 5", "bootstrap: 6")
    result = _run(_job(cohort, "full", changed, name="changed"), cohort / "cache_full")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "journal of a different job" in result.stderr and "--restart" in result.stderr


@pytest.mark.parametrize(("edit", "key"), [
    (("run: [metrics, quality, sweep]", "run: [metrics, plot]"), "run"),
    (("bootstrap: 5", "bootstrap: -1"), "bootstrap"),
    (("encoder: domain", "encoder: vgg"), "encoder"),
    (("seed: 0", "seeds: 0"), "seeds"),
    (('gaussian_noise: ["0.05"]', 'gaussian_noise: ["7"]'), "sweep.perturbations.gaussian_noise[0]"),
    (("  reference: {folder: cohort/images, split: reference}\n", ""), "sets.reference"),
    (("outputs: {folder: OUT,", "outputs: {scene: true,"), "outputs.folder"),
    (("metrics: [fd, kd", "metrics: [fdd, kd"), "metrics"),
    (("slices: {max_slices: 4", "slices: {max_slice: 4"), "slices.max_slice"),
])
def test_bad_job_is_one_line_naming_the_key(tmp_path, edit, key):
    path = tmp_path / "job.yaml"
    path.write_text(JOB.replace(*edit))
    with pytest.raises(InputError) as caught:
        load_job(path)
    message = str(caught.value)
    assert "\n" not in message and str(path.name) in message and f"{key}:" in message


def test_cli_exit_codes(cohort, capsys, monkeypatch):
    """2 for bad input (a listed file missing, a bad job), 1 for an internal failure, never a traceback."""
    from GenMedEvalLib import cli

    listed = JOB.replace("  evaluated: {folder: cohort/images, split: eval}",
                         f"  evaluated: {{files: [{cohort}/cohort/images/case_002.nii.gz, {cohort}/missing.nii.gz]}}")
    assert cli.main(["batch", str(_job(cohort, "exit_out", listed))]) == 2
    err = capsys.readouterr().err
    assert "missing.nii.gz" in err and "file not found" in err and err.count("\n") == 1
    assert not (cohort / "exit_out").exists()  # nothing written before the inputs are valid
    import GenMedEvalLib.batch as batch

    def broken(job, restart=False):
        raise RuntimeError("boom")

    monkeypatch.setattr(batch, "run_batch", broken)
    assert cli.main(["batch", str(_job(cohort, "exit_out2"))]) == 1
    assert "internal error" in capsys.readouterr().err


def test_file_list_sets_with_masks(cohort, tmp_path):
    """A set given as files and a mask folder lists those cases, in order, with their masks."""
    from GenMedEvalLib.experiments.sweep import list_set

    images = cohort / "cohort" / "images"
    text = JOB.replace("  evaluated: {folder: cohort/images, split: eval}",
                       f"  evaluated: {{files: [{images}/case_006.nii.gz, {images}/case_002.nii.gz], "
                       f"masks: {cohort}/cohort/masks}}")
    job = parse_job(__import__("yaml").safe_load(text), base_dir=cohort)
    items = list_set(job.sets["evaluated"], "evaluated")
    assert [i.name for i in items] == ["case_006", "case_002"]
    assert [i.mask.name for i in items] == ["case_006.nii.gz", "case_002.nii.gz"]
    assert [i.label for i in items] == ["left", "right"]  # the cohort.csv beside the files
    table = tmp_path / "labels.csv"
    table.write_text("name,label,group,split\ncase_006,none,B,eval\ncase_002,left,A,eval\n")
    relabelled = parse_job(__import__("yaml").safe_load(text.replace("masks: ", f"labels: {table}, masks: ")),
                           base_dir=cohort)
    items = list_set(relabelled.sets["evaluated"], "evaluated")
    assert [(i.label, i.group) for i in items] == [("none", "B"), ("left", "A")]
    missing = parse_job(__import__("yaml").safe_load(text.replace("masks: ", f"labels: {tmp_path}/no.csv, masks: ")),
                        base_dir=cohort)
    with pytest.raises(InputError, match="labels file not found"):
        list_set(missing.sets["evaluated"], "evaluated")


def test_slicer_batch_script_runs_a_job(uninterrupted, cohort):
    """``Slicer --python-script Scripts/batch.py --job JOB`` (here on the wheels): the same job, resumed, exit 0."""
    env = dict(os.environ, GENMEDEVAL_CACHE=str(cohort / "cache_full"), GENMEDEVAL_NO_PROGRESS="1")
    script = ROOT / "GenMedEval" / "Scripts" / "batch.py"
    result = subprocess.run([sys.executable, str(script), "--job", str(cohort / "full.yaml")], env=env,
                            cwd=cohort, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((uninterrupted / "batch.json").read_text())
    assert summary["units_done"] == 0 and summary["units_reused"] == len({e["unit"] for e in _journal(uninterrupted)})
    both = subprocess.run([sys.executable, str(script), "--job", str(cohort / "full.yaml"), "--volume", "x.nii.gz"],
                          env=env, cwd=cohort, capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "--job or --volume" in both.stderr


def test_written_example_is_a_valid_job(tmp_path, capsys):
    from GenMedEvalLib import cli

    assert cli.main(["batch", "--write-example", str(tmp_path / "job.yaml")]) == 0
    job = load_job(tmp_path / "job.yaml")
    assert job.stages == ("metrics", "quality", "sweep") and job.outputs.folder == tmp_path / "batch_out"
    assert [c.name for c in job.conditions] == ["gaussian_noise@0.05", "boundary_blur@1"]
    assert cli.main(["batch", "--write-example", str(tmp_path / "job.yaml")]) == 2  # never replaced silently
    assert "--overwrite" in capsys.readouterr().err


def test_job_on_a_local_dask_cluster_gives_the_same_tables(uninterrupted, cohort):
    """``distributed: {workers: 2}``: features and segmentations on two worker processes, the same tables; the
    main process then encodes nothing itself."""
    text = JOB + "distributed: {workers: 2}\n"
    result = _run(_job(cohort, "dask", text), cohort / "cache_dask")
    assert result.returncode == 0, result.stderr
    assert _tables(cohort / "dask") == _tables(uninterrupted)
    entries = _journal(cohort / "dask")
    assert all(e.get("forward_passes", 0) == 0 for e in entries if e["unit"].startswith("features/"))
    assert all(e.get("computed_results", 0) == 0 for e in entries if e["unit"].startswith("segment/"))
    assert "Dask cluster, features" in (cohort / "dask" / "batch.log").read_text()
