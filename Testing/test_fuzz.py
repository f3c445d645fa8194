"""Fuzz suite: hundreds of bad inputs across every command, generated here, each with its expected outcome.

The corpus (``fuzz_corpus.py`` and the case lists below) is made at test time: truncated and random
files, every pixel type, 2D/4D/5D, NaN/Inf voxels, odd geometry, gzip bombs, mismatched masks,
outputs that are inputs or lie in input folders, non-UTF-8 and option-like names, broken configs,
run folders and model files, NaN and out-of-range parameters, bad devices and thread counts.

Every case runs the real ``genmedeval`` entry point in a worker process (so that a signal or a
hang is caught and blamed on its case) with file descriptors 1 and 2 captured (so that a C++
library's own print is seen). A case fails on a traceback, a signal, a hang, a modified input, an
output left behind by a failed run, an exit status other than the expected one, an error that is
not one line, or a success on invalid input. The counts are printed (``-s``) for the record.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_corpus import IMAGE_CASES, grey, non_utf8_name, write_sitk  # noqa: E402

CASE_TIMEOUT_S = 60.0
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ---------------------------------------------------------------- the worker (runs in a child process)

def _run_case(case: dict) -> dict:
    """Run one case in this process with fds 1 and 2 captured; exit status and everything printed."""
    import tempfile

    from GenMedEvalLib.cli import main

    with tempfile.TemporaryFile() as out:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        start = time.perf_counter()
        try:
            try:
                code = main(case["argv"])
            except SystemExit as exc:  # argparse's own usage errors
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException as exc:  # noqa: BLE001 - an escaping exception is a defect, recorded as such
                import traceback

                traceback.print_exc()
                code = f"escaped {type(exc).__name__}"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode("utf-8", "backslashreplace")
    return {"id": case["id"], "code": code, "output": text, "seconds": seconds}


def worker(cases_file: str, results_file: str, start: int) -> None:
    """Run cases from ``start`` on, appending one JSON line per finished case (flushed: the parent watches)."""
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("GENMEDEVAL_CACHE", str(Path(results_file).parent / "cache"))
    cases = json.loads(Path(cases_file).read_text())
    with open(results_file, "a") as handle:
        for case in cases[start:]:
            handle.write(json.dumps({"id": case["id"], "started": True}) + "\n")
            handle.flush()
            handle.write(json.dumps(_run_case(case)) + "\n")
            handle.flush()


# ---------------------------------------------------------------- the parent: run, watch, judge

def _tree_digest(path: Path) -> str | None:
    """Digest of a file's bytes, or of a folder's names and bytes (None when absent)."""
    if not os.path.lexists(path):
        return None
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            digest.update(os.fsencode(full.relative_to(path)))
            digest.update(full.read_bytes())
    return digest.hexdigest()


def run_cases(cases: list[dict], workdir: Path) -> dict[str, dict]:
    """Run every case in worker processes; a worker that dies or hangs is blamed on its case and restarted."""
    cases_file, results_file = workdir / "cases.json", workdir / "results.jsonl"
    cases_file.write_text(json.dumps(cases))
    results: dict[str, dict] = {}
    index = 0
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    while index < len(cases):
        results_file.write_text("")
        proc = subprocess.Popen([sys.executable, __file__, "worker", str(cases_file), str(results_file), str(index)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        last, current = time.monotonic(), None
        while proc.poll() is None:
            time.sleep(0.05)
            lines = results_file.read_text().splitlines()
            for line in lines:
                entry = json.loads(line)
                if entry.get("started"):
                    current = entry["id"]
                elif entry["id"] not in results:
                    results[entry["id"]] = entry
                    last = time.monotonic()
            if time.monotonic() - last > CASE_TIMEOUT_S:
                proc.kill()
                proc.wait()
                results[current] = {"id": current, "code": "hang", "output": "", "seconds": CASE_TIMEOUT_S}
                break
        for line in results_file.read_text().splitlines():
            entry = json.loads(line)
            if not entry.get("started") and entry["id"] not in results:
                results[entry["id"]] = entry
        if proc.returncode is not None and proc.returncode < 0 and current not in results:
            results[current] = {"id": current, "code": f"signal {-proc.returncode}", "output": "", "seconds": 0}
        ids = [c["id"] for c in cases]
        done = [i for i, c in enumerate(ids) if c in results]
        index = (max(done) + 1) if done else len(cases)
        if proc.returncode not in (0, None) and proc.returncode > 0 and index < len(cases) and ids[index] not in results:
            results[ids[index]] = {"id": ids[index], "code": f"worker exit {proc.returncode}",
                                   "output": proc.stderr.read().decode(errors="replace")[-2000:], "seconds": 0}
            index += 1
        proc.stderr.close()
    return results


def judge(case: dict, result: dict, before: dict[str, str | None], after: dict[str, str | None]) -> str | None:
    """None when the case behaved as expected, else what went wrong."""
    code, output = result["code"], result["output"]
    if "Traceback" in output:
        return f"traceback:\n{output[-1500:]}"
    if not isinstance(code, int):
        return f"{code}"
    for path in case["inputs"]:
        if before[path] != after[path]:
            return f"input modified: {path}"
    lines = [line for line in output.splitlines() if line.strip()]
    if case["expect"] == "error":
        if code == 0:
            return f"silent success on invalid input: {output[-300:]}"
        if code != 2:
            return f"exit {code} (expected 2): {output[-500:]}"
        errors = [line for line in lines if " error: " in line]
        stray = [line for line in lines if " error: " not in line and not _usage_line(line, lines)
                 and "progress" not in line and not line.startswith("genmedeval: warning:")]
        if len(errors) != 1 or stray:
            return f"not one error line: {output[-600:]}"
        if case.get("message") and case["message"].lower() not in errors[0].lower():
            return f"error line lacks {case['message']!r}: {errors[0]}"
        for path in case["outputs"]:
            if before.get(path) != after.get(path):
                return f"output left behind or changed by a failed run: {path}"
    else:
        if code != 0:
            return f"exit {code} on valid input: {output[-500:]}"
        for path in case["outputs"]:
            if after.get(path) is None:
                return f"output missing: {path}"
    for path in case["outputs"]:
        parent = Path(path).parent
        if parent.is_dir() and any("genmedeval-tmp" in p.name or "genmedeval-old" in p.name for p in parent.iterdir()):
            return f"temporary left in {parent}"
    return None


def _usage_line(line: str, lines: list[str]) -> bool:
    """argparse prints its usage block before its one error line; those lines are part of one error."""
    return bool(lines) and lines[0].startswith("usage:") and " error: " not in line


def run_and_judge(cases: list[dict], workdir: Path) -> tuple[dict[str, int], list[str]]:
    """Run the cases; counts (cases, clean errors, valid, defects) and one line per defect."""
    paths = sorted({p for c in cases for p in (*c["inputs"], *c["outputs"])})
    before = {p: _tree_digest(Path(p)) for p in paths}
    results = run_cases(cases, workdir)
    after = {p: _tree_digest(Path(p)) for p in paths}
    counts = {"cases": len(cases), "clean errors": 0, "valid": 0, "defects": 0}
    defects = []
    for case in cases:
        result = results.get(case["id"], {"code": "not run", "output": "", "seconds": 0})
        problem = judge(case, result, before, after)
        if problem is None:
            counts["clean errors" if case["expect"] == "error" else "valid"] += 1
        else:
            counts["defects"] += 1
            defects.append(f"{case['id']}: {problem}")
    return counts, defects


# ---------------------------------------------------------------- the corpus and the cases

def _case(cases: list, cid: str, argv: list, expect: str = "error", inputs=(), outputs=(), message: str = "") -> None:
    cases.append({"id": cid, "argv": [str(a) for a in argv], "expect": expect,
                  "inputs": [str(p) for p in inputs], "outputs": [str(p) for p in outputs], "message": message})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Good folders, one file per image case, masks, configs, run folders and model files."""
    root = tmp_path_factory.mktemp("fuzz")
    good = root / "good"
    good.mkdir()
    for i in range(3):
        write_sitk(good / f"case{i}.nii.gz", grey(seed=i))
        mask = np.zeros(grey().shape, np.uint8)
        mask[2:6, 6:14, 8:16] = 1
        write_sitk(good / f"case{i}_mask.nii.gz", mask)
    ref = root / "ref"
    ref.mkdir()
    for i in range(3):
        write_sitk(ref / f"r{i}.nii.gz", grey(seed=10 + i))
    bad = root / "bad"
    bad.mkdir()
    images = {c.name: c.make(bad / c.name) for c in IMAGE_CASES}
    return {"root": root, "good": good, "ref": ref, "images": images}


