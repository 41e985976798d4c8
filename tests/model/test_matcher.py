"""Hungarian matcher: cost formula, optimality (brute force), batching, empty and broken inputs."""

import itertools
from dataclasses import dataclass

import torch
import torchvision

from mask_grounding_dino.model.matcher import HungarianMatcher

T = 8   # tokens


@dataclass
class _Target:
    boxes: torch.Tensor
    positive_map: torch.Tensor
    empty: bool = False


def _random_target(n: int, g: torch.Generator, width: int = 12) -> _Target:
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 0.6 + 0.2, torch.rand(n, 2, generator=g) * 0.3 + 0.05], 1)
    pmap = torch.zeros(n, width)
    for i in range(n):
        start = 1 + (i % 3) * 2
        pmap[i, start:start + 2] = 0.5          # row-normalised, two tokens per phrase
    return _Target(boxes=boxes, positive_map=pmap)


def _reference_cost(logits, boxes, target, alpha=0.25, gamma=2.0, weights=(1.0, 5.0, 2.0)):
    """Pair-by-pair cost, written independently of the batched implementation."""
    q, n = logits.shape[0], target.boxes.shape[0]
    cost = torch.zeros(q, n)
    xyxy_p = torchvision.ops.box_convert(boxes, "cxcywh", "xyxy")
    xyxy_t = torchvision.ops.box_convert(target.boxes, "cxcywh", "xyxy")
    giou = torchvision.ops.generalized_box_iou(xyxy_p, xyxy_t)
    for i in range(q):
        p = logits[i].sigmoid()
        pos = alpha * (1 - p) ** gamma * -torch.log(p + 1e-8)
        neg = (1 - alpha) * p ** gamma * -torch.log(1 - p + 1e-8)
        for j in range(n):
            w = target.positive_map[j, :logits.shape[1]]
            w = w / w.sum()
            cls = ((pos - neg) * w).sum()
            l1 = (boxes[i] - target.boxes[j]).abs().sum()
            cost[i, j] = weights[0] * cls + weights[1] * l1 - weights[2] * giou[i, j]
    return cost


def test_cost_formula_matches_pairwise_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 5, T, generator=g)
    boxes = _random_target(5, g).boxes[None]
    target = _random_target(3, g)
    cost, sizes = HungarianMatcher().cost_matrix(logits, boxes, [target])
    assert sizes == [3]
    # float32 sums of a handful of terms: 1e-4 absolute is ample.
    torch.testing.assert_close(cost[0], _reference_cost(logits[0], boxes[0], target), atol=1e-4, rtol=1e-4)


def test_assignment_is_optimal_vs_brute_force():
    g = torch.Generator().manual_seed(1)
    matcher = HungarianMatcher()
    for trial in range(5):
        q, n = 5, 1 + trial % 3
        logits = torch.randn(1, q, T, generator=g)
        boxes = _random_target(q, g).boxes[None]
        target = _random_target(n, g)
        (qi, ti), = matcher(logits, boxes, [target])
        cost = matcher.cost_matrix(logits, boxes, [target])[0][0]
        best = min(sum(cost[perm[j], j].item() for j in range(n)) for perm in itertools.permutations(range(q), n))
        got = sum(cost[a, b].item() for a, b in zip(qi.tolist(), ti.tolist()))
        assert len(qi) == n and sorted(ti.tolist()) == list(range(n))
        assert abs(got - best) < 1e-5


def test_batched_equals_per_sample_and_empty_targets():
    g = torch.Generator().manual_seed(2)
    targets = [_random_target(3, g), _random_target(0, g), _random_target(1, g),
               _Target(boxes=_random_target(2, g).boxes, positive_map=torch.zeros(2, 12), empty=True)]
    logits = torch.randn(4, 6, T, generator=g)
    boxes = torch.cat([_random_target(6, g).boxes[None] for _ in range(4)])
    text_mask = torch.ones(4, T, dtype=torch.bool)
    matcher = HungarianMatcher()
    batched = matcher(logits, boxes, targets, text_mask)
    for b, t in enumerate(targets):
        (qi, ti), = matcher(logits[b:b + 1], boxes[b:b + 1], [t], text_mask[b:b + 1])
        assert torch.equal(batched[b][0], qi) and torch.equal(batched[b][1], ti)
    # No instances, or a VG "no target" sample: no matches.
    for b in (1, 3):
        assert batched[b][0].numel() == 0 and batched[b][1].numel() == 0
        assert batched[b][0].dtype == torch.int64
    # A whole batch without targets.
    none = matcher(logits[1:2], boxes[1:2], [targets[1]])
    assert none[0][0].numel() == 0


def test_nan_and_inf_predictions_are_safe_and_avoided():
    g = torch.Generator().manual_seed(3)
    target = _random_target(2, g)
    logits = torch.randn(1, 4, T, generator=g)
    boxes = torch.cat([target.boxes, _random_target(2, g).boxes])[None].clone()
    logits[0, 0] = float("nan")                 # query 0 would be the perfect box for target 0
    boxes[0, 1] = float("inf")
    logits[0, 2, 5:] = float("-inf")            # padded tokens, as the model emits
    (qi, ti), = HungarianMatcher()(logits, boxes, [target])
    assert len(qi) == 2
    assert not set(qi.tolist()) & {0, 1}


def test_fewer_queries_than_targets_and_one_to_many():
    g = torch.Generator().manual_seed(4)
    target = _random_target(3, g)
    (qi, ti), = HungarianMatcher()(torch.randn(1, 2, T, generator=g), _random_target(2, g).boxes[None], [target])
    assert len(qi) == 2 and len(set(ti.tolist())) == 2

    logits = torch.randn(1, 8, T, generator=g)
    boxes = _random_target(8, g).boxes[None]
    (qi, ti), = HungarianMatcher(one_to_many=2)(logits, boxes, [target])
    assert len(qi) == 6 and len(set(qi.tolist())) == 6
    assert sorted(ti.tolist()) == [0, 0, 1, 1, 2, 2]


def test_from_config_reads_tao_keys():
    m = HungarianMatcher.from_config({"set_cost_class": 3, "set_cost_bbox": 4, "set_cost_giou": 6, "focal_alpha": 0.3})
    assert (m.cost_class, m.cost_bbox, m.cost_giou, m.focal_alpha, m.one_to_many) == (3, 4, 6, 0.3, 1)
