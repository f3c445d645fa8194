"""The module against Slicer 5.10's own Python code: the real parameterNodeWrapper binding the real `.ui`.

``slicer_standins.install`` loads Slicer's ``parameterNodeWrapper``, ``ScriptedLoadableModule``,
``util`` and ``i18n`` from ``../shared/slicer-5.10`` over the slicer-core wheel's MRML, with
stand-in widgets of the classes the ``.ui`` names (see that module for exactly what is stood in).
Skipped with a message when ``../shared/slicer-5.10`` is absent.
"""

from __future__ import annotations

import pathlib
import sys
import typing
import xml.etree.ElementTree as ET
from typing import Annotated

import numpy as np
import pytest
import slicer_standins as standins

from GenMedEvalLib import mrml
from GenMedEvalLib.io import Volume, normalize_intensity
from GenMedEvalLib.perturb import PERTURBATIONS, apply_perturbation
from GenMedEvalLib.scene_logic import (
    MODULE_CONTROLS,
    REGION_SEGMENTS,
    REGIONS_NODE,
    choice_controls,
    control_ranges,
    controls_used,
    given_path,
    mode_choices,
)

pytestmark = pytest.mark.skipif(not standins.slicer_code_present(), reason=standins.ABSENT)

OUTPUT_ONLY = {"perturbedVolume", "changesVolume", "regionsSegmentation", "segmentation", "metricsTable",
               "downstreamTable"}
ARTEFACTS = ("motion", "ghosting", "spike", "bias_field", "anisotropy")


@pytest.fixture(scope="module")
def slicer510(app):
    """(installed stand-ins, the imported GenMedEval module), removed again after this file's tests."""
    done = standins.install(app.scene)
    try:
        yield done, standins.import_module(done)
    finally:
        done.restore()
        app.scene.Clear(0)


@pytest.fixture(autouse=True)
def fresh_parameter_node(scene):
    """Each test starts without the module's (singleton) parameter node, which ``Clear(0)`` would keep."""
    yield
    node = scene.GetSingletonNode("GenMedEval", "vtkMRMLScriptedModuleNode")
    if node is not None:
        scene.RemoveNode(node)


@pytest.fixture
def small_volume(scene):
    rng = np.random.default_rng(0)
    array = rng.normal(0.4, 0.05, (16, 40, 40)).astype(np.float32)
    zz, yy, xx = np.ogrid[:16, :40, :40]
    tumour = ((zz - 8) ** 2 * 4 + (yy - 20) ** 2 + (xx - 18) ** 2) < 50
    array[tumour] = 0.9
    volume = Volume(array, spacing=(1.0, 1.0, 2.0))
    return mrml.add_volume_node(scene, volume, "small"), mrml.add_volume_node(
        scene, volume, "small-mask", array=tumour.astype(np.uint8), label=True)


def bound_ui(done, module, scene):
    """The `.ui` loaded through Slicer's ``slicer.util.loadUI``/``childWidgetVariables`` and bound by ``connectGui``."""
    root = done.slicer.util.loadUI(str(standins.UI_FILE))
    ui = done.slicer.util.childWidgetVariables(root)
    root.setMRMLScene(scene)
    p = module.GenMedEvalLogic().getParameterNode()
    tag = p.connectGui(ui)
    return ui, p, p._parameterGUIs[tag]


def user_edit(widget, scene, datatype):
    """Change ``widget`` as a user would; return the value the parameter must then hold."""
    if isinstance(widget, standins.ctkSliderWidget):
        value = (widget.minimum + 3 * widget.maximum) / 4
        widget.value = round(value) if widget.decimals == 0 else value  # a whole-number slider (Qt rounds)
        return widget.value
    if isinstance(widget, standins.QSpinBox):
        widget.value = widget.minimum + 7
        return widget.minimum + 7
    if isinstance(widget, standins.QComboBox):
        widget.currentIndex = widget.count() - 1
        return widget.itemText(widget.count() - 1)
    if isinstance(widget, standins.QCheckBox):
        widget.checked = not widget.checked
        return widget.checked
    if isinstance(widget, standins.QLineEdit):
        widget.text = "fd,kd"
        return "fd,kd"
    if isinstance(widget, standins.ctkPathLineEdit):
        widget.currentPath = "/data/some folder"
        return pathlib.Path("/data/some folder")
    if isinstance(widget, standins.qMRMLNodeComboBox):
        node = scene.AddNewNodeByClass(widget.nodeTypes[-1], "picked")
        widget.setCurrentNode(node)
        return node
    raise AssertionError(f"no user edit for {type(widget).__name__}")


