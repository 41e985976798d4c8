"""ResNets with torchvision's parameter names (``conv1, bn1, layer1..4``), kept under
``body`` as the original Grounding DINO checkpoints do (``backbone.0.body.layer2...``).

``resnet_50`` is the original's: frozen BatchNorm, stem and ``layer1`` not trained
(it expects ImageNet weights via ``pretrained_backbone_path``). The small presets
learn from scratch, so every layer trains and BatchNorm is ordinary.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops.misc import FrozenBatchNorm2d

from .registry import register_backbone


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNetTrunk(nn.Module):
    """Stem + four stages (no classifier): torchvision names."""

    def __init__(self, block, layers: list[int], widths: list[int], stem_width: int, norm, dilation: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_width, 7, 2, 3, bias=False)
        self.bn1 = norm(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, dil = stem_width, 1
        for i, (n, width) in enumerate(zip(layers, widths)):
            stride, first_dil = (1 if i == 0 else 2), dil
            if dilation and i == 3:  # torchvision's replace_stride_with_dilation=[False, False, True]
                dil, stride = dil * stride, 1
            downsample = None
            if stride != 1 or inplanes != width * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(inplanes, width * block.expansion, 1, stride, bias=False),
                                           norm(width * block.expansion))
            blocks = [block(inplanes, width, stride, first_dil, downsample, norm)]
            inplanes = width * block.expansion
            blocks += [block(inplanes, width, 1, dil, None, norm) for _ in range(1, n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.stage_channels = [w * block.expansion for w in widths]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class ResNetBackbone(nn.Module):
    """Returns the stages ``out_indices`` of a :class:`ResNetTrunk` held as ``body``.

    ``frozen_prefixes`` names trunk parameters that never train (the original
    freezes the stem and ``layer1`` of its ImageNet-initialised ResNet-50).
    """

    def __init__(self, trunk: ResNetTrunk, out_indices: list[int], dilation: bool, activation_checkpoint: bool,
                 frozen_prefixes: tuple[str, ...] = ()):
        super().__init__()
        self.body = trunk
        self.out_indices = list(out_indices)
        self.activation_checkpoint = activation_checkpoint
        strides = [4, 8, 16, 16 if dilation else 32]
        self.num_channels = [trunk.stage_channels[i] for i in self.out_indices]
        self.strides = [strides[i] for i in self.out_indices]
        self.frozen_prefixes = frozen_prefixes
        for name, p in self.body.named_parameters():
            if name.startswith(frozen_prefixes):
                p.requires_grad_(False)
        # NHWC convolutions are faster on CPU (oneDNN): resnet_tiny forward + backward at
        # 8x224x224, one thread, 0.07 s instead of 0.09 s. Same values up to float rounding.
        self.body.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B,3,H,W]`` -> one map per returned stage (channels-last memory)."""
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x.contiguous(memory_format=torch.channels_last)))))
        outs = []
        for i in range(max(self.out_indices) + 1):
            stage = getattr(b, f"layer{i + 1}")
            if self.activation_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


def _resnet(block, layers, widths, stem_width, frozen: bool):
    def build(out_indices, dilation=False, activation_checkpoint=False, **overrides):
        norm = FrozenBatchNorm2d if frozen else nn.BatchNorm2d
        trunk = ResNetTrunk(block, overrides.get("layers", layers), overrides.get("widths", widths),
                            overrides.get("stem_width", stem_width), norm, dilation)
        return ResNetBackbone(trunk, out_indices, dilation, activation_checkpoint,
                              frozen_prefixes=("conv1.", "bn1.", "layer1.") if frozen else ())
    return build


register_backbone("resnet_50", "resnet", "ResNet-50, frozen BatchNorm (original Grounding DINO)")(
    _resnet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], 64, frozen=True))
register_backbone("resnet_18", "resnet", "ResNet-18 (trainable BatchNorm) for CPU runs", small=True)(
    _resnet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], 64, frozen=False))
register_backbone("resnet_tiny", "resnet", "narrow ResNet (widths 16-32-64-128) for fast CPU learning", small=True)(
    _resnet(BasicBlock, [1, 1, 1, 1], [16, 32, 64, 128], 16, frozen=False))
