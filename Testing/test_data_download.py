"""``genmedeval data brats-examples``: downloads from a local HTTP server, SHA-256 checked, atomic, resumable."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from GenMedEvalLib import brats_examples
from GenMedEvalLib.brats_examples import ExampleFile
from GenMedEvalLib.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "brats"


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server hook
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (root folder, base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/brats", _Handler.requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def table(server, monkeypatch):
    """Two small files served in the upstream layout, and the table of their SHA-256 in place of the real one."""
    root = server[0]
    files = []
    for remote, local, data in (("validation/brats_2013_pat0003_1/Flair_subtrMeanDivStd.nii.gz",
                                 "pat0003/Flair_subtrMeanDivStd.nii.gz", b"flair bytes " * 100),
                                ("train/brats_2013_pat0005_1/License_CC_BY_NC_SA_3.0.txt", "LICENSE.txt", b"licence\n")):
        path = root / "brats" / remote
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(ExampleFile(remote, local, hashlib.sha256(data).hexdigest()))
    monkeypatch.setattr(brats_examples, "FILES", tuple(files))
    return files


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_download_checks_hashes_and_skips_files_already_there(server, table, tmp_path, capsys, monkeypatch):
    root, url, requests = server
    monkeypatch.setenv("GENMEDEVAL_BRATS_URL", url)
    out = tmp_path / "data"
    code, captured = run(["data", "brats-examples", out], capsys)
    assert code == 0, captured.err
    got = out / "pat0003" / "Flair_subtrMeanDivStd.nii.gz"
    assert got.read_bytes() == (root / "brats" / table[0].remote).read_bytes()
    assert (out / "LICENSE.txt").read_bytes() == b"licence\n" and "Menze" in (out / "README.md").read_text()
    assert "2 files downloaded" in captured.out and len(requests) == 2
    code, captured = run(["data", "brats-examples", out], capsys)  # a second run verifies and downloads nothing
    assert code == 0 and "0 files downloaded, 2 already there" in captured.out and len(requests) == 2


def test_a_changed_file_is_rejected_and_nothing_is_written(server, table, tmp_path, capsys):
    root, url, _ = server
    (root / "brats" / table[1].remote).write_bytes(b"tampered\n")
    out = tmp_path / "data"
    code, captured = run(["data", "brats-examples", out, "--url", url], capsys)
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "License_CC_BY_NC_SA_3.0.txt: SHA-256" in lines[0]
    assert not (out / "LICENSE.txt").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary left behind


def test_offline_says_what_to_download_and_where(table, tmp_path, capsys):
    dead = "http://127.0.0.1:9/brats"  # the discard port: nobody listens there
    out = tmp_path / "data"
    code, captured = run(["data", "brats-examples", out, "--url", dead, "--timeout", "5"], capsys)
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "cannot reach 127.0.0.1:9" in lines[0] and "brats_2013_pat0003_1" in lines[0]
    assert f"{out}/pat000N/" in lines[0] and "github.com/deepmedic/deepmedic" in lines[0]
    assert not out.exists()  # the folders it would have made are not left behind


def test_the_table_holds_the_hashes_of_the_shared_copies():
    """The shipped table names 4 cases x 4 files + the licence; each hash is that of the copy in ../shared."""
    from GenMedEvalLib.features.weights import sha256_file

    table = brats_examples.FILES
    assert len(table) == 17 and len({f.local for f in table}) == 17
    assert {f.local.split("/")[0] for f in table if "/" in f.local} == {"pat0003", "pat0004", "pat0005", "pat0006"}
    if not SHARED.is_dir():
        pytest.skip(f"BraTS example cases not found at {SHARED}")
    for item in table:
        assert sha256_file(SHARED / item.local) == item.sha256, item.local
