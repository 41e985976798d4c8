"""What the model returns: one typed container for training and evaluation.

Eval-mode tensors carry the names and shapes of TAO's model outputs (and of its ONNX export):

    pred_logits        [B, Q, max_text_len]  token logits, -inf at padded/absent tokens
    pred_boxes         [B, Q, 4]             cx, cy, w, h in [0, 1] of the *unpadded* image
    pred_masks         [B, Q, 1, H/4, W/4]   mask logits over the padded input (eval mode)
    no_targets         [B, 2]                region head: index 1 = "nothing matches the prompt"
    union_mask_logits  [B, 2, H/8, W/8]      region head: (background, foreground) logits

Training extras: per-decoder-layer predictions for the auxiliary losses, the
encoder (two-stage proposal) predictions, the region head's minimap, and a hook
that computes masks only for the queries the matcher picked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from torch import Tensor

#: ``mask_fn(layer, batch_idx, query_idx) -> [K, H/4, W/4]`` mask logits of the
#: K (image, query) pairs at decoder layer ``layer`` (-1 = last).
MaskFn = Callable[[int, Tensor, Tensor], Tensor]


@dataclass
class LayerPrediction:
    """Class and box predictions of one decoder layer or of the encoder proposals."""

    pred_logits: Tensor   # [B, Q, max_text_len]
    pred_boxes: Tensor    # [B, Q, 4] normalised cxcywh


@dataclass
class GroundingOutputs:
    pred_logits: Tensor
    pred_boxes: Tensor
    text_mask: Tensor                                   # [B, max_text_len] bool, True at real tokens
    pred_masks: Optional[Tensor] = None                 # [B, Q, 1, H/4, W/4]
    no_targets: Optional[Tensor] = None                 # [B, 2]
    union_mask_logits: Optional[Tensor] = None          # [B, 2, H/8, W/8]
    minimap: Optional[Tensor] = None                    # [B, Qr, 2] region-head minimap logits
    aux_outputs: list[LayerPrediction] = field(default_factory=list)   # decoder layers 0..L-2
    enc_outputs: Optional[LayerPrediction] = None       # two-stage proposals (interm)
    mask_fn: Optional[MaskFn] = None                    # training: masks of matched queries only
    input_size: Optional[tuple[int, int]] = None        # padded (H, W) of the image tensor
    # Training with denoising queries (model.dn_number > 0): their predictions at every decoder
    # layer (last included) and their layout (``model.denoising.DenoisingMeta``).
    dn_outputs: list[LayerPrediction] = field(default_factory=list)
    dn_meta: Optional[Any] = None

    def as_tao_dict(self) -> dict[str, Tensor]:
        """The exported outputs by TAO name (absent ones left out)."""
        out = {"pred_logits": self.pred_logits, "pred_boxes": self.pred_boxes}
        for name in ("pred_masks", "no_targets", "union_mask_logits"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out
