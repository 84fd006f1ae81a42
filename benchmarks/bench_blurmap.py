"""Blur-map quality on shared/data/cuhk_blur and seconds per megapixel.

Quality against three references computed in the same run: the trivial all-blurred mask, and
thresholds on local Laplacian variance and on local gradient magnitude (each map min-max
normalised per image and split by Otsu's threshold; soft map = the normalised map).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from keras_pbasr import blurmap
from keras_pbasr.blurmap.sharpness import box_mean, otsu_threshold

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PBASR_SHARED_DATA", REPO.parent / "shared" / "data")) / "cuhk_blur"


def _normalised(x):
    return (x - x.min()) / (x.max() - x.min() + 1e-12)


def laplacian_variance(gray, radius=7):
    lap = ndimage.laplace(gray)
    return _normalised(box_mean(lap * lap, radius) - box_mean(lap, radius) ** 2)


def gradient_magnitude(gray, radius=7):
    gy, gx = np.gradient(gray)
    return _normalised(box_mean(np.hypot(gx, gy), radius))


def _split(soft):
    return soft > otsu_threshold(soft)


def run(bench) -> None:
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent: set PBASR_SHARED_DATA to the shared/data folder")
    images = sorted((DATA / "image").iterdir())
    methods = {
        "LBP + guided filter (keras_pbasr)": lambda rgb, gray: blurmap.estimate(rgb),
        "all blurred": None,
        "Laplacian variance + Otsu": lambda rgb, gray: laplacian_variance(gray),
        "gradient magnitude + Otsu": lambda rgb, gray: gradient_magnitude(gray),
    }
    scores = {name: {"iou": [], "f": [], "mae": []} for name in methods}
    megapixels = []
    for path in images:
        rgb = blurmap.load_rgb(path)
        gray = rgb @ np.array([0.299, 0.587, 0.114])
        true = np.asarray(Image.open(DATA / "mask" / f"{path.stem}.png")) > 127
        megapixels.append(true.size / 1e6)
        for name, fn in methods.items():
            if fn is None:
                soft, sharp = np.zeros(true.shape), np.zeros(true.shape, bool)
            else:
                out = fn(rgb, gray)
                if isinstance(out, blurmap.BlurMap):
                    soft, sharp = out.sharpness, out.mask > 127
                else:
                    soft, sharp = out, _split(out)
            scores[name]["iou"].append(blurmap.mean_iou(sharp, true))
            scores[name]["f"].append(blurmap.f_measure(sharp, true))
            scores[name]["mae"].append(blurmap.mean_absolute_error(soft, true))

    bench.note(f"quality on {len(images)} CUHK photos in {DATA} (mean over images)")
    bench.note("| method | mean IoU (blurred, sharp) | F-measure sharp (beta^2 0.3) | MAE soft |")
    bench.note("|---|---:|---:|---:|")
    for name, s in scores.items():
        bench.note(f"| {name} | {np.mean(s['iou']):.3f} | {np.mean(s['f']):.3f} | "
                   f"{np.mean(s['mae']):.3f} |")
        print(f"  {name}: IoU {np.mean(s['iou']):.3f} F {np.mean(s['f']):.3f} "
              f"MAE {np.mean(s['mae']):.3f}")

    rgb = blurmap.load_rgb(images[0])
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    mp = gray.size / 1e6
    bench.measure("seconds per image", "Laplacian variance", lambda: laplacian_variance(gray),
                  reference=True, megapixels=round(mp, 3))
    bench.measure("seconds per image", "keras_pbasr estimate", lambda: blurmap.estimate(rgb),
                  megapixels=round(mp, 3))
    big = np.asarray(Image.fromarray((rgb * 255).astype(np.uint8)).resize((2000, 1500)))
    t = bench.measure("seconds per image", "keras_pbasr estimate 3 MP",
                      lambda: blurmap.estimate(big), repeats=3, megapixels=3.0)
    bench.note(f"estimate: {t.median_s / 3.0:.2f} s per megapixel on a 2000x1500 image "
               "(computed at max_side 1024, refined at full size)")
