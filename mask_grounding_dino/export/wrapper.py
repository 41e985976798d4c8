"""The module that gets traced: TAO's six inputs in, a tuple of named outputs out."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .io_names import OUTPUT_NAMES


class OnnxWrapper(nn.Module):
    """Calls ``model(inputs, input_ids, attention_mask, position_ids, token_type_ids,
    text_token_mask)`` and returns the outputs named ``output_names`` as a tuple.

    ``model`` returns a ``GroundingOutputs`` (``as_tao_dict()``) or a dict of tensors.
    """

    def __init__(self, model: nn.Module, output_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.output_names = tuple(output_names)

    @staticmethod
    def outputs_as_dict(outputs) -> dict[str, Tensor]:
        return outputs.as_tao_dict() if hasattr(outputs, "as_tao_dict") else dict(outputs)

    def forward(self, inputs: Tensor, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                token_type_ids: Tensor, text_token_mask: Tensor) -> tuple[Tensor, ...]:
        out = self.outputs_as_dict(self.model(inputs, input_ids, attention_mask, position_ids,
                                              token_type_ids, text_token_mask))
        return tuple(out[name] for name in self.output_names)


@torch.no_grad()
def discover_outputs(model: nn.Module, example: tuple[Tensor, ...]) -> dict[str, tuple[int, ...]]:
    """The TAO outputs ``model`` produces (in TAO's order) and their shapes, by one forward pass."""
    produced = OnnxWrapper.outputs_as_dict(model(*example))
    unknown = sorted(set(produced) - set(OUTPUT_NAMES))
    if unknown:
        raise ValueError(f"model returned outputs {unknown} that TAO's interface does not have")
    return {name: tuple(produced[name].shape) for name in OUTPUT_NAMES if name in produced}
