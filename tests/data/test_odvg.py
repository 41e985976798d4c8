"""ODVG jsonl reader: typed records, streaming, errors naming file and line."""

import json

import numpy as np
import pytest

from mask_grounding_dino.data.masks import decode_mask, encode_rle
from mask_grounding_dino.data.odvg import iter_odvg, read_odvg, record_to_dict, write_odvg
from mask_grounding_dino.data.records import DetectionRecord, GroundingRecord
from mask_grounding_dino.errors import DataError

DET = {"file_name": "images/a.png", "height": 20, "width": 30, "image_id": 1,
       "detection": {"instances": [
           {"bbox": [1, 2, 11, 12], "label": 0, "category": "red circle",
            "mask": [[1, 2, 11, 2, 11, 12, 1, 12]]},
           {"bbox": [5, 5, 9, 9], "label": "1", "category": "blue square"}]}}
GND = {"file_name": "b.png", "height": 20, "width": 30, "image_id": "b",
       "grounding": {"expression": "the red circle", "expression_id": 3, "sent_id": 9,
                     "regions": [{"bbox": [0, 0, 4, 4], "tokens_positive": [[4, 14]]}]}}
CAP = {"file_name": "c.png", "height": 20, "width": 30,
       "grounding": {"caption": "a dog and a cat", "regions": [
           {"bbox": [0, 0, 4, 4], "phrase": "dog"}, {"bbox": [5, 5, 9, 9], "phrase": "cat"}]}}
EMPTY = {"file_name": "d.png", "height": 20, "width": 30, "empty": True,
         "grounding": {"expression": "the green triangle", "regions": []}}


def _write(tmp_path, lines):
    path = tmp_path / "annotations_odvg.jsonl"
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return str(path)


def test_records_are_typed(tmp_path):
    path = _write(tmp_path, [DET, "", GND, CAP, EMPTY])
    recs = read_odvg(path)
    assert [type(r) for r in recs] == [DetectionRecord, GroundingRecord, GroundingRecord, GroundingRecord]
    det, gnd, cap, empty = recs
    assert det.line == 1 and gnd.line == 3 and cap.line == 4 and empty.line == 5  # blank line 2 counted
    assert det.instances[0].bbox == (1.0, 2.0, 11.0, 12.0) and det.instances[1].label == 1
    assert det.instances[1].mask is None and det.instances[0].category == "red circle"
    assert decode_mask(det.instances[0].mask, det.height, det.width).sum() > 0
    # Expression record: the region takes the expression as phrase; ids and spans kept.
    assert gnd.text == "the red circle" and gnd.regions[0].phrase == "the red circle"
    assert gnd.expression_id == 3 and gnd.sent_id == 9 and gnd.regions[0].tokens_positive == [[4, 14]]
    assert cap.text == "a dog and a cat" and [r.phrase for r in cap.regions] == ["dog", "cat"]
    assert empty.empty is True and empty.regions == []  # 'empty' read from the top level too


def test_iter_is_lazy(tmp_path):
    # A broken last line is only reached when iterated that far: the reader streams.
    path = _write(tmp_path, [DET, "{not json"])
    it = iter_odvg(path)
    assert isinstance(next(it), DetectionRecord)
    with pytest.raises(DataError, match=r"line 2: invalid JSON"):
        next(it)


@pytest.mark.parametrize("line, fragment", [
    ({"height": 2, "width": 2, "detection": {"instances": []}}, "missing key 'file_name'"),
    ({**DET, "grounding": CAP["grounding"]}, "exactly one of 'detection'"),
    ({**DET, "detection": {"instances": [{"bbox": [1, 2, 3], "label": 0}]}},
     "detection.instances[0].bbox must be a list of 4 numbers"),
    ({**DET, "detection": {"instances": [{"bbox": [1, 2, 3, 4]}]}}, "detection.instances[0]: missing key 'label'"),
    ({**DET, "height": 0}, "height must be >= 1"),
    ({**DET, "detection": {"instances": [{"bbox": [True, 2, 3, 4], "label": 0}]}}, "must be a list of 4 numbers"),
    ({**CAP, "grounding": {"caption": "a dog", "regions": [{"bbox": [0, 0, 1, 1]}]}},
     "grounding.regions[0]: missing key 'phrase'"),
    ({**GND, "grounding": {"expression": "x", "regions": [{"bbox": [0, 0, 1, 1], "tokens_positive": [[0, 5]]}]}},
     "outside the text"),
    ({**CAP, "grounding": {"regions": []}}, "needs a non-empty 'caption' or 'expression'"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, fragment):
    path = _write(tmp_path, [DET, DET, line])
    with pytest.raises(DataError) as info:
        read_odvg(path)
    assert "annotations_odvg.jsonl line 3" in str(info.value)
    assert fragment in str(info.value)


def test_on_error_skips_bad_lines(tmp_path):
    path = _write(tmp_path, [DET, "[1, 2]", CAP])
    errors = []
    recs = list(iter_odvg(path, on_error=errors.append))
    assert len(recs) == 2 and len(errors) == 1 and "line 2: each line must be a JSON object" in str(errors[0])


def test_write_then_read_roundtrip(tmp_path):
    mask = np.zeros((20, 30), bool)
    mask[3:7, 4:9] = True
    recs = read_odvg(_write(tmp_path, [DET, GND, CAP, EMPTY]))
    recs[0].instances[1].mask = encode_rle(mask)
    out = tmp_path / "out.jsonl"
    assert write_odvg(str(out), recs) == 4
    again = read_odvg(str(out))
    assert [record_to_dict(r) for r in again] == [record_to_dict(r) for r in recs]
    np.testing.assert_array_equal(decode_mask(again[0].instances[1].mask, 20, 30), mask)


def test_gzipped_jsonl(tmp_path):
    import gzip

    path = tmp_path / "annotations_odvg.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps(DET) + "\n" + json.dumps(CAP) + "\n")
    assert [r.line for r in read_odvg(str(path))] == [1, 2]


def test_not_utf8_is_a_dataerror(tmp_path):
    path = tmp_path / "annotations_odvg.jsonl"
    path.write_bytes(b'{"file_name": "\xff\xfe"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_odvg(str(path))
