"""How a discriminator judges blurred and sharp pixels (paper Table 1, Fig. 4c, Fig. 6).

For HR images with blur maps, the discriminator's per-pixel loss on real samples (and, when
SR images are given, on fake samples) is averaged over blurred and over sharp pixels, and the
per-pixel loss maps ("residual maps") are saved. A discriminator that learned to treat
intentional blur as a sign of fakeness shows a higher real-sample loss on blurred pixels.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_pbasr.evaluation.plots import pyplot
from keras_pbasr.evaluation.reports import json_safe
from keras_pbasr.metrics.resize import bilinear_matrix
from keras_pbasr.utils.atomic_files import atomic_output, write_json_atomic

LOSSES = ("hinge", "bce")


def pixel_loss(logits: np.ndarray, real: bool, loss: str = "hinge") -> np.ndarray:
    """Per-pixel discriminator loss: hinge relu(1 -/+ D) or BCE-with-logits softplus(-/+ D)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    sign = -1.0 if real else 1.0
    z = sign * logits
    if loss == "hinge":
        return np.maximum(0.0, 1.0 + z)
    return np.logaddexp(0.0, z)


def mask_to_map(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sharpness fraction in [0, 1] (1 = sharp) resampled to the discriminator's output grid:
    area average when the output is an integer factor smaller, else bilinear."""
    sharp = np.asarray(mask, np.float64) / 255.0
    h, w = sharp.shape
    if (h, w) == tuple(shape):
        return sharp
    fh, fw = h // shape[0], w // shape[1]
    if fh * shape[0] == h and fw * shape[1] == w:
        return sharp.reshape(shape[0], fh, shape[1], fw).mean(axis=(1, 3))
    return bilinear_matrix(h, shape[0], False) @ sharp @ bilinear_matrix(w, shape[1], False).T


def region_means(loss_map: np.ndarray, sharp: np.ndarray) -> dict[str, float]:
    """Weighted means of a loss map over blurred (weight 1 - sharp) and sharp pixels; NaN for
    an empty region."""
    out = {}
    for name, weight in (("blur", 1.0 - sharp), ("sharp", sharp), ("all", np.ones_like(sharp))):
        total = weight.sum()
        out[name] = float((loss_map * weight).sum() / total) if total > 0 else float("nan")
    return out


def _call(discriminator: keras.Model, image: np.ndarray, mask: np.ndarray, conditional: bool):
    x = image[None].astype("float32")
    inputs = [x, (mask[None, ..., None] / 255.0).astype("float32")] if conditional else x
    logits = ops.convert_to_numpy(discriminator(inputs, training=False))
    logits = np.asarray(logits, np.float64)[0]
    return logits[..., 0] if logits.ndim == 3 else logits


def analyze_discriminator(
    discriminator: keras.Model,
    hr_images: list[np.ndarray],
    masks: list[np.ndarray],
    *,
    sr_images: list[np.ndarray] | None = None,
    names: list[str] | None = None,
    conditional: bool | None = None,
    loss: str = "hinge",
    out_dir: str | Path | None = None,
) -> dict:
    """Loss of `discriminator` on blurred vs sharp pixels of HR (real) and SR (fake) images.

    Args:
        discriminator: any Keras model mapping an image (N, H, W, 3) in [0, 1], or
            [image, mask (N, H, W, 1) in [0, 1], 1 = sharp] when conditional, to per-pixel
            (or per-patch) logits (N, h, w, 1).
        hr_images, masks: HR images (H, W, 3) in [0, 1] and their blur maps (H, W) in
            [0, 255] (0 = blurred, 255 = sharp).
        sr_images: optional fake samples aligned with hr_images.
        conditional: whether D takes [image, mask]; default: it has two inputs.
        loss: "hinge" (paper Eq. 1) or "bce" (Real-ESRGAN's vanilla GAN loss).
        out_dir: where to save residual maps (per-pixel loss, .npy and .png) and report.json.

    Returns {"images": {name: {"real": {"blur", "sharp", "all"}, "fake": ...}},
    "mean": {"real": {...}, "fake": {...}}} with NaN for images without blurred (or sharp)
    pixels, which the means skip and count under "nan".

    Example:
    >>> from keras_pbasr.models.discriminators import UNetDiscriminatorSN  # doctest: +SKIP
    >>> analyze_discriminator(UNetDiscriminatorSN(), [hr], [mask])["mean"]["real"]
    """
    if len(hr_images) != len(masks):
        raise ValueError(f"{len(hr_images)} HR images but {len(masks)} masks")
    if sr_images is not None and len(sr_images) != len(hr_images):
        raise ValueError(f"{len(sr_images)} SR images for {len(hr_images)} HR images")
    names = names or [f"image_{i:04d}" for i in range(len(hr_images))]
    if conditional is None:
        conditional = len(getattr(discriminator, "inputs", None) or [None]) == 2
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    per_image: dict[str, dict] = {}
    for i, (name, hr, mask) in enumerate(zip(names, hr_images, masks)):
        if hr.shape[:2] != mask.shape[:2]:
            raise ValueError(f"{name}: mask {mask.shape[:2]} does not match image {hr.shape[:2]}")
        samples = {"real": hr}
        if sr_images is not None:
            samples["fake"] = sr_images[i]
        per_image[name] = {}
        for kind, image in samples.items():
            logits = _call(discriminator, image, mask, conditional)
            loss_map = pixel_loss(logits, real=kind == "real", loss=loss)
            per_image[name][kind] = region_means(loss_map, mask_to_map(mask, loss_map.shape))
            if out is not None:
                with atomic_output(out / f"{name}_{kind}_loss.npy") as tmp:
                    np.save(tmp, loss_map.astype(np.float32))
                _save_map(out / f"{name}_{kind}_loss.png", loss_map, f"{name} {kind} {loss} loss")
    summary: dict[str, dict] = {}
    for kind in ("real", "fake"):
        rows = [v[kind] for v in per_image.values() if kind in v]
        if rows:
            summary[kind] = {}
            for region in ("blur", "sharp", "all"):
                vals = np.asarray([r[region] for r in rows])
                finite = vals[~np.isnan(vals)]
                summary[kind][region] = float(finite.mean()) if finite.size else float("nan")
                summary[kind][f"nan_{region}"] = int(np.isnan(vals).sum())
    result = {"images": per_image, "mean": summary, "loss": loss, "conditional": conditional}
    if out is not None:
        write_json_atomic(out / "discriminator_report.json", json_safe(result))
    return result


def _save_map(path: Path, loss_map: np.ndarray, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4 * loss_map.shape[0] / max(loss_map.shape[1], 1) + 0.4))
    shown = ax.imshow(loss_map, cmap="magma")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight")
    plt.close(fig)
