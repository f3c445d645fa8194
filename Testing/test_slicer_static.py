"""Static checks of the Slicer module (desktop Slicer cannot run here): UI names, parameters, CMake lists, imports."""

from __future__ import annotations

import ast
import re
import subprocess
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


def ui_parameter_widgets() -> dict[str, ET.Element]:
    found = {}
    for w in ET.parse(UI).iter("widget"):
        name = w.find("property[@name='SlicerParameterName']/string")
        if name is not None:
            assert name.text not in found, f"two widgets bind {name.text}"
            found[name.text] = w
    return found


def test_every_preview_control_is_in_the_ui_with_the_registry_range_or_choices():
    """Each MODULE_CONTROLS control (the artefacts' included): a slider with the registry's range (no decimals for
    whole numbers) or a combo box with its choices, in the Perturb section; the presets of every level fit."""
    from GenMedEvalLib.perturb import PERTURBATIONS
    from GenMedEvalLib.scene_logic import MODULE_CONTROLS, choice_controls, control_ranges

    ranges, choices, widgets = control_ranges(), choice_controls(), ui_parameter_widgets()
    perturb = next(w for w in ET.parse(UI).iter("widget") if w.get("name") == "perturbCollapsibleButton")
    in_perturb = {w.findtext("property[@name='SlicerParameterName']/string") for w in perturb.iter("widget")}
    for kind, controls in MODULE_CONTROLS.items():
        spec = PERTURBATIONS[kind]
        for param, control in controls.items():
            assert control in widgets and control in in_perturb, (kind, control)
            widget = widgets[control]
            if control in choices:
                assert widget.get("class") == "QComboBox"
                assert [i.findtext("property/string") for i in widget.findall("item")] == choices[control]
                values = [spec.params[param].default, *(p.get(param) for p in spec.presets.values())]
                assert {v for v in values if v is not None} <= set(choices[control])
                continue
            assert widget.get("class") == "ctkSliderWidget", control
            low = float(widget.findtext("property[@name='minimum']/double"))
            high = float(widget.findtext("property[@name='maximum']/double"))
            assert (low, high) == (ranges[control].low, ranges[control].high), control
            decimals = int(widget.findtext("property[@name='decimals']/number"))
            assert (decimals == 0) is ranges[control].integer, control
            for level, preset in spec.presets.items():
                value = spec.validate(preset)[param]
                assert low <= value <= high and abs(round(value, decimals) - value) < 1e-9, (kind, level, param, value)
    for kind in ("motion", "ghosting", "spike", "bias_field", "anisotropy"):  # beyond the paper, each knob its own
        assert set(MODULE_CONTROLS[kind]) == set(PERTURBATIONS[kind].params)
        for control in MODULE_CONTROLS[kind].values():
            assert "beyond the paper" in widgets[control].findtext("property[@name='toolTip']/string").lower()


def test_the_regions_button_is_in_the_input_section_and_wired():
    root = ET.parse(UI).getroot()
    section = next(w for w in root.iter("widget") if w.get("name") == "inputCollapsibleButton")
    button = next(w for w in section.iter("widget") if w.get("name") == "showRegionsButton")
    assert button.get("class") == "QPushButton"
    assert button.findtext("property[@name='text']/string") == "Show where local metrics look"
    text = MODULE.read_text()
    assert 'self.ui.showRegionsButton.connect("clicked(bool)", self.onShowRegions)' in text
    assert "regionsSegmentation" in parameter_node_fields()


def test_ui_is_valid_designer_xml_with_unique_names():
    root = ET.parse(UI).getroot()
    assert root.tag == "ui" and root.find("class").text == "GenMedEval"
    names = [w.get("name") for w in root.iter("widget") if w.get("name")]
    assert len(names) == len(set(names))
    sections = [w.find("property/string").text for w in root.iter("widget") if w.get("class") == "ctkCollapsibleButton"]
    assert sections == ["Input", "Perturb", "Evaluate", "Downstream", "Results"]


def cmake_glob(name: str) -> set[str]:
    """The files a ``file(GLOB[_RECURSE] NAME RELATIVE ${GENMEDEVAL_ROOT} ...)`` call picks up, as CMake would."""
    text = MODULE_CMAKE.read_text()
    match = re.search(rf"file\((GLOB_RECURSE|GLOB) {name} RELATIVE \$\{{GENMEDEVAL_ROOT\}} CONFIGURE_DEPENDS(.*?)\)",
                      text, re.S)
    assert match, f"no file(GLOB...) for {name} in {MODULE_CMAKE}"
    found: set[str] = set()
    for pattern in match.group(2).split():
        relative = pattern.replace("${GENMEDEVAL_ROOT}/", "")
        folder, _, leaf = relative.rpartition("/")
        paths = (ROOT / folder).rglob(leaf) if match.group(1) == "GLOB_RECURSE" else (ROOT / folder).glob(leaf)
        found |= {str(p.relative_to(ROOT)) for p in paths if p.is_file()}
    excluded = re.findall(rf"list\(FILTER {name} EXCLUDE REGEX \"(.*?)\"\)", text)
    return {f for f in found if not any(re.search(rx, f) for rx in excluded)}


