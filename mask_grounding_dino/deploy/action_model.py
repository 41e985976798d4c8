"""The model of an ``evaluate`` / ``inference`` run, opened from its spec section.

* the file: ``<action>.trt_engine`` when set (TensorRT; refused with a clear reason here),
  else ``<action>.checkpoint`` (a checkpoint or an ``.onnx`` file);
* the device: the first of ``<action>.gpu_ids`` when CUDA is available, else the CPU; a run
  over several processes (``deploy/parallel.py``) opens it on the CPU and Lightning puts each
  rank's replica on its own device;
* the input size: an ONNX graph exported at H x W fixes ``<action>.input_width/height``
  (as TAO Deploy, which resizes to the engine's size; a different spec value is noted).
"""

from __future__ import annotations

from ..config import is_unset
from ..errors import SpecError
from .loading import open_backend
from ..utils.log import get_logger

log = get_logger(__name__)


def model_path(cfg, action: str) -> tuple[str, str]:
    """(path, spec key) of the model the action runs."""
    section = getattr(cfg, action)
    engine = getattr(section, "trt_engine", "")
    if not is_unset(engine):
        return str(engine), f"{action}.trt_engine"
    if is_unset(section.checkpoint):
        raise SpecError(f"{action}.checkpoint: required for {action}; give a .pth checkpoint or an .onnx file "
                        f"({action}.checkpoint=...)")
    return str(section.checkpoint), f"{action}.checkpoint"


def open_action_model(cfg, action: str, *, device: str | None = None):
    """The backend for ``cfg.<action>`` (see the module docstring); ``device`` overrides the choice."""
    section = getattr(cfg, action)
    path, key = model_path(cfg, action)
    backend = open_backend(path, model_section=cfg.model, device=device, gpu_ids=section.gpu_ids, key=key,
                           text_encoder_type=cfg.model.text_encoder_type, ioi_threshold=section.ioi_threshold)
    fit_input_size(cfg, action, backend)
    return backend


def fit_input_size(cfg, action: str, backend) -> None:
    """Make ``<action>.input_width/height`` the graph's size when the backend only takes one size."""
    fixed = backend.fixed_input_size
    if fixed is None:
        return
    section = getattr(cfg, action)
    height, width = fixed
    given = (section.input_height, section.input_width)
    if given != (None, None) and given != (height, width):
        log.info(f"note: {action}.input_width/input_height {section.input_width}x{section.input_height} replaced by "
                 f"the ONNX graph's fixed input {width}x{height}")
    section.input_height, section.input_width = height, width


def loader_divisibility(backend) -> int:
    """Batch padding multiple: 32 for PyTorch, none for graphs without a padding mask."""
    return 32 if backend.supports_padding else 1
