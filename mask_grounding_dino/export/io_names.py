"""TAO's ONNX interface: input/output names, their order, and example inputs.

Inputs, in TAO's export order, B dynamic or fixed, T = the model's ``max_text_len`` (256):

    inputs           [B, 3, H, W] float32, normalised image
    input_ids        [B, T] int64
    attention_mask   [B, T] bool, True at real tokens
    position_ids     [B, T] int64, restarting in every phrase
    token_type_ids   [B, T] int64
    text_token_mask  [B, T, T] bool, phrase-level self-attention mask

Outputs: ``pred_logits [B,Q,T]``, ``pred_boxes [B,Q,4]``, ``pred_masks [B,Q,1,H/4,W/4]``,
plus ``no_targets [B,2]`` and ``union_mask_logits [B,2,H/8,W/8]`` with the region head.
The text stays an input, so the exported model keeps its open vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

INPUT_NAMES = ("inputs", "input_ids", "attention_mask", "position_ids", "token_type_ids", "text_token_mask")
#: Every output TAO may write, in TAO's order; a model writes the ones it has.
OUTPUT_NAMES = ("pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits")
#: Name of the dynamic batch axis (axis 0 of every input and output).
BATCH_AXIS = "batch_size"
#: Name of the text axis when it is dynamic (axis 1 of the text inputs; axes 1 and 2 of ``text_token_mask``).
TEXT_AXIS = "text_len"
#: Tokens a dynamic text axis is traced with: no other axis of the graph should have this size.
TRACE_TEXT_LEN = 23

#: Captions for example inputs: different phrase counts, so batch rows differ.
EXAMPLE_CAPTIONS = ("person . dog . bicycle .", "a red car parked near the street .",
                    "cat . remote control . sofa . lamp .")


@dataclass
class ExampleInputs:
    """One batch of export inputs, in :data:`INPUT_NAMES` order."""

    inputs: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    token_type_ids: Tensor
    text_token_mask: Tensor

    def as_tuple(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, name) for name in INPUT_NAMES)

    def as_numpy(self) -> dict:
        """Feed dict for onnxruntime."""
        return {name: getattr(self, name).detach().cpu().numpy() for name in INPUT_NAMES}

    def to(self, device) -> "ExampleInputs":
        return ExampleInputs(*(t.to(device) for t in self.as_tuple()))


def example_inputs(batch: int, input_size: tuple[int, int], text_len: int = 256,
                   text_encoder_type: str = "bert-base-uncased", seed: int = 0,
                   captions: tuple[str, ...] = EXAMPLE_CAPTIONS) -> ExampleInputs:
    """A random normalised image batch and real tokenised captions padded to ``text_len``.

    Row ``i`` gets caption ``captions[i % len(captions)]``.
    """
    from ..text import TextProcessor

    height, width = input_size
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, height, width, generator=gen)
    text = TextProcessor(text_encoder_type, text_len)([captions[i % len(captions)] for i in range(batch)],
                                                      pad_to=text_len)
    return ExampleInputs(image, *text.as_tuple())
