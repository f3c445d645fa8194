"""The domain encoder: the training recipe (tiny, deterministic) and the shipped weights' quality."""

from __future__ import annotations

import numpy as np
import pytest

from GenMedEvalLib.features import FeatureCache, SliceSettings, extract_features
from GenMedEvalLib.features.weights import sha256_file
from GenMedEvalLib.io import Volume, write_volume

CLASSES = ("none", "left", "right")


def tiny_case(i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str, str]:
    """A 12 x 32 x 32 ellipsoid 'brain' with a bright lesion on the class's side; group B has gamma + noise."""
    label, group = CLASSES[i % 3], "AB"[(i // 3) % 2]
    z, y, x = np.mgrid[:12, :32, :32]
    image = ((((y - 16) / 13) ** 2 + ((x - 16) / 12) ** 2 + ((z - 6) / 7) ** 2) < 1).astype(np.float32) * 0.6
    mask = np.zeros(image.shape, np.uint8)
    if label != "none":
        lesion = ((y - 16) ** 2 + (x - (9 if label == "left" else 23)) ** 2 + ((z - 6) * 2) ** 2) < 16
        image[lesion], mask[lesion] = 1.0, 1
    if group == "B":
        image = image ** 0.6
    image = image + rng.normal(0, 0.02 if group == "A" else 0.08, image.shape)
    return image.astype(np.float32), mask, label, group


def write_tiny_cohort(root, n: int = 9, seed: int = 0):
    """A cohort folder (images/, masks/, cohort.csv) of ``n`` tiny cases."""
    rng = np.random.default_rng(seed)
    rows = ["name,label,group,split"]
    for i in range(n):
        image, mask, label, group = tiny_case(i, rng)
        name = f"case_{i:03d}"
        write_volume(Volume(image), root / "images" / f"{name}.nii.gz")
        write_volume(Volume(mask), root / "masks" / f"{name}.nii.gz")
        rows.append(f"{name},{label},{group},{'test' if i >= n - 3 else 'train'}")
    (root / "cohort.csv").write_text("\n".join(rows) + "\n")
    return root


def test_training_recipe_is_deterministic_and_loadable(tmp_path):
    pytest.importorskip("torch")
    from GenMedEvalLib.features.encoders.domain import DomainEncoder
    from GenMedEvalLib.features.train_domain import train_domain_encoder

    cohort = write_tiny_cohort(tmp_path / "cohort")
    quiet = lambda *_: None  # noqa: E731
    metas = [train_domain_encoder(cohort, tmp_path / f"w{i}.pt", epochs=1, seed=3, max_steps=3, train_splits=("train",),
                                  heldout_splits=("test",), log=quiet) for i in range(2)]
    assert sha256_file(tmp_path / "w0.pt") == sha256_file(tmp_path / "w1.pt")
    assert metas[0]["train_slices"] > 0 and 0.0 <= metas[0]["heldout_class_accuracy"] <= 1.0
    encoder = DomainEncoder(device="cpu", weights_path=tmp_path / "w0.pt")
    volume = np.random.default_rng(0).random((3, 40, 30), dtype=np.float32)
    fs = extract_features([volume], encoder, slices=SliceSettings(min_foreground=0.0), outputs=("pool", "logits"),
                          cache=FeatureCache(tmp_path / "cache"), show_progress=False)
    assert fs.pool.shape == (3, 128) and fs.features["logits"].shape == (3, 3)
    assert sha256_file(tmp_path / "w0.pt")[:16] in encoder.identity()


def test_shipped_weights_classify_heldout_cohort_cases():
    """Demo-cohort cases the shipped model never saw (it was trained on the seed-1 cohort; these are seed 0)."""
    cohort = pytest.importorskip("GenMedEvalLib.cohort")
    from GenMedEvalLib.features.encoders.domain import DOMAIN_WEIGHTS, DomainEncoder, shipped_weights_path
    from GenMedEvalLib.io import normalize_intensity

    assert sha256_file(shipped_weights_path()) == DOMAIN_WEIGHTS.sha256
    encoder = DomainEncoder(device="cpu")
    cases = [cohort.make_case(i, 0, 2.0) for i in (1, 2, 6, 7)]  # left, right (group A); left, right (group B)
    volumes = [geometry.with_array(normalize_intensity(image)) for image, _, _, geometry in cases]
    fs = extract_features(volumes, encoder, outputs=("pool", "logits"), cache=FeatureCache(enabled=False),
                          show_progress=False)
    index, slice_ids = fs.volume_index, np.array([s.index for s in fs.info])
    truth = np.array([encoder.classes.index(cases[v][2].label) if cases[v][1][z].sum() >= 10 else 0
                      for v, z in zip(index, slice_ids, strict=True)])
    accuracy = float((fs.features["logits"].argmax(1) == truth).mean())
    assert accuracy > 0.6, accuracy  # chance: 1/3
    # Acquisition groups: the trained linear read-out of the pool features (the group head) on unseen cases.
    weight = encoder.net.group_head.weight.detach().numpy()
    bias = encoder.net.group_head.bias.detach().numpy()
    predicted = np.array(encoder.meta["groups"])[(fs.pool @ weight.T + bias).argmax(1)]
    groups = np.array([cases[v][2].group for v in index])
    group_accuracy = float((predicted == groups).mean())
    assert group_accuracy > 0.6, group_accuracy  # chance: 1/2 (held-out slices at training: 0.68)
