"""Loss helpers and box ops against hand-computed values and torchvision."""

import math

import pytest
import torch
import torchvision

from mask_grounding_dino.model import box_ops
from mask_grounding_dino.model.losses import (
    dice_loss,
    fg_bg_bce,
    find_grid,
    mask_focal_loss,
    pool_fraction,
    rasterize_boxes,
    sigmoid_focal_loss,
    token_focal_loss,
)

LN2 = math.log(2.0)


# ------------------------------------------------------------------ focal / dice
def test_sigmoid_focal_hand_values():
    # logit 0 -> p = 0.5, BCE = ln 2, (1 - p_t)^2 = 0.25; alpha 0.25 on the positive, 0.75 on the negative.
    loss = sigmoid_focal_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), alpha=0.25, gamma=2.0)
    expected = torch.tensor([0.25 * 0.25 * LN2, 0.75 * 0.25 * LN2])
    torch.testing.assert_close(loss, expected)
    # alpha < 0 disables balancing; gamma 0 gives plain BCE.
    plain = sigmoid_focal_loss(torch.tensor([2.0]), torch.tensor([1.0]), alpha=-1, gamma=0.0)
    torch.testing.assert_close(plain, torch.tensor([math.log(1 + math.exp(-2.0))]))


def test_token_focal_skips_padded_tokens_and_normalises():
    logits = torch.zeros(1, 2, 4)
    logits[..., 3] = float("-inf")                       # padded token, as the model emits
    targets = torch.zeros(1, 2, 4)
    targets[0, 0, 1] = 1.0
    text_mask = torch.tensor([[True, True, True, False]])
    loss = token_focal_loss(logits, targets, text_mask, num_pos=1)
    # 6 real cells: 1 positive (0.25*0.25*ln2) + 5 negatives (0.75*0.25*ln2).
    expected = 0.25 * 0.25 * LN2 + 5 * 0.75 * 0.25 * LN2
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # num_pos = 0 is clamped to 1 rather than dividing by zero.
    assert token_focal_loss(logits, targets, text_mask, num_pos=0).item() == pytest.approx(expected, rel=1e-6)


def test_mask_focal_is_mean_over_pixels_sum_over_masks():
    logits = torch.zeros(2, 4)
    targets = torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 0]])
    per_pixel_pos, per_pixel_neg = 0.25 * 0.25 * LN2, 0.75 * 0.25 * LN2
    expected = ((2 * per_pixel_pos + 2 * per_pixel_neg) / 4 + per_pixel_neg) / 2   # num_boxes = 2
    assert mask_focal_loss(logits, targets, num_boxes=2).item() == pytest.approx(expected, rel=1e-6)


def test_dice_hand_values():
    # p = 0.5 everywhere, target [1, 1, 0, 0]: 1 - (2*1 + 1) / (2 + 2 + 1) = 0.4.
    logits = torch.zeros(1, 4)
    targets = torch.tensor([[1.0, 1, 0, 0]])
    assert dice_loss(logits, targets, num_boxes=1).item() == pytest.approx(0.4, rel=1e-6)
    # Confident perfect mask -> ~0; empty target with p ~ 0 -> ~0 thanks to the +1 smoothing.
    perfect = dice_loss(torch.tensor([[20.0, 20, -20, -20]]), targets, num_boxes=1)
    assert perfect.item() < 1e-6
    assert dice_loss(torch.full((1, 4), -20.0), torch.zeros(1, 4), num_boxes=1).item() < 1e-6


# ---------------------------------------------------------------------- box ops
def test_box_conversions_round_trip():
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.05, 0.1]])
    xyxy = box_ops.box_cxcywh_to_xyxy(boxes)
    torch.testing.assert_close(xyxy[0], torch.tensor([0.4, 0.3, 0.6, 0.7]))
    torch.testing.assert_close(box_ops.box_xyxy_to_cxcywh(xyxy), boxes)
    torch.testing.assert_close(box_ops.box_xyxy_to_xywh(xyxy)[0], torch.tensor([0.4, 0.3, 0.2, 0.4]))


def test_giou_hand_value_and_torchvision_agreement():
    a = torch.tensor([[0.0, 0, 2, 2]])
    b = torch.tensor([[1.0, 1, 3, 3]])
    # intersection 1, union 7, enclosing 9.
    assert box_ops.generalized_box_iou(a, b).item() == pytest.approx(1 / 7 - 2 / 9, rel=1e-6)
    assert box_ops.box_iou(a, b).item() == pytest.approx(1 / 7, rel=1e-6)

    g = torch.Generator().manual_seed(0)
    p = box_ops.box_cxcywh_to_xyxy(torch.rand(7, 4, generator=g) * 0.5 + 0.25)
    q = box_ops.box_cxcywh_to_xyxy(torch.rand(5, 4, generator=g) * 0.5 + 0.25)
    # Same formula as torchvision up to float32 rounding.
    torch.testing.assert_close(box_ops.generalized_box_iou(p, q), torchvision.ops.generalized_box_iou(p, q))
    torch.testing.assert_close(box_ops.box_iou(p, q), torchvision.ops.box_iou(p, q))
    torch.testing.assert_close(box_ops.generalized_box_iou_aligned(p[:5], q),
                               torch.diag(torchvision.ops.generalized_box_iou(p[:5], q)))


