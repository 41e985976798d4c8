"""torchao's int8 weight-only Conv2d: which convolutions it takes, and that they round-trip."""

from __future__ import annotations

import io

import torch
from torch import nn

from mask_grounding_dino.config.quantize import QuantLayerConfig, QuantTensorConfig
from mask_grounding_dino.quantize.layers import model_layers, plan_layers
from mask_grounding_dino.quantize.torchao_backend import SUPPORTED, narrow_plan, quantize_weights


class Convs(nn.Module):
    """A dense conv, a depthwise one, a grouped one (two input channels per group) and a Linear."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grouped = nn.Conv2d(16, 16, 1, groups=8)
        self.head = nn.Linear(16, 4)

    def forward(self, x):                  # (B, 8, H, W) -> (B, H/2 * W/2, 4)
        return self.head(self.grouped(self.depthwise(self.dense(x))).flatten(2).transpose(1, 2))


def _plan(model, dtype="int8"):
    rules = [QuantLayerConfig(module_name="*", weights=QuantTensorConfig(dtype=dtype))]
    return narrow_plan(model, plan_layers(model_layers(model), layers=rules, supported=SUPPORTED, backend="torchao"))


def _fresh() -> Convs:
    torch.manual_seed(0)
    return Convs().eval()


def test_depthwise_and_float8_convolutions_stay_float_with_a_reason():
    plan = _plan(_fresh())
    assert set(plan.chosen) == {"dense", "grouped", "head"}
    assert "depthwise" in plan.skipped["depthwise"]
    fp8 = _plan(_fresh(), dtype="fp8_e4m3fn")
    assert "mslk" in fp8.skipped["dense"] and "depthwise" in fp8.skipped["depthwise"]
    assert set(fp8.chosen) == {"head"}


def test_int8_convolutions_store_int8_run_and_round_trip_through_a_weights_only_file():
    from torchao.utils import TorchAOBaseTensor

    model = _fresh()
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        reference = model(x)
        quantize_weights(model, _plan(model))
        out = model(x)
    for name in ("dense", "grouped"):
        weight = getattr(model, name).weight
        assert isinstance(weight, TorchAOBaseTensor) and weight.qdata.dtype == torch.int8, name
    assert type(model.depthwise.weight) is nn.Parameter
    # int8 weights with a scale per output channel and kernel position: the error of a few
    # quantisation steps through three layers stays well under 2 % of the output's range.
    assert (out - reference).abs().max() < 0.02 * reference.abs().max()
    assert not torch.equal(out, reference)         # the weights really changed

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = _fresh()
    restored.load_state_dict(torch.load(buffer, weights_only=True), assign=True)
    with torch.no_grad():
        assert torch.equal(restored(x), out)
