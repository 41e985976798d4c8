"""`dataset validate` on deliberately broken datasets: each fault found at the right file:line."""

from __future__ import annotations

import argparse
import json
import tarfile

import pytest

from mask_grounding_dino.data.tools import validate
from mask_grounding_dino.errors import UserError
from mask_grounding_dino.text import TextProcessor

LABEL_MAP = {"0": "red circle", "1": "blue square"}
POLY = [[2, 2, 10, 2, 10, 10, 2, 10]]


def _det(file_name, instances, height=16, width=24, image_id=None):
    rec = {"file_name": file_name, "height": height, "width": width, "detection": {"instances": instances}}
    if image_id is not None:
        rec["image_id"] = image_id
    return json.dumps(rec)


def _inst(bbox=(2, 2, 10, 10), label=0, category="red circle", mask=POLY):
    out = {"bbox": list(bbox), "label": label, "category": category}
    if mask is not None:
        out["mask"] = mask
    return out


def _run(*argv) -> tuple[int, str, dict]:
    parser = argparse.ArgumentParser()
    validate.add_arguments(parser)
    args = parser.parse_args([str(a) for a in argv])
    return validate.run(args), args


def _report(tmp_path, *argv):
    out = tmp_path / "report.json"
    code, _ = _run(*argv, "--json", out)
    return code, json.loads(out.read_text())


def _where(report, kind):
    return [e["where"] for p in report["problems"] if p["kind"] == kind for e in p["examples"]]


@pytest.fixture
def broken_odvg(tmp_path, write_png):
    write_png(tmp_path / "images" / "a.png")                     # 24x16
    write_png(tmp_path / "images" / "b.png", width=30, height=20)  # annotation below says 24x16
    (tmp_path / "images" / "c.png").write_bytes(b"\x89PNG not really")
    lines = [
        _det("images/a.png", [_inst()], image_id=1),                                  # 1: fine
        _det("images/missing.png", [_inst()], image_id=2),                            # 2: missing image
        _det("a.png", [_inst(bbox=(10, 2, 4, 10))], image_id=3),                      # 3: degenerate box
        _det("images/a.png", [_inst(label=5, mask={"size": [10, 10], "counts": [100]})], image_id=4),  # 4
        '{"file_name": "a.png", "height": 16,',                                       # 5: bad JSON
        _det("images/a.png", [_inst(label=1, category="green triangle", mask=None)], image_id=6),      # 6
        _det("images/b.png", [_inst(bbox=(0, 0, 40, 10))], image_id=7),               # 7: size, outside
        _det("images/c.png", [_inst()], image_id=8),                                  # 8: not decodable
        _det("images/a.png", [], image_id=1),                                         # 9: duplicate id
    ]
    path = tmp_path / "annotations_odvg.jsonl"
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "labelmap.json").write_text(json.dumps(LABEL_MAP))
    return path


def test_broken_odvg_faults_found_at_their_lines(tmp_path, broken_odvg, capsys):
    code, report = _report(tmp_path, broken_odvg, "--image-dir", tmp_path / "images",
                           "--label-map", tmp_path / "labelmap.json")
    name = str(broken_odvg)
    assert code == 1 and report["ok"] is False
    assert _where(report, "missing_image") == [f"{name}:2"]
    assert _where(report, "degenerate_box") == [f"{name}:3: instances[0]"]
    assert _where(report, "unknown_label") == [f"{name}:4"]
    assert _where(report, "mask_mismatch") == [f"{name}:4: instances[0].mask"]
    assert _where(report, "bad_record") == [f"{name}:5"]
    assert _where(report, "category_mismatch") == [f"{name}:6"]
    assert _where(report, "missing_mask") == [f"{name}:6: instances[0].mask"]
    assert _where(report, "box_outside_image") == [f"{name}:7: instances[0]"]
    assert _where(report, "image_size_mismatch") == [f"{name}:7"]      # sampled: 3 images < --sample 16
    assert _where(report, "unreadable_image") == [f"{name}:8"]
    assert _where(report, "duplicate_image_record") == [f"{name}:9"]
    src = report["sources"][0]
    assert (src["records"], src["images"], src["instances"]) == (8, 5, 7)
    text = capsys.readouterr().out
    assert "ERRORS" in text and "WARNINGS" in text and f"{name}:2: 'images/missing.png' not found" in text
    assert "FAILED" in text


def test_clean_dataset_passes_and_warnings_only_fail_with_strict(tmp_path, write_png):
    write_png(tmp_path / "images" / "a.png")
    path = tmp_path / "annotations_odvg.jsonl"
    path.write_text(_det("a.png", [_inst()]) + "\n")
    (tmp_path / "labelmap.json").write_text(json.dumps(LABEL_MAP))
    args = [path, "--image-dir", tmp_path / "images", "--label-map", tmp_path / "labelmap.json"]
    assert _run(*args)[0] == 0
    # The OD prompt is all class names; a limit one token below its length gives a warning.
    tokens = TextProcessor("bert-base-uncased").num_tokens("red circle . blue square .")
    code, report = _report(tmp_path, *args, "--max-text-len", str(tokens - 1))
    assert code == 0 and report["warnings"] == 1
    assert _where(report, "prompt_too_long") == [str(tmp_path / "labelmap.json")]
    assert f"has {tokens} tokens" in report["problems"][0]["examples"][0]["message"]
    assert _run(*args, "--max-text-len", str(tokens - 1), "--strict")[0] == 1
    assert _run(*args, "--max-text-len", str(tokens))[0] == 0


