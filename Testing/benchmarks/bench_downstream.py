"""Downstream speed on one BraTS-sized volume (240 x 240 x 155, 1 mm) on this machine's CPU.

Goals: segmentation of one case under 10 s (issue #13), predicted Dice under 5 s (issue #4). Uses a
real BraTS case (FLAIR + T1c) from ``../shared/data/real/brats/`` when present (else a 1 mm cohort
brain). Prints every shipped segmenter's time (FLAIR + T1c; T1c alone; FLAIR alone; the demo cohort's
model on an unnamed volume: the router picks each by the contrasts it is given), the quality
predictor's time (64-pixel crops, 4 test-time flips), and, as the reference, the EvaNySeg design
(a ResNet-18 on 224-pixel slices of the blended image and mask, one pass per mask slice) timed on
the same slices in the same run.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from GenMedEvalLib.cohort.build import make_case
from GenMedEvalLib.io import normalize_intensity
from GenMedEvalLib.quality import load_predictor
from GenMedEvalLib.quality.crops import slice_crops
from GenMedEvalLib.segment import load_segmenter


def brats_sized_case() -> tuple[np.ndarray, np.ndarray]:
    """A 1 mm demo-cohort brain with a tumour, padded/cropped to 155 x 240 x 240 (z, y, x)."""
    image, mask, _, _ = make_case(1, seed=0, spacing=1.0)
    out_i, out_m = np.zeros((155, 240, 240), np.float32), np.zeros((155, 240, 240), np.uint8)
    z0 = max((image.shape[0] - 155) // 2, 0)
    sz, sy, sx = min(image.shape[0], 155), min(image.shape[1], 240), min(image.shape[2], 240)
    out_i[:sz, :sy, :sx] = image[z0:z0 + sz, :sy, :sx]
    out_m[:sz, :sy, :sx] = mask[z0:z0 + sz, :sy, :sx]
    return normalize_intensity(out_i), out_m


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_evanyseg(image: np.ndarray, mask: np.ndarray) -> float:
    """Time the reference design: ResNet-18, blended input 0.5 image + 0.5 mask, 224 px, per mask slice."""
    from monai.networks.nets import resnet18

    net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=1).eval()
    crops = slice_crops(image, mask, (1.0, 1.0, 1.0), size=224)
    blended = torch.from_numpy(0.5 * crops.inputs[:, :1] + 0.5 * crops.inputs[:, 1:])

    def run() -> None:
        with torch.inference_mode():
            net(blended)

    return best_of(run)


BRATS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "brats" / "pat0004"


def real_case() -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """FLAIR and T1c (raw) and the whole-tumour mask of a real BraTS case, when the shared data is here."""
    if not BRATS.is_dir():
        return None
    from GenMedEvalLib.segment.realdata import load_real_case

    case = load_real_case(BRATS)
    return case.contrasts, case.mask


def main() -> None:
    spacing = (1.0, 1.0, 1.0)
    real = real_case()
    if real is not None:
        contrasts, mask = real
        image = contrasts["t1c"]
        print(f"real BraTS case {BRATS.name} (FLAIR + T1c)")
    else:
        image, mask = brats_sized_case()
        contrasts = {"t1c": image}
        print("no ../shared/data/real/brats: a 1 mm cohort brain stands in (one contrast)")
    segmenter, predictor = load_segmenter(), load_predictor()
    if len(contrasts) > 1:
        multi_time = best_of(lambda: segmenter.segment_contrasts(contrasts, spacing), repeats=2)
        print(f"segmenter, FLAIR + T1c model:           {multi_time:6.2f} s   goal < 10 s: "
              f"{'met' if multi_time < 10 else 'NOT met'}")
    seg_time = best_of(lambda: segmenter.segment_contrasts({"t1c": image}, spacing), repeats=2)
    predicted = segmenter.segment_contrasts({"t1c": image}, spacing)
    others = {"FLAIR model (FLAIR alone)": {"flair": contrasts.get("flair", image)},
              "demo cohort model (unnamed)": {"image": image}}
    other_times = {label: best_of(lambda c=c: segmenter.segment_contrasts(c, spacing), repeats=2)
                   for label, c in others.items()}
    judged = predicted if predicted.any() else mask
    quality_time = best_of(lambda: predictor.predict_dice(image, judged, spacing))
    ref_time = reference_evanyseg(image, judged)
    slices = int(judged.any(axis=(1, 2)).sum())
    print(f"volume 155 x 240 x 240, {slices} mask slices, torch threads {torch.get_num_threads()}")
    print(f"segmenter, T1c model (T1c alone):       {seg_time:6.2f} s   goal < 10 s: "
          f"{'met' if seg_time < 10 else 'NOT met'}")
    for label, seconds in other_times.items():
        print(f"segmenter, {label + ':':29s}{seconds:6.2f} s   goal < 10 s: {'met' if seconds < 10 else 'NOT met'}")
    print(f"predicted Dice (ours, 64 px, 4 flips):  {quality_time:6.2f} s   goal < 5 s: "
          f"{'met' if quality_time < 5 else 'NOT met'}")
    print(f"reference EvaNySeg (ResNet-18, 224 px): {ref_time:6.2f} s   ratio reference/ours "
          f"{ref_time / quality_time:5.1f}x")
    print(f"segment + predict:                      {seg_time + quality_time:6.2f} s")


if __name__ == "__main__":
    main()
