"""Live preview on the real MRI: parameter change -> updated perturbed volume node, on a real MRML scene (CPU).

Goal (issue #5): under 0.3 s for boundary blur and radial gradient. The preview keeps the input
volume and mask as arrays between changes (invalidated when either node is modified) and writes
into the same output nodes. The reference is the same update without that cache (node -> array
and mask conversion on every change), measured in the same run.
"""

from __future__ import annotations

import time

from GenMedEvalLib import mrml
from GenMedEvalLib.data import shared_real_dir
from GenMedEvalLib.io import read_mask, read_volume
from GenMedEvalLib.scene_logic import SceneLogic

CHANGES = {"boundary_blur": [{"sigma": s} for s in (0.5, 1.0, 2.0, 3.0, 4.0)],
           "radial_gradient": [{"amplitude": a} for a in (0.1, 0.2, 0.3, 0.4, 0.5)]}


def main() -> None:
    folder = shared_real_dir()
    if folder is None:
        raise SystemExit("the real MRI (../shared/data/real) is needed for this benchmark")
    app = mrml.get_app()
    image = read_volume(folder / "brain1_image.nrrd")
    mask = read_mask(folder / "brain1_label.nrrd", like=image)
    volume_node = mrml.add_volume_node(app.scene, image, "real")
    mask_node = app.volumes_logic.AddArchetypeVolume(str(folder / "brain1_label.nrrd"), "real-label", 1)
    print(f"real MRI {image.array.shape} (z, y, x), spacing {tuple(round(s, 2) for s in image.spacing_zyx)} mm, "
          f"tumour {int(mask.array.sum())} voxels")
    for kind, changes in CHANGES.items():
        logic = SceneLogic(app.scene)
        first = logic.perturb(volume_node, kind, changes[0], mask_node=mask_node)
        times = []
        for params in changes[1:]:
            start = time.perf_counter()
            logic.perturb(volume_node, kind, params, mask_node=mask_node, output_node=first.volume_node,
                          overlay_node=first.overlay_node)
            times.append(time.perf_counter() - start)
        uncached = []
        for params in changes[1:]:
            start = time.perf_counter()
            SceneLogic(app.scene).perturb(volume_node, kind, params, mask_node=mask_node,
                                          output_node=first.volume_node, overlay_node=first.overlay_node)
            uncached.append(time.perf_counter() - start)
        best, worst, ref = min(times), max(times), min(uncached)
        print(f"{kind:16s} first {first.seconds:5.3f} s; per change best {best:5.3f} s, worst {worst:5.3f} s "
              f"(goal < 0.3 s: {'met' if worst < 0.3 else 'NOT met'}); without the cache {ref:5.3f} s "
              f"(ratio {ref / best:4.1f}x)")


if __name__ == "__main__":
    main()
