"""Where samples come from: folder builders, pairing by file stem, ReBlurSR, evaluation pairs,
and the preflight check that rejects bad files before training starts.

A `SampleSource` is a list of checked HR files (and mask files for blur data) plus how to read
them; `keras_pbasr.data.mixed_dataset` turns sources into tf.data batches. Builders only list
and check files (Pillow headers), they never import TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from keras_pbasr.data import io
from keras_pbasr.data.errors import DataErrorCounter
from keras_pbasr.utils.image_files import collect_inputs, images_by_stem, read_rgb

ON_ERROR = ("raise", "skip")
# How each file is decoded inside tf.data (see pipeline._decode_image).
DECODE_TF_RGB, DECODE_TF_ALPHA, DECODE_PILLOW = 0, 1, 2
_TF_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")


@dataclass(frozen=True)
class SampleSource:
    """Files of one training branch.

    kind: "general" (HR only, mask all ones), "blur" (HR + mask paired by stem) or
    "synthetic" (sharp HR; blur is rendered into a region taken from `region_paths`, or from a
    generated depth-like map when region_paths is empty). `decoders` says per HR file whether
    TensorFlow or Pillow decodes it; it is filled in by `preflight`.
    """

    kind: str
    hr_paths: tuple[str, ...]
    mask_paths: tuple[str, ...] = ()
    region_paths: tuple[str, ...] = ()
    mask_threshold: float = 0.5
    mask_polarity: str = "sharp_high"
    region_polarity: str = "sharp_high"
    alpha: str = "white"
    decoders: tuple[int, ...] = ()
    mask_decoders: tuple[int, ...] = ()
    region_decoders: tuple[int, ...] = ()
    synthetic_options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.hr_paths)


def general_folder(
    folders: str | os.PathLike | Sequence[str | os.PathLike],
    recursive: bool = True,
    file_list: str | os.PathLike | None = None,
    alpha: str = "white",
) -> SampleSource:
    """General HR images (DIV2K / Flickr2K / DIV8K style) from one or more folders.

    Sub-folders are searched by default (`recursive=True`: DIV8K-style trees); `file_list`
    is a text file naming the images to use, one path per line relative to each folder
    (blank lines and lines starting with # are ignored).
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    files: list[Path] = []
    for folder in folders:
        files += (collect_inputs(folder, recursive) if file_list is None
                  else listed_files(folder, file_list))
    return SampleSource("general", tuple(str(f) for f in files), alpha=alpha)


def listed_files(folder: str | os.PathLike, file_list: str | os.PathLike) -> list[Path]:
    """The files `file_list` names (one per line, relative to `folder`; blank lines and
    # comments ignored). Raises FileNotFoundError naming the missing ones.

    Example:
    >>> listed_files("DIV2K", "subset.txt")  # doctest: +SKIP
    [PosixPath('DIV2K/0001.png')]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    names = [
        line.strip() for line in Path(file_list).read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    files = [folder / name for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} file(s) from {file_list} are missing, e.g. {missing[:3]}"
        )
    if not files:
        raise ValueError(f"no images listed in {file_list}")
    return files


def pair_by_stem(
    image_files: Sequence[Path], mask_files: Sequence[Path], what: str = "mask"
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pairs files whose names without extension are equal; never by sorted position.

    Returns (pairs, images without a partner). Raises ValueError when two partner files share
    a stem (e.g. a.png and a.jpg), since the pairing would be ambiguous.
    """
    by_stem: dict[str, Path] = {}
    for path in mask_files:
        if path.stem in by_stem:
            raise ValueError(f"two {what} files share the stem {path.stem!r}: "
                             f"{by_stem[path.stem]} and {path}")
        by_stem[path.stem] = path
    pairs, unpaired = [], []
    for image in image_files:
        partner = by_stem.get(image.stem)
        (pairs.append((image, partner)) if partner is not None else unpaired.append(image))
    return pairs, unpaired


def blur_folder(
    hr_folder: str | os.PathLike,
    mask_folder: str | os.PathLike,
    threshold: float = 0.5,
    polarity: str = "sharp_high",
    recursive: bool = False,
    on_missing_mask: str = "raise",
    error_counter: DataErrorCounter | None = None,
    alpha: str = "white",
) -> SampleSource:
    """Blur HR images and their blur maps, paired by file stem.

    polarity "sharp_high": ReBlurSR / shared cuhk_blur convention (0 = blurred, 255 = sharp);
    "blur_high": the original CUHK masks (255 = blurred). A pixel is sharp when
    value / max >= threshold (before the polarity flip). An image without a mask raises
    (on_missing_mask="raise") or is skipped and counted ("skip").
    """
    if on_missing_mask not in ON_ERROR:
        raise ValueError(f"on_missing_mask must be one of {ON_ERROR}, got {on_missing_mask!r}")
    if polarity not in io.MASK_POLARITIES:
        raise ValueError(f"polarity must be one of {io.MASK_POLARITIES}, got {polarity!r}")
    images = collect_inputs(hr_folder, recursive)
    masks = collect_inputs(mask_folder, recursive)
    pairs, unpaired = pair_by_stem(images, masks)
    if unpaired:
        if on_missing_mask == "raise":
            raise FileNotFoundError(
                f"{len(unpaired)} image(s) in {hr_folder} have no mask with the same stem in "
                f"{mask_folder}, e.g. {[str(p) for p in unpaired[:3]]}"
            )
        for path in unpaired:
            if error_counter is not None:
                error_counter.add(str(path), f"no mask with this stem in {mask_folder}",
                                  "preflight")
    if not pairs:
        raise ValueError(f"no image/mask pairs (same file stem) in {hr_folder} and {mask_folder}")
    return SampleSource(
        "blur",
        tuple(str(image) for image, _ in pairs),
        tuple(str(mask) for _, mask in pairs),
        mask_threshold=threshold,
        mask_polarity=polarity,
        alpha=alpha,
    )


def synthetic_blur(
    sharp: str | os.PathLike | Sequence[str | os.PathLike] | SampleSource,
    region_folder: str | os.PathLike | None = None,
    region_polarity: str = "sharp_high",
    kinds: Sequence[str] = ("disc", "gaussian", "motion"),
    defocus_radius: tuple[float, float] = (2.0, 8.0),
    motion_length: tuple[float, float] = (7.0, 25.0),
    boundary_sigma: float = 3.0,
) -> SampleSource:
    """Blur-kept samples rendered from sharp images (see keras_pbasr.data.synthetic).

    region_folder: blur-region masks whose shapes are reused (e.g. shared/data/
    cuhk_blur_masks_all, 0 = blurred), drawn at random per sample and resized to the image;
    None generates a depth-like map per sample instead.
    """
    base = sharp if isinstance(sharp, SampleSource) else general_folder(sharp)
    regions = () if region_folder is None else tuple(
        str(p) for p in collect_inputs(region_folder)
    )
    if region_polarity not in io.MASK_POLARITIES:
        raise ValueError(f"region_polarity must be one of {io.MASK_POLARITIES}, "
                         f"got {region_polarity!r}")
    unknown = set(kinds) - {"disc", "gaussian", "motion"}
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of disc, gaussian, motion: {kinds}")
    options = {
        "kinds": tuple(kinds),
        "defocus_radius": tuple(defocus_radius),
        "motion_length": tuple(motion_length),
        "boundary_sigma": float(boundary_sigma),
    }
    return replace(base, kind="synthetic", region_paths=regions, region_polarity=region_polarity,
                   synthetic_options=options)


# ----------------------------------------------------------------------------- preflight


def _decoder_for(header: dict) -> int:
    tf_can = (
        header["format"] in _TF_FORMATS
        and not header["sixteen_bit"]
        and header["orientation"] == 1
        and header["mode"] in ("L", "RGB", "RGBA")
    )
    if not tf_can:
        return DECODE_PILLOW
    return DECODE_TF_ALPHA if header["mode"] == "RGBA" else DECODE_TF_RGB


def _check_one(
    hr: str, mask: str | None, min_size: int, full_decode: bool
) -> tuple[int, int | None, str | None]:
    """(hr decoder, mask decoder, error message or None) for one sample."""
    try:
        header = io.image_header(hr)
        io.check_file_integrity(hr, header)
        if full_decode:
            read_rgb(hr)
        if min(header["width"], header["height"]) < min_size:
            return 0, None, (f"{hr}: image {header['width']}x{header['height']} is smaller than "
                             f"the {min_size}x{min_size} patch")
        mask_decoder = None
        if mask is not None:
            mask_header = io.image_header(mask)
            io.check_file_integrity(mask, mask_header)
            if full_decode:
                io.read_mask(mask)
            if (mask_header["width"], mask_header["height"]) != (header["width"], header["height"]):
                return 0, None, (
                    f"{mask}: mask size {mask_header['width']}x{mask_header['height']} differs "
                    f"from its image {hr} ({header['width']}x{header['height']})"
                )
            mask_decoder = _decoder_for(mask_header)
        return _decoder_for(header), mask_decoder, None
    except io.ImageReadError as error:
        return 0, None, str(error)


def preflight(
    source: SampleSource,
    min_size: int,
    on_error: str = "raise",
    error_counter: DataErrorCounter | None = None,
    full_decode: bool = False,
    workers: int = 8,
) -> SampleSource:
    """Checks every file before training (headers, PNG CRCs, JPEG end marker, mask size equal
    to the image, image at least `min_size` on its short side) and picks each file's decoder.
    full_decode=True also decodes every file once with Pillow, which catches corruption the
    cheap checks miss (e.g. damage inside JPEG data) at the cost of a full read.

    on_error="raise" raises ValueError naming the first bad file; "skip" drops bad samples,
    records them in `error_counter` and raises only when nothing usable is left.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    masks = source.mask_paths or (None,) * len(source.hr_paths)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(
            lambda pair: _check_one(pair[0], pair[1], min_size, full_decode),
            zip(source.hr_paths, masks)))
    keep_hr, keep_mask, decoders, mask_decoders = [], [], [], []
    for hr, mask, (decoder, mask_decoder, error) in zip(source.hr_paths, masks, results):
        if error is not None:
            if on_error == "raise":
                raise ValueError(f"bad training input: {error}")
            if error_counter is not None:
                error_counter.add(hr, error, "preflight")
            continue
        keep_hr.append(hr)
        decoders.append(decoder)
        if mask is not None:
            keep_mask.append(mask)
            mask_decoders.append(mask_decoder)
    if not keep_hr:
        raise ValueError(f"no usable {source.kind} samples left after checking "
                         f"{len(source.hr_paths)} file(s) (all were bad; see the log)")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # A broken region mask is a setup error: image_header raises with its name.
        region_decoders = [_decoder_for(h) for h in pool.map(io.image_header, source.region_paths)]
    return replace(
        source, hr_paths=tuple(keep_hr), mask_paths=tuple(keep_mask), decoders=tuple(decoders),
        mask_decoders=tuple(mask_decoders), region_decoders=tuple(region_decoders),
    )


# ----------------------------------------------------------------------------- evaluation pairs


@dataclass(frozen=True)
class ImagePair:
    """One evaluation sample: LR and HR files (and optionally the HR blur map)."""

    name: str
    lr_path: Path
    hr_path: Path
    mask_path: Path | None = None


def lr_stem_candidates(stem: str, scale: int | None) -> list[str]:
    """LR files are often named <hr stem>, <hr stem>x4 or <hr stem>_x4 (Set5 LR_bicubic)."""
    candidates = [stem]
    if scale is not None:
        candidates += [f"{stem}x{scale}", f"{stem}_x{scale}", f"{stem}_X{scale}", f"{stem}X{scale}"]
    return candidates


def paired_folders(
    lr_folder: str | os.PathLike,
    hr_folder: str | os.PathLike,
    mask_folder: str | os.PathLike | None = None,
    scale: int | None = None,
) -> list[ImagePair]:
    """LR/HR(/mask) pairs for evaluation, matched by file stem (an LR file may carry an
    x{scale} suffix). Raises when the folders are missing or empty, or an HR file has no LR."""
    hr_files = collect_inputs(hr_folder)
    lr_by_stem = images_by_stem(lr_folder)
    mask_by_stem = images_by_stem(mask_folder) if mask_folder else {}
    pairs, missing = [], []
    for hr in hr_files:
        lr = next((lr_by_stem[s] for s in lr_stem_candidates(hr.stem, scale) if s in lr_by_stem),
                  None)
        if lr is None:
            missing.append(str(hr))
            continue
        mask = mask_by_stem.get(hr.stem)
        if mask_folder is not None and mask is None:
            raise FileNotFoundError(f"{hr}: no mask with the same stem in {mask_folder}")
        pairs.append(ImagePair(hr.stem, lr, hr, mask))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} HR file(s) in {hr_folder} have no LR partner in {lr_folder}, "
            f"e.g. {missing[:3]}"
        )
    return pairs


def load_pair(
    pair: ImagePair, scale: int | None = None, threshold: float = 0.5,
    polarity: str = "sharp_high",
) -> dict[str, np.ndarray]:
    """Reads a pair: {"lr", "hr", "mask" (HR-sized, 1 = sharp; all ones without a mask file)}.

    With `scale`, HR is mod-cropped to LR * scale; an HR that does not match raises with the
    file names.
    """
    lr, hr = read_rgb(pair.lr_path), read_rgb(pair.hr_path)
    if scale is not None:
        want_h, want_w = lr.shape[0] * scale, lr.shape[1] * scale
        if not (0 <= hr.shape[0] - want_h < scale and 0 <= hr.shape[1] - want_w < scale):
            raise ValueError(
                f"{pair.hr_path} is {hr.shape[1]}x{hr.shape[0]} but {pair.lr_path} x{scale} "
                f"is {want_w}x{want_h}"
            )
        hr = hr[:want_h, :want_w]
    if pair.mask_path is not None:
        mask = io.read_mask(pair.mask_path, threshold, polarity)[: hr.shape[0], : hr.shape[1]]
        if mask.shape[:2] != hr.shape[:2]:
            raise ValueError(f"{pair.mask_path}: mask size {mask.shape[:2]} differs from "
                             f"{pair.hr_path} {hr.shape[:2]}")
    else:
        mask = np.ones((*hr.shape[:2], 1), np.float32)
    return {"lr": lr, "hr": hr, "mask": mask}