def image_cases(corpus) -> list[dict]:
    """Every image case through ``perturb`` (file), and through the folder commands."""
    cases: list[dict] = []
    root, good = corpus["root"], corpus["good"]
    for c in IMAGE_CASES:
        path = corpus["images"][c.name]
        out = root / "out" / f"perturb_{c.name}.nii.gz"
        _case(cases, f"perturb file {c.name}", ["perturb", path, out, "--kind", "gaussian_noise", "--sigma", "0.05"],
              c.expect, inputs=[path], outputs=[out], message=c.message)
        out = root / "out" / f"blur_{c.name}.nii.gz"
        # a valid label mask: integer voxels on the image's grid (the corpus's integer types share case0's grid)
        mask_ok = c.expect == "ok" and c.name.split(".")[0] in ("uint8", "int8", "int16", "uint16", "int32", "uint32",
                                                                 "int64")
        _case(cases, f"perturb --mask {c.name}", ["perturb", good / "case0.nii.gz", out, "--kind", "boundary_blur",
                                                   "--mask", path], "ok" if mask_ok else "error",
              inputs=[path, good / "case0.nii.gz"], outputs=[out])
        if c.expect == "error":
            folder = root / "folders" / c.name.replace(".", "_")
            folder.mkdir(parents=True)
            write_sitk(folder / "a_good.nii.gz", grey(seed=5))
            (folder / c.name).write_bytes(path.read_bytes())
            out = root / "out" / f"pfolder_{c.name}"
            _case(cases, f"perturb folder {c.name}", ["perturb", folder, out, "--kind", "gaussian_noise"], "error",
                  inputs=[folder], outputs=[out], message=c.message)
            out = root / "out" / f"seg_{c.name}"
            _case(cases, f"segment folder {c.name}", ["segment", folder, out, "--threads", "1"], "error",
                  inputs=[folder], outputs=[out], message=c.message)
            out = root / "out" / f"metrics_{c.name}.csv"
            _case(cases, f"metrics generated {c.name}", ["metrics", "--reference", corpus["ref"], "--generated", folder,
                                                         "--encoder", "domain", "--out", out, "--no-cache"], "error",
                  inputs=[folder, corpus["ref"]], outputs=[out, out.with_suffix(".json")], message=c.message)
    return cases


