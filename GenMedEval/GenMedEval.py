"""GenMedEval: is this synthetic brain MRI fit for purpose? (3D Slicer scripted module, Slicer 5.10 and later)

The widget is thin: it binds the controls of ``Resources/UI/GenMedEval.ui`` to a parameter node
and calls ``GenMedEvalLogic``, which delegates to the bundled library ``GenMedEvalLib`` (its
``scene_logic.SceneLogic`` works on any MRML scene, so the same code runs in Slicer, in
``Scripts/batch.py`` and in the tests on the slicer-core wheel). Segmentation, quality prediction,
metrics and first-run package installs run in a background process tree that a timer polls;
Cancel ends the whole tree. Torch and MONAI are imported only in that process.
"""

import logging
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Annotated

import qt
import slicer
import vtk
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

MINIMUM_SLICER_VERSION = (5, 10)  # Python 3.12; the module and library use 3.10+ syntax and library calls
if sys.version_info < (3, 10):  # noqa: UP036 - Slicer 5.8 runs Python 3.9: say so, not fail at the first `X | Y`
    raise ImportError("GenMedEval needs 3D Slicer {}.{} or later (Python 3.12); this Slicer runs Python {}.{}".format(
        *MINIMUM_SLICER_VERSION, *sys.version_info[:2]))
# Python packages beyond what Slicer ships (SimpleITK, numpy and scipy come with Slicer and are never
# reinstalled); torch comes from the PyTorch extension. Only what segmentation, quality and metrics need.
REQUIREMENTS = ("monai>=1.3", "einops>=0.7", "tqdm>=4.60", "pyyaml>=6", "threadpoolctl>=3.1", "torchio>=1.2")
TORCH_REQUIREMENT = ">=2.1"


def _module_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def _library_root() -> str:
    """The folder holding ``GenMedEvalLib``: beside this file when installed, one level up in a checkout."""
    for candidate in (_module_dir(), os.path.dirname(_module_dir())):
        if os.path.isdir(os.path.join(candidate, "GenMedEvalLib")):
            return candidate
    raise ImportError(f"GenMedEvalLib not found beside {_module_dir()} or one level up")


def _resources_dir() -> str:
    """The module's ``Resources`` (installed extension), else the repository's top-level ``Resources`` (checkout)."""
    installed = os.path.join(_module_dir(), "Resources")
    if os.path.isdir(os.path.join(installed, "UI")):
        return installed
    return os.path.join(os.path.dirname(_module_dir()), "Resources")


def _ensure_library_on_path() -> None:
    """Make the bundled ``GenMedEvalLib`` importable and point it at the module's resources."""
    root = _library_root()
    if root not in sys.path:
        sys.path.insert(0, root)
    os.environ.setdefault("GENMEDEVAL_RESOURCES", _resources_dir())


_ensure_library_on_path()
from GenMedEvalLib import scene_logic  # noqa: E402  (numpy, SimpleITK and scipy only: all shipped with Slicer)

RANGES = scene_logic.control_ranges()  # one source: the perturbation registry
PREVIEW_KINDS = list(scene_logic.MODULE_CONTROLS)
MODES = scene_logic.mode_choices()
CHOICES = scene_logic.choice_controls()  # combo boxes: mode and the artefacts' axes
ENCODERS = scene_logic.encoder_choices()


def _ranged(control: str):
    """``Annotated[float, WithinRange(...)]`` (``int`` for whole-number parameters) with the registry's range."""
    found = RANGES[control]
    return Annotated[int if found.integer else float, WithinRange(found.low, found.high)]


def _choice(control: str):
    """``Annotated[str, Choice(...)]`` with the registry's choices of ``control``."""
    return Annotated[str, Choice(CHOICES[control])]


#
# Module
#


