"""The Slicer module's "trust bundle" checkbox reaches the background command, which refuses bundles without it."""

from __future__ import annotations

import numpy as np
from test_segment import write_bundle

from GenMedEvalLib.io import Volume, write_volume
from GenMedEvalLib.scene_logic import DownstreamRun, downstream_main


def test_trust_flag_reaches_the_background_command(tmp_path):
    run = DownstreamRun(tmp_path)
    trusted = run.steps("python", segmenter=tmp_path / "bundle", trust_bundle=True)[0]
    untrusted = run.steps("python", segmenter=tmp_path / "bundle")[0]
    assert "--trust-bundle" in trusted.argv and "--trust-bundle" not in untrusted.argv


def test_background_command_refuses_an_untrusted_bundle_and_runs_a_trusted_one(tmp_path, capsys):
    write_bundle(tmp_path / "bundle")
    image = np.zeros((6, 48, 48), np.float32)
    image[2:4, 20:30, 20:30] = 1.0
    write_volume(Volume(image), tmp_path / "img.nii.gz")
    args = ["--image", str(tmp_path / "img.nii.gz"), "--segmentation", str(tmp_path / "seg.nii.gz"),
            "--table", str(tmp_path / "row.csv"), "--segmenter", str(tmp_path / "bundle")]
    assert downstream_main(args) == 2
    assert "trust" in capsys.readouterr().err.lower() and not (tmp_path / "seg.nii.gz").exists()
    assert downstream_main([*args, "--trust-bundle"]) == 0
    assert (tmp_path / "seg.nii.gz").is_file() and (tmp_path / "row.csv").is_file()