def parameter_cases(corpus) -> list[dict]:
    """NaN, infinite, out-of-range and malformed parameters, devices, thread counts and limits."""
    cases: list[dict] = []
    root, image = corpus["root"], corpus["good"] / "case0.nii.gz"
    mask = corpus["good"] / "case0_mask.nii.gz"
    base = ["perturb", image]
    values = {"nan": "finite", "inf": "finite", "-inf": "finite", "-0.1": "outside", "1.5": "outside", "abc": "float",
              "": "float", "1e400": "finite", "NaN": "finite", "0x10": "float"}
    for kind, param in (("gaussian_noise", "sigma"), ("rician_noise", "sigma"), ("poisson_noise", "level"),
                        ("contrast_invention", "strength")):
        for value, message in values.items():
            out = root / "out" / f"param_{kind}_{value or 'empty'}.nii.gz"
            # poisson_noise's 'level' meets perturb's own --level (a paper level): refused either way
            _case(cases, f"{kind} --{param} {value!r}", [*base, out, "--kind", kind, f"--{param}={value}"],
                  inputs=[image], outputs=[out], message=message if param != "level" else "level")
    for argv, message in ((["--kind", "boundary_blur", "--mask", mask, "--sigma", "nan"], "finite"),
                          (["--kind", "boundary_blur", "--mask", mask, "--mode", "4d"], "one of"),
                          (["--kind", "radial_gradient", "--mask", mask, "--amplitude", "inf"], "finite"),
                          (["--kind", "radial_gradient", "--mask", mask, "--frequency", "-1"], "outside"),
                          (["--kind", "gaussian_noise", "--level", "0.7"], "no level"),
                          (["--kind", "gaussian_noise", "--seed", "x"], "--seed"),
                          (["--kind", "salt"], "unknown perturbation"),
                          (["--kind", "density_shift"], "set-level"),
                          (["--kind", "gaussian_noise", "--device", "gpu"], "--device"),
                          (["--kind", "gaussian_noise", "--device", "cuda:x"], "--device"),
                          (["--kind", "gaussian_noise", "--threads", "0"], "threads"),
                          (["--kind", "gaussian_noise", "--threads", "-2"], "threads"),
                          (["--kind", "gaussian_noise", "--threads", "many"], "threads"),
                          (["--kind", "gaussian_noise", "--threads", "1.5"], "threads"),
                          (["--kind", "gaussian_noise", "--max-image-mb", "0"], "max-image-mb"),
                          (["--kind", "gaussian_noise", "--max-image-mb", "nan"], "max-image-mb"),
                          (["--kind", "gaussian_noise", "--max-image-mb", "0.001"], "limit")):
        out = root / "out" / f"param_{'_'.join(str(a) for a in argv)[-60:].replace('/', '_')}.nii.gz"
        _case(cases, f"perturb {' '.join(map(str, argv))[-70:]}", [*base, out, *argv], inputs=[image, mask],
              outputs=[out], message=message)
    import torch

    if not torch.cuda.is_available():
        for device in ("cuda", "cuda:0", "cuda:7"):
            out = root / "out" / f"dev_{device.replace(':', '_')}.nii.gz"
            _case(cases, f"perturb --device {device} without CUDA", [*base, out, "--kind", "gaussian_noise",
                                                                    "--device", device], inputs=[image],
                  outputs=[out], message="CUDA")
    out = root / "out" / "ok_threads.nii.gz"
    _case(cases, "perturb --threads 1 --device cpu", [*base, out, "--kind", "gaussian_noise", "--threads", "1",
                                                      "--device", "cpu"], "ok", inputs=[image], outputs=[out])
    ref, good = corpus["ref"], corpus["good"]
    for argv, message in ((["--bootstrap", "-1"], "bootstrap"), (["--metrics", ""], "metric"),
                          (["--metrics", ",,"], "metric"), (["--metrics", "fd,nope"], "nope"),
                          (["--encoder", "nope"], "unknown encoder"), (["--device", "tpu"], "--device"),
                          (["--threads", "0"], "threads")):
        out = root / "out" / f"m_{'_'.join(argv)}.csv"
        _case(cases, f"metrics {' '.join(argv)}", ["metrics", "--reference", ref, "--generated", good, "--out", out,
                                                   "--encoder", "domain", "--no-cache", *argv],
              inputs=[ref, good], outputs=[out, out.with_suffix(".json")], message=message)
    for cid, argv, message in (
        ("train-segmenter --cases 0", ["train-segmenter", "--out", root / "out" / "t1.pt", "--cases", "0"], "--cases"),
        ("train-segmenter --steps 0", ["train-segmenter", "--out", root / "out" / "t2.pt", "--steps", "0"], "--steps"),
        ("train-segmenter --batch -1", ["train-segmenter", "--out", root / "out" / "t3.pt", "--batch", "-1"], "--batch"),
        ("train-segmenter --min-component-fraction 0", ["train-segmenter", "--out", root / "out" / "t7.pt",
                                                        "--min-component-fraction", "0"], "--min-component-fraction"),
        ("train-segmenter --reclip 1.5", ["train-segmenter", "--out", root / "out" / "t9.pt", "--reclip", "1.5"],
         "--reclip"),
        ("train-segmenter two component rules", ["train-segmenter", "--out", root / "out" / "t8.pt", "--largest-component",
                                                 "--min-component-fraction", "0.2"], "not allowed with"),
        ("train-quality --cases 0", ["train-quality", "--out", root / "out" / "t4.pt", "--cases", "0"], "--cases"),
        ("train-quality --masks 0", ["train-quality", "--out", root / "out" / "t5.pt", "--masks", "0"], "--masks"),
        ("train-encoder --epochs -1", ["train-encoder", "--cohort", good, "--out", root / "out" / "t6.pt",
                                       "--epochs", "-1"], "epochs"),
        ("features --batch-size 0", ["features", good, "--encoder", "domain", "--batch-size", "0"], "--batch-size"),
        ("features --min-foreground nan", ["features", good, "--encoder", "domain", "--min-foreground", "nan"],
         "min_foreground"),
        ("features --max-slices 0", ["features", good, "--encoder", "domain", "--max-slices", "0"], "max_slices"),
        ("perturb --seed -1", ["perturb", image, root / "out" / "s.nii.gz", "--kind", "gaussian_noise", "--seed", "-1"],
         "--seed"),
        ("compare --bootstrap -1", ["compare", "--reference", ref, "--model", f"a={good}", "--model", f"b={ref}",
                                    "--out", root / "out" / "cb", "--bootstrap", "-1", "--no-downstream"], "bootstrap"),
        ("demo --bootstrap -1", ["demo", "--out", root / "out" / "db", "--bootstrap", "-1"], "--bootstrap"),
        ("cohort --n 0", ["cohort", root / "out" / "cn", "--n", "0"], "--n"),
        ("cohort --spacing nan", ["cohort", root / "out" / "cs", "--spacing", "nan"], "--spacing"),
    ):
        outs = [a for a in argv if isinstance(a, Path) and a.parent == root / "out"]
        _case(cases, cid, argv, inputs=[good, ref], outputs=outs, message=message)
    for models, message in ((["=" + str(good), "b=" + str(ref)], "NAME"), (["a=", "b=" + str(ref)], "DIR"),
                            (["a=" + str(good)], "at least two"), (["a=" + str(root / "absent"), "b=" + str(ref)],
                                                                  "absent")):
        out = root / "out" / f"cmp_{len(cases)}"
        argv = ["compare", "--reference", ref, "--out", out, "--no-downstream"]
        for model in models:
            argv += ["--model", model]
        _case(cases, f"compare --model {' '.join(models)[-50:]}", argv, inputs=[ref, good], outputs=[out],
              message=message)
    return cases


