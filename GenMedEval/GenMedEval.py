"""GenMedEval: is this synthetic brain MRI fit for purpose? (3D Slicer scripted module)

The widget is thin: it binds the controls of ``Resources/UI/GenMedEval.ui`` to a parameter node
and calls ``GenMedEvalLogic``, which delegates to the bundled library ``GenMedEvalLib`` (its
``scene_logic.SceneLogic`` works on any MRML scene, so the same code runs in Slicer, in
``batch.py`` and in the tests on the slicer-core wheel). Heavy imports (torch, MONAI, the library's
networks) happen inside functions, after the dependencies are ensured.
"""

import os
import pathlib
import sys
from typing import Annotated

import qt
import slicer
import vtk
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Python packages GenMedEval needs beyond what Slicer ships. SimpleITK, numpy and scipy come with
# Slicer and are never reinstalled; torch comes from the PyTorch extension.
REQUIREMENTS = ("monai>=1.3", "tqdm>=4.60", "pyyaml>=6", "matplotlib>=3.7", "nilearn>=0.10")
PREVIEW_KINDS = ("boundary_blur", "radial_gradient", "gaussian_noise", "rician_noise", "poisson_noise",
                 "contrast_invention")


def _module_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def _ensure_library_on_path() -> None:
    """Make the bundled ``GenMedEvalLib`` importable (installed beside this file, or one level up in a checkout)."""
    for candidate in (_module_dir(), os.path.dirname(_module_dir())):
        if os.path.isdir(os.path.join(candidate, "GenMedEvalLib")) and candidate not in sys.path:
            sys.path.insert(0, candidate)
    resources = os.path.join(_module_dir(), "Resources")
    if not os.path.isdir(resources):
        resources = os.path.join(os.path.dirname(_module_dir()), "Resources")
    os.environ.setdefault("GENMEDEVAL_RESOURCES", resources)


def _resource_path(installed: str, relative: str) -> str:
    """``installed`` when it exists (built extension), else the repository's ``Resources/`` (a checkout)."""
    if os.path.exists(installed):
        return installed
    return os.path.join(os.path.dirname(_module_dir()), "Resources", relative)


#
# Module
#


