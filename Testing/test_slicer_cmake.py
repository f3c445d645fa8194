"""The extension's CMake configured, built and installed with Slicer 5.10's and CTK's own macros.

``SlicerMacroBuildScriptedModule.cmake`` and ``ctkMacroCompilePythonScript.cmake`` are read from
``../shared/slicer-5.10`` (never copied). What a Slicer build tree would add is stood in by a few
lines written here: a ``SlicerConfig.cmake`` with the variables those macros read, and the byte
compilation template CTK configures (it compiles every installed script with Python 3.12 when
present, Slicer's Python, else this interpreter). Skipped with a message without ``cmake`` or
``../shared/slicer-5.10``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slicer_standins import python312

ROOT = Path(__file__).resolve().parent.parent
SLICER_510 = ROOT.parent / "shared" / "slicer-5.10"
MACRO = SLICER_510 / "CMake" / "SlicerMacroBuildScriptedModule.cmake"
CTK_CMAKE = SLICER_510 / "CTK" / "CMake"
CMAKE = shutil.which("cmake")
MODULES_DIR = "lib/Slicer-5.10/qt-scripted-modules"

pytestmark = [
    pytest.mark.skipif(CMAKE is None, reason="cmake not installed (apt-get install cmake)"),
    pytest.mark.skipif(not MACRO.is_file(), reason=f"Slicer 5.10's CMake macros not found at {SLICER_510} "
                                                   "(a user's clone has no ../shared/)"),
]

SLICER_CONFIG = """# Stand-in for a Slicer 5.10 build tree's SlicerConfig.cmake: only what the two real macros read.
set(Slicer_USE_PYTHONQT ON)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "{modules}")
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "{modules}")
set(CTK_CMAKE_DIR "{ctk}")
set(Slicer_USE_FILE "${{CMAKE_CURRENT_LIST_DIR}}/UseSlicer.cmake")
set(Slicer_EXTENSION_GENERATE_CONFIG "${{CMAKE_CURRENT_LIST_DIR}}/Nothing.cmake")
set(Slicer_EXTENSION_CPACK "${{CMAKE_CURRENT_LIST_DIR}}/Nothing.cmake")
"""
USE_SLICER = """set(BUILD_TESTING OFF)
set(PYTHONINTERP_FOUND TRUE)
set(PYTHONLIBS_FOUND TRUE)
set(PYTHON_EXECUTABLE "{python}")
set(PYTHON_LIBRARIES "")
function(ctkFunctionExtractOptimizedLibrary libraries var)
  set(${{var}} "" PARENT_SCOPE)
endfunction()
include("{ctk}/ctkMacroCompilePythonScript.cmake")
include("{macro}")
"""
# Configured by CTK's _ctk_add_compile_python_directories_target (CTK's own template is not in ../shared).
COMPILE_TEMPLATE = """file(WRITE "@compile_all_script@" "import py_compile
from pathlib import Path
def ctk_compile_file(path, force=1):
    py_compile.compile(path, doraise=True)
    return True
@_compileall_code@
")
execute_process(COMMAND "@PYTHON_EXECUTABLE@" "@compile_all_script@" RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "byte-compiling the module's scripts failed")
endif()
file(WRITE "@CMAKE_CURRENT_BINARY_DIR@/python_compile_@target@_complete" "")
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(install prefix, build folder) of the extension built and installed with the real macros."""
    work = tmp_path_factory.mktemp("cmake")
    ctk = work / "ctk"
    ctk.mkdir()
    for name in ("ctkMacroCompilePythonScript.cmake", "ctkMacroParseArguments.cmake"):
        (ctk / name).symlink_to(CTK_CMAKE / name)
    (ctk / "ctk_compile_python_scripts.cmake.in").write_text(COMPILE_TEMPLATE)
    slicer_dir = work / "Slicer"
    slicer_dir.mkdir()
    python = python312() or sys.executable
    (slicer_dir / "SlicerConfig.cmake").write_text(SLICER_CONFIG.format(modules=MODULES_DIR, ctk=ctk))
    (slicer_dir / "UseSlicer.cmake").write_text(USE_SLICER.format(python=python, ctk=ctk, macro=MACRO))
    (slicer_dir / "Nothing.cmake").write_text("")
    build, prefix = work / "build", work / "install"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for command in ([CMAKE, "-S", str(ROOT), "-B", str(build), f"-DSlicer_DIR={slicer_dir}", "-Wno-dev"],
                    [CMAKE, "--build", str(build), "-j", "2"],
                    [CMAKE, "--install", str(build), "--prefix", str(prefix)]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"{' '.join(command[:2])}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    return prefix, build


def test_installed_module_folder_holds_everything_beside_the_module(installed):
    prefix, _ = installed
    module = prefix / MODULES_DIR
    files = {str(p.relative_to(module)) for p in module.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    library = {str(p.relative_to(ROOT)) for p in (ROOT / "GenMedEvalLib").rglob("*.py") if "__pycache__" not in p.parts}
    models = {str(p.relative_to(ROOT)) for p in (ROOT / "Resources" / "Models").glob("*.pt")}
    expected = {"GenMedEval.py", "Scripts/batch.py", "Resources/UI/GenMedEval.ui", "Resources/Icons/GenMedEval.png",
                "Resources/Models/README.md"} | library | models
    assert models and len(library) > 50
    assert expected <= files, sorted(expected - files)
    assert files - expected == set(), sorted(files - expected)  # nothing under an absolute build path
    assert [p.name for p in module.glob("*.py")] == ["GenMedEval.py"]  # Slicer loads every top-level .py
    for name in expected:  # each installed file is the repository's, unchanged
        source = ROOT / "GenMedEval" / name if name in ("GenMedEval.py", "Scripts/batch.py") else ROOT / name
        assert (module / name).read_bytes() == source.read_bytes(), name
    compiled = list((module / "GenMedEvalLib").rglob("*.pyc"))
    assert len(compiled) >= len(library)  # every library script byte-compiled by the macro's compile step


def test_the_installed_module_finds_its_library_and_resources(installed):
    """From the installed folder (no repository around): the module's resource paths and the library's models."""
    prefix, _ = installed
    module = prefix / MODULES_DIR
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'Testing')!r})\n"
        "import slicer_standins as s\n"
        "done = s.install(None)\n"
        f"m = s.import_module(done, s.Path({str(module / 'GenMedEval.py')!r}))\n"
        "import GenMedEvalLib, GenMedEvalLib.data as d\n"
        "from GenMedEvalLib.quality.model import shipped_quality\n"
        "print(json.dumps({'resources': m._resources_dir(), 'library': GenMedEvalLib.__file__,\n"
        "  'data': str(d.resources_dir()), 'env': __import__('os').environ['GENMEDEVAL_RESOURCES'],\n"
        "  'ui': m.os.path.isfile(m.os.path.join(m._resources_dir(), 'UI', 'GenMedEval.ui')),\n"
        "  'quality': str(shipped_quality())}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GENMEDEVAL_RESOURCES"}
    done = subprocess.run([sys.executable, "-c", code], cwd=prefix, capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["resources"] == found["env"] == found["data"] == str(module / "Resources")
    assert found["library"] == str(module / "GenMedEvalLib" / "__init__.py")
    assert found["ui"] and Path(found["quality"]).parent == module / "Resources" / "Models"
    assert (module / "Resources" / "Icons" / "GenMedEval.png").is_file()  # ScriptedLoadableModule's icon lookup