def output_cases(corpus) -> list[dict]:
    """Outputs that are inputs, lie in input folders, exist already, are of the wrong kind."""
    cases: list[dict] = []
    root, good, ref = corpus["root"], corpus["good"], corpus["ref"]
    image, mask = good / "case0.nii.gz", good / "case0_mask.nii.gz"
    kind = ["--kind", "gaussian_noise"]
    existing = root / "existing.nii.gz"
    existing.write_bytes(image.read_bytes())
    a_folder = root / "a_folder.nii.gz"
    a_folder.mkdir()
    a_file = root / "a_file"
    a_file.write_text("not a folder\n")
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone's files\n")
    P = "perturb"
    for cid, argv, outs, message in (
        ("output is the input", [P, image, image, *kind], [], "is an input"),
        ("output is the mask", [P, image, mask, "--kind", "boundary_blur", "--mask", mask], [], "is an input"),
        ("output in the input folder", [P, good, good / "sub", *kind], [good / "sub"], "inside the input folder"),
        ("output folder is the input folder", [P, good, good, *kind], [], "is an input"),
        ("output folder contains the input", [P, good, root, *kind], [], "contains the input"),
        ("output exists", [P, image, existing, *kind], [existing], "--overwrite"),
        ("output is a folder", [P, image, a_folder, *kind], [a_folder], "folder"),
        ("output parent is a file", [P, image, a_file / "x.nii.gz", *kind], [], "not a folder"),
        ("output not a volume name", [P, image, root / "out" / "x.txt", *kind], [root / "out" / "x.txt"], "volume"),
        ("folder output is a file", [P, good, a_file, *kind], [a_file], "is a file"),
        ("folder output holds foreign files", [P, good, foreign, *kind], [foreign], "did not write"),
        ("perturb-set into input folder", ["perturb-set", good, good / "dup", "--kind", "internal_duplication"],
         [good / "dup"], "inside the input folder"),
        ("perturb-set output is input", ["perturb-set", good, good, "--kind", "internal_duplication"], [], "is an input"),
        ("segment into input folder", ["segment", good, good], [], "is an input"),
        ("segment into sub folder", ["segment", good, good / "masks"], [good / "masks"], "inside the input"),
        ("segment into foreign folder", ["segment", good, foreign], [foreign], "did not write"),
        ("metrics out is an input volume", ["metrics", "--reference", ref, "--generated", good, "--out", image,
                                            "--encoder", "domain"], [], "input"),
        ("metrics out in input folder", ["metrics", "--reference", ref, "--generated", good, "--out",
                                         ref / "m.csv", "--encoder", "domain"], [ref / "m.csv"], "inside the input"),
        ("metrics out exists", ["metrics", "--reference", ref, "--generated", good, "--out", existing,
                                "--encoder", "domain"], [existing], "--overwrite"),
        ("quality out is an input volume", ["quality", "--images", good, "--out", image], [], "input"),
        ("quality out exists", ["quality", "--images", good, "--out", existing], [existing], "--overwrite"),
        ("quality slices json in input", ["quality", "--images", good, "--out", good / "q.csv", "--slices"],
         [good / "q.csv"], "inside the input"),
        ("train-encoder out exists", ["train-encoder", "--cohort", good, "--out", existing], [existing], "--overwrite"),
        ("train-segmenter out exists", ["train-segmenter", "--out", existing, "--steps", "1"], [existing],
         "--overwrite"),
        ("train-quality out exists", ["train-quality", "--out", existing, "--steps", "1"], [existing], "--overwrite"),
        ("sweep write-default exists", ["sweep", "--write-default", existing], [existing], "--overwrite"),
        ("compare out is reference", ["compare", "--reference", ref, "--model", f"a={good}", "--model", f"b={ref}",
                                      "--out", ref, "--no-downstream"], [], "is an input"),
        ("compare out foreign", ["compare", "--reference", ref, "--model", f"a={good}", "--model", f"b={ref}",
                                 "--out", foreign, "--no-downstream"], [foreign], "did not write"),
        ("demo out foreign", ["demo", "--out", foreign, "--n", "4"], [foreign], "did not write"),
    ):
        _case(cases, cid, argv, "error", inputs=[good, ref, existing], outputs=outs, message=message)
    # re-runs of GenMedEval's own outputs: refused without --overwrite, replaced with it, never partial
    own = root / "own_perturbed"
    _case(cases, "perturb folder first run", [P, good, own, *kind], "ok", inputs=[good], outputs=[own])
    _case(cases, "perturb folder re-run without --overwrite", [P, good, own, *kind], "error", inputs=[good],
          message="--overwrite")
    _case(cases, "perturb folder re-run with --overwrite", [P, good, own, *kind, "--overwrite"], "ok",
          inputs=[good], outputs=[own])
    own_file = root / "own.nii.gz"
    _case(cases, "perturb file first run", [P, image, own_file, *kind], "ok", inputs=[good], outputs=[own_file])
    _case(cases, "perturb file re-run --overwrite", [P, image, own_file, *kind, "--overwrite"], "ok", inputs=[good],
          outputs=[own_file])
    odd = root / "-odd.nii.gz"
    odd.write_bytes(image.read_bytes())
    _case(cases, "option-like input name as a full path", [P, odd, root / "out" / "odd.nii.gz", *kind], "ok",
          inputs=[odd], outputs=[root / "out" / "odd.nii.gz"])
    _case(cases, "option-like input name bare", [P, "-odd.nii.gz", root / "out" / "odd2.nii.gz", *kind], "error",
          inputs=[odd], outputs=[root / "out" / "odd2.nii.gz"])
    weird = non_utf8_name(corpus["root"])
    _case(cases, "non-UTF-8 input name", [P, weird, root / "out" / "w.nii.gz", *kind], "error", inputs=[weird],
          outputs=[root / "out" / "w.nii.gz"], message="UTF-8")
    _case(cases, "non-UTF-8 output name", [P, image, os.fsdecode(os.fsencode(root) + b"/out\xff.nii.gz"), *kind],
          "error", inputs=[image], message="UTF-8")
    wfolder = root / "weird_folder"
    wfolder.mkdir()
    non_utf8_name(wfolder)
    _case(cases, "non-UTF-8 name in a folder", ["segment", wfolder, root / "out" / "wseg"], "error",
          inputs=[wfolder], outputs=[root / "out" / "wseg"], message="UTF-8")
    for cid, folder, message in (("missing folder", root / "absent", "absent"), ("file as folder", image, ""),
                                 ("empty folder", _empty(root / "empty"), "no volumes")):
        for command in (["segment", folder, root / "out" / f"s_{cid}"],
                        ["perturb", folder, root / "out" / f"p_{cid}", *kind],
                        ["quality", "--images", folder, "--out", root / "out" / f"q_{cid}.csv"],
                        ["features", folder, "--encoder", "domain", "--no-cache"]):
            outs = [command[2]] if command[0] in ("segment", "perturb") else (
                [command[-1]] if command[0] == "quality" else [])
            _case(cases, f"{command[0]} {cid}", command, "error", inputs=[image], outputs=outs, message=message)
    return cases


