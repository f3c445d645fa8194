"""Stand-ins for the parts of desktop Slicer that need a Qt application, around Slicer 5.10's own Python code.

Desktop Slicer cannot run here. ``install()`` puts Slicer 5.10's real ``parameterNodeWrapper``,
``ScriptedLoadableModule``, ``util`` and ``i18n`` (read from ``../shared/slicer-5.10``, never
copied) into the ``slicer`` package, over the real MRML of the ``slicer-core`` wheel (or, under a
Python without the wheel, minimal pure-Python node classes). What is stood in: the ``qt`` and
``ctk`` widget classes that the ``.ui`` names, with the properties and signals that
``guiConnectors.py`` and the module use (values clamp to their range and signals fire only on a
change, as in Qt), ``qt.QUiLoader`` building the widget tree from the ``.ui`` file (properties,
dynamic ``SlicerParameterName``, items, the scene connections), ``qt.QTimer`` (fired by the test),
``slicer.app`` and the four ``slicer.util`` functions that need the main window
(``setSliceViewerLayers``, ``errorDisplay``, ``confirmOkCancelDisplay``, ``infoDisplay``).

Standard library only at import, so Python 3.12 can load it without any package.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SLICER_510 = ROOT.parent / "shared" / "slicer-5.10"
SLICER_PYTHON = SLICER_510 / "Base" / "Python" / "slicer"
MODULE_FILE = ROOT / "GenMedEval" / "GenMedEval.py"
UI_FILE = ROOT / "Resources" / "UI" / "GenMedEval.ui"
ABSENT = f"Slicer 5.10's Python code not found at {SLICER_510} (a user's clone has no ../shared/)"


def python312() -> str | None:
    """A working Python 3.12 (Slicer 5.10's version): pyenv's, else one on PATH; None when there is none."""
    import glob
    import shutil
    import subprocess

    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    candidates.append(shutil.which("python3.12"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return candidate
    return None


def slicer_code_present() -> bool:
    return (SLICER_PYTHON / "parameterNodeWrapper" / "guiConnectors.py").is_file()


# -- signals and widgets ---------------------------------------------------------------------

class Signal:
    """A Qt signal as PythonQt exposes it: ``connect``/``disconnect`` a callable; extra arguments are dropped."""

    def __init__(self, name: str):
        self.name = name
        self.slots: list = []

    def connect(self, slot) -> None:
        self.slots.append(slot)

    def disconnect(self, slot) -> None:
        self.slots.remove(slot)  # ValueError when not connected, like PythonQt's RuntimeError

    def emit(self, *args) -> None:
        for slot in list(self.slots):
            slot(*args[:_arity(slot, len(args))])


def _arity(slot, given: int) -> int:
    try:
        params = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return given
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return given
    return min(given, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params))


class QObject:
    """Named object with dynamic properties, children and PythonQt-style string connections."""

    SIGNALS: tuple[str, ...] = ()
    PROPERTIES: tuple[str, ...] = ("objectName", "geometry", "toolTip", "enabled", "visible", "text")

    def __init__(self, parent=None):
        self._parent = parent
        self._children: list = []
        self._dynamic: dict[str, Any] = {}
        self.name = ""
        self.enabled = True
        self.visible = True
        self.toolTip = ""
        for signal in self._all_signals():
            setattr(self, signal, Signal(signal))
        if parent is not None:
            parent._children.append(self)

    @classmethod
    def _all_signals(cls) -> set[str]:
        return {s for klass in cls.__mro__ for s in getattr(klass, "SIGNALS", ())}

    @classmethod
    def known_properties(cls) -> set[str]:
        return {p for klass in cls.__mro__ for p in getattr(klass, "PROPERTIES", ())}

    def parent(self):
        return self._parent

    def children(self) -> list:
        return list(self._children)

    def findChildren(self, cls) -> list:
        found = []
        for child in self._children:
            if isinstance(child, cls):
                found.append(child)
            found += child.findChildren(cls)
        return found

    def property(self, name: str):
        return self._dynamic.get(name)

    def setProperty(self, name: str, value) -> None:
        self._dynamic[name] = value

    def isWidgetType(self) -> bool:
        return True

    def deleteLater(self) -> None:
        self.visible = False

    def className(self) -> str:
        return type(self).__name__

    def connect(self, signature: str, slot) -> None:
        getattr(self, signature.split("(")[0]).connect(slot)

    def disconnect(self, signature: str, slot) -> None:
        getattr(self, signature.split("(")[0]).disconnect(slot)


class QWidget(QObject):
    PROPERTIES = ("minimumSize", "maximumSize", "sizePolicy")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layout = None

    def setLayout(self, layout) -> None:
        self._layout = layout
        layout.owner = self

    def layout(self):
        return self._layout

    def show(self) -> None:
        self.visible = True


class QLayout:
    """Layouts only collect widgets (their geometry is irrelevant here)."""

    def __init__(self, parent=None):
        self.owner = parent
        self.widgets: list = []

    def addWidget(self, widget, *args) -> None:
        self.widgets.append(widget)
        if self.owner is not None and widget.parent() is None:
            widget._parent = self.owner
            self.owner._children.append(widget)


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QFormLayout(QLayout):
    pass


class _Ranged(QWidget):
    """A value clamped to [minimum, maximum]; ``valueChanged`` fires when the value changes."""

    SIGNALS = ("valueChanged",)
    PROPERTIES = ("minimum", "maximum", "value", "singleStep", "decimals", "suffix", "prefix", "pageStep",
                  "orientation", "tracking")
    INTEGER = False

    def __init__(self, parent=None):
        self._min, self._max, self._value = 0.0, 99.0, 0.0
        self.singleStep, self.decimals, self.suffix, self.prefix = 1, 2, "", ""
        super().__init__(parent)

    def _cast(self, value):
        return int(value) if self.INTEGER else float(value)

    def _set_value(self, value) -> None:
        value = self._cast(min(max(value, self._min), self._max))
        if value != self._value:
            self._value = value
            self.valueChanged.emit(value)

    minimum = property(lambda self: self._min, lambda self, v: self.setRange(v, max(v, self._max)))
    maximum = property(lambda self: self._max, lambda self, v: self.setRange(min(v, self._min), v))
    value = property(lambda self: self._value, _set_value)

    def setRange(self, low, high) -> None:
        self._min, self._max = self._cast(low), self._cast(high)
        self._set_value(self._value)

    def setMinimum(self, low) -> None:
        self.minimum = low

    def setMaximum(self, high) -> None:
        self.maximum = high


class QSpinBox(_Ranged):
    INTEGER = True


class QSlider(_Ranged):
    INTEGER = True


class QDoubleSpinBox(_Ranged):
    pass


class QProgressBar(_Ranged):
    INTEGER = True

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setRange(0, 100)


class QAbstractButton(QWidget):
    SIGNALS = ("clicked", "toggled", "stateChanged")
    PROPERTIES = ("checkable", "checked", "icon", "flat", "autoDefault")

    def __init__(self, parent=None):
        self._checked = False
        self.checkable = False
        self.text = ""
        super().__init__(parent)

    def _set_checked(self, value) -> None:
        value = bool(value)
        if value != self._checked:
            self._checked = value
            self.toggled.emit(value)
            self.stateChanged.emit(2 if value else 0)

    checked = property(lambda self: self._checked, _set_checked)

    def click(self) -> None:
        if self.checkable:
            self.checked = not self.checked
        self.clicked.emit(self.checked)


class QPushButton(QAbstractButton):
    pass


class QCheckBox(QAbstractButton):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.checkable = True


class QLabel(QWidget):
    PROPERTIES = ("wordWrap", "alignment", "textFormat", "openExternalLinks")

    def __init__(self, parent=None):
        self.text = ""
        super().__init__(parent)


class QLineEdit(QWidget):
    SIGNALS = ("textChanged", "editingFinished")
    PROPERTIES = ("placeholderText", "readOnly")

    def __init__(self, parent=None):
        self._text = ""
        super().__init__(parent)

    def _set_text(self, value) -> None:
        value = str(value)
        if value != self._text:
            self._text = value
            self.textChanged.emit(value)

    text = property(lambda self: self._text, _set_text)


class QTextEdit(QLineEdit):
    def toPlainText(self) -> str:
        return self.text

    def setPlainText(self, value) -> None:
        self.text = value


class QComboBox(QWidget):
    SIGNALS = ("currentIndexChanged", "currentTextChanged")
    PROPERTIES = ("currentIndex", "editable")

    def __init__(self, parent=None):
        self._items: list[str] = []
        self._index = -1
        super().__init__(parent)

    def _set_index(self, index) -> None:
        index = int(index) if -1 <= int(index) < len(self._items) else -1
        if index != self._index:
            self._index = index
            self.currentIndexChanged.emit(index)
            self.currentTextChanged.emit(self.currentText)

    currentIndex = property(lambda self: self._index, _set_index)
    currentText = property(lambda self: self._items[self._index] if self._index >= 0 else "")

    def addItem(self, text) -> None:
        self._items.append(str(text))
        if self._index < 0:
            self.currentIndex = 0

    def addItems(self, texts) -> None:
        for text in texts:
            self.addItem(text)

    def clear(self) -> None:
        self._items = []
        self.currentIndex = -1

    def count(self) -> int:
        return len(self._items)

    def itemText(self, index: int) -> str:
        return self._items[index]


class QIcon:
    def __init__(self, path=""):
        self.path = str(path)


class QColor:
    """Only constructed and named by the wrapper's serializer (no colour parameter here)."""

    def __init__(self, *args):
        self.args = args

    def name(self, *args) -> str:
        return "#000000"


class QSettings:
    """No stored settings (Slicer's defaults apply)."""

    def contains(self, key) -> bool:
        return False

    def value(self, key, default=None):
        return default


class QTimer:
    """A timer the test fires by hand (``fire()``); ``start`` only marks it active."""

    def __init__(self, parent=None):
        self.timeout = Signal("timeout")
        self.active = False
        self.single = False
        self.interval = 0
        self.starts = 0

    def setSingleShot(self, single: bool) -> None:
        self.single = bool(single)

    def setInterval(self, msec: int) -> None:
        self.interval = int(msec)

    def start(self, msec: int | None = None) -> None:
        self.active, self.starts = True, self.starts + 1

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:
        return self.active

    def connect(self, signature: str, slot) -> None:
        getattr(self, signature.split("(")[0]).connect(slot)

    def fire(self) -> None:
        if self.active:
            if self.single:
                self.active = False
            self.timeout.emit()

    @staticmethod
    def singleShot(msec, slot) -> None:
        slot()


class QFile:
    ReadOnly = 1

    def __init__(self, path):
        self.path = str(path)

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def open(self, mode) -> bool:
        return self.exists()


class QFileDialog:
    @staticmethod
    def getSaveFileName(*args) -> str:
        return ""


class Qt:
    WaitCursor = 3


# -- ctk and Slicer widgets ------------------------------------------------------------------

class ctkSliderWidget(QDoubleSpinBox):
    pass


class ctkDoubleSpinBox(QDoubleSpinBox):
    pass


class ctkDoubleSlider(QDoubleSpinBox):
    pass


class ctkCheckBox(QCheckBox):
    pass


class ctkCheckablePushButton(QPushButton):
    PROPERTIES = ("checkBoxControlsButtonToggleState",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.checkBoxControlsButtonToggleState = False


class ctkComboBox(QComboBox):
    pass


class ctkCollapsibleButton(QAbstractButton):
    PROPERTIES = ("collapsed", "collapsedHeight", "contentsFrameShape")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.collapsed = False


class ctkPathLineEdit(QWidget):
    SIGNALS = ("currentPathChanged", "validInputChanged")
    PROPERTIES = ("filters", "nameFilters", "showBrowseButton", "showHistoryButton", "settingKey")
    Dirs, Files = 1, 2

    def __init__(self, parent=None):
        self._path = ""
        super().__init__(parent)

    def _set_path(self, value) -> None:
        value = str(value)
        if value != self._path:
            self._path = value
            self.currentPathChanged.emit(value)

    currentPath = property(lambda self: self._path, _set_path)


class ctkDirectoryButton(ctkPathLineEdit):
    SIGNALS = ("directoryChanged",)


class ctkRangeWidget(QDoubleSpinBox):
    SIGNALS = ("valuesChanged",)


class ctkDoubleRangeSlider(ctkRangeWidget):
    pass


class ctkColorPickerButton(QPushButton):
    SIGNALS = ("colorChanged",)


class qMRMLWidget(QWidget):
    SIGNALS = ("mrmlSceneChanged",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.scene = None

    def setMRMLScene(self, scene) -> None:
        self.scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return self.scene


class qSlicerWidget(qMRMLWidget):
    pass


class qMRMLNodeComboBox(qMRMLWidget):
    """Offers the scene's nodes of ``nodeTypes``; a node of another class (or outside the scene) selects none."""

    SIGNALS = ("currentNodeChanged", "currentNodeIDChanged", "nodeAdded")
    PROPERTIES = ("nodeTypes", "showChildNodeTypes", "noneEnabled", "addEnabled", "removeEnabled", "renameEnabled",
                  "editEnabled", "selectNodeUponCreation", "showHidden", "baseName", "noneDisplay")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.nodeTypes = ()
        self.noneEnabled = False
        self._node = None

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node) -> None:
        accepted = node is not None and self.scene is not None and self.scene.IsNodePresent(node) and any(
            node.IsA(cls) for cls in self.nodeTypes)
        node = node if accepted else None
        if node is not self._node:
            self._node = node
            self.currentNodeChanged.emit(node)


class qMRMLSliderWidget(ctkSliderWidget):
    pass


class qMRMLSpinBox(ctkDoubleSpinBox):
    pass


class qMRMLRangeWidget(ctkRangeWidget):
    pass


QT_CLASSES = (QObject, QWidget, QLayout, QVBoxLayout, QHBoxLayout, QFormLayout, QSpinBox, QSlider, QDoubleSpinBox,
              QProgressBar, QAbstractButton, QPushButton, QCheckBox, QLabel, QLineEdit, QTextEdit, QComboBox, QIcon, QColor,
              QSettings, QTimer, QFile, QFileDialog, Qt)
CTK_CLASSES = (ctkSliderWidget, ctkDoubleSpinBox, ctkDoubleSlider, ctkCheckBox, ctkCheckablePushButton, ctkComboBox,
               ctkCollapsibleButton, ctkPathLineEdit, ctkDirectoryButton, ctkRangeWidget, ctkDoubleRangeSlider,
               ctkColorPickerButton)
SLICER_WIDGETS = (qMRMLWidget, qSlicerWidget, qMRMLNodeComboBox, qMRMLSliderWidget, qMRMLSpinBox, qMRMLRangeWidget)


# -- the .ui loader --------------------------------------------------------------------------

def _ui_value(prop: ET.Element):
    value = prop[0]
    tag, text = value.tag, value.text or ""
    if tag == "bool":
        return text == "true"
    if tag in ("number", "double"):
        return float(text) if tag == "double" else int(text)
    if tag == "stringlist":
        return tuple(s.text or "" for s in value.findall("string"))
    if tag in ("enum", "set"):
        return text
    if tag == "string":
        return text
    return None  # rect, size, ...: layout only


class QUiLoader:
    """Builds the ``.ui`` widget tree from the stand-in classes; an unknown class or property raises."""

    def __init__(self, classes: dict[str, type] | None = None):
        self.classes = classes or {c.__name__: c for c in QT_CLASSES + CTK_CLASSES + SLICER_WIDGETS}

    def load(self, qfile):
        root = ET.parse(qfile.path).getroot()
        top = self._widget(root.find("widget"), None)
        names = {w.name: w for w in [top, *top.findChildren(QWidget)]}
        for connection in root.iter("connection"):
            sender, receiver = names[connection.findtext("sender")], names[connection.findtext("receiver")]
            signal, slot = connection.findtext("signal").split("(")[0], connection.findtext("slot").split("(")[0]
            getattr(sender, signal).connect(getattr(receiver, slot))
        return top

    def _widget(self, element: ET.Element, parent):
        cls = self.classes.get(element.get("class"))
        if cls is None:
            raise RuntimeError(f"no stand-in for widget class {element.get('class')}")
        widget = cls(parent)
        widget.name = element.get("name", "")
        for prop in element.findall("property"):
            name, value = prop.get("name"), _ui_value(prop)
            if prop.get("stdset") == "0":
                widget.setProperty(name, value)
            elif name not in cls.known_properties():
                raise RuntimeError(f"{cls.__name__} {widget.name}: no property {name!r}")
            elif value is not None and name not in ("geometry",):
                setattr(widget, name, value)
        for item in element.findall("item"):  # combo box items
            widget.addItem(item.findtext("property/string") or "")
        for layout in element.findall("layout"):
            self._layout(layout, widget)
        return widget

    def _layout(self, layout: ET.Element, owner) -> None:
        for item in layout.findall("item"):
            for child in item:
                if child.tag == "widget":
                    self._widget(child, owner)
                elif child.tag == "layout":
                    self._layout(child, owner)


def load_ui(path: str | Path = UI_FILE):
    """The ``.ui``'s top widget, built as ``slicer.util.loadUI`` does (through ``qt.QUiLoader``)."""
    return QUiLoader().load(QFile(path))


# -- slicer.app and the rest -----------------------------------------------------------------

class _Environment:
    def __init__(self, env):
        self.env = dict(env)

    def keys(self):
        return list(self.env)

    def value(self, key):
        return self.env.get(key, "")


class FakeModuleManager:
    def __init__(self):
        self.moduleAboutToBeUnloaded = Signal("moduleAboutToBeUnloaded")

    def connect(self, signature, slot) -> None:
        self.moduleAboutToBeUnloaded.connect(slot)

    def disconnect(self, signature, slot) -> None:
        self.moduleAboutToBeUnloaded.disconnect(slot)


class _Calls:
    """Any method call is recorded as (name, args); returns itself, so chains like a().b().c() work."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append((name, args))
            return self
        return call


class FakeApp:
    """``slicer.app`` as far as the module, i18n and ScriptedLoadableModule use it."""

    def __init__(self):
        self.manager = FakeModuleManager()
        self.cursor_overrides = 0
        self.layout = _Calls()
        self.logic = _Calls()

    def layoutManager(self):
        return self.layout

    def applicationLogic(self):
        return self.logic

    def translate(self, context, text):
        return text

    def moduleManager(self):
        return self.manager

    def testingEnabled(self) -> bool:
        return True

    def startupEnvironment(self):
        return _Environment(os.environ)

    def setOverrideCursor(self, cursor) -> None:
        self.cursor_overrides += 1

    def restoreOverrideCursor(self) -> None:
        self.cursor_overrides -= 1

    def processEvents(self) -> None:
        pass


class Recorder:
    """Records calls of the ``slicer.util`` display functions that need the main window."""

    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []

    def make(self, name: str, result=None):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return result
        return record

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


# -- pure-Python MRML node classes (only where the slicer-core wheel is absent) --------------

def _pure_mrml_classes() -> dict[str, type]:
    class vtkMRMLNode:
        def __init__(self):
            if type(self) is vtkMRMLNode:
                raise TypeError("this is an abstract class and cannot be instantiated")
            self._params, self._refs, self._observers = {}, {}, {}

        def GetClassName(self):
            return type(self).__name__

        def IsA(self, name):
            return any(k.__name__ == name for k in type(self).__mro__)

        def GetID(self):
            return f"{type(self).__name__}{id(self)}"

        def StartModify(self):
            return 0

        def EndModify(self, was):
            return 0

        def Modified(self):
            for callback in list(self._observers.values()):
                callback(self, "ModifiedEvent")

        def AddObserver(self, event, callback, priority=0.0):
            tag = len(self._observers) + 1
            self._observers[tag] = callback
            return tag

        def RemoveObserver(self, tag):
            self._observers.pop(tag, None)

    class vtkMRMLScriptedModuleNode(vtkMRMLNode):
        def SetParameter(self, name, value):
            self._params[name] = value

        def GetParameter(self, name):
            return self._params.get(name, "")

        def HasParameter(self, name):
            return name in self._params

        def UnsetParameter(self, name):
            self._params.pop(name, None)

        def SetNodeReferenceID(self, name, node_id):
            self._refs[name] = node_id

        def GetNodeReference(self, name):
            return None

        def RemoveNodeReferenceIDs(self, name):
            self._refs.pop(name, None)

    class vtkMRMLScalarVolumeNode(vtkMRMLNode):
        pass

    class vtkMRMLLabelMapVolumeNode(vtkMRMLScalarVolumeNode):
        pass

    class vtkMRMLSegmentationNode(vtkMRMLNode):
        pass

    class vtkMRMLTableNode(vtkMRMLNode):
        pass

    return {c.__name__: c for c in (vtkMRMLNode, vtkMRMLScriptedModuleNode, vtkMRMLScalarVolumeNode,
                                     vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode)}


# -- installing and removing it all ----------------------------------------------------------

def _module(name: str, members) -> types.ModuleType:
    module = types.ModuleType(name)
    for member in members:
        setattr(module, member.__name__, member)
    return module


def _load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Installed:
    """What ``install`` changed; ``restore()`` puts the interpreter back (other tests use the plain wheel)."""

    def __init__(self):
        self.saved_modules: dict[str, Any] = {}
        self.saved_attrs: dict[str, Any] = {}
        self.slicer = None
        self.recorder = Recorder()
        self.module = None

    def restore(self) -> None:
        for name in [n for n in sys.modules if n in ("qt", "ctk", "GenMedEval") or n.startswith(
                ("slicer.parameterNodeWrapper", "slicer.ScriptedLoadableModule", "slicer.i18n"))]:
            del sys.modules[name]
        for name, module in self.saved_modules.items():
            if module is not None:
                sys.modules[name] = module
            else:
                sys.modules.pop(name, None)
        for name, value in self.saved_attrs.items():
            if value is _MISSING:
                if hasattr(self.slicer, name):
                    delattr(self.slicer, name)
            else:
                setattr(self.slicer, name, value)


_MISSING = object()


def install(scene=None, *, pure_mrml: bool = False, module_path: Path = MODULE_FILE) -> Installed:
    """Slicer 5.10's Python code + stand-ins into ``sys.modules``; ``scene`` becomes ``slicer.mrmlScene``."""
    if not slicer_code_present():
        raise FileNotFoundError(ABSENT)
    done = Installed()
    for name in ("qt", "ctk", "slicer", "slicer.util", "vtk"):
        done.saved_modules[name] = sys.modules.get(name)
    sys.modules["qt"] = _module("qt", (*QT_CLASSES, QUiLoader))
    sys.modules["ctk"] = _module("ctk", CTK_CLASSES)
    if pure_mrml:
        vtk = types.ModuleType("vtk")
        vtk.vtkCommand = type("vtkCommand", (), {"ModifiedEvent": "ModifiedEvent"})
        sys.modules["vtk"] = vtk
        slicer = types.ModuleType("slicer")
        slicer.__path__ = []
        for name, cls in _pure_mrml_classes().items():
            setattr(slicer, name, cls)
        sys.modules["slicer"] = slicer
    else:
        import slicer
    done.slicer = slicer
    slicer_attrs = ("app", "mrmlScene", "modules", "util", "i18n", "parameterNodeWrapper", "ScriptedLoadableModule",
                    "selfTests", *[c.__name__ for c in SLICER_WIDGETS])
    for name in slicer_attrs:
        done.saved_attrs[name] = getattr(slicer, name, _MISSING)
    done.saved_attrs["__path__"] = list(slicer.__path__)
    slicer.__path__ = [str(SLICER_PYTHON), *[p for p in slicer.__path__ if p != str(SLICER_PYTHON)]]
    for cls in SLICER_WIDGETS:
        setattr(slicer, cls.__name__, cls)
    slicer.app = FakeApp()
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(genmedeval=types.SimpleNamespace(path=str(module_path)))
    util = _load_file("slicer.util", SLICER_PYTHON / "util.py")  # Slicer 5.10's util.py
    for name in ("setSliceViewerLayers", "errorDisplay", "infoDisplay", "warningDisplay"):
        setattr(util, name, done.recorder.make(name))
    util.confirmOkCancelDisplay = done.recorder.make("confirmOkCancelDisplay", result=True)
    slicer.util = util
    return done


def import_module(done: Installed, path: Path = MODULE_FILE) -> types.ModuleType:
    """Import ``GenMedEval.py`` as Slicer does (by file), with the installed stand-ins."""
    done.module = _load_file("GenMedEval", path)
    return done.module
