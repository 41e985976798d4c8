"""Which device a run uses: ``cuda:<id>`` when a GPU is there, else the CPU.

Evaluate and inference run on one device (the first of ``gpu_ids``); the actions say so
when a spec asks for more. onnxruntime gets the CUDA provider only when its build has one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import SpecError


def resolve_device(device: str | torch.device | None = None, gpu_ids: Sequence[int] | None = None,
                   *, key: str = "gpu_ids") -> torch.device:
    """``device`` when given; else ``cuda:<gpu_ids[0]>`` (default 0) when CUDA is available, else CPU.

    Raises :class:`SpecError` (naming ``key``) for a GPU index the machine does not have.
    """
    if device is not None:
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise SpecError(f"device '{device}': CUDA is not available on this machine; use 'cpu'")
        return resolved
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = int(gpu_ids[0]) if gpu_ids else 0
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise SpecError(f"{key}: GPU {index} does not exist; this machine has {count} GPU(s) (0..{count - 1})")
    return torch.device("cuda", index)


def onnx_providers(device: torch.device) -> list:
    """onnxruntime execution providers for ``device`` (CUDA first when asked for and built in)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.type == "cuda" and "CUDAExecutionProvider" in available:
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
