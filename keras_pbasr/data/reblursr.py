"""ReBlurSR knowledge in one place: its label files and codes, its area classes, its folders.

ReBlurSR labels every image with a blur type (defocus or motion), an intensity (heavy,
little, middle), an area class (large, medium, small: the share of blurred pixels) and a
train/validation split, as .npy arrays of class codes aligned with the sorted ALL_HR files
(docs/references.md, "ReBlurSR layout and label codes"). Masks are 0 = blurred, 255 = sharp.
Nothing here imports TensorFlow.

`reblursr` and `reblursr_validation_pairs` are its training and validation sources (layouts:
ALL_HR/ + ALL_mask/ + the label files, or the official script's {split}/{type}/{HR,mask}).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_pbasr.data.sources import (
    ImagePair,
    SampleSource,
    lr_stem_candidates,
    pair_by_stem,
    paired_folders,
)
from keras_pbasr.utils.image_files import collect_inputs, images_by_stem

# {label: (file name, class names by code)}.
REBLURSR_LABELS = {
    "area": ("area_class.npy", ("large", "medium", "small")),
    "intensity": ("degree_class.npy", ("heavy", "little", "middle")),
    "blur_type": ("defocus_motion_class.npy", ("defocus", "motion")),
    "split": ("train_validation.npy", ("train", "valid")),
}
# The labels an evaluation groups images by (the split is not a subset of results).
SUBSET_LABELS = ("blur_type", "intensity", "area")


def area_class(blurred_fraction: float) -> str:
    """ReBlurSR's area class of an image by its blurred fraction: small < 45%, medium
    45-55%, large above.

    Example:
    >>> area_class(0.5)
    'medium'
    """
    if blurred_fraction < 0.45:
        return "small"
    if blurred_fraction <= 0.55:
        return "medium"
    return "large"


def mask_area_class(mask: np.ndarray) -> str:
    """The area class of a blur mask in [0, 255] (0 = blurred, 255 = sharp).

    Example:
    >>> mask_area_class(np.zeros((4, 4)))
    'large'
    """
    return area_class(float(np.mean(np.asarray(mask) < 127.5)))


def read_label_file(path: str | Path, stems: list[str], allow_pickle: bool = False,
                    what: str = "ALL_HR") -> dict[str, int]:
    """A label file as {stem: class code}. An integer array is aligned with `stems` (the
    sorted ALL_HR files, or the order `what` names); a pickled dict (only with
    allow_pickle=True, for trusted files) maps names to codes.

    Example:
    >>> read_label_file("ReBlurSR/area_class.npy", ["0001", "0002"])  # doctest: +SKIP
    {'0001': 2, '0002': 0}
    """
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=allow_pickle)
    except ValueError as error:
        raise ValueError(f"{path} holds Python objects; pass allow_pickle=True if you trust "
                         "the file") from error
    if values.dtype == object and values.shape == ():
        return {Path(str(k)).stem: int(v) for k, v in values.item().items()}
    values = np.asarray(values).reshape(-1)
    if len(values) != len(stems):
        raise ValueError(f"{path} has {len(values)} labels but {what} has {len(stems)} images")
    return dict(zip(stems, (int(v) for v in values)))


def read_subset_labels(folder: str | Path, stems: list[str]) -> dict[str, dict[str, str]]:
    """{stem: {blur_type, intensity, area}} from ReBlurSR's npy files in `folder`
    (defocus_motion_class.npy, degree_class.npy, area_class.npy, any of them), whose entries
    follow names.txt (one stem per line) when present, else the sorted `stems`.

    Example:
    >>> read_subset_labels("ReBlurSR", ["0001"])  # doctest: +SKIP
    {'0001': {'blur_type': 'defocus', 'intensity': 'heavy', 'area': 'small'}}
    """
    folder = Path(folder)
    present = {key: REBLURSR_LABELS[key] for key in SUBSET_LABELS
               if (folder / REBLURSR_LABELS[key][0]).is_file()}
    if not present:
        names = ", ".join(REBLURSR_LABELS[key][0] for key in SUBSET_LABELS)
        raise FileNotFoundError(f"{folder} holds no ReBlurSR npy label files ({names})")
    names_file = folder / "names.txt"
    order = names_file.read_text().split() if names_file.is_file() else sorted(stems)
    source = "names.txt" if names_file.is_file() else "the sorted HR stems"
    labels: dict[str, dict[str, str]] = {stem: {} for stem in order}
    for key, (file_name, names) in present.items():
        for stem, code in read_label_file(folder / file_name, order, what=source).items():
            labels[stem][key] = names[code]
    return labels


def reblursr(
    root: str | os.PathLike,
    split: str = "train",
    blur_type: str | None = None,
    intensity: str | None = None,
    area: str | None = None,
    allow_pickle: bool = False,
) -> SampleSource:
    """Blur samples from the ReBlurSR dataset (masks: 0 = blurred, 255 = sharp).

    Uses ALL_HR/, ALL_mask/ and the label files (area_class, degree_class,
    defocus_motion_class, train_validation .npy) when present, so any subset by blur type
    (defocus/motion), intensity (heavy/little/middle) and area (large/medium/small) can be
    chosen; otherwise the split layout made by the official script,
    {split}/{defocus,motion}/{HR,mask} (blur_type only).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ReBlurSR root not found: {root}")
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
    wanted = {"split": split, "blur_type": blur_type, "intensity": intensity, "area": area}
    for key, value in wanted.items():
        if value is not None and value not in REBLURSR_LABELS[key][1]:
            raise ValueError(f"{key} must be one of {REBLURSR_LABELS[key][1]}, got {value!r}")
    if (root / "ALL_HR").is_dir():
        images = collect_inputs(root / "ALL_HR")
        masks = collect_inputs(root / "ALL_mask")
        stems = [p.stem for p in images]
        pairs, unpaired = pair_by_stem(images, masks)
        if unpaired:
            raise FileNotFoundError(f"{len(unpaired)} ALL_HR image(s) have no ALL_mask file, "
                                    f"e.g. {[str(p) for p in unpaired[:3]]}")
        keep = set(stems)
        for key, value in wanted.items():
            if value is None:
                continue
            file_name, names = REBLURSR_LABELS[key]
            labels = read_label_file(root / file_name, stems, allow_pickle)
            keep &= {stem for stem, label in labels.items() if label == names.index(value)}
        pairs = [(image, mask) for image, mask in pairs if image.stem in keep]
    else:
        if intensity is not None or area is not None:
            raise ValueError(f"{root} has no ALL_HR/ and label files: only blur_type subsets "
                             "are possible in the split layout")
        pairs = []
        for kind in [blur_type] if blur_type else ["defocus", "motion"]:
            folder = root / split / kind
            if not folder.is_dir():
                raise FileNotFoundError(f"neither {root / 'ALL_HR'} nor {folder} exists")
            found, unpaired = pair_by_stem(collect_inputs(folder / "HR"),
                                           collect_inputs(folder / "mask"))
            if unpaired:
                raise FileNotFoundError(f"{folder / 'HR'}: {len(unpaired)} image(s) without a "
                                        f"mask, e.g. {[str(p) for p in unpaired[:3]]}")
            pairs += found
    if not pairs:
        raise ValueError(f"no ReBlurSR samples in {root} for {wanted}")
    return SampleSource("blur", tuple(str(i) for i, _ in pairs), tuple(str(m) for _, m in pairs))


