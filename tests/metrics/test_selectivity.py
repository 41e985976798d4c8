import numpy as np
import torch

from mask_grounding_dino.metrics.selectivity import format_table, score_prompt
from mask_grounding_dino.model.results import Detections


def _dets(boxes):
    n = len(boxes)
    return Detections(boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                      scores=torch.linspace(0.9, 0.5, n) if n else torch.zeros(0),
                      labels=torch.zeros(n, dtype=torch.long), phrases=["red circle"] * n)


GT = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], dtype=np.float32)
NAMES = ["red circle", "red square", "red circle"]


def test_right_wrong_and_background_answers_are_told_apart():
    # hits object 0, then the red square (a confusion), then nothing (background), then object 0 again
    dets = _dets([[0, 0, 10, 10], [20, 20, 30, 30], [60, 60, 70, 70], [0, 0, 10, 9]])
    r = score_prompt(dets, GT, NAMES, "red circle")
    assert (r.returned, r.correct, r.objects) == (4, 1, 2)
    assert r.confusions == {"red square": 1, "background": 1, "duplicate": 1}
    assert r.precision == 0.25 and r.recall == 0.5
    assert "red square (1)" in format_table([r])


def test_silence_is_precise_and_images_without_objects_count_as_background():
    r = score_prompt(_dets([]), GT, NAMES, "red circle")
    assert r.precision == 1.0 and r.recall == 0.0
    r = score_prompt(_dets([[1, 1, 5, 5]]), np.zeros((0, 4), np.float32), [], "red circle", result=r)
    assert r.confusions == {"background": 1} and r.precision == 0.0
