"""Boxes with no area in training data: removed once when the dataset is built, reported in one
summary line (details in the log), with the severity and wording of `dataset validate`."""

from __future__ import annotations

import argparse
import json
import logging

import pytest

from mask_grounding_dino.data import box_checks
from mask_grounding_dino.data.datasets import OdvgDataset, TrainSource
from mask_grounding_dino.data.odvg import read_odvg
from mask_grounding_dino.data.tools import validate
from mask_grounding_dino.data.transforms import TrainTransform
from mask_grounding_dino.errors import DataError
from mask_grounding_dino.text import TextProcessor

LOGGER = box_checks.__name__


def _det(boxes, labels=None):
    return {"file_name": "a.png", "height": 48, "width": 64,
            "detection": {"instances": [{"bbox": b, "label": (labels or [0] * len(boxes))[i], "category": "cat"}
                                        for i, b in enumerate(boxes)]}}


def _vg(boxes):
    return {"file_name": "a.png", "height": 48, "width": 64,
            "grounding": {"expression": "the cat", "regions": [{"bbox": b} for b in boxes]}}


@pytest.fixture
def data(tmp_path, write_png):
    """An ODVG file with degenerate boxes on lines 1, 2 and 3 (line 4 is clean)."""
    write_png(tmp_path / "images" / "a.png", width=64, height=48)
    (tmp_path / "labels.json").write_text(json.dumps({"0": "cat", "1": "dog"}))
    lines = [
        _det([[2, 2, 20, 20], [30, 30, 5, 5]], labels=[0, 1]),   # 1: inverted second box -> that box skipped
        _det([[10, 10, 10, 20]]),                                # 2: zero width, the only box -> record skipped
        _vg([[70, 5, 90, 20]]),                                  # 3: outside the 64x48 image -> record skipped
        _det([[4, 4, 40, 30]]),                                  # 4: clean
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp_path


def _dataset(data):
    source = TrainSource(image_dir=str(data / "images"), json_file=str(data / "train.jsonl"),
                         label_map=str(data / "labels.json"))
    transform = TrainTransform(scales=[48], random_resize_max_size=64, train_random_resize=[48],
                               train_random_crop_min=32, train_random_crop_max=48, fixed_padding=False)
    return OdvgDataset(sources=[source], text_processor=TextProcessor("bert-base-uncased", 32),
                       transform=transform, has_mask=False)


def test_training_skips_and_reports_degenerate_boxes_once(data, caplog):
    path = data / "train.jsonl"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ds = _dataset(data)
    records = [ds.records[i][1] for i in range(len(ds))]
    assert [r.line for r in records] == [1, 4]
    assert [i.bbox for i in records[0].instances] == [(2.0, 2.0, 20.0, 20.0)]   # the good box of line 1 stays
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"training data: skipped 3 box(es) with no area inside the image in {path} (3); 2 record(s) left without "
        f"boxes were skipped whole; first: {path}:1: instances[1]: box [30, 30, 5, 5] has no area inside the "
        "image (each one is in the log; `mask_grounding_dino dataset validate` lists them as degenerate_box)"]
    details = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert details == [f"skipped {path}:1: instances[1]: box [30, 30, 5, 5] has no area inside the image",
                       f"skipped {path}:2: instances[0]: box [10, 10, 10, 20] has no area inside the image",
                       f"skipped {path}:2: no box with an area is left",
                       f"skipped {path}:3: regions[0]: box [70, 5, 90, 20] has no area inside the image",
                       f"skipped {path}:3: no box with an area is left"]
    # Samples are drawn from the cleaned records: the first one has its single valid box.
    image, target = ds.get(0, seed=0)
    assert len(target.boxes) <= 1


def test_training_and_validate_name_the_same_boxes_with_the_same_severity(data, caplog, tmp_path):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _dataset(data)
    skipped = {r.getMessage().removeprefix("skipped ") for r in caplog.records
               if r.levelno == logging.INFO and "has no area" in r.getMessage()}
    parser = argparse.ArgumentParser()
    validate.add_arguments(parser)
    out = tmp_path / "report.json"
    validate.run(parser.parse_args([str(data / "train.jsonl"), "--image-dir", str(data / "images"),
                                    "--label-map", str(data / "labels.json"), "--no-mask", "--json", str(out)]))
    problem = next(p for p in json.loads(out.read_text())["problems"] if p["kind"] == "degenerate_box")
    assert problem["severity"] == box_checks.DEGENERATE_BOX_SEVERITY == "warning"
    assert {f"{e['where']}: {e['message']}" for e in problem["examples"]} == skipped


def test_as_an_error_training_refuses_with_the_validator_wording(data, monkeypatch):
    monkeypatch.setattr(box_checks, "DEGENERATE_BOX_SEVERITY", "error")
    with pytest.raises(DataError) as info:
        _dataset(data)
    assert str(info.value) == f"{data / 'train.jsonl'}:1: instances[1]: box [30, 30, 5, 5] has no area inside the image"


def test_clean_data_reports_nothing(data, caplog):
    records = read_odvg(str(data / "train.jsonl"))
    checker = box_checks.DegenerateBoxes()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert checker.filter(records[3]) is True
        checker.report()
    assert not caplog.records and checker.summary() is None


def test_a_file_with_only_degenerate_boxes_is_refused(tmp_path, write_png):
    write_png(tmp_path / "images" / "a.png", width=64, height=48)
    (tmp_path / "labels.json").write_text(json.dumps({"0": "cat", "1": "dog"}))
    (tmp_path / "train.jsonl").write_text(json.dumps(_det([[5, 5, 1, 1]])) + "\n")
    with pytest.raises(DataError, match="train.jsonl: no record is left: every box of its 1 record"):
        _dataset(tmp_path)


@pytest.mark.parametrize("box, ok", [([0, 0, 1, 1], True), ([5, 5, 5, 9], False), ([9, 9, 2, 2], False),
                                     ([-5, -5, 0, 3], False), ([60, 40, 80, 60], True), ([64, 0, 70, 5], False)])
def test_box_has_area_after_clamping(box, ok):
    assert box_checks.box_has_area(box, 48, 64) is ok