def test_every_slicer_parameter_name_binds_and_values_flow_both_ways(slicer510, scene):
    done, module = slicer510
    ui, p, connectors = bound_ui(done, module, scene)
    in_ui = standins.load_ui().findChildren(standins.QWidget)
    names = {w.property("SlicerParameterName") for w in in_ui if w.property("SlicerParameterName")}
    assert set(connectors) == names == set(p.allParameters) - OUTPUT_ONLY
    for name, connector in connectors.items():
        widget = connector.widget()
        expected = user_edit(widget, scene, p.dataType(name))
        assert p.getValue(name) == expected, f"{name}: widget -> parameter"
    # parameter -> widget
    p.perturbation = "radial_gradient"
    assert ui.perturbationComboBox.currentText == "radial_gradient"
    p.blurSigma = 4.5
    assert ui.blurSigmaSlider.value == 4.5
    p.perturbation = "anisotropy"
    assert ui.perturbationComboBox.currentText == "anisotropy"
    p.motionCount, p.ghostAxis, p.anisotropyFactor = 5, "z", 4.5
    assert (ui.motionCountSlider.value, ui.ghostAxisComboBox.currentText, ui.anisotropyFactorSlider.value) == (
        5, "z", 4.5)
    ui.biasOrderSlider.value = 2.0
    assert p.biasOrder == 2 and isinstance(p.biasOrder, int)  # whole-number parameters stay int
    p.referenceFolder = pathlib.Path("/ref")
    assert ui.referenceFolderPathLineEdit.currentPath == "/ref"
    p.livePreview = False
    assert ui.livePreviewCheckBox.checked is False
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "lm")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    for mask in (labelmap, segmentation):  # the mask may be a label map or a segmentation
        p.inputMask = mask
        assert ui.inputMaskSelector.currentNode() is mask
    scalar = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not-a-mask")
    ui.inputMaskSelector.setCurrentNode(scalar)  # the combo box offers only the two mask classes
    assert p.inputMask is None
    assert ui.inputMaskSelector.nodeTypes == ("vtkMRMLLabelMapVolumeNode", "vtkMRMLSegmentationNode")


def ui_ranges() -> dict[str, tuple[float, float]]:
    found = {}
    for w in ET.parse(standins.UI_FILE).iter("widget"):
        name = w.find("property[@name='SlicerParameterName']/string")
        low, high = w.find("property[@name='minimum']/double"), w.find("property[@name='maximum']/double")
        if name is not None and low is not None:
            found[name.text] = (float(low.text), float(high.text))
    return found