class GenMedEval(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("GenMedEval")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["GenMedEval developers"]
        self.parent.helpText = _(
            "Evaluate synthetic brain MRI: perturb a real volume in controlled ways (noise, tumour boundary blur, "
            "radial gradients, contrast invention and, beyond the paper, MRI artefacts: motion, ghosting, spikes, "
            "bias field, thick slices) with a live preview, compute upstream no-reference metrics "
            "(FD, KD, PRDC, AuthPct, ...) of a generated set against a reference set, and predict a segmenter's "
            "Dice without ground truth. Requires 3D Slicer 5.10 or later (Python 3.12) and the PyTorch extension. "
            "See the README of the GenMedEval extension."
        )
        self.parent.acknowledgementText = _(
            "GenMedEval implements the evaluation framework of Deo et al., 'Metrics that matter: evaluating image "
            "quality metrics for medical image generation', 2025 (arXiv:2505.07175), and a ground-truth-free "
            "segmentation quality predictor after EvaNySeg (Senbi et al. 2024)."
        )


#
# Parameter node
#


@parameterNodeWrapper
class GenMedEvalParameterNode:
    """Every input and output of the module; the widgets bind to these names through ``SlicerParameterName``."""

    inputVolume: vtkMRMLScalarVolumeNode
    inputMask: vtkMRMLLabelMapVolumeNode | vtkMRMLSegmentationNode | None
    perturbation: Annotated[str, Choice(PREVIEW_KINDS)] = "boundary_blur"
    noiseLevel: _ranged("noiseLevel") = RANGES["noiseLevel"].default
    blurSigma: _ranged("blurSigma") = RANGES["blurSigma"].default
    bandMm: _ranged("bandMm") = RANGES["bandMm"].default
    amplitude: _ranged("amplitude") = RANGES["amplitude"].default
    frequency: _ranged("frequency") = RANGES["frequency"].default
    contrastStrength: _ranged("contrastStrength") = RANGES["contrastStrength"].default
    mode: Annotated[str, Choice(MODES)] = "slice"
    # MRI artefacts beyond the paper (TorchIO)
    motionDegrees: _ranged("motionDegrees") = RANGES["motionDegrees"].default
    motionTranslation: _ranged("motionTranslation") = RANGES["motionTranslation"].default
    motionCount: _ranged("motionCount") = RANGES["motionCount"].default
    ghostCount: _ranged("ghostCount") = RANGES["ghostCount"].default
    ghostIntensity: _ranged("ghostIntensity") = RANGES["ghostIntensity"].default
    ghostAxis: _choice("ghostAxis") = "y"
    ghostRestore: _ranged("ghostRestore") = RANGES["ghostRestore"].default
    spikeCount: _ranged("spikeCount") = RANGES["spikeCount"].default
    spikeIntensity: _ranged("spikeIntensity") = RANGES["spikeIntensity"].default
    biasCoefficients: _ranged("biasCoefficients") = RANGES["biasCoefficients"].default
    biasOrder: _ranged("biasOrder") = RANGES["biasOrder"].default
    anisotropyFactor: _ranged("anisotropyFactor") = RANGES["anisotropyFactor"].default
    anisotropyAxis: _choice("anisotropyAxis") = "coarsest"
    seed: Annotated[int, WithinRange(0, 1000000)] = 0
    livePreview: bool = True
    showPerturbed: bool = True
    perturbedVolume: vtkMRMLScalarVolumeNode
    changesVolume: vtkMRMLLabelMapVolumeNode
    regionsSegmentation: vtkMRMLSegmentationNode  # where the local metrics look (ROI crops, boundary bands)
    referenceFolder: pathlib.Path  # an unset path reads as Path("."): see scene_logic.given_path
    evaluatedFolder: pathlib.Path
    encoder: Annotated[str, Choice(ENCODERS)] = "domain"
    metrics: str = "all"
    bootstrap: Annotated[int, WithinRange(0, 1000)] = 0
    segmenterPath: pathlib.Path  # unset: the shipped segmenter
    qualityModelPath: pathlib.Path  # unset: the shipped quality model
    trustBundle: bool = False  # a MONAI bundle segmenter runs its config's code: refused unless ticked
    segmentation: vtkMRMLSegmentationNode
    metricsTable: vtkMRMLTableNode
    downstreamTable: vtkMRMLTableNode
    resultsTable: vtkMRMLTableNode  # the table the Results section shows and exports


def parameterValues(p) -> dict:
    """The parameter node's values by name (what ``scene_logic.preview_key`` reads)."""
    return {name: p.getValue(name) for name in p.allParameters}


#
# Widget
#


class GenMedEvalWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: Input, Perturb (live preview), Evaluate, Downstream, Results; background work below."""

    PREVIEW_DELAY_MS = 300  # a slider drag becomes one preview
    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        # Attributes first: without a parent, ScriptedLoadableModuleWidget.__init__ calls setup() itself
        # (the self-test builds the panel that way), and its super().__init__() starts the observation mixin.
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._previewTimer = None
        self._jobTimer = None
        self._job = None
        self._jobFinished = None
        self._lastPreviewKey = None
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.uiPath())
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = GenMedEvalLogic()

        self._previewTimer = qt.QTimer()
        self._previewTimer.setSingleShot(True)
        self._previewTimer.setInterval(self.PREVIEW_DELAY_MS)
        self._previewTimer.connect("timeout()", self.onLivePreview)
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(self.POLL_INTERVAL_MS)
        self._jobTimer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.previewButton.connect("clicked(bool)", self.onPreviewButton)
        self.ui.showRegionsButton.connect("clicked(bool)", self.onShowRegions)
        self.ui.perturbationComboBox.toolTip = _(scene_logic.kinds_tooltip())
        self.ui.showPerturbedCheckBox.connect("toggled(bool)", self.onShowPerturbed)
        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluate)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.showTableButton.connect("clicked(bool)", self.onShowTable)
        self.ui.exportCsvButton.connect("clicked(bool)", lambda: self.onExport(".csv"))
        self.ui.exportHtmlButton.connect("clicked(bool)", lambda: self.onExport(".html"))
        self.ui.cancelButton.enabled = False
        self.initializeParameterNode()

    def uiPath(self) -> str:
        """``Resources/UI/GenMedEval.ui`` beside the module (installed), else in the repository (checkout)."""
        installed = self.resourcePath("UI/GenMedEval.ui")
        return installed if os.path.isfile(installed) else os.path.join(_resources_dir(), "UI", "GenMedEval.ui")

    def cleanup(self) -> None:
        """Stop timers, end background work, drop every observer and GUI binding."""
        for timer in (self._previewTimer, self._jobTimer):
            if timer is not None:
                timer.stop()
        self.onCancel()
        self.setParameterNode(None)
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._previewTimer is not None:
            self._previewTimer.stop()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterChanged)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if getattr(self.parent, "isEntered", False):  # a panel built without Slicer's module frame has no such flag
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterChanged)
        self._parameterNode = inputParameterNode
        self._lastPreviewKey = None
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterChanged)
            self.onParameterChanged()

    # -- state of the panel ---------------------------------------------------------------

    def onParameterChanged(self, caller=None, event=None) -> None:
        """Enable what can run, enable only the chosen perturbation's controls, schedule a live preview."""
        p = self._parameterNode
        if p is None:
            return
        used = scene_logic.controls_used(p.perturbation)
        for control, widget in self.perturbationControls():
            widget.enabled = control in used
        self.ui.perturbationNoteLabel.text = _(scene_logic.kind_note(p.perturbation))
        idle = self._job is None
        self.ui.previewButton.enabled = bool(p.inputVolume)
        self.ui.showRegionsButton.enabled = bool(p.inputVolume)
        self.ui.segmentButton.enabled = bool(p.inputVolume) and idle
        self.ui.evaluateButton.enabled = bool(scene_logic.given_path(p.referenceFolder)
                                              and scene_logic.given_path(p.evaluatedFolder)) and idle
        self.ui.cancelButton.enabled = not idle
        self.schedulePreview()

    def perturbationControls(self) -> tuple:
        """(parameter name, widget) of every perturbation control; only the chosen kind's are enabled."""
        ui = self.ui
        return (("noiseLevel", ui.noiseSlider), ("blurSigma", ui.blurSigmaSlider), ("bandMm", ui.bandSlider),
                ("amplitude", ui.amplitudeSlider), ("frequency", ui.frequencySlider),
                ("contrastStrength", ui.strengthSlider), ("mode", ui.modeComboBox),
                ("motionDegrees", ui.motionDegreesSlider), ("motionTranslation", ui.motionTranslationSlider),
                ("motionCount", ui.motionCountSlider), ("ghostCount", ui.ghostCountSlider),
                ("ghostIntensity", ui.ghostIntensitySlider), ("ghostAxis", ui.ghostAxisComboBox),
                ("ghostRestore", ui.ghostRestoreSlider), ("spikeCount", ui.spikeCountSlider),
                ("spikeIntensity", ui.spikeIntensitySlider), ("biasCoefficients", ui.biasCoefficientsSlider),
                ("biasOrder", ui.biasOrderSlider), ("anisotropyFactor", ui.anisotropyFactorSlider),
                ("anisotropyAxis", ui.anisotropyAxisComboBox))

    def schedulePreview(self) -> None:
        """Restart the debounce timer when a perturbation input changed (nothing else triggers a preview)."""
        p = self._parameterNode
        key = scene_logic.preview_key(parameterValues(p))
        if not p.livePreview or key == self._lastPreviewKey:
            return
        self._lastPreviewKey = key
        blocker = scene_logic.preview_blocker(p.perturbation, bool(p.inputVolume), bool(p.inputMask))
        if blocker:
            self._previewTimer.stop()
            self.ui.previewStatusLabel.text = _(blocker)
            return
        self._previewTimer.start()

    # -- perturbation preview -------------------------------------------------------------

    def onLivePreview(self) -> None:
        """A live preview: problems go to the panel's status line, never to a modal dialog."""
        try:
            self.runPreview()
        except Exception as exc:  # a bad value mid-drag must not interrupt the user
            self.ui.previewStatusLabel.text = _("Preview not updated: {reason}").format(reason=exc)
            logging.debug("GenMedEval live preview failed", exc_info=True)

    def onPreviewButton(self) -> None:
        """The explicit Apply: input problems in the panel, unexpected errors shown with their details."""
        from GenMedEvalLib.errors import GenMedEvalError

        try:
            self.runPreview()
        except GenMedEvalError as exc:
            self.ui.previewStatusLabel.text = str(exc)
        except Exception as exc:
            slicer.util.errorDisplay(_("Perturbation failed.") + f"\n\n{exc}")

    def runPreview(self) -> None:
        p = self._parameterNode
        blocker = scene_logic.preview_blocker(p.perturbation, bool(p.inputVolume), bool(p.inputMask))
        if blocker:
            self.ui.previewStatusLabel.text = _(blocker)
            return
        preview = self.logic.preview(p)
        self._lastPreviewKey = scene_logic.preview_key(parameterValues(p))
        self.ui.previewStatusLabel.text = _("{count} voxels changed ({ms} ms)").format(
            count=preview.changed_voxels, ms=f"{preview.seconds * 1000:.0f}")
        self.onShowPerturbed(p.showPerturbed)

    def onShowPerturbed(self, show: bool) -> None:
        """Toggle the slice views between the original and the perturbed volume (mask and changes as labels)."""
        p = self._parameterNode
        if p is None or not p.inputVolume:
            return
        background = p.perturbedVolume if show and p.perturbedVolume else p.inputVolume
        slicer.util.setSliceViewerLayers(background=background, label=p.changesVolume, labelOpacity=0.5, fit=False)

    # -- where the local metrics look -----------------------------------------------------

    def onShowRegions(self) -> None:
        """Outline the local metrics' ROI crops and boundary bands of the input volume and its tumour mask.

        As the explicit Apply: input problems (no or an empty mask) in the panel's status line,
        unexpected errors shown with their details.
        """
        from GenMedEvalLib.errors import GenMedEvalError

        try:
            self.logic.showRegions(self._parameterNode)
        except GenMedEvalError as exc:
            self.ui.statusLabel.text = str(exc)
            return
        except Exception as exc:
            slicer.util.errorDisplay(_("Could not show where the local metrics look.") + f"\n\n{exc}")
            return
        self.ui.statusLabel.text = _("Outlined: the ROI crops of the _roi metrics and the boundary bands of the "
                                     "_band metrics.")

    # -- background work ------------------------------------------------------------------

    def startJob(self, steps, onDone) -> None:
        """Run ``steps`` in the background; ``onDone()`` loads the results when every step succeeded."""
        self._job = scene_logic.BackgroundJob(steps, env=self.logic.backgroundEnvironment(),
                                              cwd=_library_root())
        self._jobFinished = onDone
        self.ui.progressBar.value = 0
        status = self._job.start()
        self.showJobStatus(status)
        if status.finished:
            self.endJob(status)
        else:
            self._jobTimer.start()
            self.onParameterChanged()

    def onPollJob(self) -> None:
        if self._job is None:
            self._jobTimer.stop()
            return
        status = self._job.poll()
        self.showJobStatus(status)
        if status.finished:
            self.endJob(status)

    def showJobStatus(self, status) -> None:
        self.ui.progressBar.value = status.percent
        last = next((line.strip() for line in reversed(status.lines) if line.strip()), "")
        if status.finished:
            self.ui.statusLabel.text = status.message
        elif last and scene_logic.progress_percent(last) is None:
            self.ui.statusLabel.text = last[-200:]
        elif status.message:
            self.ui.statusLabel.text = status.message

    def endJob(self, status) -> None:
        """Stop polling; load the results of a successful job; a failure or cancel stays in the panel."""
        self._jobTimer.stop()
        onDone, self._job, self._jobFinished = self._jobFinished, None, None
        if status.state == "done" and onDone is not None:
            try:
                onDone()
                self.ui.progressBar.value = 100
            except Exception as exc:
                self.ui.statusLabel.text = _("Could not load the results: {reason}").format(reason=exc)
                logging.error("GenMedEval: loading results failed", exc_info=True)
        self.onParameterChanged()

    def onCancel(self) -> None:
        if self._job is not None:
            status = self._job.cancel()
            self.endJob(status)
            self.ui.statusLabel.text = _("Cancelled.")

    def dependencySteps(self) -> list:
        """Torch through the PyTorch extension; other packages: pip_ensure (5.12+) now, else a background pip step."""
        self.logic.ensureTorch(askConfirmation=True)
        missing = self.logic.missingPythonPackages()
        if not missing:
            return []
        if self.logic.hasPipEnsure():
            self.logic.installPythonPackages(missing)
            return []
        if not slicer.util.confirmOkCancelDisplay(
                _("GenMedEval will install these Python packages: {names}. Continue?").format(names=", ".join(missing))):
            raise RuntimeError(_("Missing Python packages: {names}").format(names=", ".join(missing)))
        return [scene_logic.pip_step(self.logic.pythonExecutable(), missing)]

    # -- evaluate -------------------------------------------------------------------------

    def onEvaluate(self) -> None:
        """The metric suite in the background process; its CSV becomes the metrics table."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the evaluation.")):
            steps = self.dependencySteps()
            outCsv = os.path.join(tempfile.mkdtemp(prefix="GenMedEval-metrics-"), "metrics.csv")
            steps.append(self.logic.evaluateStep(p, outCsv))
            self.startJob(steps, lambda: self.onEvaluateDone(outCsv))

    def onEvaluateDone(self, outCsv: str) -> None:
        p = self._parameterNode
        p.metricsTable = self.logic.loadResultTable(outCsv, p.metricsTable)
        p.resultsTable = p.metricsTable
        self.ui.statusLabel.text = _("Metrics done.")
        self.onShowTable()

    # -- downstream -----------------------------------------------------------------------

    def onSegment(self) -> None:
        """Segmentation and quality prediction in the background process."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the segmentation.")):
            steps = self.dependencySteps()
            run, downstreamSteps = self.logic.prepareDownstream(p)
            self.startJob(steps + downstreamSteps, lambda: self.onSegmentDone(run))

    def onSegmentDone(self, run) -> None:
        p = self._parameterNode
        segmentation, score = self.logic.loadDownstream(p, run)
        p.resultsTable = p.downstreamTable
        self.ui.predictedDiceLabel.text = (_("Predicted Dice: {score}").format(score=f"{score:.3f}")
                                           if score == score else _("The segmenter found no tumour."))
        self.ui.statusLabel.text = _("Segmentation and quality prediction done.")

    # -- results --------------------------------------------------------------------------

    def onShowTable(self) -> None:
        table = self._parameterNode.resultsTable
        if table:
            layoutManager = slicer.app.layoutManager()
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def onExport(self, suffix: str) -> None:
        table = self._parameterNode.resultsTable
        if not table:
            slicer.util.errorDisplay(_("No result table to export."))
            return
        path = qt.QFileDialog.getSaveFileName(None, _("Export results"), f"{table.GetName()}{suffix}", f"*{suffix}")
        if path:
            with slicer.util.tryWithErrorDisplay(_("Export failed.")):
                self.logic.exportTable(table, path)