def test_giou_batched_equals_per_sample_and_degenerate_is_finite():
    g = torch.Generator().manual_seed(1)
    p = box_ops.box_cxcywh_to_xyxy(torch.rand(3, 6, 4, generator=g) * 0.5 + 0.25)
    q = box_ops.box_cxcywh_to_xyxy(torch.rand(3, 2, 4, generator=g) * 0.5 + 0.25)
    batched = box_ops.generalized_box_iou(p, q)
    assert batched.shape == (3, 6, 2)
    for i in range(3):
        torch.testing.assert_close(batched[i], box_ops.generalized_box_iou(p[i], q[i]))
    point = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    assert torch.isfinite(box_ops.generalized_box_iou(point, point)).all()
    assert torch.isfinite(box_ops.generalized_box_iou_aligned(point, point)).all()


# ------------------------------------------------------------------ ReLA helpers
def test_pool_fraction_counts_foreground_per_cell():
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, :4, :4] = 1          # top-left cell full
    mask[0, 0, 4:6, 4:8] = 1        # bottom-right cell half
    pooled = pool_fraction(mask, (2, 2))
    torch.testing.assert_close(pooled[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.5]]))


def test_fg_bg_bce_hand_values_and_valid_weighting():
    # Zero logits: BCE = ln 2 for any target -> 0.9 ln2 + 1.1 ln2.
    logits = torch.zeros(1, 2, 2, 2)
    fg = torch.rand(1, 1, 2, 2)
    assert fg_bg_bce(logits, fg, torch.ones_like(fg)).item() == pytest.approx(2 * LN2, rel=1e-5)
    # A cell with weight 0 does not count, whatever its logits.
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, :, 0, 1] = 50.0
    fg = torch.zeros(1, 1, 1, 2)
    valid = torch.tensor([[[[1.0, 0.0]]]])
    # 1e-6 in the denominator: relative error ~1e-6.
    assert fg_bg_bce(logits, fg, valid).item() == pytest.approx(2 * LN2, rel=1e-5)


# TAO's grid rule, written down: rows run over the divisors of N from 1 to isqrt(N); the pair
# (rows, N // rows) with the smallest |H * cols - W * rows| wins, the first one on ties.
@pytest.mark.parametrize("n,h,w,expected", [
    (6, 200, 300, (2, 3)),
    (6, 300, 200, (2, 3)),        # portrait: still 2 rows (rows never exceed isqrt(N))
    (50, 800, 400, (5, 10)),      # |800*10 - 400*5| = 6000 beats 19200 (2 x 25) and 39600 (1 x 50)
    (100, 800, 1333, (10, 10)),
    (100, 1333, 800, (10, 10)),
    (7, 10, 10, (1, 7)),          # a prime: one row
    (100, 100, 2500, (2, 50)),    # |100*50 - 2500*2| = 0
    (12, 96, 96, (3, 4)),         # |96*4 - 96*3| = 96 < |96*6 - 96*2| = 384
])
def test_find_grid_follows_tao_rule(n, h, w, expected):
    assert find_grid(n, h, w) == expected


def test_find_grid_whole_sweep_matches_tao_rule():
    """N in 10..900, H and W in 64..1376 (steps of 32): 1.57 M combinations, rule vectorised."""
    import numpy as np

    sides = np.arange(64, 1377, 32)
    h, w = np.meshgrid(sides, sides, indexing="ij")
    mismatches, portrait_rows = 0, 0
    for n in range(10, 901):
        rows = np.array([r for r in range(1, math.isqrt(n) + 1) if n % r == 0])
        cols = n // rows
        diff = np.abs(h[..., None] * cols - w[..., None] * rows)      # [H, W, divisors]
        best = diff.argmin(-1)                                        # argmin: first on ties
        expected_rows = rows[best]
        ours = np.array([[find_grid(n, int(a), int(b))[0] for b in sides] for a in sides])
        mismatches += int((ours != expected_rows).sum())
        portrait_rows += int((ours > n // ours).sum())
    assert mismatches == 0
    assert portrait_rows == 0   # never more rows than columns, whatever the image


def test_pool_fraction_resizes_then_block_averages_as_tao():
    # 5 x 5 mask into a 3 x 3 grid: 5 // 3 = 1, so TAO first resizes (nearest) to 3 x 3, which
    # keeps rows and columns 0, 1 and 3 (floor(i * 5 / 3)); each cell is then that one pixel.
    mask = torch.zeros(1, 1, 5, 5)
    mask[0, 0, :2, :2] = 1
    expected = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(pool_fraction(mask, (3, 3))[0, 0], expected)
    # Adaptive pooling would give 1/3 in cell (0, 1) (bin rows 0-1, columns 1-3 hold 2 of 6 ones).
    assert torch.nn.functional.adaptive_avg_pool2d(mask, (3, 3))[0, 0, 0, 1].item() == pytest.approx(1 / 3)


def test_pool_fraction_non_multiple_keeps_whole_blocks():
    # 10 x 7 into 2 x 3: resized (nearest) to 10 x 6 (7 // 3 = 2 columns per cell), then 5 x 2 blocks.
    mask = torch.zeros(1, 1, 10, 7)
    mask[0, 0, :, 6] = 1                 # last column: dropped by the nearest resize (keeps 0,1,2,3,4,5)
    mask[0, 0, :5, 0] = 1                # first column, top half: 5 of the 10 pixels of cell (0, 0)
    expected = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # Nearest 7 -> 6 keeps source columns floor(j * 7 / 6) = 0, 1, 2, 3, 4, 5.
    torch.testing.assert_close(pool_fraction(mask, (2, 3))[0, 0], expected)


def test_rasterize_boxes():
    # One box covering the left half of a 4x4 image.
    masks = rasterize_boxes(torch.tensor([[0.25, 0.5, 0.5, 1.0]]), (4, 4))
    expected = torch.zeros(1, 4, 4, dtype=torch.bool)
    expected[0, :, :2] = True
    assert torch.equal(masks, expected)