def test_ranges_and_choices_come_from_the_registries_and_the_ui_agrees(slicer510, scene):
    done, module = slicer510
    ranges = control_ranges()
    assert ui_ranges() == {k: (r.low, r.high) for k, r in ranges.items()}  # the .ui says the same
    ui, p, connectors = bound_ui(done, module, scene)
    for control, r in ranges.items():
        slider = connectors[control].widget()
        assert (slider.minimum, slider.maximum) == (r.low, r.high)  # after the wrapper applied WithinRange
        assert p.default(control).value == r.default
    for kind, controls in MODULE_CONTROLS.items():  # every slider value is valid for every kind it feeds
        for param, control in controls.items():
            spec = PERTURBATIONS[kind].params[param]
            if control in ranges:
                spec.check(param, ranges[control].low), spec.check(param, ranges[control].high)
    combo_items = [ui.modeComboBox.itemText(i) for i in range(ui.modeComboBox.count())]
    assert combo_items == mode_choices()
    for control, choices in choice_controls().items():  # mode and the artefacts' axes
        combo = connectors[control].widget()
        assert [combo.itemText(i) for i in range(combo.count())] == choices
        assert list(ui_choices()[control]) == choices  # the .ui lists the same items
    for kind in ARTEFACTS:  # the registry's levels fit the controls; integer parameters get integer parameters
        for param, control in MODULE_CONTROLS[kind].items():
            spec = PERTURBATIONS[kind].params[param]
            if control in ranges:
                assert ranges[control].integer is (spec.type is int)
                assert typing.get_args(p.dataType(control))[0] is spec.type  # int parameters stay int
                slider = connectors[control].widget()
                assert slider.decimals == 0 if spec.type is int else slider.decimals > 0
                for preset in PERTURBATIONS[kind].presets.values():
                    value = spec.check(param, preset.get(param, spec.default))
                    assert slider.minimum <= value <= slider.maximum, (kind, param, value)
            else:
                assert p.default(control).value == spec.default
    assert [ui.perturbationComboBox.itemText(i) for i in range(ui.perturbationComboBox.count())] == list(
        MODULE_CONTROLS)


def ui_choices() -> dict[str, tuple[str, ...]]:
    found = {}
    for w in ET.parse(standins.UI_FILE).iter("widget"):
        name = w.find("property[@name='SlicerParameterName']/string")
        if name is not None and w.get("class") == "QComboBox" and w.findall("item"):
            found[name.text] = tuple(i.findtext("property/string") for i in w.findall("item"))
    return found


def test_types_no_connector_accepts_fail_as_in_slicer(slicer510):
    """What broke the first module: the stand-ins reproduce Slicer's own failures, so the test above can fail."""
    done, _ = slicer510
    slicer = done.slicer
    wrapper = slicer.parameterNodeWrapper

    def bind(datatype, widget, **default):
        probe = wrapper.parameterNodeWrapper(type("Probe", (), {"__annotations__": {"value": datatype}, **default}))
        return probe(slicer.vtkMRMLScriptedModuleNode()).connectParametersToGui({"value": widget})

    with pytest.raises(RuntimeError, match="requires the Choice annotation"):
        bind(str, standins.QComboBox())
    with pytest.raises(RuntimeError, match="Unable to create GUI connector"):
        bind(str, standins.ctkPathLineEdit())
    with pytest.raises(TypeError, match="abstract"):
        bind(slicer.vtkMRMLNode, standins.qMRMLNodeComboBox())
    with pytest.raises(RuntimeError, match="unbounded"):
        bind(float, standins.ctkSliderWidget())
    assert bind(Annotated[str, wrapper.Choice(["a", "b"])], standins.QComboBox(), value="b") >= 0