def test_module_cmake_lists_every_python_file_and_resource():
    """The lists and globs as written (test_slicer_cmake.py builds and installs them with Slicer's macros)."""
    scripts = [s.replace("${MODULE_NAME}", "GenMedEval") for s in cmake_list("MODULE_PYTHON_SCRIPTS")]
    assert scripts == ["GenMedEval.py"] == [p.name for p in (ROOT / "GenMedEval").glob("*.py")]
    assert cmake_list("MODULE_PYTHON_RESOURCES") == ["Scripts/batch.py"]
    assert (ROOT / "GenMedEval" / "Scripts" / "batch.py").is_file()
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
    assert "${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/${_file}" in text  # relative destinations
    assert ".pt" not in text.replace("Resources/Models/*.pt", "")  # models by glob: no names, no digests
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_extension_cmake_has_the_extension_variables():
    text = (ROOT / "CMakeLists.txt").read_text()
    for needed in ("project(GenMedEval)", "EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
                   "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                   'EXTENSION_DEPENDS "PyTorch"', "find_package(Slicer REQUIRED)", "add_subdirectory(GenMedEval)",
                   "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert needed in text, needed


def test_module_requirements_follow_the_library_dependencies():
    """What the module installs = pyproject's dependencies, less what Slicer ships (numpy, scipy, SimpleITK),
    torch (the PyTorch extension) and what only the demo cohort and the HTML report need (nilearn, matplotlib)."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {re.split(r"[<>=]", d)[0].lower(): d for d in deps}
    expected = {name for name in floors if name not in {"numpy", "scipy", "simpleitk", "torch", "nilearn",
                                                         "matplotlib"}}
    text = MODULE.read_text()
    requirements = ast.literal_eval(re.search(r"REQUIREMENTS = (\(.*?\))", text, re.S).group(1))
    assert {re.split(r"[<>=]", r)[0].lower() for r in requirements} == expected
    for requirement in requirements:  # the same floors as the library declares
        assert requirement in floors[re.split(r"[<>=]", requirement)[0].lower()], requirement


def test_screenshot_and_licence_are_committed_files():
    """EXTENSION_SCREENSHOTURLS points into the repository at a PNG git does not ignore; LICENSE is pyproject's."""
    text = (ROOT / "CMakeLists.txt").read_text()
    url = re.search(r'EXTENSION_SCREENSHOTURLS "([^"]+)"', text).group(1)
    path = url.split("/main/", 1)[1]
    assert (ROOT / path).is_file() and path.endswith(".png")
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0
    assert not ignored, f"{path} is git-ignored"
    assert "BSD 3-Clause License" in (ROOT / "LICENSE").read_text()
    assert 'license = { text = "BSD-3-Clause" }' in (ROOT / "pyproject.toml").read_text()


def test_module_imports_at_top_level_only_what_slicer_provides():
    """Top level: Slicer's own modules, the standard library and the bundled library's light scene logic."""
    for path in (MODULE, ROOT / "GenMedEval" / "Scripts" / "batch.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            allowed = {n for n in names if n.split(".")[0] in SLICER_PROVIDED or n == "GenMedEvalLib"}
            assert set(names) == allowed, f"{path.name}: top-level import of {set(names) - allowed}"


def test_what_the_module_imports_at_startup_loads_no_network_library():
    """Slicer imports the module at every start: the scene logic and the registries it reads stay light."""
    code = ("import sys\nfrom GenMedEvalLib import scene_logic as s\n"
            "s.control_ranges(); s.mode_choices(); s.encoder_choices()\n"
            "heavy = sorted(m for m in ('torch', 'monai', 'matplotlib', 'nilearn') if m in sys.modules)\n"
            "print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_no_qprocess_or_qt5_only_signals():
    """Background work is polled with a QTimer ('timeout()' exists in Qt 5 and Qt 6); QProcess's finished(int)
    is gone in Qt 6 and killing it ended only the PythonSlicer launcher."""
    text = MODULE.read_text()
    assert "QProcess" not in text and "finished(int)" not in text
    signals = set(re.findall(r'connect\("(\w+\([^)]*\))"', text))
    assert signals == {"timeout()", "clicked(bool)", "toggled(bool)"}


def test_user_visible_strings_go_through_the_translation_helper():
    text = MODULE.read_text()
    assert "from slicer.i18n import tr as _" in text
    for call in ("statusLabel.text = ", "previewStatusLabel.text = ", "predictedDiceLabel.text = ", "errorDisplay("):
        for line in [ln for ln in text.splitlines() if call in ln]:
            value = line.split(call, 1)[1]
            assert value.startswith(("_(", "str(exc)", "status.message", "last[", "(_(")), line.strip()


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