#
# Logic
#


class GenMedEvalLogic(ScriptedLoadableModuleLogic):
    """Everything the module does, usable without the widget (scripts, the self-test)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._sceneLogic = None

    def getParameterNode(self):
        return GenMedEvalParameterNode(super().getParameterNode())

    @property
    def sceneLogic(self):
        """The library's scene logic bound to Slicer's scene."""
        if self._sceneLogic is None or self._sceneLogic.scene is not slicer.mrmlScene:
            self._sceneLogic = scene_logic.SceneLogic(slicer.mrmlScene)
        return self._sceneLogic

    # -- dependencies ---------------------------------------------------------------------

    @staticmethod
    def torchAvailable() -> bool:
        import importlib.util

        return importlib.util.find_spec("torch") is not None

    def ensureTorch(self, askConfirmation: bool = True) -> None:
        """Torch through the PyTorch extension, at least ``TORCH_REQUIREMENT``."""
        if self.torchAvailable() and not scene_logic.missing_requirements([f"torch{TORCH_REQUIREMENT}"]):
            return
        try:
            import PyTorchUtils
        except ImportError as exc:
            raise RuntimeError(_("GenMedEval needs PyTorch: install the 'PyTorch' extension from the Extensions "
                                 "Manager, then restart Slicer.")) from exc
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askConfirmation,
                                                              torchVersionRequirement=TORCH_REQUIREMENT)
        if torch is None:
            raise RuntimeError(_("PyTorch {requirement} is required and was not installed.").format(
                requirement=TORCH_REQUIREMENT))

    @staticmethod
    def missingPythonPackages() -> list:
        return scene_logic.missing_requirements(REQUIREMENTS)

    @staticmethod
    def hasPipEnsure() -> bool:
        return hasattr(getattr(slicer, "packaging", None), "pip_ensure")

    def installPythonPackages(self, requirements) -> None:
        """Slicer's own installers: ``slicer.packaging.pip_ensure`` (5.12+), else ``slicer.util.pip_install``."""
        if self.hasPipEnsure():
            slicer.packaging.pip_ensure(list(requirements), requester="GenMedEval")
        else:
            slicer.util.pip_install(list(requirements))

    def ensureDependencies(self, askConfirmation: bool = True) -> None:
        """Everything at once, blocking (scripts and the self-test; the widget installs in the background)."""
        self.ensureTorch(askConfirmation=askConfirmation)
        missing = self.missingPythonPackages()
        if missing:
            self.installPythonPackages(missing)

    # -- background processes -------------------------------------------------------------

    @staticmethod
    def pythonExecutable() -> str:
        """PythonSlicer (Slicer's Python with its packages); the running Python where there is none (tests)."""
        name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
        found = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
        return found if os.path.isfile(found) else sys.executable

    @staticmethod
    def backgroundEnvironment() -> dict:
        """The environment of a background process: Slicer's startup environment, the library and its resources."""
        env = dict(os.environ)
        if getattr(slicer, "app", None) is not None and hasattr(slicer.util, "startupEnvironment"):
            env = dict(slicer.util.startupEnvironment())
        env["PYTHONPATH"] = os.pathsep.join([_library_root()] + [p for p in [env.get("PYTHONPATH")] if p])
        env["GENMEDEVAL_RESOURCES"] = os.environ.get("GENMEDEVAL_RESOURCES", _resources_dir())
        env.pop("GENMEDEVAL_NO_PROGRESS", None)
        return env

    def evaluateStep(self, p, outCsv: str):
        """The Evaluate section's ``genmedeval metrics`` command."""
        args = scene_logic.evaluate_command(scene_logic.given_path(p.referenceFolder),
                                            scene_logic.given_path(p.evaluatedFolder), outCsv, encoder=p.encoder,
                                            metrics=p.metrics, bootstrap=p.bootstrap, seed=p.seed)
        return scene_logic.genmedeval_step(self.pythonExecutable(), args, _("Metrics"))

    def prepareDownstream(self, p, folder: str | None = None):
        """Write the input (and mask) for the background segmentation; return the run and its steps."""
        if not p.inputVolume:
            raise ValueError(_("Select an input volume."))
        run = scene_logic.DownstreamRun(pathlib.Path(folder or tempfile.mkdtemp(prefix="GenMedEval-downstream-")))
        withTruth = scene_logic.DownstreamScene(self.sceneLogic).prepare(run, p.inputVolume, p.inputMask)
        steps = run.steps(self.pythonExecutable(), segmenter=p.segmenterPath, predictor=p.qualityModelPath,
                          with_truth=withTruth, trust_bundle=p.trustBundle)
        return run, steps

    def loadDownstream(self, p, run):
        """The finished run's segmentation and table into the scene; returns (segmentation node, predicted Dice)."""
        segmentation, score, table = scene_logic.DownstreamScene(self.sceneLogic).load(
            run, p.inputVolume, segmentation_node=p.segmentation, table_node=p.downstreamTable)
        p.segmentation, p.downstreamTable = segmentation, table
        return segmentation, score

    def runDownstream(self, p, timeout: float = 600.0):
        """Segmentation and quality prediction in the background process, waited for (scripts, self-test)."""
        run, steps = self.prepareDownstream(p)
        status = scene_logic.BackgroundJob(steps, env=self.backgroundEnvironment(), cwd=_library_root()).wait(timeout)
        if status.state != "done":
            raise RuntimeError(status.message)
        return self.loadDownstream(p, run)

    # -- perturbation preview -------------------------------------------------------------

    def preview(self, parameterNode):
        """Perturb the input volume into ``perturbedVolume`` and the mask + changed voxels into ``changesVolume``."""
        p = parameterNode
        if not p.inputVolume:
            raise ValueError(_("Select an input volume."))
        controls = {name: p.getValue(name) for name in scene_logic.controls_used(p.perturbation)}
        result = self.sceneLogic.perturb(p.inputVolume, p.perturbation,
                                         scene_logic.module_params(p.perturbation, controls),
                                         mask_node=p.inputMask, seed=p.seed, output_node=p.perturbedVolume,
                                         overlay_node=p.changesVolume)
        p.perturbedVolume = result.volume_node
        p.changesVolume = result.overlay_node
        return result

    def showRegions(self, parameterNode):
        """The local metrics' ROI crops and boundary bands of the input volume as ``regionsSegmentation``."""
        p = parameterNode
        if not p.inputVolume:
            raise ValueError(_("Select an input volume."))
        p.regionsSegmentation = self.sceneLogic.show_regions(p.inputVolume, p.inputMask,
                                                             segmentation_node=p.regionsSegmentation)
        return p.regionsSegmentation

    # -- tables ---------------------------------------------------------------------------

    def loadResultTable(self, csvPath: str, tableNode=None):
        """The metrics CSV written by the background process as a table node."""
        return self.sceneLogic.load_result_csv(csvPath, table_node=tableNode)

    def exportTable(self, tableNode, path: str):
        return self.sceneLogic.export_table(tableNode, path)


