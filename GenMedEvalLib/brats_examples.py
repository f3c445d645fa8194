"""The DeepMedic project's public BraTS example cases: download with SHA-256 checks (``genmedeval data brats-examples``).

Four BraTS 2013/2015 training cases as the DeepMedic project ships them for its examples
(github.com/deepmedic/deepmedic, ``examples/dataForExamples/brats2015TrainingData/``: cases
``brats_2013_pat0005_1`` and ``pat0006`` under ``train/``, ``pat0003`` and ``pat0004`` under
``validation/``): FLAIR and T1c (intensities normalised to zero mean, unit variance in the brain),
the expert labels (``OTMultiClass``, BraTS 2013-2015 convention) and a brain mask, 240 x 240 x 155
at 1 mm. They are written as case folders ``DIR/pat000N/`` that every GenMedEval command reads.

Licence: Creative Commons Attribution-NonCommercial-ShareAlike 3.0 (the file ships as
``DIR/LICENSE.txt``); cite Menze et al. 2015, IEEE TMI 34(10), wherever results on them appear.
GenMedEval never ships these files.

The SHA-256 table holds the hashes of the copies checked here (``../shared/data/real/brats/``,
taken as the upstream files); whether they are byte-identical to the files upstream serves now
cannot be known offline: a file that differs is rejected with its URL, never written.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import GenMedEvalError
from .io import atomic_path, write_text

BASE_URL = "https://raw.githubusercontent.com/deepmedic/deepmedic/master/examples/dataForExamples/brats2015TrainingData"
BASE_URL_ENV = "GENMEDEVAL_BRATS_URL"  # another server holding the same layout (a mirror; the tests' local server)
UPSTREAM = "github.com/deepmedic/deepmedic, examples/dataForExamples/brats2015TrainingData/"


class DownloadError(GenMedEvalError):
    """A file could not be fetched, or its SHA-256 differs from the table's."""


@dataclass(frozen=True)
class ExampleFile:
    """One file: where it lies under the base URL, where it goes under DIR, its SHA-256."""

    remote: str
    local: str
    sha256: str


def _case(split: str, number: str, hashes: tuple[str, str, str, str]) -> tuple[ExampleFile, ...]:
    names = ("Flair_subtrMeanDivStd.nii.gz", "OTMultiClass.nii.gz", "T1c_subtrMeanDivStd.nii.gz", "brainmask.nii.gz")
    return tuple(ExampleFile(f"{split}/brats_2013_pat{number}_1/{name}", f"pat{number}/{name}", digest)
                 for name, digest in zip(names, hashes, strict=True))


FILES: tuple[ExampleFile, ...] = (
    *_case("validation", "0003", ("77e66334143ad3c502259832855968e9c3e1c1c050aeb0b56c0a3b48d1123021",
                                  "5ec4cd18bc7e0f98745631bdd9ed3dd6c2e6f4e475ad0c8bb5e4947f4df7a533",
                                  "464032dd12cb82eccb39a6860aedac3dd1dedda549b1acf2114a2924cf62d38b",
                                  "b262035cea104f04b6a4873f17c1c2e670adb902ce45b352d5230e1f9b70ff40")),
    *_case("validation", "0004", ("93c76c5af1c9c1644e3b8ff4f86f08a1684b49d19eabb78d12736bf0a42a5bc1",
                                  "5457e8dfa75d1870065df16511ea7cad83f187380fcc43be0bb46e1927d6b47b",
                                  "c50f360e9d96e42d1ff3195e326a2c6a23a827b0bf09b9b31ecdfafd209dd698",
                                  "17829e0a5946529a2137f46e14860472f2158155f4932ecf6591bcbc6a581d8b")),
    *_case("train", "0005", ("fb0b51dadf56c2768e12338bb7db96ea75ce60a0a0729380f7e4f6d14099e54b",
                             "77f62400fcdda37238f98c9031c99257c8fa3011694d847b40ba066e4df70b90",
                             "df2f76e615f15b0027056288928885404a62c94f0b38094d4d1be00a9ead1f13",
                             "a48131df1431f3e6fd188a458550d4526404b4e708cb29b6945658a3c56c0073")),
    *_case("train", "0006", ("3c6941679cd85611dc580addce20f6cc04c5ab2d83713798a04536e7ff36e646",
                             "b5a559c904da6597717e5b0616d47b30e6c357a829c5b06f494d0b35d0937e2e",
                             "a8e3a767f2fb29803592f436c29bbf58e56c7f5d7ad8ee638177173c6d305435",
                             "8256e366047acd77fff55de187f585a1987f57f7662e8e0fea412abaf8a31cc4")),
    ExampleFile("train/brats_2013_pat0005_1/License_CC_BY_NC_SA_3.0.txt", "LICENSE.txt",
                "e112a28c1877c57a505a6ded17a5e517ea51b48b81dba9356b80f660b79c06c7"),
)

