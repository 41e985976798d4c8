"""``model``: network structure, matching costs and loss weights."""

from __future__ import annotations

from dataclasses import dataclass

from .fields import INF, spec_field

#: The six backbone names TAO accepts.
TAO_BACKBONES = ("swin_tiny_224_1k", "swin_base_224_22k", "swin_base_384_22k", "swin_large_224_22k",
                 "swin_large_384_22k", "resnet_50")
#: Every backbone name ``model.backbone`` accepts: TAO's plus our small presets for CPU runs
#: (the model team registers each name; a test checks the registry agrees with this list).
BACKBONES = TAO_BACKBONES + ("resnet_18", "resnet_tiny", "swin_nano")


def _check_log_scale(value: str) -> str | None:
    """``log_scale`` is "none", "auto" or a number written as text (the initial logit scale)."""
    if value in ("none", "auto"):
        return None
    try:
        float(value)
    except ValueError:
        return f"expected 'none', 'auto' or a number, got {value!r}"
    return None


@dataclass
class ModelConfig:
    """Structure of the Grounding DINO detector with its mask and region heads."""

    pretrained_backbone_path: str = spec_field(
        "", title="Pretrained backbone weights",
        description="Checkpoint holding weights for the image backbone only; empty starts from random weights.")
    backbone: str = spec_field(
        "swin_tiny_224_1k", title="Backbone", valid_options=BACKBONES, popular=True,
        description="Image feature extractor. Swin variants are named by size, pretraining resolution and "
                    "ImageNet split; resnet_18, resnet_tiny and swin_nano are small presets for CPU runs.")
    num_queries: int = spec_field(
        900, title="Object queries", valid_min=1, valid_max=INF, parent_param=True, popular=True,
        description="How many detection slots the decoder refines; each can become one predicted object.")
    num_feature_levels: int = spec_field(
        4, title="Feature levels", valid_min=1, valid_max=5,
        description="Number of image feature scales fed to the deformable transformer.")
    set_cost_class: float = spec_field(
        1.0, title="Matching cost: class", valid_min=0.0, valid_max=INF, popular=True,
        description="Weight of the classification term when pairing predictions with ground truth.")
    set_cost_bbox: float = spec_field(
        5.0, title="Matching cost: box L1", valid_min=0.0, valid_max=INF, popular=True,
        description="Weight of the box coordinate L1 distance when pairing predictions with ground truth.")
    set_cost_giou: float = spec_field(
        2.0, title="Matching cost: GIoU", valid_min=0.0, valid_max=INF, popular=True,
        description="Weight of the generalised-IoU term when pairing predictions with ground truth.")
    cls_loss_coef: float = spec_field(
        2.0, title="Classification loss weight", valid_min=0.0, valid_max=INF, popular=True,
        description="Multiplier of the token-level focal classification loss.")
    bbox_loss_coef: float = spec_field(
        5.0, title="Box L1 loss weight", valid_min=0.0, valid_max=INF, popular=True,
        description="Multiplier of the L1 loss on normalised box coordinates.")
    giou_loss_coef: float = spec_field(
        2.0, title="GIoU loss weight", valid_min=0.0, valid_max=INF, popular=True,
        description="Multiplier of the generalised-IoU box loss.")
    num_select: int = spec_field(
        300, title="Kept detections", valid_min=1, valid_max=1000, depends_on="model.num_queries",
        automl_enabled=True, popular=True,
        description="How many top-scoring (query, token) pairs post-processing keeps per image.")
    interm_loss_coef: float = spec_field(
        1.0, title="Encoder proposal loss weight",
        description="Multiplier of the losses on the encoder's proposals (two-stage query selection).")
    no_interm_box_loss: bool = spec_field(
        False, title="Skip encoder box loss",
        description="Drop the box terms from the encoder proposal loss.")
    pre_norm: bool = spec_field(
        False, title="Pre-normalisation",
        description="Apply layer norm before (instead of after) each transformer sub-layer.")
    two_stage_type: str = spec_field(
        "standard", title="Query selection", valid_options=("standard", "no"),
        description="'standard' picks decoder queries from encoder proposals; 'no' uses learned queries only.")
    decoder_sa_type: str = spec_field(
        "sa", title="Decoder self-attention", valid_options=("sa",),
        description="Kind of self-attention between decoder queries: 'sa', plain self-attention, the only "
                    "kind Grounding DINO's decoder has.")
    embed_init_tgt: bool = spec_field(
        True, title="Learned query content",
        description="Start decoder query content from a learned embedding rather than from encoder features.")
    fix_refpoints_hw: int = spec_field(
        -1, title="Fixed reference box size (unused)", valid_min=-2, valid_max=INF, math_cond="!= 0",
        description="Kept for TAO compatibility, no effect: reference boxes come from the encoder's proposals "
                    "with a learned width and height (a DINO key that TAO's Grounding DINO models do not read).")
    pe_temperatureH: int = spec_field(
        20, title="Position encoding temperature (height)", valid_min=1, valid_max=INF,
        description="Temperature of the sine position encoding along the image height.")
    pe_temperatureW: int = spec_field(
        20, title="Position encoding temperature (width)", valid_min=1, valid_max=INF,
        description="Temperature of the sine position encoding along the image width.")
    return_interm_indices: list[int] = spec_field(
        [1, 2, 3, 4], title="Backbone stages used", automl_enabled=False,
        description="Backbone stages whose outputs feed the transformer (1 is the highest resolution).")
    use_dn: bool = spec_field(
        True, title="Denoising training",
        description="Add noised copies of ground-truth boxes as extra queries during training.")
    dn_number: int = spec_field(
        0, title="Denoising groups", valid_min=0, valid_max=INF,
        description="Number of denoising query groups; 0 disables them even when use_dn is on.")
    dn_box_noise_scale: float = spec_field(
        1.0, title="Denoising box noise", valid_min=0.0, valid_max=INF,
        description="Scale of the random shift and resize applied to denoising boxes.")
    dn_label_noise_ratio: float = spec_field(
        0.5, title="Denoising label noise", valid_min=0.0,
        description="Fraction of denoising queries whose label is swapped at random.")
    focal_alpha: float = spec_field(
        0.25, title="Focal loss alpha", math_cond="> 0.0",
        description="Balance between positive and negative tokens in the focal loss.")
    focal_gamma: float = spec_field(
        2.0, title="Focal loss gamma", math_cond="> 0.0",
        description="Focusing exponent of the focal loss; larger values down-weight easy tokens more.")
    clip_max_norm: float = spec_field(
        0.1, title="Clip max norm (unused)",
        description="Kept for TAO compatibility, no effect (TAO does not read it either); gradient clipping is "
                    "set by train.clip_grad_norm.")
    nheads: int = spec_field(
        8, title="Attention heads",
        description="Number of attention heads in every transformer layer.")
    dropout_ratio: float = spec_field(
        0.0, title="Dropout", valid_min=0.0, valid_max=1.0,
        description="Dropout probability inside the transformer.")
    hidden_dim: int = spec_field(
        256, title="Model width", automl_enabled=False,
        description="Feature width of the transformer and the heads.")
    enc_layers: int = spec_field(
        6, title="Encoder layers", valid_min=1, valid_max=6, automl_enabled=False,
        description="Depth of the feature-enhancer encoder. TAO fixes it at 6; smaller values give fast presets "
                    "but do not load TAO checkpoints.")
    dec_layers: int = spec_field(
        6, title="Decoder layers", valid_min=1, valid_max=6, automl_enabled=False,
        description="Depth of the cross-modality decoder. TAO fixes it at 6; smaller values give fast presets "
                    "but do not load TAO checkpoints.")
    dim_feedforward: int = spec_field(
        2048, title="Feed-forward width", valid_min=1,
        description="Hidden width of the feed-forward block in each transformer layer.")
    dec_n_points: int = spec_field(
        4, title="Decoder sampling points", valid_min=1,
        description="Sampling points per head and level in decoder deformable attention.")
    enc_n_points: int = spec_field(
        4, title="Encoder sampling points", valid_min=1,
        description="Sampling points per head and level in encoder deformable attention.")
    aux_loss: bool = spec_field(
        True, title="Per-layer losses",
        description="Also supervise the predictions of every intermediate decoder layer.")
    dilation: bool = spec_field(
        False, title="Dilated last stage",
        description="Replace the stride of the backbone's last stage with dilation (ResNet only).")
    train_backbone: bool = spec_field(
        True, title="Train backbone",
        description="Update the image backbone's weights; off keeps it frozen.")
    text_encoder_type: str = spec_field(
        "bert-base-uncased", title="Text encoder",
        description="Language model for the prompt: a Hugging Face hub id, a local folder saved with "
                    "save_pretrained, or 'minilm' for the small encoder bundled with this package.")
    max_text_len: int = spec_field(
        256, title="Maximum prompt tokens", valid_min=1,
        description="Longest tokenised prompt the model attends to; longer prompts are split.")
    class_embed_bias: bool = spec_field(
        False, title="Contrastive head bias",
        description="Add a learned bias to the image-text similarity logits.")
    log_scale: str = spec_field(
        "none", title="Contrastive logit scale", check=_check_log_scale,
        description="Scale of the image-text logits: 'none', 'auto' (learned) or a number for a fixed "
                    "initial value.")
    loss_types: list[str] = spec_field(
        ["labels", "boxes", "masks"], title="Loss terms", automl_enabled=False,
        description="Which loss groups to compute: classification labels, boxes and masks.")
    backbone_names: list[str] = spec_field(
        ["backbone.0", "bert"], title="Backbone parameter prefixes", automl_enabled=False,
        description="Parameter-name prefixes trained with train.optim.lr_backbone.")
    linear_proj_names: list[str] = spec_field(
        ["reference_points", "sampling_offsets"], title="Projection parameter prefixes", automl_enabled=False,
        description="Parameter-name parts trained at lr times train.optim.lr_linear_proj_mult.")
    has_mask: bool = spec_field(
        True, title="Mask head",
        description="Predict an instance mask for each detection.")
    num_region_queries: int = spec_field(
        100, title="Region queries",
        description="Queries of the region head that scores 'no target' and the union mask for referring "
                    "expressions.")
    mask_loss_coef: float = spec_field(
        2.0, title="Mask focal loss weight", valid_min=0.0, valid_max=INF,
        description="Multiplier of the per-pixel focal loss on predicted masks.")
    rela_nt_loss_coef: float = spec_field(
        1.0, title="No-target loss weight", valid_min=0.0, valid_max=INF,
        description="Multiplier of the region head's loss on whether the expression has any target.")
    rela_minimap_loss_coef: float = spec_field(
        0.5, title="Region minimap loss weight", valid_min=0.0, valid_max=INF,
        description="Multiplier of the region head's coarse region-map loss.")
    rela_union_mask_loss_coef: float = spec_field(
        2.0, title="Union mask loss weight", valid_min=0.0, valid_max=INF,
        description="Multiplier of the region head's loss on the union of all target masks.")
    dice_loss_coef: float = spec_field(
        5.0, title="Mask dice loss weight", valid_min=0.0, valid_max=INF,
        description="Multiplier of the dice loss on predicted masks.")
    precise_msda: bool = spec_field(
        False, title="Deterministic deformable attention",
        description="On GPUs, run multi-scale deformable attention with a backward pass that adds no gradients "
                    "atomically, so repeated runs get identical gradients (slower); CPUs always do (a TAO 7 key).")
