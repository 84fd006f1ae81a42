"""How much Real-ESRGAN's USM sharpening changes intentionally blurred pixels.

For each photo of a folder of blur photos with hand-labelled masks (CUHK convention as in
shared/data/cuhk_blur: image/<stem>.jpg, mask/<stem>.png, 0 = blurred, 255 = sharp) it applies
keras_pbasr.trainer.usm_sharpen (Real-ESRGAN USMSharp: 51-tap Gaussian, weight 0.5, threshold 10)
to the whole photo and prints the share of blurred-region pixels whose value changes by more
than 1/255 in any channel. This is why PBaSRTrainer.compile(usm_blur=False) is the default.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/usm_on_blur.py ../shared/data/cuhk_blur
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def blurred_pixels_changed(image: np.ndarray, blurred: np.ndarray) -> tuple[float, float]:
    """(share of blurred pixels changed by > 1/255 in any channel, their mean |change| * 255)
    for one float32 RGB image in [0, 1] and a boolean mask of its blurred pixels."""
    from keras import ops

    from keras_pbasr.trainer.usm import usm_sharpen

    sharpened = ops.convert_to_numpy(usm_sharpen(ops.convert_to_tensor(image[None])))[0]
    change = np.abs(sharpened - image).max(axis=-1)[blurred]
    return float(np.mean(change > 1.0 / 255.0)), float(np.mean(change) * 255.0)


def main(argv=None) -> int:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder with image/ and mask/ subfolders")
    args = parser.parse_args(argv)
    images = sorted((args.folder / "image").iterdir())
    if not images:
        raise SystemExit(f"no images in {args.folder / 'image'}")
    print("photo                      blurred px   changed > 1/255   mean |change| (x255)")
    for path in images:
        mask_path = args.folder / "mask" / f"{path.stem}.png"
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        blurred = np.asarray(Image.open(mask_path).convert("L")) < 128
        share, mean_change = blurred_pixels_changed(image, blurred)
        print(f"{path.name:26s} {blurred.mean():10.1%}   {share:15.1%}   {mean_change:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