def _empty(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


CONFIGS = {
    "broken yaml": "data: {base: [\n",
    "tab indentation": "data:\n\tbase: x\n",
    "not utf-8": None,
    "empty file": "",
    "top-level list": "- 1\n- 2\n",
    "anchor bomb": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                   "data: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
    "unknown key": "@DATA@\nbogus: 1\n",
    "enabled as a string": "@DATA@\ndownstream: {enabled: 'no'}\n",
    "segmenter a number": "@DATA@\ndownstream: {enabled: true, segmenter: 5}\n",
    "sigma true": "@DATA@\nperturbations: {gaussian_noise: [{sigma: true}]}\n",
    "sigma nan": "@DATA@\nperturbations: {gaussian_noise: [{sigma: .nan}]}\n",
    "sigma inf": "@DATA@\nperturbations: {gaussian_noise: [{sigma: .inf}]}\n",
    "sigma string": "@DATA@\nperturbations: {gaussian_noise: [{sigma: lots}]}\n",
    "metrics mapping": "@DATA@\nmetrics: {}\n",
    "metrics empty list": "@DATA@\nmetrics: []\n",
    "metrics unknown": "@DATA@\nmetrics: [fd, nope]\n",
    "bootstrap negative": "@DATA@\nbootstrap: -1\n",
    "bootstrap float": "@DATA@\nbootstrap: 2.5\n",
    "seed string": "@DATA@\nseed: abc\n",
    "perturbations empty": "@DATA@\nperturbations: {}\n",
    "perturbation unknown": "@DATA@\nperturbations: {salt: ['1']}\n",
    "level unknown": "@DATA@\nperturbations: {gaussian_noise: ['0.7']}\n",
    "levels not a list": "@DATA@\nperturbations: {gaussian_noise: '0.1'}\n",
    "data missing base": "data: {reference: @REF@}\n",
    "data folder absent": "data: {base: @ROOT@/absent, reference: @REF@}\n",
    "encoder unknown": "@DATA@\nfeatures: {encoder: nope}\n",
    "max_slices zero": "@DATA@\nfeatures: {max_slices: 0}\n",
    "max_volumes zero": "@DATA@\ndownstream: {enabled: true, max_volumes: 0}\n",
}


def config_cases(corpus) -> list[dict]:
    """Broken and hostile sweep configs: one line before any work, no run folder."""
    cases: list[dict] = []
    root, good, ref = corpus["root"], corpus["good"], corpus["ref"]
    folder = root / "configs"
    folder.mkdir()
    data = f"data: {{base: {good}, reference: {ref}}}"
    for i, (name, text) in enumerate(CONFIGS.items()):
        path = folder / f"c{i}.yaml"
        if text is None:
            path.write_bytes(b"name: caf\xe9\n" + data.encode())
        else:
            path.write_text(text.replace("@DATA@", data).replace("@REF@", str(ref)).replace("@ROOT@", str(root)))
        out = root / "out" / f"sweep_{i}"
        _case(cases, f"sweep config {name}", ["sweep", path, "--out", out], "error", inputs=[path, good, ref],
              outputs=[out])
    return cases


def run_folder_cases(corpus) -> list[dict]:
    """``report`` on missing, empty, corrupt, non-UTF-8 and hostile run folders."""
    cases: list[dict] = []
    root = corpus["root"] / "runs"
    root.mkdir()
    contents = {"missing": None, "empty": {}, "corrupt run.json": {"run.json": b"{not json"},
                "non-utf8 run.json": {"run.json": b'{"name": "caf\xe9"}'},
                "run.json a list": {"run.json": b"[1, 2, 3]"}, "run.json deep": {"run.json": b"[" * 100000},
                "run.json empty": {"run.json": b""}, "run.json is a folder": {"run.json/": b""}}
    for i, (name, files) in enumerate(contents.items()):
        folder = root / f"r{i}"
        if files is not None:
            folder.mkdir()
            for fname, data in files.items():
                if fname.endswith("/"):
                    (folder / fname).mkdir()
                else:
                    (folder / fname).write_bytes(data)
        _case(cases, f"report {name}", ["report", folder], "error", inputs=[folder] if files is not None else [],
              outputs=[folder / "report.html"])
    return cases


def model_cases(corpus) -> list[dict]:
    """Corrupt, foreign and untrusted model files for every command that loads one."""
    import torch

    cases: list[dict] = []
    root, good = corpus["root"], corpus["good"]
    models = root / "models"
    models.mkdir()
    junk = models / "junk.pt"
    junk.write_bytes(b"\x80\x04not a pickle at all")
    empty = models / "empty.pt"
    empty.write_bytes(b"")
    plain = models / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    cut = models / "cut.pt"
    torch.save({"weight": torch.zeros(1000)}, cut)
    cut.write_bytes(cut.read_bytes()[:300])
    pickled = models / "pickled.pt"
    pickled.write_bytes(_pickle_with_code())
    bundle = models / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    marker = root / "bundle_ran_code.txt"
    attack = f"$open({str(marker)!r}, 'w').write('pwned') and 1"  # code in the config, run when it is parsed
    config = {"network_def": {"_target_": "torch.nn.Conv2d", "in_channels": 1, "out_channels": 1,
                              "kernel_size": attack}}
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    torch.save({"weight": torch.ones(1, 1, 1, 1), "bias": torch.zeros(1)}, bundle / "models" / "model.pt")
    for name, model in (("junk", junk), ("empty", empty), ("plain", plain), ("truncated", cut),
                        ("pickled code", pickled), ("absent", models / "absent.pt"), ("untrusted bundle", bundle)):
        message = "trust-bundle" if name == "untrusted bundle" else ""
        out = root / "out" / f"segm_{name.replace(' ', '_')}"
        _case(cases, f"segment --model {name}", ["segment", good, out, "--model", model], "error",
              inputs=[good, model], outputs=[out, marker], message=message)
        out = root / "out" / f"qm_{name.replace(' ', '_')}.csv"
        _case(cases, f"quality --segmenter {name}", ["quality", "--images", good, "--segmenter", model, "--out", out],
              "error", inputs=[good, model], outputs=[out, marker], message=message)
        if name != "untrusted bundle":
            out = root / "out" / f"qq_{name.replace(' ', '_')}.csv"
            _case(cases, f"quality --model {name}", ["quality", "--images", good, "--model", model, "--out", out],
                  "error", inputs=[good, model], outputs=[out])
            out = root / "out" / f"cal_{name.replace(' ', '_')}.pt"
            _case(cases, f"calibrate-quality {name}", ["calibrate-quality", model, "--out", out],
                  "error", inputs=[model], outputs=[out])
    return cases


def _pickle_with_code() -> bytes:
    """A torch-style pickle whose loading would call a function (weights_only loading refuses it)."""
    import io
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, ("true",))

    buffer = io.BytesIO()
    pickle.dump({"weight": Boom()}, buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- the tests

def _report(title: str, counts: dict[str, int], defects: list[str]) -> None:
    print(f"\n{title}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for line in defects:
        print("  DEFECT", line[:2000])


@pytest.fixture(scope="module")
def fuzz_results(corpus, tmp_path_factory):
    """Every case run once (one worker process for all): counts and defects per group."""
    groups = {"images": image_cases(corpus), "parameters": parameter_cases(corpus), "outputs": output_cases(corpus),
              "configs": config_cases(corpus), "run folders": run_folder_cases(corpus),
              "models": model_cases(corpus)}
    everything = [case for cases in groups.values() for case in cases]
    counts, defects = run_and_judge(everything, tmp_path_factory.mktemp("fuzz_work"))
    _report("fuzz suite", counts, defects)
    by_group = {}
    for name, cases in groups.items():
        ids = {c["id"] for c in cases}
        by_group[name] = (len(cases), [d for d in defects if d.split(": ", 1)[0] in ids])
    return counts, by_group


def test_fuzz_corpus_is_large_and_has_both_outcomes(fuzz_results):
    counts, _ = fuzz_results
    assert counts["cases"] >= 200
    assert counts["clean errors"] > 150 and counts["valid"] >= 10


@pytest.mark.parametrize("group", ["images", "parameters", "outputs", "configs", "run folders", "models"])
def test_fuzz_group_has_no_defect(fuzz_results, group):
    _, by_group = fuzz_results
    n, defects = by_group[group]
    assert n > 0
    assert not defects, "\n".join(defects[:20])


def test_worker_blames_a_signal_and_a_hang_on_their_case(tmp_path, monkeypatch):
    """The harness itself: a case that kills its process or hangs is reported as a defect, and later cases still run."""
    monkeypatch.setattr(sys.modules[__name__], "CASE_TIMEOUT_S", 8.0)  # a real command's start-up fits under load
    image = tmp_path / "v.nii.gz"
    write_sitk(image, grey())
    cases: list[dict] = []
    _case(cases, "ok", ["perturb", image, tmp_path / "o.nii.gz", "--kind", "gaussian_noise"], "ok", inputs=[image],
          outputs=[tmp_path / "o.nii.gz"])
    _case(cases, "signal", ["__signal__"])
    _case(cases, "hang", ["__hang__"])
    _case(cases, "after", ["perturb", image, image, "--kind", "gaussian_noise"], message="is an input", inputs=[image])
    os.environ["GENMEDEVAL_FUZZ_SELFTEST"] = "1"
    try:
        counts, defects = run_and_judge(cases, tmp_path)
    finally:
        del os.environ["GENMEDEVAL_FUZZ_SELFTEST"]
    assert counts == {"cases": 4, "clean errors": 1, "valid": 1, "defects": 2}
    assert any(d.startswith("signal: signal") for d in defects) and any(d.startswith("hang: hang") for d in defects)


def _selftest_main(argv):
    """Stand-in commands for the harness self-test (only with GENMEDEVAL_FUZZ_SELFTEST set)."""
    import signal

    if argv == ["__signal__"]:
        os.kill(os.getpid(), signal.SIGABRT)
    if argv == ["__hang__"]:
        time.sleep(3600)
    from GenMedEvalLib.cli import main

    return main(argv)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "worker":
    if os.environ.get("GENMEDEVAL_FUZZ_SELFTEST"):
        import GenMedEvalLib.cli as _cli

        _real_main = _cli.main
        _cli.main = lambda argv: (_selftest_main(argv) if argv and argv[0].startswith("__") else _real_main(argv))
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
