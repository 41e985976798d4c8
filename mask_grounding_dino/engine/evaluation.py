"""Validation during training: model outputs of a batch -> :class:`Detections` -> scores.

:class:`EvalRunner` post-processes (TAO's post-processing with the right prompt layout per
image) and feeds :class:`DatasetScoring`, the scorer ``evaluate`` uses too (COCO bbox/segm for
OD data, the referring metrics for VG), so validation and ``evaluate`` agree number for number.
"""

from __future__ import annotations

from ..data.batch import Batch
from ..metrics.scoring import DatasetScoring
from ..model.outputs import GroundingOutputs
from ..model.postprocess import PostProcessor, PromptLayout
from ..model.results import Detections
from ..text import TextProcessor


class EvalRunner:
    """Post-process + accumulate metrics for one OD or VG evaluation data set.

    Args:
        postprocessor: TAO post-processing (thresholds from the evaluate/inference section).
        text_processor: the model's tokenisation (prompt layouts must match it).
        data_type: "OD" or "VG".
        categories: OD only: category id -> name, in id order (== the caption's phrases).
        coco_gt: OD only: the ground truth (CocoDataset or json path) for COCOeval.
        with_segm: OD only: score masks too (``dataset.has_mask``).
        score_threshold: VG only: detections under it do not count (reported with the metrics).
    """

    def __init__(self, *, postprocessor: PostProcessor, text_processor: TextProcessor, data_type: str = "OD",
                 categories: dict[int, str] | None = None, coco_gt=None, with_segm: bool = True,
                 score_threshold: float = 0.0):
        self.postprocessor = postprocessor
        self.text_processor = text_processor
        self.data_type = data_type.upper()
        self._layouts: dict[tuple, PromptLayout] = {}
        self.scoring = DatasetScoring(self.data_type, coco_gt=coco_gt, categories=categories, with_segm=with_segm,
                                      score_threshold=score_threshold)

    def reset(self) -> None:
        self.scoring.reset()

    def layout(self, target) -> PromptLayout:
        if self.data_type == "OD":
            key = ("OD", tuple(target.phrases))
            if key not in self._layouts:
                self._layouts[key] = PromptLayout.from_phrases(target.phrases, self.text_processor)
            return self._layouts[key]
        key = ("VG", target.caption, tuple(target.phrases))
        if key not in self._layouts:
            if len(self._layouts) > 4096:
                self._layouts.clear()
            self._layouts[key] = PromptLayout.from_caption(target.caption, self.text_processor,
                                                           phrases=target.phrases or None)
        return self._layouts[key]

    def detections(self, outputs: GroundingOutputs, batch: Batch) -> list[Detections]:
        targets = batch.targets
        return self.postprocessor(outputs, [self.layout(t) for t in targets],
                                  [t.orig_size for t in targets], [t.size for t in targets])

    def update(self, outputs: GroundingOutputs, batch: Batch) -> list[Detections]:
        dets = self.detections(outputs, batch)
        self.scoring.add(batch.targets, dets)
        return dets

    def compute(self, prefix: str = "val") -> tuple[dict[str, float], object]:
        """``(key metrics with TAO names, full metrics object)``."""
        return self.scoring.compute(prefix)