def test_panel_previews_only_on_perturbation_changes_and_says_when_a_mask_is_needed(slicer510, scene, small_volume):
    done, module = slicer510
    volume, mask = small_volume
    widget = module.GenMedEvalWidget()  # no parent: Slicer's base class builds it (setup) as the self-test does
    p, ui, timer = widget._parameterNode, widget.ui, widget._previewTimer
    assert p.inputVolume is volume  # the first volume of the scene was picked
    p.perturbation = "boundary_blur"  # the default kind needs a mask; none is set
    assert "needs a tumour mask" in ui.previewStatusLabel.text and not timer.isActive()
    assert "errorDisplay" not in done.recorder.names()  # a status line, no modal dialog
    ui.blurSigmaSlider.value = 2.0
    assert not timer.isActive() and "needs a tumour mask" in ui.previewStatusLabel.text
    ui.previewButton.click()  # the explicit Apply says the same, in the panel
    assert "needs a tumour mask" in ui.previewStatusLabel.text and "errorDisplay" not in done.recorder.names()
    assert not ui.noiseSlider.enabled and ui.blurSigmaSlider.enabled and ui.modeComboBox.enabled

    ui.perturbationComboBox.currentIndex = list(MODULE_CONTROLS).index("gaussian_noise")
    assert timer.isActive() and ui.noiseSlider.enabled and not ui.blurSigmaSlider.enabled
    timer.fire()
    assert p.perturbedVolume is not None and "voxels changed" in ui.previewStatusLabel.text
    starts = timer.starts
    ui.metricsLineEdit.text = "fd,kd,prdc"  # typing in Metrics
    ui.referenceFolderPathLineEdit.currentPath = "/tmp"  # a folder
    p.resultsTable = scene.AddNewNodeByClass("vtkMRMLTableNode", "t")  # a table being set
    ui.blurSigmaSlider.value = 3.0  # a control gaussian_noise does not use
    assert timer.starts == starts and not timer.isActive()
    ui.noiseSlider.value = 0.2
    assert timer.starts == starts + 1  # a control it uses: one debounced preview
    ui.noiseSlider.value = 0.25
    assert timer.starts == starts + 2 and timer.isActive()

    assert not ui.evaluateButton.enabled  # only one folder set
    ui.evaluatedFolderPathLineEdit.currentPath = "/tmp"
    assert ui.evaluateButton.enabled and ui.segmentButton.enabled and not ui.cancelButton.enabled
    assert given_path(p.segmenterPath) is None and given_path(p.qualityModelPath) is None  # unset: shipped models
    p.inputMask = mask
    assert timer.isActive()
    widget.cleanup()
    assert not timer.isActive() and not widget._jobTimer.isActive()
    assert widget._parameterNode is None and not widget.Observations
    ui.noiseSlider.value = 0.5  # the GUI is unbound after cleanup
    assert p.noiseLevel == 0.25


def test_panel_previews_the_artefacts_and_marks_them_beyond_the_paper(slicer510, scene, small_volume):
    """Choosing an artefact enables exactly its controls, says it goes beyond the paper, and a live preview runs
    with the control values (no mask needed); the paper's kinds say nothing of the sort."""
    done, module = slicer510
    widget = module.GenMedEvalWidget()
    p, ui, timer = widget._parameterNode, widget.ui, widget._previewTimer
    controls = dict(widget.perturbationControls())
    assert set(controls) == {c for cs in MODULE_CONTROLS.values() for c in cs.values()}
    for name, control in controls.items():  # the widget's list pairs each parameter with its bound widget
        assert control.property("SlicerParameterName") == name
    tooltip = ui.perturbationComboBox.toolTip
    assert all(kind in tooltip for kind in ARTEFACTS) and "beyond the paper" in tooltip.lower()
    for kind in MODULE_CONTROLS:
        ui.perturbationComboBox.currentIndex = list(MODULE_CONTROLS).index(kind)
        assert p.perturbation == kind
        assert {name for name, control in controls.items() if control.enabled} == controls_used(kind)
        assert ("Beyond the paper" in ui.perturbationNoteLabel.text) is PERTURBATIONS[kind].beyond_paper
    ui.perturbationComboBox.currentIndex = list(MODULE_CONTROLS).index("spike")
    ui.spikeCountSlider.value = 3
    ui.spikeIntensitySlider.value = 1.0
    assert timer.isActive()  # live, without a mask
    timer.fire()
    assert "voxels changed" in ui.previewStatusLabel.text and p.perturbedVolume is not None
    source = mrml.volume_from_node(p.inputVolume)
    expected = apply_perturbation("spike", normalize_intensity(source.array), spacing=source.spacing_zyx, seed=p.seed,
                                  num_spikes=3, intensity=1.0)
    np.testing.assert_allclose(mrml.array_from_node(p.perturbedVolume), expected, atol=1e-6)
    starts = timer.starts
    ui.ghostIntensitySlider.value = 0.9  # another kind's control
    assert timer.starts == starts
    widget.cleanup()


