"""Static checks of the Slicer module (desktop Slicer cannot run here): UI names, parameters, CMake lists, imports."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "GenMedEval" / "GenMedEval.py"
UI = ROOT / "Resources" / "UI" / "GenMedEval.ui"
MODULE_CMAKE = ROOT / "GenMedEval" / "CMakeLists.txt"
# Slicer's own Python modules plus the standard library; not numpy, torch, MONAI or GenMedEvalLib's networks.
SLICER_PROVIDED = {"qt", "ctk", "vtk", "slicer", "__future__"} | set(sys.stdlib_module_names)


def module_tree() -> ast.Module:
    return ast.parse(MODULE.read_text())


def ui_widget_names() -> set[str]:
    return {w.get("name") for w in ET.parse(UI).iter("widget") if w.get("name")}


def ui_parameter_names() -> set[str]:
    return {p.find("string").text for p in ET.parse(UI).iter("property") if p.get("name") == "SlicerParameterName"}


def parameter_node_fields() -> set[str]:
    for node in ast.walk(module_tree()):
        if isinstance(node, ast.ClassDef) and node.name == "GenMedEvalParameterNode":
            assert any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list)
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no GenMedEvalParameterNode class")


def cmake_list(name: str) -> list[str]:
    match = re.search(rf"set\({name}\s+(.*?)\)", MODULE_CMAKE.read_text(), re.S)
    assert match, f"{name} missing from {MODULE_CMAKE}"
    return match.group(1).split()


def test_every_ui_attribute_used_by_the_module_exists_in_the_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text()))
    assert used, "the widget uses no UI controls?"
    missing = used - ui_widget_names()
    assert not missing, f"used in GenMedEval.py but absent from GenMedEval.ui: {sorted(missing)}"


def test_every_ui_parameter_binding_is_a_parameter_node_field():
    names = ui_parameter_names()
    assert len(names) >= 15
    assert names <= parameter_node_fields(), sorted(names - parameter_node_fields())


def test_ui_is_valid_designer_xml_with_unique_names():
    root = ET.parse(UI).getroot()
    assert root.tag == "ui" and root.find("class").text == "GenMedEval"
    names = [w.get("name") for w in root.iter("widget") if w.get("name")]
    assert len(names) == len(set(names))
    sections = [w.find("property/string").text for w in root.iter("widget") if w.get("class") == "ctkCollapsibleButton"]
    assert sections == ["Input", "Perturb", "Evaluate", "Downstream", "Results"]


def cmake_glob(name: str) -> set[str]:
    """The files a ``file(GLOB[_RECURSE] NAME RELATIVE ${PROJECT_SOURCE_DIR} ...)`` call picks up, as CMake would."""
    text = MODULE_CMAKE.read_text()
    match = re.search(rf"file\((GLOB_RECURSE|GLOB) {name} RELATIVE \$\{{PROJECT_SOURCE_DIR\}} CONFIGURE_DEPENDS(.*?)\)",
                      text, re.S)
    assert match, f"no file(GLOB...) for {name} in {MODULE_CMAKE}"
    found: set[str] = set()
    for pattern in match.group(2).split():
        relative = pattern.replace("${PROJECT_SOURCE_DIR}/", "")
        folder, _, leaf = relative.rpartition("/")
        paths = (ROOT / folder).rglob(leaf) if match.group(1) == "GLOB_RECURSE" else (ROOT / folder).glob(leaf)
        found |= {str(p.relative_to(ROOT)) for p in paths if p.is_file()}
    excluded = re.findall(rf"list\(FILTER {name} EXCLUDE REGEX \"(.*?)\"\)", text)
    return {f for f in found if not any(re.search(rx, f) for rx in excluded)}


def test_module_cmake_lists_every_python_file_and_resource():
    scripts = [s.replace("${MODULE_NAME}", "GenMedEval") for s in cmake_list("MODULE_PYTHON_SCRIPTS")]
    module_files = {p.name for p in (ROOT / "GenMedEval").glob("*.py")}
    assert module_files <= set(scripts), sorted(module_files - set(scripts))
    library = {str(p.relative_to(ROOT)) for p in (ROOT / "GenMedEvalLib").rglob("*.py") if "__pycache__" not in p.parts}
    assert len(library) > 50 and "GenMedEvalLib/mrml.py" in library
    assert cmake_glob("GENMEDEVAL_LIBRARY_SCRIPTS") == library
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "Resources" / "Models").glob("*.pt")}
    assert shipped and cmake_glob("GENMEDEVAL_MODELS") == shipped
    resources = set(cmake_list("GENMEDEVAL_RESOURCES"))
    assert "${GENMEDEVAL_MODELS}" in resources
    fixed = resources - {"${GENMEDEVAL_MODELS}"}
    assert {"Resources/UI/GenMedEval.ui", "Resources/Icons/GenMedEval.png"} <= fixed
    assert all((ROOT / f).is_file() for f in fixed)
    text = MODULE_CMAKE.read_text()
    assert "foreach(_file ${GENMEDEVAL_LIBRARY_SCRIPTS})" in text and "foreach(_file ${GENMEDEVAL_RESOURCES})" in text
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_extension_cmake_has_the_extension_variables():
    text = (ROOT / "CMakeLists.txt").read_text()
    for needed in ("project(GenMedEval)", "EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
                   "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                   'EXTENSION_DEPENDS "PyTorch"', "find_package(Slicer REQUIRED)", "add_subdirectory(GenMedEval)",
                   "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert needed in text, needed


def test_module_imports_at_top_level_only_what_slicer_provides():
    for path in (MODULE, ROOT / "GenMedEval" / "batch.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= SLICER_PROVIDED, f"{path.name}: top-level import of {roots - SLICER_PROVIDED}"


def test_module_has_the_slicer_classes_and_compiles():
    tree = module_tree()
    compile(MODULE.read_text(), str(MODULE), "exec")
    classes = {n.name: [getattr(b, "id", None) for b in n.bases] for n in tree.body if isinstance(n, ast.ClassDef)}
    assert "ScriptedLoadableModule" in classes["GenMedEval"]
    assert "ScriptedLoadableModuleWidget" in classes["GenMedEvalWidget"]
    assert "ScriptedLoadableModuleLogic" in classes["GenMedEvalLogic"]
    assert "ScriptedLoadableModuleTest" in classes["GenMedEvalTest"]
    text = MODULE.read_text()
    assert "arXiv:2505.07175" in text and "acknowledgementText" in text
    assert "pip_ensure" in text and "pip_install" in text and "PyTorchUtils" in text
    assert "SimpleITK" not in re.findall(r"REQUIREMENTS = \((.*?)\)", text, re.S)[0]


def test_only_the_bridge_imports_slicer():
    offenders = []
    for path in (ROOT / "GenMedEvalLib").rglob("*.py"):
        if path.name == "mrml.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in {"slicer", "trame_slicer", "vtk", "qt", "ctk"} for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_module_icon_is_a_128_pixel_png():
    import matplotlib.image as mpimg

    icon = mpimg.imread(ROOT / "Resources" / "Icons" / "GenMedEval.png")
    assert icon.shape[:2] == (128, 128) and icon[..., :3].std() > 0.05  # square and not blank