NOTE = """# BraTS example cases (BraTS 2013/2015 training data, as the DeepMedic project ships them)

Downloaded by `genmedeval data brats-examples` from {source}, each file's SHA-256 checked.
Each `patNNNN/` folder is one case on one 240 x 240 x 155 grid at 1 mm: FLAIR and T1c
(`*_subtrMeanDivStd`: zero mean, unit variance inside the brain), the expert labels
(`OTMultiClass`: 0 background, 1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing tumour; the
BraTS 2013-2015 convention, `--label-convention brats2013`) and the brain mask.

Licence: Creative Commons Attribution-NonCommercial-ShareAlike 3.0 (LICENSE.txt). Cite Menze et
al. 2015, "The multimodal brain tumor image segmentation benchmark (BRATS)", IEEE TMI 34(10),
wherever results on these cases appear. Do not put them in a repository with another licence.
"""


def base_url(url: str | None = None) -> str:
    """The server to fetch from: ``url``, else ``$GENMEDEVAL_BRATS_URL``, else the DeepMedic repository."""
    return (url or os.environ.get(BASE_URL_ENV) or BASE_URL).rstrip("/")


def offline_hint(folder: Path) -> str:
    """What to download and where to put it, in one line."""
    return (f"download the 4 .nii.gz files of each of validation/brats_2013_pat0003_1, pat0004_1 and "
            f"train/brats_2013_pat0005_1, pat0006_1 from {UPSTREAM} into {folder}/pat000N/")


def _sha256(path: Path) -> str:
    from .features.weights import sha256_file

    return sha256_file(path)


def _fetch(url: str, target: Path, expected: str, timeout: float, folder: Path) -> None:
    """Download ``url`` to ``target`` atomically; the file is renamed into place only when its SHA-256 matches."""
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as out:  # noqa: S310
                while block := response.read(1 << 20):
                    out.write(block)
            got = _sha256(tmp)
            if got != expected:
                raise DownloadError(f"{url}: SHA-256 {got[:16]}... differs from the expected {expected[:16]}...; "
                                    "file discarded (the upstream copy may have changed)")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        host = urllib.parse.urlsplit(url).netloc or url
        raise DownloadError(f"cannot reach {host} ({str(reason)[:60]}): offline? {offline_hint(folder)}") from None


def download_examples(folder: str | Path, *, url: str | None = None, timeout: float = 60.0,
                      files: tuple[ExampleFile, ...] | None = None, on_file=None) -> list[Path]:
    """Fetch every example file into ``folder`` (``patNNNN/`` case folders), SHA-256 checked; return the paths.

    Files already there with the right hash are kept (a second run downloads nothing); each
    download goes to a temporary name renamed only after its hash matches.
    """
    folder = Path(folder)
    root = base_url(url)
    table = FILES if files is None else files
    new_dirs = [d for d in dict.fromkeys([folder, *((folder / f.local).parent for f in table)]) if not d.exists()]
    written = []
    try:
        for item in table:
            target = folder / item.local
            if not (target.is_file() and _sha256(target) == item.sha256):
                _fetch(f"{root}/{item.remote}", target, item.sha256, timeout, folder)
                if on_file is not None:
                    on_file(target)
            written.append(target)
    except DownloadError:
        for made in reversed(new_dirs):  # folders this call created and left empty go again
            if made.is_dir() and not any(made.iterdir()):
                made.rmdir()
        raise
    if not (folder / "README.md").is_file():
        write_text(folder / "README.md", NOTE.format(source=UPSTREAM))
    return written
