"""Backends of multi-scale deformable attention's sampling step.

All compute ``ms_deform_attn(value [B,Nv,H,D], spatial_shapes [L,2],
sampling_locations [B,Nq,H,L,P,2], attention_weights [B,Nq,H,L,P]) -> [B,Nq,H*D]``
with ``grid_sample``'s semantic (bilinear, zeros padding, align_corners=False):

- ``grid_sample.py``: the reference, one ``F.grid_sample`` per level;
- ``gather.py``: explicit bilinear taps; ``embedding_bag`` in eager mode (CPU:
  several times faster than the reference, with the hand-written backward of
  ``gather_autograd.py`` for training) and ``Gather`` ops for ONNX export;
- ``triton_msda.py``: a fused Triton kernel (forward + backward) for GPUs.

``mask_grounding_dino.model.ms_deform_attn`` picks one (``backend="auto"``).
"""

from .gather import ms_deform_attn_gather
from .grid_sample import ms_deform_attn_grid_sample
from .triton_msda import ms_deform_attn_triton

__all__ = ["ms_deform_attn_gather", "ms_deform_attn_grid_sample", "ms_deform_attn_triton"]