class GenMedEval(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "GenMedEval"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["GenMedEval developers"]
        self.parent.helpText = (
            "Evaluate synthetic brain MRI: perturb a real volume in controlled ways (noise, tumour boundary blur, "
            "radial gradients, contrast invention) with a live preview, compute upstream no-reference metrics "
            "(FD, KD, PRDC, AuthPct, ...) of a generated set against a reference set, and predict a segmenter's "
            "Dice without ground truth. See the README of the GenMedEval extension."
        )
        self.parent.acknowledgementText = (
            "GenMedEval implements the evaluation framework of Deo et al., 'Metrics that matter: evaluating image "
            "quality metrics for medical image generation', 2025 (arXiv:2505.07175), and a ground-truth-free "
            "segmentation quality predictor after EvaNySeg (Senbi et al. 2024)."
        )


#
# Parameter node
#


@parameterNodeWrapper
class GenMedEvalParameterNode:
    """Every input of the module; the widget binds to these names through ``SlicerParameterName``."""

    inputVolume: vtkMRMLScalarVolumeNode
    inputMask: vtkMRMLNode  # a label map or a segmentation node
    perturbation: Annotated[str, Choice(list(PREVIEW_KINDS))] = "boundary_blur"
    noiseLevel: Annotated[float, WithinRange(0.0, 1.0)] = 0.05
    blurSigma: Annotated[float, WithinRange(0.0, 20.0)] = 1.0
    bandMm: Annotated[float, WithinRange(0.0, 50.0)] = 3.0
    amplitude: Annotated[float, WithinRange(0.0, 1.0)] = 0.2
    frequency: Annotated[float, WithinRange(0.0, 10.0)] = 1.0
    contrastStrength: Annotated[float, WithinRange(0.0, 0.2)] = 0.07
    mode: Annotated[str, Choice(["slice", "3d"])] = "slice"
    seed: int = 0
    livePreview: bool = True
    showPerturbed: bool = True
    perturbedVolume: vtkMRMLScalarVolumeNode
    changesVolume: vtkMRMLLabelMapVolumeNode
    referenceFolder: pathlib.Path  # ctkPathLineEdit binds to pathlib.Path
    evaluatedFolder: pathlib.Path
    encoder: str = "domain"
    metrics: str = "all"
    bootstrap: Annotated[int, WithinRange(0, 1000)] = 0
    segmenterPath: pathlib.Path
    qualityModelPath: str = ""
    segmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode


#
# Widget
#


class GenMedEvalWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: Input, Perturb (live preview), Evaluate (background process), Downstream, Results."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._previewTimer = None
        self._process = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(_resource_path(self.resourcePath("UI/GenMedEval.ui"), "UI/GenMedEval.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = GenMedEvalLogic()

        self.ui.perturbationComboBox.addItems(list(PREVIEW_KINDS))
        self._previewTimer = qt.QTimer()
        self._previewTimer.setSingleShot(True)
        self._previewTimer.setInterval(150)  # coalesce slider drags into one update
        self._previewTimer.connect("timeout()", self.onPreview)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.previewButton.connect("clicked(bool)", self.onPreview)
        self.ui.showPerturbedCheckBox.connect("toggled(bool)", self.onShowPerturbed)
        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluate)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.showTableButton.connect("clicked(bool)", self.onShowTable)
        self.ui.exportCsvButton.connect("clicked(bool)", lambda: self.onExport(".csv"))
        self.ui.exportHtmlButton.connect("clicked(bool)", lambda: self.onExport(".html"))
        self.ui.cancelButton.enabled = False
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterChanged)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode: GenMedEvalParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterChanged)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterChanged)
            self.onParameterChanged()

    def onParameterChanged(self, caller=None, event=None) -> None:
        """Enable what can run, show only the controls the chosen perturbation uses, schedule a live preview."""
        p = self._parameterNode
        if p is None:
            return
        used = _controls_used(p.perturbation)
        for control, widget in (("noiseLevel", self.ui.noiseSlider), ("blurSigma", self.ui.blurSigmaSlider),
                                ("bandMm", self.ui.bandSlider), ("amplitude", self.ui.amplitudeSlider),
                                ("frequency", self.ui.frequencySlider), ("contrastStrength", self.ui.strengthSlider),
                                ("mode", self.ui.modeComboBox)):
            widget.enabled = control in used
        self.ui.previewButton.enabled = bool(p.inputVolume)
        self.ui.segmentButton.enabled = bool(p.inputVolume)
        self.ui.evaluateButton.enabled = bool(_given(p.referenceFolder) and _given(p.evaluatedFolder)) \
            and self._process is None
        if p.livePreview and p.inputVolume:
            self._previewTimer.start()

    def onPreview(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Perturbation failed.", waitCursor=True):
            preview = self.logic.preview(p)
            self.ui.previewStatusLabel.text = (f"{preview.changed_voxels} voxels changed "
                                               f"({preview.seconds * 1000:.0f} ms)")
            self.onShowPerturbed(p.showPerturbed)

    def onShowPerturbed(self, show: bool) -> None:
        """Toggle the slice views between the original and the perturbed volume (mask and changes as labels)."""
        p = self._parameterNode
        background = p.perturbedVolume if show and p.perturbedVolume else p.inputVolume
        label = p.changesVolume
        slicer.util.setSliceViewerLayers(background=background, label=label, labelOpacity=0.5, fit=False)

    def onEvaluate(self) -> None:
        """Run the metric suite in a background PythonSlicer process; the GUI stays responsive."""
        from GenMedEvalLib.scene_logic import evaluate_command

        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not start the evaluation."):
            self.logic.ensureDependencies()
            out_csv = os.path.join(slicer.app.temporaryPath, "GenMedEval-metrics.csv")
            args = evaluate_command(p.referenceFolder, p.evaluatedFolder, out_csv, encoder=p.encoder,
                                    metrics=p.metrics, bootstrap=p.bootstrap, seed=p.seed)
            self._process = self.logic.startBackgroundCommand(args, self._onProcessOutput,
                                                              lambda code: self._onEvaluateFinished(code, out_csv))
            self.ui.cancelButton.enabled = True
            self.ui.evaluateButton.enabled = False
            self.ui.progressBar.value = 0
            self.ui.evaluateStatusLabel.text = "Running..."

    def _onProcessOutput(self, line: str) -> None:
        percent = GenMedEvalLogic.progressPercent(line)
        if percent is not None:
            self.ui.progressBar.value = percent
        elif line.strip():
            self.ui.evaluateStatusLabel.text = line.strip()[-200:]

    def _onEvaluateFinished(self, exitCode: int, out_csv: str) -> None:
        self._process = None
        self.ui.cancelButton.enabled = False
        self.onParameterChanged()
        if exitCode != 0:
            slicer.util.errorDisplay(f"Evaluation failed: {self.ui.evaluateStatusLabel.text}")
            return
        table = self.logic.loadResultTable(out_csv, self._parameterNode.outputTable)
        self._parameterNode.outputTable = table
        self.ui.progressBar.value = 100
        self.ui.evaluateStatusLabel.text = "Done."
        self.onShowTable()

    def onCancel(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None
            self.ui.evaluateStatusLabel.text = "Cancelled."
            self.ui.cancelButton.enabled = False

    def onSegment(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Segmentation failed.", waitCursor=True):
            segmentation, score, table = self.logic.segmentAndScore(p)
            self.ui.predictedDiceLabel.text = (f"Predicted Dice: {score:.3f}" if score == score
                                               else "The segmenter found no tumour.")
            p.segmentation = segmentation
            p.outputTable = table

    def onShowTable(self) -> None:
        table = self._parameterNode.outputTable
        if table:
            layoutManager = slicer.app.layoutManager()
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def onExport(self, suffix: str) -> None:
        table = self._parameterNode.outputTable
        if not table:
            slicer.util.errorDisplay("No result table to export.")
            return
        path = qt.QFileDialog.getSaveFileName(None, "Export results", f"{table.GetName()}{suffix}", f"*{suffix}")
        if path:
            with slicer.util.tryWithErrorDisplay("Export failed."):
                self.logic.exportTable(table, path)


def _given(path) -> str | None:
    """A path control's value as a string, None when empty (an unset pathlib.Path reads as ".")."""
    text = str(path) if path is not None else ""
    return None if text in ("", ".") else text


def _controls_used(kind: str) -> set:
    _ensure_library_on_path()
    from GenMedEvalLib.scene_logic import controls_used

    return controls_used(kind)


#
# Logic
#


class GenMedEvalLogic(ScriptedLoadableModuleLogic):
    """Everything the module does, usable without the widget (scripts, batch.py, the self-test)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        _ensure_library_on_path()
        self._sceneLogic = None

    def getParameterNode(self):
        return GenMedEvalParameterNode(super().getParameterNode())

    @property
    def sceneLogic(self):
        """The library's scene logic bound to Slicer's scene."""
        if self._sceneLogic is None or self._sceneLogic.scene is not slicer.mrmlScene:
            from GenMedEvalLib.scene_logic import SceneLogic

            self._sceneLogic = SceneLogic(slicer.mrmlScene)
        return self._sceneLogic

    # -- dependencies ---------------------------------------------------------------------

    @staticmethod
    def ensureDependencies(askConfirmation: bool = True) -> None:
        """Install what is missing with Slicer's own mechanisms; torch through the PyTorch extension."""
        try:
            import torch  # noqa: F401
        except ImportError:
            try:
                import PyTorchUtils
            except ImportError as exc:
                raise RuntimeError("GenMedEval needs PyTorch: install the 'PyTorch' extension "
                                   "from the Extensions Manager, then restart Slicer.") from exc
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askConfirmation) is None:
                raise RuntimeError("PyTorch is required and was not installed.") from None
        missing = [req for req in REQUIREMENTS if not GenMedEvalLogic._importable(req)]
        if not missing:
            return
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                "GenMedEval will install: " + ", ".join(missing) + ". Continue?"):
            raise RuntimeError("Missing Python packages: " + ", ".join(missing))
        packaging = getattr(slicer, "packaging", None)
        for requirement in missing:
            if packaging is not None and hasattr(packaging, "pip_ensure"):
                packaging.pip_ensure(requirement)
            else:
                slicer.util.pip_install(requirement)

    @staticmethod
    def _importable(requirement: str) -> bool:
        import importlib.util
        import re

        name = re.split(r"[<>=\[ ]", requirement)[0]
        return importlib.util.find_spec({"pyyaml": "yaml"}.get(name, name)) is not None

    # -- perturbation preview -------------------------------------------------------------

    def preview(self, parameterNode):
        """Perturb the input volume into ``perturbedVolume`` and the mask + changed voxels into ``changesVolume``."""
        from GenMedEvalLib.scene_logic import module_params

        p = parameterNode
        if not p.inputVolume:
            raise ValueError("Select an input volume.")
        controls = {name: getattr(p, name) for name in ("noiseLevel", "blurSigma", "bandMm", "amplitude",
                                                        "frequency", "contrastStrength", "mode")}
        result = self.sceneLogic.perturb(p.inputVolume, p.perturbation, module_params(p.perturbation, controls),
                                         mask_node=p.inputMask, seed=p.seed, output_node=p.perturbedVolume,
                                         overlay_node=p.changesVolume)
        p.perturbedVolume = result.volume_node
        p.changesVolume = result.overlay_node
        return result

    # -- evaluation in a background process -----------------------------------------------

    @staticmethod
    def pythonSlicerExecutable() -> str:
        """The PythonSlicer launcher (same Python and packages as the application)."""
        name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
        return os.path.join(os.path.dirname(sys.executable), name)

    def startBackgroundCommand(self, args, onOutput, onFinished):
        """Run ``genmedeval ARGS`` in a PythonSlicer process; stream its output lines; call back with the exit code."""
        process = qt.QProcess()
        process.setProcessChannelMode(qt.QProcess.MergedChannels)
        env = qt.QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONPATH", os.pathsep.join([p for p in sys.path if p]))
        env.insert("GENMEDEVAL_RESOURCES", os.environ.get("GENMEDEVAL_RESOURCES", ""))
        process.setProcessEnvironment(env)

        def readOutput():
            text = bytes(process.readAll()).decode("utf-8", "replace")
            for line in text.replace("\r", "\n").split("\n"):
                onOutput(line)

        process.connect("readyRead()", readOutput)
        process.connect("finished(int)", onFinished)
        process.start(self.pythonSlicerExecutable(), ["-m", "GenMedEvalLib.cli"] + list(args))
        return process

    @staticmethod
    def progressPercent(line: str):
        """The percentage of a tqdm progress line, else None."""
        from GenMedEvalLib.scene_logic import progress_percent

        return progress_percent(line)

    def loadResultTable(self, csvPath: str, tableNode=None):
        """The metrics CSV written by the background process as a table node."""
        return self.sceneLogic.load_result_csv(csvPath, table_node=tableNode)

    def evaluateFolders(self, referenceFolder: str, evaluatedFolder: str, encoder: str = "domain",
                        metrics: str = "all", bootstrap: int = 0, tableNode=None):
        """The same evaluation in this process (scripts and tests; the widget uses the background process)."""
        return self.sceneLogic.evaluate_folders(referenceFolder, evaluatedFolder, encoder=encoder, metrics=metrics,
                                                bootstrap=bootstrap, table_node=tableNode)

    # -- downstream -----------------------------------------------------------------------

    def segmentAndScore(self, parameterNode):
        """Segment the input volume and predict the segmentation's Dice (true Dice too when a mask is set)."""
        p = parameterNode
        self.ensureDependencies()
        return self.sceneLogic.segment_and_score(p.inputVolume, segmenter=p.segmenterPath or None,
                                                 predictor=p.qualityModelPath or None,
                                                 truth_node=p.inputMask, segmentation_node=p.segmentation,
                                                 table_node=p.outputTable)

    def exportTable(self, tableNode, path: str):
        return self.sceneLogic.export_table(tableNode, path)


#
# Test
#


class GenMedEvalTest(ScriptedLoadableModuleTest):
    """Self-test: a small volume and mask in the scene -> perturbation, metrics, predictor; check the nodes."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_GenMedEval_endToEnd()

    def test_GenMedEval_endToEnd(self):
        import numpy as np

        _ensure_library_on_path()
        from GenMedEvalLib import mrml
        from GenMedEvalLib.io import Volume

        self.delayDisplay("Building a small volume with a tumour")
        rng = np.random.default_rng(0)
        array = rng.normal(0.4, 0.05, (24, 64, 64)).astype("float32")
        zz, yy, xx = np.ogrid[:24, :64, :64]
        tumour = ((zz - 12) ** 2 * 4 + (yy - 30) ** 2 + (xx - 34) ** 2) < 100
        array[tumour] = 0.9
        volume = Volume(array, spacing=(1.0, 1.0, 2.0))
        logic = GenMedEvalLogic()
        volumeNode = mrml.add_volume_node(slicer.mrmlScene, volume, "selftest-volume")
        maskNode = mrml.add_volume_node(slicer.mrmlScene, volume, "selftest-mask", array=tumour.astype("uint8"),
                                        label=True)

        self.delayDisplay("Perturbing (radial gradient)")
        p = logic.getParameterNode()
        p.inputVolume, p.inputMask, p.perturbation = volumeNode, maskNode, "radial_gradient"
        p.amplitude = 0.3
        result = logic.preview(p)
        self.assertIsNotNone(p.perturbedVolume)
        self.assertGreater(result.changed_voxels, 0)
        changes = mrml.array_from_node(p.changesVolume)
        self.assertTrue(((changes == 2) <= tumour).all())  # the gradient changes only tumour voxels

        self.delayDisplay("Metrics of perturbed copies against the original")
        copies = [volume.with_array(array + rng.normal(0, s, array.shape).astype("float32")) for s in (0.01, 0.02)]
        table = logic.sceneLogic.evaluate_volumes([volume, volume], copies, metrics="fd,kd")
        rows = mrml.table_to_rows(table)
        self.assertEqual([r["metric"] for r in rows], ["fd", "kd", "kd_std"])
        self.assertGreater(rows[0]["value"], 0.0)  # perturbed copies are not the reference set

        self.delayDisplay("Segmenter and quality predictor")
        segmentation, score, downstream = logic.sceneLogic.segment_and_score(volumeNode, truth_node=maskNode)
        self.assertTrue(segmentation.IsA("vtkMRMLSegmentationNode"))
        self.assertEqual(downstream.GetTable().GetNumberOfRows(), 1)
        self.delayDisplay("Test passed")
