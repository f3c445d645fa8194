"""Features, metrics and predicted Dice on a real two-process Dask ``LocalCluster``: identical to one process."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from GenMedEvalLib.cases import DEFAULT_CASE_OPTIONS, list_cases, resolve_contrast  # noqa: E402
from GenMedEvalLib.cli import main  # noqa: E402
from GenMedEvalLib.cluster import (  # noqa: E402
    ClusterOptions,
    open_client,
    prefetch,
    prefetch_downstream,
    prefetch_folders,
)
from GenMedEvalLib.errors import InputError, ParameterError  # noqa: E402
from GenMedEvalLib.features import FeatureCache  # noqa: E402
from GenMedEvalLib.features.slicing import DEFAULT_SLICES  # noqa: E402

METRICS = ["fd", "kd", "prdc", "fd_roi"]
BATCH = 8  # several encoder batches per set, so that both workers encode


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """Two tiny cohorts (6 cases each, 4 mm): reference and generated image folders, and a scratch root."""
    from GenMedEvalLib.cohort.build import make_cohort

    root = tmp_path_factory.mktemp("cluster")
    ref = make_cohort(root / "ref", n=6, seed=1, spacing=4) / "images"
    gen = make_cohort(root / "gen", n=6, seed=2, spacing=4) / "images"
    return ref, gen, root


@pytest.fixture(scope="module")
def client():
    """One LocalCluster of two single-threaded worker processes for the whole module, torch imported in each."""
    with open_client(ClusterOptions(workers=2)) as dask_client:
        dask_client.run(lambda: __import__("torch") and None)  # equal start: both workers take tasks at once
        yield dask_client


def _in_process(folder, cache_root, outputs=None):
    """The single-process features of a folder (the usual code path) and the cache used."""
    from GenMedEvalLib.features import extract_folder, get_encoder

    encoder = get_encoder("domain", batch_size=BATCH)
    cache = FeatureCache(cache_root)
    fs = extract_folder(folder, encoder, cache=cache, outputs=outputs or encoder.outputs, show_progress=False)
    return fs, cache


def test_features_identical_and_main_process_does_no_forward_pass(cohorts, client):
    _, gen, root = cohorts
    stats = prefetch_folders(client, {"generated": gen}, "domain", slices=DEFAULT_SLICES, cases=DEFAULT_CASE_OPTIONS,
                             cache_root=root / "shared", batch_size=BATCH)
    after, cache = _in_process(gen, root / "shared")
    alone, fresh = _in_process(gen, root / "alone")
    assert cache.stats.forward_passes == 0 and cache.stats.hits == len(after.info)
    assert stats.forward_passes == fresh.stats.forward_passes == len(alone.info)
    assert set(after.features) == set(alone.features)
    for kind in alone.features:
        assert np.array_equal(after.features[kind], alone.features[kind]), kind
    workers = stats.by_worker
    assert len(workers) == 2 and all(w["volumes"] >= 1 for w in workers.values())  # both read cases
    assert sum(w["forward_passes"] for w in workers.values()) == len(alone.info)
    assert stats.tasks > 2 * len(workers)  # reading tasks, then one task per encoder batch of 8
    assert all(w["encoder_loads"] == 1 for w in workers.values())  # once per worker process, not per task
    assert len({w["pid"] for w in workers.values()} | {os.getpid()}) == 3
    again = prefetch_folders(client, {"generated": gen}, "domain", slices=DEFAULT_SLICES, cases=DEFAULT_CASE_OPTIONS,
                             cache_root=root / "shared", batch_size=BATCH)
    assert again.forward_passes == 0 and again.hits == len(alone.info)


def test_metrics_identical_with_local_inputs_from_the_cluster(cohorts, client):
    from GenMedEvalLib.features.evaluate import evaluate_folders

    ref, gen, root = cohorts
    folders = {"reference": ref, "generated": gen}
    prefetch_folders(client, folders, "domain", slices=DEFAULT_SLICES, cases=DEFAULT_CASE_OPTIONS,
                     cache_root=root / "metrics_shared", metrics=METRICS)
    cache = FeatureCache(root / "metrics_shared")
    distributed = evaluate_folders(folders, "domain", metrics=METRICS, cache=cache, show_progress=False)
    alone = evaluate_folders(folders, "domain", metrics=METRICS, cache=FeatureCache(root / "metrics_alone"),
                             show_progress=False)
    assert cache.stats.forward_passes == 0  # slices and tumour crops (fd_roi) all came from the workers
    assert distributed.to_records() == alone.to_records()


def test_downstream_prefetch_gives_identical_predicted_dice_and_masks(cohorts, client):
    from GenMedEvalLib.experiments.resultcache import ResultCache
    from GenMedEvalLib.experiments.sweep import Downstream, load_set

    _, gen, root = cohorts
    items = list_cases(gen)
    contrast = resolve_contrast(items, None)
    stats = prefetch_downstream(client, items, None, cases=DEFAULT_CASE_OPTIONS, contrast=contrast,
                                cache_root=root / "dn_shared")
    assert stats.segmented == len(items) and len(stats.by_worker) == 2
    members = load_set(items, "base", DEFAULT_CASE_OPTIONS, contrast)
    keys = [m.item.name for m in members]
    shared = Downstream.load(None, ResultCache(root / "dn_shared" / "_results"))
    alone = Downstream.load(None, ResultCache(root / "dn_alone" / "_results"))
    from_cluster, in_process = shared.scores(members, keys=keys), alone.scores(members, keys=keys)
    assert shared.results.misses == 0 and shared.results.hits == len(items)
    np.testing.assert_array_equal(from_cluster, in_process)  # NaN where nothing was found, on both sides
    for key in keys:
        assert np.array_equal(shared.masks[key], alone.masks[key]), key


def test_prefetch_of_named_sets_returns_counters(cohorts, client):
    ref, gen, root = cohorts
    sets = {"reference": list_cases(ref), "base": list_cases(gen)}
    stats = prefetch(client, sets, encoder="domain", slices=DEFAULT_SLICES, cases=DEFAULT_CASE_OPTIONS,
                     cache_root=root / "named")
    assert stats["features"]["volumes"] == 12 and stats["features"]["workers"] == 2
    assert "downstream" not in stats


def test_a_bad_file_fails_as_one_line_naming_it(cohorts, client, tmp_path):
    import shutil

    _, gen, _ = cohorts
    folder = tmp_path / "images"
    shutil.copytree(gen, folder)
    (folder / "broken.nii.gz").write_bytes(b"not an image at all")
    with pytest.raises(InputError) as failure:
        prefetch_folders(client, {"generated": folder}, "domain", slices=DEFAULT_SLICES, cases=DEFAULT_CASE_OPTIONS,
                         cache_root=tmp_path / "cache")
    message = str(failure.value)
    assert "broken.nii.gz" in message and "\n" not in message


@pytest.mark.parametrize(("options", "expected"), [
    ({"workers": 0}, "--workers 0"),
    ({"workers": 2, "scheduler": "tcp://localhost:8786"}, "not both"),
    ({"scheduler": "localhost"}, "expected a Dask scheduler address"),
    ({"scheduler": "tcp://host:70000"}, "expected a Dask scheduler address"),
])
def test_bad_cluster_options_are_refused(options, expected):
    with pytest.raises(ParameterError, match=expected):
        ClusterOptions(**options)


def test_cli_refuses_bad_options_in_one_line(cohorts, capsys):
    ref, gen, root = cohorts
    args = ["metrics", "--reference", str(ref), "--generated", str(gen), "--encoder", "domain", "--metrics", "fd",
            "--out", str(root / "never.csv")]
    assert main([*args, "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--workers", "0"])
    assert "--workers" in capsys.readouterr().err
    assert not (root / "never.csv").exists()


def test_unreachable_scheduler_is_one_quick_line(monkeypatch):
    import GenMedEvalLib.cluster as cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    start = time.perf_counter()
    with pytest.raises(ParameterError) as failure, open_client(ClusterOptions(scheduler="tcp://127.0.0.1:9")):
        pass
    assert time.perf_counter() - start < 10
    assert "no Dask scheduler answers" in str(failure.value) and "\n" not in str(failure.value)


def test_cli_metrics_with_two_workers_writes_the_same_csv(cohorts, capsys):
    ref, gen, root = cohorts
    outputs = {}
    for name, extra in (("alone", []), ("workers", ["--workers", "2"])):
        out = root / f"cli_{name}.csv"
        assert main(["metrics", "--reference", str(ref), "--generated", str(gen), "--encoder", "domain",
                     "--metrics", ",".join(METRICS), "--cache", str(root / f"cli_cache_{name}"), "--out", str(out),
                     *extra]) == 0
        outputs[name] = out.read_bytes()
    assert "cluster: " in capsys.readouterr().out
    assert outputs["workers"] == outputs["alone"]


def test_quality_rows_on_workers_equal_the_in_process_rows(cohorts, client):
    import argparse

    from GenMedEvalLib.cluster import absolute, map_chunks
    from GenMedEvalLib.commands.downstream import quality_chunk, quality_row
    from GenMedEvalLib.quality import load_predictor

    _, gen, _ = cohorts
    masks = gen.parent / "masks"
    args = argparse.Namespace(model=None, device=None, segmenter=None, predictions=masks, masks=masks,
                              contrast=None, target="whole", label_convention=None, trust_bundle=False)
    items = list_cases(gen, mask_dir=masks)
    predictor = load_predictor(None)
    alone = [quality_row(item, args, None, predictor, None) for item in items]
    parts = map_chunks(client, quality_chunk, absolute(items), args, None, None, desc="quality")
    assert [r for part in parts for r in part] == alone
    assert any(row["predicted_dice"] is not None for row, _ in alone)
