"""The README's clean-LR comparison of the shipped demo preset (docs: "Demo quality").

An 84x84 crop of scikit-image's chelsea, its 21x21 bicubic LR, upscaled x4 by
`pbasr_srvgg_demo_x4`, by a freshly initialised model of the same config (seed 0) and by nearest
upsampling; prints the PSNR (uint8 RGB) of each against the crop.

    KERAS_BACKEND=tensorflow .venv/bin/python scripts/demo_preset_on_clean_lr.py
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / mse))


def main() -> None:
    import keras
    import skimage.data

    from keras_pbasr import presets, upscale

    hr = skimage.data.chelsea()[100:184, 200:284]
    lr = np.asarray(Image.fromarray(hr).resize((21, 21), Image.BICUBIC))
    model = presets.from_preset("pbasr_srvgg_demo_x4")
    keras.utils.set_random_seed(0)
    fresh = type(model).from_config(model.get_config())
    nearest = np.asarray(Image.fromarray(lr).resize((84, 84), Image.NEAREST))
    for name, sr in (("pbasr_srvgg_demo_x4", upscale(model, lr)),
                     ("fresh model, same config (seed 0)", upscale(fresh, lr)),
                     ("nearest upsampling", nearest)):
        print(f"{name:<36} {psnr_uint8(sr, hr):.2f} dB")


if __name__ == "__main__":
    main()
