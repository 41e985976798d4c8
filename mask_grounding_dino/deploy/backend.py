"""What a runner of the network offers the shared pre/post-processing.

A backend runs the network in two steps, so a long class list split into chunks
encodes each image once:

    handle = backend.encode_image(images [B,3,H,W], pixel_mask [B,H,W] or None)
    outputs = backend.run(handle, captions)        # 1 caption (shared) or B captions

``run`` returns :class:`GroundingOutputs` in eval form (``pred_logits [B,Q,T]``,
``pred_boxes [B,Q,4]``, ``pred_masks [B,Q,1,H/4,W/4]``, ``no_targets [B,2]``,
``union_mask_logits [B,2,H/8,W/8]``), on the CPU or the backend's device, so the
post-processor and the evaluators do not care which backend produced them.

:class:`TorchBackend` runs a ``MaskGroundingDINO`` (the image side once per batch, each
caption's text features cached); the ONNX runner lives in ``onnx_runner.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..model.outputs import GroundingOutputs
from ..text import TextProcessor
from ..utils.cpu import flushed_denormals
from .prompt_cache import PromptCache


class Backend(Protocol):
    """The interface :class:`~.detector.Detector` needs (see the module docstring)."""

    kind: str                                       # "pytorch" | "onnx"
    device: torch.device
    text_processor: TextProcessor
    fixed_input_size: tuple[int, int] | None        # (H, W) the network only accepts; None = any
    supports_padding: bool                          # False: every image of a batch fills the tensor

    def encode_image(self, images: Tensor, pixel_mask: Tensor | None) -> Any: ...

    def run(self, image: Any, captions: Sequence[str]) -> GroundingOutputs: ...

    def describe(self) -> str: ...


class TorchBackend:
    """A ``MaskGroundingDINO`` in eval mode on ``device``.

    Args:
        model: the network (moved to ``device`` and put in eval mode).
        device: where it runs (default: where its parameters are).
        source: the file it was loaded from (for messages).
        text_cache_size: single captions whose text features are kept (a class list is encoded
            once per run, not once per batch).
        text_pad_to: pad captions to this many tokens (None: to the longest, as in training).
            The region head attends to padded text tokens (TAO's design), so its outputs
            (``no_targets``, ``union_mask_logits``) shift slightly with the padding; 256
            reproduces an exported ONNX graph exactly.
    """

    kind = "pytorch"
    fixed_input_size = None
    supports_padding = True

    def __init__(self, model: nn.Module, *, device: str | torch.device | None = None, source: str = "",
                 text_cache_size: int = 64, text_pad_to: int | None = None):
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        build = getattr(model, "build_config", {}) or {}
        self.text_processor = TextProcessor(str(build.get("text_encoder_type", "bert-base-uncased")),
                                            int(model.max_text_len))
        self.source = source
        self.text_pad_to = text_pad_to
        self._text_cache = PromptCache(text_cache_size)

    def describe(self) -> str:
        return f"PyTorch model {self.source or ''} on {self.device}".replace("  ", " ")

    # Trained weights hold subnormal values that slow CPU math: flushed during our calls only (utils/cpu.py).
    @flushed_denormals()
    @torch.inference_mode()
    def encode_image(self, images: Tensor, pixel_mask: Tensor | None):
        """Backbone + input projections: ``ImageFeatures`` of the batch."""
        mask = None if pixel_mask is None else pixel_mask.to(self.device)
        return self.model.encode_image(images.to(self.device, torch.float32), mask)

    def _encode_text(self, captions: Sequence[str]):
        def encode():
            text = self.text_processor(list(captions), pad_to=self.text_pad_to).to(self.device)
            return self.model.encode_text(*text.as_tuple())

        return self._text_cache.get(captions[0], encode) if len(captions) == 1 else encode()

    @flushed_denormals()
    @torch.inference_mode()
    def run(self, image, captions: Sequence[str]) -> GroundingOutputs:
        """Encoder, decoder and heads for ``captions`` (1 shared caption, or one per image)."""
        if len(captions) not in (1, image.batch_size):
            raise ValueError(f"run: {len(captions)} captions for a batch of {image.batch_size} images")
        return self.model.forward_features(image, self._encode_text(captions))
