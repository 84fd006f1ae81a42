"""`convert_checkpoint`: an official PyTorch checkpoint -> a keras_pbasr preset directory."""

from __future__ import annotations

from pathlib import Path

from keras_pbasr.convert import parallel_net
from keras_pbasr.convert.checkpoint_conversion import checkpoint_weights, convert_weights
from keras_pbasr.convert.registry import get_converter, infer_converter
from keras_pbasr.presets.preset_io import save_to_preset
from keras_pbasr.utils.atomic_files import check_writable_folder, output_folder, refuse_same_file
from keras_pbasr.utils.file_hash import file_sha256
from keras_pbasr.utils.torch_files import check_finite_weights

# Subfolders of the output preset that hold the two PBaSR branches (save_branches=True).
GENERAL_BRANCH_DIR = "general_branch"
BLUR_BRANCH_DIR = "blur_branch"


def convert_checkpoint(
    path: str | Path,
    output_dir: str | Path,
    arch: str | None = None,
    strict: bool = True,
    key: str | None = None,
    save_branches: bool = False,
    overwrite: bool = False,
    config_overrides: dict | None = None,
    allow_non_finite: bool = False,
) -> Path:
    """Converts a PyTorch checkpoint into a preset directory and returns its path.

    Args:
        path: a .pth/.pt file (Real-ESRGAN / BasicSR, ESRGAN / BSRGAN, PBaSR ParallelNet...).
        output_dir: the preset directory to write (config.json, model.weights.h5,
            metadata.json); load it with `keras_pbasr.presets.preset_io.load_preset_dir`.
        arch: a registered converter name (`available_converters()`); inferred from the
            keys when None.
        strict: raise on any missing, unexpected or mis-shaped key (listing them all);
            with False, convert what fits and record what was skipped in metadata.json.
        key: the checkpoint entry holding the weights (e.g. "params_ema"). By default
            params_ema, then params; for PBaSR ParallelNet files `params` first, as the
            official code does.
        save_branches: for ParallelNet files, also write the general and blur branches as
            presets in `output_dir/general_branch` and `output_dir/blur_branch`.
        overwrite: allow writing into a non-empty `output_dir`.
        config_overrides: constructor arguments that the keys cannot tell (e.g.
            {"act_type": "leakyrelu"} for SRVGGNetCompact without PReLU weights); a name
            the architecture does not have raises ConversionError listing the valid ones.
        allow_non_finite: convert a checkpoint with NaN or infinite weights (refused by
            default: such a model outputs NaN, i.e. black, images).

    The checkpoint's zip CRCs are checked, and the output directory is checked before the
    checkpoint is read; each file of the preset is written atomically.

    Example:
    >>> convert_checkpoint("RealESRGAN_x4plus.pth", "presets/realesrgan_x4")  # doctest: +SKIP
    PosixPath('presets/realesrgan_x4')
    """
    path, output_dir = Path(path), Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir} is a file; the preset is a directory")
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{output_dir} exists and is not empty; pass --overwrite (overwrite=True) to "
            "write into it"
        )
    refuse_same_file(output_dir, [path])
    check_writable_folder(output_dir)
    weights, used_key = checkpoint_weights(path, key)
    check_finite_weights(weights, str(path), allow_non_finite)

    metadata = {
        "source_file": path.name,
        "source_sha256": file_sha256(path),
        "source_state_dict_key": used_key,
        "strict": strict,
    }
    branches = None
    if parallel_net.is_parallel_net(weights):
        general, blur = parallel_net.split_branches(weights, str(path))
        branches = {"general": general, "blur": blur}
        weights = parallel_net.average_branches(general, blur)
        metadata["pbasr_weights"] = "deployed: 0.5 * general_branch + 0.5 * defocus_branch"
    elif save_branches:
        raise ValueError(
            f"save_branches needs a PBaSR ParallelNet checkpoint ({parallel_net.GENERAL_PREFIX}* "
            f"and {parallel_net.BLUR_PREFIX}* keys); {path} has none"
        )

    converter = get_converter(arch) if arch else infer_converter(weights, str(path))
    model, report = convert_weights(converter, weights, strict, config_overrides, str(path))
    metadata.update(arch=converter.name, conversion=report.as_dict())
    with output_folder(output_dir):  # a failed save leaves no empty folder
        save_to_preset(model, output_dir, metadata=metadata, overwrite=overwrite)

    if save_branches and branches is not None:
        for name, folder, prefix in (
            ("general", GENERAL_BRANCH_DIR, parallel_net.GENERAL_PREFIX),
            ("blur", BLUR_BRANCH_DIR, parallel_net.BLUR_PREFIX),
        ):
            branch_model, branch_report = convert_weights(
                converter, branches[name], strict, config_overrides, f"{path} ({prefix}*)"
            )
            save_to_preset(
                branch_model,
                output_dir / folder,
                metadata={**metadata, "pbasr_weights": f"{prefix}* only",
                          "conversion": branch_report.as_dict()},
                overwrite=overwrite,
            )
    return output_dir