def reblursr_validation_pairs(
    root: str | os.PathLike,
    blur_type: str = "defocus",
    intensity: str | None = None,
    area: str | None = None,
    scale: int = 4,
    allow_pickle: bool = False,
) -> list[ImagePair]:
    """ReBlurSR-Test pairs (HR, LR/X4, mask) of one blur type, optionally one intensity/area.

    LR files come from valid/{blur_type}/LR/X{scale}; HR and masks from valid/{blur_type}/{HR,
    mask} (split layout) or from ALL_HR/ALL_mask.
    """
    root = Path(root)
    lr_folder = root / "valid" / blur_type / "LR" / f"X{scale}"
    split_hr = root / "valid" / blur_type / "HR"
    if split_hr.is_dir():
        pairs = paired_folders(lr_folder, split_hr, root / "valid" / blur_type / "mask", scale)
    else:
        # Only the LR files of this blur type define the subset; find their HR in ALL_HR.
        lr_by_stem = images_by_stem(lr_folder)
        hr_files = [p for p in collect_inputs(root / "ALL_HR")
                    if any(s in lr_by_stem for s in lr_stem_candidates(p.stem, scale))]
        masks = images_by_stem(root / "ALL_mask")
        pairs = []
        for hr in hr_files:
            lr = next(lr_by_stem[s] for s in lr_stem_candidates(hr.stem, scale) if s in lr_by_stem)
            if hr.stem not in masks:
                raise FileNotFoundError(f"{hr}: no mask with the same stem in {root / 'ALL_mask'}")
            pairs.append(ImagePair(hr.stem, lr, hr, masks[hr.stem]))
    if intensity is not None or area is not None:
        subset = reblursr(root, split="valid", blur_type=None, intensity=intensity, area=area,
                          allow_pickle=allow_pickle)
        stems = {Path(p).stem for p in subset.hr_paths}
        pairs = [pair for pair in pairs if pair.name in stems]
    if not pairs:
        raise ValueError(f"no ReBlurSR validation pairs in {root} for {blur_type}, "
                         f"intensity={intensity}, area={area}")
    return pairs
