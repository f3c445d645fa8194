"""Render the extension's screenshot (Resources/Screenshots/GenMedEval.png) off-screen with Slicer's slice views.

    .venv/bin/python Testing/make_screenshot.py [OUT.png]

The real clinical MRI of ../shared/data/real (brain1 + its tumour label) goes through the module's own
scene logic on the slicer-core wheel: the boundary-blur preview (SceneLogic.perturb, as the Perturb
section runs it), then Slicer's axial and coronal slice views of the original with the tumour mask and
of the perturbed volume with the changed voxels, rendered through EGL without a display.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from GenMedEvalLib import mrml
    from GenMedEvalLib.data import shared_real_dir
    from GenMedEvalLib.io import normalize_intensity, read_mask, read_volume
    from GenMedEvalLib.scene_logic import SceneLogic

    real = shared_real_dir()
    if real is None:
        raise SystemExit("../shared/data/real/brain1_image.nrrd not found")
    image = read_volume(real / "brain1_image.nrrd")
    mask = read_mask(real / "brain1_label.nrrd", like=image).array
    app = mrml.get_app()
    node = mrml.add_volume_node(app.scene, image, "brain1")
    label = mrml.add_volume_node(app.scene, image, "brain1 tumour", array=mask, label=True)
    preview = SceneLogic(app.scene).perturb(node, "boundary_blur", {"sigma": 3.0, "band": 4.0}, mask_node=label)
    perturbed = mrml.volume_from_node(preview.volume_node)
    changed = mrml.array_from_node(preview.overlay_node) == 2
    original = image.with_array(normalize_intensity(image.array))
    planes = ("axial", "coronal")
    before = mrml.render_slice_views(original, overlays=[mask], planes=planes, size=320, app=app)
    after = mrml.render_slice_views(perturbed, overlays=[np.zeros_like(mask), changed], planes=planes, size=320,
                                    app=app)
    fig, axes = plt.subplots(1, 4, figsize=(12.8, 3.6), dpi=100)
    panels = [(before["axial"], "original, tumour mask (blue)"), (after["axial"], "boundary blur 3 mm: changed (red)"),
              (before["coronal"], "original, coronal"), (after["coronal"], "boundary blur, coronal")]
    for ax, (rgb, title) in zip(axes, panels, strict=True):
        ax.imshow(rgb)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"GenMedEval in Slicer's slice views: live preview of a tumour-boundary perturbation "
                 f"({preview.changed_voxels} voxels changed)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Resources" / "Screenshots" / "GenMedEval.png"))
