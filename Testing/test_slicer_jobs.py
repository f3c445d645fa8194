"""The module's background work: a process tree the panel polls, Cancel ending all of it, exit codes and start
failures reported, progress over several steps, version floors, unset model paths. (Segmentation and quality
through it, from the module's logic, are in test_slicer_bindings.py.)"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from GenMedEvalLib.scene_logic import (
    BackgroundJob,
    DownstreamRun,
    JobStep,
    given_path,
    missing_requirements,
    pip_step,
)

PY = sys.executable

# A "launcher" that starts the real worker as its child, as PythonSlicer starts python-real, and waits.
LAUNCHER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print('child', child.pid, flush=True)\n"
    "child.wait()\n"
)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="process table read from /proc (Linux)")
def test_cancel_ends_the_launcher_and_its_child():
    job = BackgroundJob([JobStep((PY, "-c", LAUNCHER), "Worker")])
    job.start()
    child, deadline = None, time.monotonic() + 20
    while child is None and time.monotonic() < deadline:
        for line in job.poll().lines:
            if line.startswith("child "):
                child = int(line.split()[1])
        time.sleep(0.05)
    launcher = job.process.pid
    assert child is not None and alive(child) and alive(launcher)
    status = job.cancel()
    assert status.state == "cancelled" and status.finished
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the worker below the launcher survived Cancel"
    assert not alive(launcher)
    assert job.poll().state == "cancelled"  # nothing restarts after a cancel


def test_exit_status_and_start_failure_are_reported_not_raised():
    failed = BackgroundJob([JobStep((PY, "-c", "import sys; print('bad input: x.nii'); sys.exit(2)"), "Metrics"),
                            JobStep((PY, "-c", "print('never')"), "Next")]).wait(30)
    assert failed.state == "failed" and failed.exit_code == 2
    assert failed.message == "Metrics failed (exit status 2): bad input: x.nii"
    assert "never" not in failed.lines
    missing = BackgroundJob([JobStep(("/nonexistent/PythonSlicer", "-m", "x"), "Segmentation")])
    status = missing.start()
    assert status.state == "failed" and status.finished
    assert status.message.startswith("Segmentation: could not start /nonexistent/PythonSlicer")
    killed = BackgroundJob([JobStep((PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), "W")])
    assert "killed by signal 9" in killed.wait(30).message


def test_progress_runs_over_the_steps_in_order(tmp_path):
    """tqdm-style lines (carriage returns) of each step make one overall percentage, reaching 100 at the end."""
    bar = "import sys\nfor p in (0, 50, 100):\n    sys.stderr.write(f'\\rwork: {p:3d}%|##| {p}/100')\nsys.stderr.write('\\n')\n"
    job = BackgroundJob([JobStep((PY, "-c", bar), "First"), JobStep((PY, "-c", bar + "print('second')"), "Second")])
    job.start()
    seen, lines = [], []
    while True:
        status = job.poll()
        seen.append(status.percent)
        lines += status.lines
        if status.finished:
            break
        time.sleep(0.01)
    assert status.state == "done" and status.percent == 100 and status.message == "Done."
    assert seen == sorted(seen)  # never goes back
    assert lines.count("work: 100%|##| 100/100") == 2 and "second" in lines


def test_requirements_with_floors():
    versions = {"monai": "1.2.0", "tqdm": "4.66.1", "pyyaml": None}
    missing = missing_requirements(["monai>=1.3", "tqdm>=4.60", "pyyaml>=6"], versions.get)
    assert missing == ["monai>=1.3", "pyyaml>=6"]
    assert missing_requirements(["numpy>=1.0"]) == []  # read from the installed distribution
    step = pip_step("PythonSlicer", missing)
    assert step.argv == ("PythonSlicer", "-m", "pip", "install", "monai>=1.3", "pyyaml>=6")


def test_unset_paths_mean_the_shipped_models(tmp_path):
    run = DownstreamRun(tmp_path)
    for unset in (None, "", Path(), Path("")):
        assert given_path(unset) is None
        (step,) = run.steps("py", segmenter=unset, predictor=unset)
        assert "--segmenter" not in step.argv and "--quality-model" not in step.argv
    (step,) = run.steps("py", segmenter=Path("/m/seg.ts"), predictor=Path("/m/q.pt"), with_truth=True)
    assert step.argv[:3] == ("py", "-m", "GenMedEvalLib.scene_logic")
    assert step.argv[step.argv.index("--segmenter") + 1] == "/m/seg.ts"
    assert step.argv[step.argv.index("--quality-model") + 1] == "/m/q.pt"
    assert step.argv[step.argv.index("--truth") + 1] == str(run.truth)


def test_background_downstream_command_bad_input_is_one_line(tmp_path):
    """The worker behind the Downstream section: a missing input is one line and status 2, nothing written."""
    import subprocess

    run = DownstreamRun(tmp_path)
    (step,) = run.steps(PY)
    done = subprocess.run(list(step.argv), capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "case.nii.gz" in done.stderr
    assert not run.segmentation.exists() and not run.table.exists()


def test_a_failure_is_explained_by_its_last_line_whichever_poll_read_it():
    """The explaining line printed well before the exit (read by an earlier poll) still makes the message."""
    job = BackgroundJob([JobStep((PY, "-c", "import sys, time; print('bad input: y.nii', flush=True); "
                                            "time.sleep(1.0); sys.exit(2)"), "Metrics")])
    job.start()
    early = []
    for _ in range(200):  # read the line while the process still runs
        status = job.poll()
        early += status.lines
        if early or status.finished:
            break
        time.sleep(0.02)
    assert early == ["bad input: y.nii"] and not status.finished
    assert job.wait(30).message == "Metrics failed (exit status 2): bad input: y.nii"
