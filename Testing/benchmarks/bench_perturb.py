"""Time every per-volume perturbation on a BraTS-sized volume (240 x 240 x 155) with a 30 mm tumour.

Goal (issue #2): each at most 0.5 s on a 2-core machine, distance transforms included. Prints the
best of three runs per perturbation and, for the mask-local ones, the time of the naive
whole-volume distance transform they avoid (the reference cost).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from GenMedEvalLib.perturb import PERTURBATIONS, apply_perturbation


def brats_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random 155 x 240 x 240 (z, y, x) volume with a 30 mm spherical tumour, 1 mm spacing."""
    rng = np.random.default_rng(seed)
    image = ndimage.zoom(rng.random((39, 60, 60)), 4, order=1)[:155].astype(np.float32)
    zz, yy, xx = np.ogrid[:155, :240, :240]
    mask = ((zz - 77) ** 2 + (yy - 110) ** 2 + (xx - 130) ** 2) <= 15**2
    return image, mask.astype(np.uint8)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    image, mask = brats_case()
    print(f"volume {image.shape[::-1]} (x, y, z) float32, tumour {int(mask.sum())} voxels")
    naive = best_of(lambda: ndimage.distance_transform_edt(mask == 0), repeats=1)
    print(f"reference: whole-volume distance transform alone {naive:.3f} s")
    print(f"{'perturbation':<22}{'mode':<7}{'seconds':>9}  goal <= 0.5 s")
    for name, spec in PERTURBATIONS.items():
        if spec.kind != "volume":
            continue
        modes = ["slice", "3d"] if "mode" in spec.params else [None]
        for mode in modes:
            extra = {"mode": mode} if mode else {}
            params = {**spec.preset(list(spec.presets)[-1]), **extra}
            seconds = best_of(lambda: apply_perturbation(name, image, mask=mask, seed=0, **params))  # noqa: B023
            flag = "ok" if seconds <= 0.5 else "SLOW"
            print(f"{name:<22}{mode or '-':<7}{seconds:>9.3f}  {flag}")


if __name__ == "__main__":
    main()