def test_panel_shows_where_the_local_metrics_look(slicer510, scene, small_volume, monkeypatch):
    """The button, as the explicit Apply: without a mask the status line says to choose one (no dialog); with it the
    regions node is made once (a second click refills it) and kept in the parameter node; an unexpected failure
    is shown in the error dialog."""
    from GenMedEvalLib.scene_logic import SceneLogic

    done, module = slicer510
    volume, mask = small_volume
    widget = module.GenMedEvalWidget()
    p, ui = widget._parameterNode, widget.ui
    assert p.inputVolume is volume and p.inputMask is None and ui.showRegionsButton.enabled
    seen = len(done.recorder.calls)

    def dialogs():
        return [c for c in done.recorder.calls[seen:] if c[0] == "errorDisplay"]

    ui.showRegionsButton.click()
    assert "choose a tumour mask" in ui.statusLabel.text and not dialogs()
    assert p.regionsSegmentation is None and not mrml.nodes_by_name(scene, REGIONS_NODE)
    p.inputMask = mask
    ui.showRegionsButton.click()
    node = p.regionsSegmentation
    assert node is not None and node.GetName() == REGIONS_NODE
    assert [node.GetSegmentation().GetNthSegment(i).GetName() for i in range(2)] == list(REGION_SEGMENTS)
    assert "_roi" in ui.statusLabel.text and "_band" in ui.statusLabel.text
    ui.showRegionsButton.click()
    assert p.regionsSegmentation is node and len(mrml.nodes_by_name(scene, REGIONS_NODE)) == 1
    assert not dialogs()

    def broken(*args, **kwargs):
        raise RuntimeError("segmentations module missing")

    monkeypatch.setattr(SceneLogic, "show_regions", broken)
    ui.showRegionsButton.click()
    (call,) = dialogs()
    assert "Could not show where the local metrics look" in call[1][0] and "segmentations module missing" in call[1][0]
    widget.cleanup()


