"""Label maps from json ({"0": name}) and label_map.txt (coco_raw)."""

import json

import pytest

from mask_grounding_dino.data.label_map import label_map_problems, read_label_map, write_label_map
from mask_grounding_dino.errors import DataError


def test_json_and_txt(tmp_path):
    js = tmp_path / "annotations_odvg_labelmap.json"
    js.write_text(json.dumps({"1": "car", "0": "person"}))
    assert read_label_map(str(js)) == {0: "person", 1: "car"}
    txt = tmp_path / "label_map.txt"
    txt.write_text("person\ncar\n  dog  \n\n")
    assert read_label_map(str(txt)) == {0: "person", 1: "car", 2: "dog"}
    out = tmp_path / "again.json"
    write_label_map(str(out), {2: "dog", 0: "person"})
    assert json.loads(out.read_text()) == {"0": "person", "2": "dog"}


@pytest.mark.parametrize("name, content, fragment", [
    ("m.json", '{"a": "person"}', "key 'a' must be an integer"),
    ("m.json", '{"0": ""}', "class '0' must be a non-empty string"),
    ("m.json", '{"0": "x",', "line 1 column"),
    ("m.json", "{}", "empty"),
    ("label_map.txt", "person\n\ncar\n", "line 2: empty class name"),
])
def test_errors(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        read_label_map(str(path))


def test_missing_file_is_a_dataerror(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_label_map(str(tmp_path / "nope.json"))


def test_problems():
    assert label_map_problems({0: "a", 1: "b"}) == []
    kinds = [k for k, _ in label_map_problems({0: "a", 2: "A"})]
    assert kinds == ["label_map_not_contiguous", "duplicate_class_name"]
