"""inference.jsonl and OD caption lists."""

import pytest

from mask_grounding_dino.data.inference_inputs import parse_captions, read_inference_jsonl
from mask_grounding_dino.errors import DataError


def test_read_inference_jsonl(tmp_path):
    path = tmp_path / "inference.jsonl"
    path.write_text('{"image_path": "images/a.png", "expression": "the red circle"}\n\n'
                    '{"image_path": "b.png", "expression": "a dog"}\n')
    items = read_inference_jsonl(str(path))
    assert [(i.image_path, i.expression, i.line) for i in items] == [
        ("images/a.png", "the red circle", 1), ("b.png", "a dog", 3)]


def test_inference_jsonl_errors(tmp_path):
    path = tmp_path / "inference.jsonl"
    path.write_text('{"image_path": "a.png", "expression": "x"}\n{"image_path": "b.png"}\n')
    with pytest.raises(DataError, match=r"inference.jsonl line 2: missing key 'expression'"):
        read_inference_jsonl(str(path))
    path.write_text("\n")
    with pytest.raises(DataError, match="no items"):
        read_inference_jsonl(str(path))


def test_parse_captions(tmp_path):
    assert parse_captions(["person", " car ", "person"]) == ["person", "car"]
    assert parse_captions("person . car . traffic light .") == ["person", "car", "traffic light"]
    label_map = tmp_path / "label_map.txt"
    label_map.write_text("cat\ndog\n")
    assert parse_captions(str(label_map)) == ["cat", "dog"]
    assert parse_captions([str(label_map)]) == ["cat", "dog"]
    with pytest.raises(DataError, match="file not found"):
        parse_captions(str(tmp_path / "missing.txt"))
    assert parse_captions("cat, dog") == ["cat", "dog"]
    with pytest.raises(DataError, match=r"^captions: expected a class list .* got the item \{'b': 1\}"):
        parse_captions(["a", {"b": 1}])
    with pytest.raises(DataError, match="^captions: no class name"):
        parse_captions(" . ")