def test_images_from_archive_and_grounding_records(tmp_path, write_png):
    write_png(tmp_path / "images" / "a.png")
    with tarfile.open(tmp_path / "images.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "images", arcname="images")
    lines = [
        {"file_name": "a.png", "height": 16, "width": 24,
         "grounding": {"expression": "the red circle", "regions": [{"bbox": [2, 2, 10, 10], "mask": POLY}]}},
        {"file_name": "a.png", "height": 16, "width": 24,
         "grounding": {"expression": "the big blue thing", "empty": True,
                       "regions": [{"bbox": [2, 2, 10, 10], "mask": POLY}]}},
        {"file_name": "zz.png", "height": 16, "width": 24,
         "grounding": {"caption": "a " + "very " * 20 + "long caption", "regions": []}},
    ]
    path = tmp_path / "vg.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    code, report = _report(tmp_path, path, "--image-dir", tmp_path / "images.tar.gz", "--cache-dir",
                           tmp_path / "cache", "--max-text-len", "16")
    assert code == 1
    assert _where(report, "missing_image") == [f"{path}:3"]
    assert _where(report, "empty_mismatch") == [f"{path}:2", f"{path}:3"]
    assert _where(report, "prompt_too_long") == [f"{path}:3"]


def _coco(cat_ids=(1, 3, 7)):
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 24},
                   {"id": 1, "file_name": "a2.png", "height": 16, "width": 24}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": cat_ids[0], "bbox": [2, 2, 8, 8], "segmentation": POLY},
            {"id": 2, "image_id": 9, "category_id": cat_ids[1], "bbox": [2, 2, 8, 8], "segmentation": POLY},
            {"id": 3, "image_id": 1, "category_id": cat_ids[2], "bbox": [2, 2, 0, 8],
             "segmentation": {"size": [16, 25], "counts": [400]}},
            {"id": 4, "image_id": 1, "category_id": cat_ids[0], "bbox": [0, 0, 0, 0], "empty": True,
             "referring_expression": "the purple star"},   # a no-target placeholder: not a fault
        ],
        "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, ("a", "b", "c"))],
    }


def test_coco_faults(tmp_path, write_png):
    write_png(tmp_path / "a.png")
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(_coco()))
    code, report = _report(tmp_path, path, "--image-dir", tmp_path)
    assert code == 1
    assert _where(report, "non_contiguous_ids") == [f"{path}: categories"]
    assert _where(report, "duplicate_id") == [f"{path}: images[1]"]
    assert _where(report, "unknown_image") == [f"{path}: annotations[1]"]
    assert _where(report, "missing_image") == [f"{path}: images[1] (id 1)"]
    assert _where(report, "degenerate_box") == [f"{path}: annotations[2] (id 3)"]
    assert _where(report, "mask_mismatch") == [f"{path}: annotations[2] (id 3).segmentation"]
    assert _where(report, "missing_mask") == []


def test_spec_mode_validates_every_source(tmp_path, broken_odvg):
    coco = tmp_path / "annotations.json"
    coco.write_text(json.dumps(_coco()))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "dataset:\n"
        "  train_data_sources:\n"
        f"    - image_dir: {tmp_path / 'images'}\n"
        f"      json_file: {broken_odvg}\n"
        f"      label_map: {tmp_path / 'labelmap.json'}\n"
        "  val_data_sources:\n"
        f"    image_dir: {tmp_path / 'images'}\n"
        f"    json_file: {coco}\n"
        "    data_type: OD\n")
    code, report = _report(tmp_path, "-e", spec, f"dataset.test_data_sources.json_file={tmp_path / 'nope.json'}",
                           f"dataset.test_data_sources.image_dir={tmp_path / 'images'}")
    assert code == 1
    assert [s["format"] for s in report["sources"]] == ["odvg", "coco"]
    assert _where(report, "missing_image")[0] == f"{broken_odvg}:2"
    assert _where(report, "non_contiguous_ids") == [f"{coco}: categories"]
    assert _where(report, "missing_file") == ["dataset.test_data_sources.json_file"]


def test_usage_errors(tmp_path):
    with pytest.raises(UserError, match="nothing to validate"):
        _run()
    with pytest.raises(UserError, match="not found"):
        _run(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="cannot tell the format"):
        _run(tmp_path / "x.csv")


def test_refcoco_style_jsonl_and_no_target_annotations(tmp_path, write_png):
    """TAO Deploy's VG evaluation jsonl: one sentence per line; 'empty' annotations are placeholders."""
    write_png(tmp_path / "a.png")

    def line(file_name, anns, sentence=True):
        rec = {"image_id": 1, "file_name": file_name, "height": 16, "width": 24, "annotations": anns}
        if sentence:
            rec["sentence"] = {"raw": "the red circle", "sent_id": 1}
        return json.dumps(rec)

    good = {"bbox": [2, 2, 8, 8], "category_id": 0, "segmentation": POLY, "empty": False}
    placeholder = {"bbox": [0, 0, 0, 0], "category_id": 0, "empty": True}   # no box, no mask: fine
    path = tmp_path / "refcoco.jsonl"
    path.write_text("\n".join([
        line("a.png", [good]),
        line("a.png", [placeholder]),
        line("a.png", [good], sentence=False),                     # 3: no sentence
        line("b.png", [{**good, "bbox": [2, 2, 0, 8]}]),           # 4: missing image, degenerate box
    ]) + "\n")
    code, report = _report(tmp_path, path, "--image-dir", tmp_path)
    assert code == 1 and report["sources"][0]["format"] == "refcoco"
    assert _where(report, "bad_record") == [f"{path}:3"]
    assert _where(report, "missing_image") == [f"{path}:4"]
    assert _where(report, "degenerate_box") == [f"{path}:4: annotations[0]"]
    assert {p["kind"] for p in report["problems"]} == {"bad_record", "missing_image", "degenerate_box"}
