"""A short overfit on the real VOC photo through the training engine.

The engine's own pieces do the work (``overfit.py``): the spec -> :class:`GroundingModule`
(model, TAO criterion, optimiser groups), ``train_loader`` over the converted ODVG file (TAO's
caption with all 20 class names shuffled, masks decoded), ``eval_loader`` over the contiguous
COCO json and the Lightning trainer of the ``train`` action. Validation before training gives the
untrained score; validation after 150 steps the trained one, both through the validation
metrics path (post-processing -> COCO evaluation with pycocotools).

Size: narrow ResNet, the bundled MiniLM text encoder (frozen, as TAO's specs freeze ``bert``),
width 64, 2+2 layers, 50 queries, denoising queries, masks and region head on (with its loss),
images at 320 px short side, batch 1, lr 1e-3, one thread: about 35 s on the shared 2-core machine.
"""

from __future__ import annotations

import pytest

from overfit import BOX, SEG, STEPS, fit, overfit_spec, prepare, validate


@pytest.mark.slow
def test_short_overfit_on_the_voc_photo_raises_map(voc, tmp_path, one_thread):
    cfg, module, train, val = prepare(overfit_spec(voc, str(tmp_path / "results")))
    assert len(train) == 1 and module.eval_data["categories"][14] == "person"     # the photo, 20 contiguous classes

    before, loss_before = validate(module, val, cfg, str(tmp_path / "before"))
    trainer = fit(cfg, module, train, val)
    after, loss_after = dict(module.last_val_metrics), float(trainer.callback_metrics["val_loss"])

    assert trainer.global_step == STEPS
    summary = (f"before {before[BOX]:.3f}/{before[SEG]:.3f}, after {after[BOX]:.3f}/{after[SEG]:.3f} "
               f"(bbox/segm mAP@50), val loss {loss_before:.2f} -> {loss_after:.2f}")
    print(summary)
    # Random init finds none of the 19 instances at IoU 0.5 (measured 0.000 bbox and segm).
    # This seed reached bbox 0.70 / segm 0.61 here; five seeds with this recipe 0.70-0.80 / 0.56-0.64
    # (bench/realphoto_steps.py). Another CPU sums floats in another order and follows another
    # trajectory, so the bounds sit well under the worst seed, still far above the untrained 0.
    assert after[BOX] >= 0.45 and after[BOX] >= before[BOX] + 0.4, summary
    assert after[SEG] >= 0.35 and after[SEG] >= before[SEG] + 0.3, summary
    # The loss on the photo itself fell (measured 19.3 -> 2.6, region-head terms included).
    assert loss_after < 0.5 * loss_before, f"val loss {loss_before:.2f} -> {loss_after:.2f}"
