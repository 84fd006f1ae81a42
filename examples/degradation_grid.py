"""Writes a PNG grid of training samples: HR, mask, LR (BSRGAN), LR (Real-ESRGAN).

Each row is one patch; both LR columns are synthesised from the same HR patch (same seed),
LR shown enlarged with nearest neighbour. Blur rows have a real or synthetic blur map
(white = sharp, black = blurred); general rows have an all-white mask.

    python examples/degradation_grid.py --out grid.png
    python examples/degradation_grid.py --general ../shared/data/bsd100/HR \
        --blur-images ../shared/data/cuhk_blur/image --blur-masks ../shared/data/cuhk_blur/mask

Without arguments it uses scikit-image's sample photos with synthetic blur-kept samples.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def _sample_photos(folder: Path) -> Path:
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--general", type=Path, help="folder of general HR images")
    parser.add_argument("--blur-images", type=Path, help="folder of blur HR images")
    parser.add_argument("--blur-masks", type=Path, help="their masks (0 = blurred), same stems")
    parser.add_argument("--out", type=Path, default=Path("degradation_grid.png"))
    parser.add_argument("--rows", type=int, default=4, help="patches per branch")
    parser.add_argument("--patch", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from keras_pbasr import data

    general_dir = args.general or _sample_photos(Path(tempfile.mkdtemp()) / "photos")
    general = data.general_folder(general_dir)
    if args.blur_images and args.blur_masks:
        blur = data.blur_folder(args.blur_images, args.blur_masks)
    else:
        blur = data.synthetic_blur(general)  # depth-like regions, disc/Gaussian/motion blur
    columns = {}
    for degradation in ("bsrgan", "realesrgan"):
        ds = data.mixed_dataset(general, blur, batch_size=2 * args.rows, patch_size=args.patch,
                                degradation=degradation, seed=args.seed)
        columns[degradation] = {k: v.numpy() for k, v in next(iter(ds)).items()}
    batch = columns["bsrgan"]
    scale = args.patch // batch["lr"].shape[1]
    rows = []
    for i in range(len(batch["hr"])):
        tiles = [batch["hr"][i], np.repeat(batch["mask"][i], 3, axis=-1)]
        for degradation in ("bsrgan", "realesrgan"):
            lr = columns[degradation]["lr"][i]
            tiles.append(lr.repeat(scale, axis=0).repeat(scale, axis=1))
        rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0))) for t in tiles], axis=1))
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)).save(args.out)
    print(f"wrote {args.out}: rows = {args.rows} general then {args.rows} blur patches; "
          "columns = HR, mask, LR BSRGAN, LR Real-ESRGAN")


if __name__ == "__main__":
    main()
