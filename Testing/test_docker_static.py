"""The Dockerfiles, read: what Testing/docker/prove.sh cannot show by building (Dockerfile.slicer is never built
here) and the rules a build would only break silently (layer order, user, ignored paths)."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def ignored(relative: str) -> bool:
    """Whether .dockerignore leaves ``relative`` out of the build context (last matching rule wins)."""
    result = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        parts = relative.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.removeprefix("**/")) for p in prefixes):
            result = not negate
    return result


def copies(path: Path) -> list[tuple[str, str]]:
    """(source, destination) of every COPY without --from."""
    out = []
    for word, rest in instructions(path):
        if word == "COPY" and "--from" not in rest:
            *sources, destination = rest.split()
            out += [(s, destination) for s in sources]
    return out


def test_dockerfile_base_torch_user_entrypoint():
    steps = instructions(ROOT / "Dockerfile")
    args = {rest.split("=")[0]: rest.partition("=")[2] for word, rest in steps if word == "ARG"}
    assert args["BASE_IMAGE"].startswith("python:3.11")  # the public default; prove.sh passes a local one
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu" and "TORCH_FIND_LINKS" in args
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("${BASE_IMAGE}") for f in froms)  # build stage, slim runtime
    runtime = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users == ["genmedeval"]
    assert runtime.index(("USER", "genmedeval")) < runtime.index(("ENTRYPOINT", '["genmedeval"]'))
    assert ("WORKDIR", "/data") in runtime and any(w == "VOLUME" and "/cache" in r for w, r in runtime)
    assert not any("gcc" in r for w, r in runtime if w == "RUN")  # no compiler in the image


def test_dependencies_are_installed_before_the_sources_are_copied():
    steps = instructions(ROOT / "Dockerfile")
    deps = next(i for i, (w, r) in enumerate(steps) if w == "RUN" and "pip install -r" in r)
    sources = next(i for i, (w, r) in enumerate(steps) if w == "COPY" and r.startswith("GenMedEvalLib"))
    only_project = [r for w, r in steps[:deps] if w == "COPY"]
    assert deps < sources and all("GenMedEvalLib" not in r for r in only_project)
    assert any("pip install --no-deps ." in r for w, r in steps[sources:] if w == "RUN")


def test_dependency_list_is_the_projects():
    from Testing.docker.dependencies import requirements

    listed = requirements(str(ROOT / "pyproject.toml"), ["slicer", "dask", "frd"])
    assert "monai>=1.3" in listed and any(r.startswith("slicer-core") for r in listed)
    assert any(r.startswith("distributed") for r in listed) and any(r.startswith("frd-score") for r in listed)
    with pytest.raises(SystemExit):
        requirements(str(ROOT / "pyproject.toml"), ["nonexistent"])


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.slicer"])
def test_every_copied_path_exists_and_is_in_the_context(dockerfile):
    for source, _ in copies(ROOT / dockerfile):
        assert (ROOT / source).exists(), source
        if dockerfile == "Dockerfile":
            assert not ignored(source), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_the_checkout_out():
    for heavy in (".venv", ".git", "demo_out", "Testing/test_batch.py", "GenMedEvalLib/__pycache__"):
        assert ignored(heavy), heavy
    assert not ignored("GenMedEvalLib/cli.py") and not ignored("Resources/Models/segmenter.pt")


def test_slicer_dockerfile_agrees_with_the_module_layout():
    """The module folder it builds is the one CMake installs; the entrypoint runs the batch script from it."""
    path = ROOT / "Dockerfile.slicer"
    steps = instructions(path)
    args = dict(rest.partition("=")[::2] for word, rest in steps if word == "ARG")
    assert re.fullmatch(r"5\.10\.\d+", args["SLICER_VERSION"])
    assert args["SLICER_URL"] == "" and args["SLICER_SHA256"] == ""  # required at build time, never a fake value
    assert "sha256sum -c" in path.read_text()
    module = "/opt/GenMedEval"
    destinations = {Path(dest).relative_to(module).as_posix() for _, dest in copies(path)}
    # GenMedEval/CMakeLists.txt installs GenMedEval.py, GenMedEvalLib/, Scripts/batch.py and Resources/ side by side
    cmake = (ROOT / "GenMedEval" / "CMakeLists.txt").read_text()
    assert "Scripts/batch.py" in cmake and "GenMedEvalLib/*.py" in cmake
    assert destinations == {"GenMedEval.py", "Scripts/batch.py", "GenMedEvalLib", "Resources"}
    entry = next(r for w, r in steps if w == "ENTRYPOINT")
    assert '"--no-main-window"' in entry and f'"--additional-module-paths", "{module}"' in entry
    assert f'"--python-script", "{module}/Scripts/batch.py"' in entry and entry.startswith('["xvfb-run"')
    assert "PyTorch" in path.read_text() and "ensureDependencies(askConfirmation=False)" in path.read_text()
    import ast

    logic = ast.parse((ROOT / "GenMedEval" / "GenMedEval.py").read_text())
    classes = {n.name: n for n in logic.body if isinstance(n, ast.ClassDef)}
    assert "ensureDependencies" in {f.name for f in classes["GenMedEvalLogic"].body if isinstance(f, ast.FunctionDef)}
    batch = (ROOT / "GenMedEval" / "Scripts" / "batch.py").read_text()
    assert '"--job"' in batch  # the image's documented `--job job.yaml`


def test_prove_script_is_bash_and_skips_when_told():
    script = ROOT / "Testing" / "docker" / "prove.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    done = subprocess.run(["bash", str(script)], env=dict(os.environ, GENMEDEVAL_PROVE_DOCKER="0"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "prove.sh: SKIPPED: GENMEDEVAL_PROVE_DOCKER=0" in done.stdout