#
# Test
#


class GenMedEvalTest(ScriptedLoadableModuleTest):
    """Self-test on Slicer's sample data MRBrainTumor1: widget, parameter node, preview, segmentation, quality."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_GenMedEval_MRBrainTumor1()

    def test_GenMedEval_MRBrainTumor1(self):
        import SampleData

        self.delayDisplay(_("Loading sample data MRBrainTumor1"))
        volumeNode = SampleData.SampleDataLogic().downloadSample("MRBrainTumor1")
        self.assertIsNotNone(volumeNode)
        self.checkLogic(volumeNode)
        self.checkWidget(volumeNode)
        self.delayDisplay(_("Test passed"))

    def checkWidget(self, volumeNode) -> None:
        """Build the panel; the parameter node drives its controls and a preview fills the perturbed volume."""
        widget = GenMedEvalWidget()
        try:
            p = widget._parameterNode
            p.inputVolume = volumeNode
            self.assertIs(widget.ui.inputVolumeSelector.currentNode(), volumeNode)
            p.perturbation = "gaussian_noise"
            self.assertEqual(widget.ui.perturbationComboBox.currentText, "gaussian_noise")
            self.assertTrue(widget.ui.noiseSlider.enabled)
            self.assertFalse(widget.ui.blurSigmaSlider.enabled)
            widget.runPreview()
            self.assertIsNotNone(p.perturbedVolume)
            self.assertIn("voxels changed", widget.ui.previewStatusLabel.text)
        finally:
            widget.cleanup()
            widget.parent.deleteLater()  # a panel built without a parent is the caller's to delete

    def checkLogic(self, volumeNode, segmenterPath=None, qualityModelPath=None) -> None:
        """Preview with a rough tumour mask, then (with torch) segmentation and quality in the background process.

        Unset model paths mean the shipped models. Also run by the test suite on the slicer-core wheel
        (Testing/test_slicer_bindings.py), there with small test-made models.
        """
        import numpy as np

        from GenMedEvalLib import mrml

        logic = GenMedEvalLogic()
        p = logic.getParameterNode()
        volume = mrml.volume_from_node(volumeNode)
        rough = scene_logic.rough_tumour_mask(volume.array)
        self.assertGreater(int(rough.sum()), 0)
        maskNode = mrml.add_volume_node(slicer.mrmlScene, volume, "rough tumour mask", array=rough, label=True)

        self.delayDisplay(_("Perturbing (boundary blur)"))
        p.inputVolume, p.inputMask, p.perturbation = volumeNode, maskNode, "boundary_blur"
        p.blurSigma = 2.0
        result = logic.preview(p)
        self.assertGreater(result.changed_voxels, 0)
        changes = mrml.array_from_node(p.changesVolume)
        self.assertTrue(((changes == 1) <= (rough > 0)).all())  # label 1: mask voxels the blur left alone
        self.assertEqual(int((changes == 2).sum()), result.changed_voxels)

        if not logic.torchAvailable():
            self.delayDisplay(_("PyTorch is not installed (install the PyTorch extension, then torch with its "
                                "PyTorch Utils module): skipping segmentation and quality prediction"))
            return
        missing = logic.missingPythonPackages()
        if missing:
            self.delayDisplay(_("Installing {names}").format(names=", ".join(missing)))
            logic.installPythonPackages(missing)
        self.delayDisplay(_("Segmentation and quality prediction in the background process"))
        if segmenterPath:
            p.segmenterPath = pathlib.Path(segmenterPath)
        if qualityModelPath:
            p.qualityModelPath = pathlib.Path(qualityModelPath)
        segmentation, score = logic.runDownstream(p)
        self.assertTrue(segmentation.IsA("vtkMRMLSegmentationNode"))
        self.assertIs(p.segmentation, segmentation)
        rows = mrml.table_to_rows(p.downstreamTable)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["volume"], volumeNode.GetName())
        segmented = mrml.mask_from_node(slicer.mrmlScene, segmentation, volumeNode)
        self.assertEqual(int(rows[0]["mask_voxels"]), int(segmented.sum()))
        if segmented.any():
            self.assertTrue(0.0 <= score <= 1.0)
            self.assertAlmostEqual(rows[0]["predicted_dice"], score)
        self.assertTrue(np.isfinite(rows[0]["true_dice"]))  # the rough mask served as truth
        self.assertIsNot(p.downstreamTable, p.metricsTable)
