"""The contrastive class head: query-token similarity as token logits."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: TAO's initial logit bias when ``class_embed_bias`` is on: prior probability 0.01.
BIAS_INIT = -math.log((1 - 0.01) / 0.01)  # -4.595


def parse_log_scale(value) -> float | str | None:
    """TAO's ``log_scale``: ``none``/None (raw dot product), ``auto`` (divide by sqrt(C)),
    or a number (learnable scale ``exp(log_scale)``, initialised to that number)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    if text in ("none", ""):
        return None
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        from ..errors import SpecError
        raise SpecError(f"model.log_scale: '{value}' is not allowed; use none, auto or a number") from None


class ContrastiveEmbed(nn.Module):
    """``forward(queries [B,Q,C], text [B,T,C], text_mask [B,T] bool True=real) -> [B,Q,max_text_len]``.

    Logits at padded tokens and beyond ``T`` are ``-inf``. Optional TAO extras:
    a learnable scalar ``bias`` (init -4.6) and a ``log_scale`` (see :func:`parse_log_scale`).
    """

    def __init__(self, max_text_len: int = 256, log_scale=None, bias: bool = False):
        super().__init__()
        self.max_text_len = int(max_text_len)
        scale = parse_log_scale(log_scale)
        self.scale_mode = "none" if scale is None else ("auto" if scale == "auto" else "learned")
        if self.scale_mode == "learned":
            self.log_scale = nn.Parameter(torch.tensor([float(scale)]))
        self.bias = nn.Parameter(torch.tensor([BIAS_INIT])) if bias else None

    def forward(self, queries: Tensor, text: Tensor, text_mask: Tensor, pad: bool = True) -> Tensor:
        """``pad=False`` returns ``[B,Q,T]`` without the ``-inf`` columns up to ``max_text_len``
        (enough for a max over tokens, and much smaller for the encoder's every-token scores)."""
        logits = queries @ text.transpose(-1, -2)
        if self.scale_mode == "learned":
            logits = logits * self.log_scale.exp()
        elif self.scale_mode == "auto":
            logits = logits / math.sqrt(queries.shape[-1])
        if self.bias is not None:
            logits = logits + self.bias
        logits = logits.masked_fill(~text_mask[:, None, :], float("-inf"))
        missing = self.max_text_len - logits.shape[-1]
        if pad and missing > 0:
            filler = torch.full((*logits.shape[:-1], missing), float("-inf"), dtype=logits.dtype,
                                device=logits.device)
            logits = torch.cat([logits, filler], dim=-1)
        return logits

    def extra_repr(self) -> str:
        return f"max_text_len={self.max_text_len}, scale={self.scale_mode}, bias={self.bias is not None}"
