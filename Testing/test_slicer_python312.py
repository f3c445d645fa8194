"""Slicer 5.10 and 5.12 run Python 3.12: every module and library file compiles under it, and the module imports
under it with Slicer's real parameterNodeWrapper (pure-Python node classes stand in for MRML, which has no
3.12 wheel here). Skipped with a message where Python 3.12 or ../shared/slicer-5.10 is absent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import slicer_standins as standins

ROOT = Path(__file__).resolve().parent.parent
PY312 = standins.python312()

pytestmark = pytest.mark.skipif(PY312 is None, reason="Python 3.12 (Slicer 5.10's) not found: pyenv install 3.12")

IMPORT = """
import json, sys
sys.path.insert(0, {testing!r})
import slicer_standins as s
done = s.install(None, pure_mrml=True)
m = s.import_module(done)
node = done.slicer.vtkMRMLScriptedModuleNode()
p = m.GenMedEvalParameterNode(node)
mask = m.GenMedEvalParameterNode.dataType("inputMask")
print(json.dumps({{
    "version": list(sys.version_info[:2]),
    "parameters": sorted(p.allParameters),
    "defaults": {{k: p.getValue(k) for k in ("perturbation", "noiseLevel", "bandMm", "mode", "encoder")}},
    "mask": str(mask),
    "serializer": type(p.allParameters["inputMask"].serializer.serializer).__name__,
    "ranges": {{k: [r.low, r.high] for k, r in m.RANGES.items()}},
}}))
"""


def test_every_module_and_library_file_compiles_under_python_312():
    files = [ROOT / "GenMedEval" / "GenMedEval.py", ROOT / "GenMedEval" / "Scripts" / "batch.py",
             *sorted((ROOT / "GenMedEvalLib").rglob("*.py"))]
    code = ("import py_compile, sys\nbad = []\nfor f in sys.argv[1:]:\n    try:\n"
            "        py_compile.compile(f, cfile=f + '.312check', doraise=True)\n"
            "    except py_compile.PyCompileError as e:\n        bad.append(str(e))\n"
            "import os\n[os.remove(f + '.312check') for f in sys.argv[1:] if os.path.exists(f + '.312check')]\n"
            "print(len(sys.argv) - 1); sys.exit('\\n'.join(bad) if bad else 0)")
    done = subprocess.run([PY312, "-c", code, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip()) == len(files) > 50


@pytest.mark.skipif(not standins.slicer_code_present(), reason=standins.ABSENT)
def test_module_imports_under_python_312_with_the_real_parameter_node_wrapper():
    probe = subprocess.run([PY312, "-c", "import numpy, scipy, SimpleITK"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("numpy, scipy or SimpleITK missing for Python 3.12 (Slicer ships them): "
                    f"{PY312} -m pip install numpy scipy SimpleITK")
    done = subprocess.run([PY312, "-c", IMPORT.format(testing=str(ROOT / "Testing"))], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["version"] == [3, 12]
    assert {"inputVolume", "inputMask", "noiseLevel", "segmenterPath", "metricsTable", "downstreamTable"} <= set(
        found["parameters"])
    assert found["defaults"] == {"perturbation": "boundary_blur", "noiseLevel": 0.05, "bandMm": 3.0, "mode": "slice",
                                 "encoder": "domain"}
    assert "vtkMRMLLabelMapVolumeNode" in found["mask"] and "vtkMRMLSegmentationNode" in found["mask"]
    assert found["serializer"] == "UnionSerializer"  # label map | segmentation | None, as the wrapper sees it
    assert found["ranges"]["noiseLevel"] == [0.0001, 1.0]
