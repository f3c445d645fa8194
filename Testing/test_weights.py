"""Weights files: cache look-up, SHA-256 check, download from a local HTTP server (good, bad, down)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from GenMedEvalLib.features.weights import WeightsSpec, WeightsUnavailable, resolve_weights


@contextmanager
def serve_folder(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (random port) in a daemon thread; stops on exit."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """A small weights file in a served folder: (folder, payload bytes, its SHA-256)."""
    folder = tmp_path / "server"
    folder.mkdir()
    payload = bytes(range(256)) * 40
    (folder / "w.bin").write_bytes(payload)
    return folder, payload, hashlib.sha256(payload).hexdigest()


def test_cached_file_with_good_hash_is_used_without_url(tmp_path, served):
    folder, payload, digest = served
    spec = WeightsSpec("toy", "w.bin", digest)
    assert resolve_weights(spec, cache=folder) == folder / "w.bin"


def test_download_with_good_hash(tmp_path, served):
    folder, payload, digest = served
    cache = tmp_path / "cache"
    with serve_folder(folder) as url:
        path = resolve_weights(WeightsSpec("toy", "w.bin", digest, url=f"{url}/w.bin"), cache=cache, timeout=5)
    assert path == cache / "w.bin"
    assert path.read_bytes() == payload


def test_download_with_bad_hash_leaves_no_file(tmp_path, served):
    folder, _, _ = served
    cache = tmp_path / "cache"
    with serve_folder(folder) as url, pytest.raises(WeightsUnavailable, match="SHA-256"):
        resolve_weights(WeightsSpec("toy", "w.bin", "0" * 64, url=f"{url}/w.bin"), cache=cache, timeout=5)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_server_down_names_file_and_folder(tmp_path):
    cache = tmp_path / "cache"
    spec = WeightsSpec("toy", "w.bin", "0" * 64, url=f"http://127.0.0.1:{free_port()}/w.bin")
    with pytest.raises(WeightsUnavailable) as err:
        resolve_weights(spec, cache=cache, timeout=2)
    assert "w.bin" in str(err.value) and str(cache) in str(err.value)
    assert not (cache / "w.bin").exists()


def test_missing_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(WeightsUnavailable, match="not found in"):
        resolve_weights(WeightsSpec("toy", "w.bin", "0" * 64), cache=tmp_path)


def test_corrupt_cached_file_is_refused(tmp_path, served):
    folder, _, digest = served
    (folder / "w.bin").write_bytes(b"corrupt")
    with pytest.raises(WeightsUnavailable, match="does not match"):
        resolve_weights(WeightsSpec("toy", "w.bin", digest), cache=folder)


def test_encoder_without_recorded_hash_explains_env(tmp_path, monkeypatch):
    from GenMedEvalLib.features.encoders.dinov2 import DinoV2Encoder

    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    monkeypatch.delenv("GENMEDEVAL_DINOV2_SHA256", raising=False)
    encoder = DinoV2Encoder(device="cpu")
    with pytest.raises(WeightsUnavailable, match="GENMEDEVAL_DINOV2_SHA256"):
        encoder.encode_batch(__import__("numpy").zeros((1, 8, 8), dtype="float32"))


def test_encoder_downloads_checkpoint_and_uses_it(tmp_path, monkeypatch):
    """A small DINOv2-layout checkpoint served locally is downloaded, hash-checked and loaded."""
    from dataclasses import replace

    import numpy as np
    import torch

    from GenMedEvalLib.features.encoders.dinov2 import DinoV2Encoder, build_vit, load_vit

    torch.manual_seed(0)
    state = build_vit(dim=32, depth=1, heads=1, grid=16).state_dict()
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    torch.save(state, server_dir / "dinov2_vitb14_pretrain.pth")
    digest = hashlib.sha256((server_dir / "dinov2_vitb14_pretrain.pth").read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(cache))
    encoder = DinoV2Encoder(device="cpu", sha256=digest)
    grey = np.random.default_rng(0).random((2, 30, 30), dtype=np.float32)
    with serve_folder(server_dir) as url:
        encoder._spec = replace(encoder.weights, url=f"{url}/dinov2_vitb14_pretrain.pth")
        out = encoder.encode_batch(grey)["pool"]
    assert (cache / "dinov2_vitb14_pretrain.pth").exists()
    reference = DinoV2Encoder(device="cpu", sha256=digest)
    reference._model = load_vit(state)
    np.testing.assert_array_equal(out, reference.encode_batch(grey)["pool"])