def tiny_models(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A TorchScript 'segmenter' (bright voxels are tumour) and an untrained quality model: fast, deterministic."""
    import torch

    from GenMedEvalLib.quality.model import build_regressor, save_checkpoint

    class Bright(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - 0.8

    segmenter = folder / "bright.ts"
    torch.jit.script(Bright()).save(str(segmenter))
    torch.manual_seed(0)
    quality = save_checkpoint(build_regressor(), folder / "q.pt", size=64, margin=0.5, min_mm=16.0, meta={})
    return segmenter, pathlib.Path(quality)


def test_module_runs_segmentation_and_quality_in_the_background(slicer510, scene, tmp_path):
    """``GenMedEvalLogic.runDownstream``: the two background commands, their files back as a segmentation node and
    the downstream table (apart from the metrics table), checked against an independent Dice."""
    from GenMedEvalLib.quality import dice_score

    _, module = slicer510
    rng = np.random.default_rng(0)
    array = rng.normal(0.3, 0.03, (12, 48, 48)).astype(np.float32)
    zz, yy, xx = np.ogrid[:12, :48, :48]
    tumour = ((zz - 6) ** 2 * 4 + (yy - 24) ** 2 + (xx - 20) ** 2) < 64
    array[tumour] = 1.0
    volume = Volume(array, spacing=(1.0, 1.0, 2.0), origin=(-20.0, 10.0, 3.0))
    truth = tumour & (xx < 22)  # a truth that half agrees: a Dice below 1 to check
    logic = module.GenMedEvalLogic()
    p = logic.getParameterNode()
    p.inputVolume = mrml.add_volume_node(scene, volume, "case")
    p.inputMask = mrml.add_volume_node(scene, volume, "truth", array=truth.astype(np.uint8), label=True)
    p.metricsTable = scene.AddNewNodeByClass("vtkMRMLTableNode", "metrics")
    segmenter, quality = tiny_models(tmp_path)
    p.segmenterPath, p.qualityModelPath = segmenter, quality
    assert logic.pythonExecutable() == sys.executable  # no PythonSlicer here
    segmentation, score = logic.runDownstream(p, timeout=120)
    assert p.segmentation is segmentation and p.downstreamTable is not p.metricsTable
    np.testing.assert_array_equal(mrml.mask_from_node(scene, segmentation, p.inputVolume), tumour)
    (row,) = mrml.table_to_rows(p.downstreamTable)
    assert row["volume"] == "case" and row["mask_voxels"] == tumour.sum()
    assert row["true_dice"] == pytest.approx(dice_score(tumour, truth), abs=1e-4)
    assert 0.0 <= score <= 1.0 and row["predicted_dice"] == pytest.approx(score)
    assert mrml.table_to_rows(p.metricsTable) == []  # the downstream run left the metrics table alone


def test_self_test_logic_on_the_wheels(slicer510, scene, real_case, monkeypatch):
    """``GenMedEvalTest.checkLogic`` and ``checkWidget`` (what Slicer runs on MRBrainTumor1) on the real MRI here.

    Torch is reported missing, so the self-test's skip path runs (its segmentation and quality steps
    are the test above, on a small volume).
    """
    _, module = slicer510
    image, _ = real_case
    volume = mrml.add_volume_node(scene, image, "brain1")
    case = module.GenMedEvalTest()
    shown = []
    case.delayDisplay = lambda message, *args, **kwargs: shown.append(message)  # Slicer's shows a dialog
    monkeypatch.setattr(module.GenMedEvalLogic, "torchAvailable", staticmethod(lambda: False))
    case.checkLogic(volume)
    monkeypatch.undo()
    assert any("skipping segmentation and quality prediction" in m for m in shown)
    assert mrml.nodes_by_name(scene, "brain1_boundary_blur")  # the preview's output node
    case.checkWidget(volume)


def test_panel_reports_start_failures_and_cancel_ends_the_job(slicer510, scene, small_volume, tmp_path):
    """Evaluate through the panel: a command that cannot start is reported (not 'Running...' forever); Cancel
    during a run ends it and re-enables the buttons; a finished run's CSV becomes the metrics table."""
    from GenMedEvalLib.scene_logic import JobStep

    done, module = slicer510
    widget = module.GenMedEvalWidget()
    p, ui = widget._parameterNode, widget.ui
    ui.referenceFolderPathLineEdit.currentPath = str(tmp_path)
    ui.evaluatedFolderPathLineEdit.currentPath = str(tmp_path)
    logic = widget.logic
    logic.evaluateStep = lambda p, out: JobStep(("/nonexistent/PythonSlicer", "-m", "x"), "Metrics")
    ui.evaluateButton.click()
    assert "could not start /nonexistent/PythonSlicer" in ui.statusLabel.text
    assert widget._job is None and ui.evaluateButton.enabled and not ui.cancelButton.enabled

    logic.evaluateStep = lambda p, out: JobStep((sys.executable, "-c", "import time; time.sleep(60)"), "Metrics")
    ui.evaluateButton.click()
    assert widget._job is not None and widget._jobTimer.isActive()
    assert ui.cancelButton.enabled and not ui.evaluateButton.enabled and not ui.segmentButton.enabled
    widget._jobTimer.fire()  # a poll while it runs
    assert ui.statusLabel.text == "Metrics..."
    process = widget._job.process
    ui.cancelButton.click()
    assert process.poll() is not None and ui.statusLabel.text == "Cancelled."
    assert widget._job is None and not widget._jobTimer.isActive() and ui.evaluateButton.enabled

    csv = tmp_path / "metrics.csv"
    csv.write_text("metric,value,ci_low,ci_high,better,n_reference,n_generated\nfd,1.5,1.0,2.0,lower,4,4\n")
    logic.evaluateStep = lambda p, out: JobStep((sys.executable, "-c", f"import shutil; shutil.copy({str(csv)!r}, "
                                                 f"{out!r})"), "Metrics")
    ui.evaluateButton.click()
    while widget._job is not None:
        widget._jobTimer.fire()
    assert ui.statusLabel.text == "Metrics done." and ui.progressBar.value == 100
    assert mrml.table_to_rows(p.metricsTable)[0]["value"] == 1.5 and p.resultsTable is p.metricsTable
    assert ("SetActiveTableID", (p.metricsTable.GetID(),)) in done.slicer.app.logic.calls  # shown in the table view
    widget.cleanup()
