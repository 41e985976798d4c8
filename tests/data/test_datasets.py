"""Torch datasets on the synthetic data: the Target contract, captions, masks, VG, inference."""

import json

import numpy as np
import pytest
import torch

from mask_grounding_dino.data.captions import build_expression_caption
from mask_grounding_dino.data.datasets import (CocoEvalDataset, InferenceDataset, InferenceEntry, OdvgDataset,
                                               RecordStore, ReferringDataset, SampleMeta, TargetBuilder,
                                               TrainSource)
from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset
from mask_grounding_dino.data.transforms import EvalTransform, Normalize, Sample, TrainTransform, crop
from mask_grounding_dino.errors import DataError
from mask_grounding_dino.text import TextProcessor

T = 64  # max_text_len: 12 synthetic class names need about 40 tokens


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    generate_synthetic_dataset(str(root), SynthConfig(num_train=8, num_val=4, num_vg=4, seed=2, width=128, height=96))
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def tp():
    return TextProcessor("bert-base-uncased", max_text_len=T)


def _small_train_transform():
    return TrainTransform(scales=[96, 112], random_resize_max_size=160, train_random_resize=[100],
                          train_random_crop_min=64, train_random_crop_max=96, fixed_padding=False)


def _train_source(synth, cache, label_map=True):
    return TrainSource(image_dir=str(synth / "train" / "images.tar.gz"),
                       json_file=str(synth / "train" / "annotations_odvg.jsonl"),
                       label_map=str(synth / "train" / "annotations_odvg_labelmap.json") if label_map else None,
                       cache_dir=cache)


def _check_target_contract(image, t, tp):
    n = len(t.boxes)
    h, w = t.size
    assert image.dtype == torch.float32 and image.shape[0] == 3 and image.shape[1] >= h and image.shape[2] >= w
    assert t.boxes.shape == (n, 4) and t.labels.shape == (n,) and t.class_ids.shape == (n,)
    assert t.labels.dtype == torch.long and t.class_ids.dtype == torch.long
    assert t.positive_map.shape == (n, T) and t.phrase_map.shape == (len(t.phrases), T)
    assert ((t.boxes >= 0) & (t.boxes <= 1)).all()
    if t.masks is not None:
        assert t.masks.dtype == torch.bool and t.masks.shape == (n, h, w)
    if n:
        assert torch.allclose(t.positive_map.sum(1), torch.ones(n))
    # Each positive row points at the words of the instance's phrase in the caption.
    ids = tp.tokenizer(t.caption, max_length=T, truncation=True)["input_ids"]
    for row, label in zip(t.positive_map, t.labels.tolist()):
        words = tp.tokenizer.decode([ids[j] for j in torch.nonzero(row).flatten().tolist()])
        assert words == t.phrases[label].lower()


def test_odvg_dataset_gives_target_contract(synth, cache, tp):
    ds = OdvgDataset(sources=[_train_source(synth, cache)], text_processor=tp, transform=_small_train_transform())
    label_map = {int(k): v for k, v in json.loads((synth / "train" / "annotations_odvg_labelmap.json")
                                                   .read_text()).items()}
    assert len(ds) == 8
    seen_instances = 0
    for i in range(len(ds)):
        image, t = ds.get(i, seed=i)
        _check_target_contract(image, t, tp)
        assert t.caption.endswith(" .") and len(t.phrases) == 12 and not t.empty
        assert [t.phrases[lab] for lab in t.labels.tolist()] == [label_map[c] for c in t.class_ids.tolist()]
        assert t.orig_size == (96, 128) and t.image_id == i + 1
        seen_instances += len(t)
    assert seen_instances > 0
    a, b = ds.get(3, seed=9), ds.get(3, seed=9)
    assert a[1].caption == b[1].caption and torch.equal(a[0], b[0]) and torch.equal(a[1].boxes, b[1].boxes)
    assert len({ds.get(3, seed=s)[1].caption for s in range(6)}) > 1


def test_boxes_and_masks_agree_after_augmentation(synth, cache, tp):
    ds = OdvgDataset(sources=[_train_source(synth, cache)], text_processor=tp, transform=_small_train_transform())
    for i in range(4):
        _, t = ds.get(i, seed=100 + i)
        h, w = t.size
        for box, mask in zip(t.boxes, t.masks):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            tight = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
            cx, cy, bw, bh = (box * torch.tensor([w, h, w, h])).tolist()
            xyxy = torch.tensor([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
            # Up to two nearest-neighbour resizes (and a crop) in between: see test_transforms.
            assert (xyxy - tight).abs().max() <= 3.0


def test_mixed_sources_masks_off_and_storage_modes(synth, cache, tp):
    vg = TrainSource(image_dir=str(synth / "vg" / "images.tar.gz"),
                     json_file=str(synth / "vg" / "annotations_odvg.jsonl"), cache_dir=cache)
    ds = OdvgDataset(sources=[_train_source(synth, cache), vg], text_processor=tp, has_mask=False,
                     transform=EvalTransform(test_random_resize=96, fixed_padding=False), serialized=False)
    vg_lines = (synth / "vg" / "annotations_odvg.jsonl").read_text().splitlines()
    assert len(ds) == 8 + len(vg_lines)
    image, t = ds.get(8, seed=0)
    _check_target_contract(image, t, tp)
    expected = json.loads(vg_lines[0])["grounding"]["expression"]
    assert t.caption == expected + " ." and t.masks is None and t.class_ids.tolist() == [-1] * len(t)
    packed = OdvgDataset(sources=[_train_source(synth, cache), vg], text_processor=tp, has_mask=False,
                         transform=EvalTransform(test_random_resize=96, fixed_padding=False), serialized=True)
    assert packed.records.nbytes > 0
    assert packed.get(8, seed=0)[1].caption == t.caption and torch.equal(packed.get(2, seed=1)[0], ds.get(2, seed=1)[0])


def test_detection_source_without_label_map_is_a_data_error(synth, cache, tp):
    with pytest.raises(DataError, match="label_map"):
        OdvgDataset(sources=[_train_source(synth, cache, label_map=False)], text_processor=tp)


def test_coco_eval_dataset(synth, cache, tp):
    ds = CocoEvalDataset(json_file=str(synth / "val" / "annotations.json"),
                         image_dir=str(synth / "val" / "images.tar.gz"), text_processor=tp, cache_dir=cache,
                         transform=EvalTransform(test_random_resize=192, random_resize_max_size=400,
                                                 fixed_padding=True))
    coco = json.loads((synth / "val" / "annotations.json").read_text())
    names = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    assert ds.category_names == names
    for i, img in enumerate(coco["images"]):
        image, t = ds[i]
        _check_target_contract(image, t, tp)
        assert t.caption == " . ".join(names) + " ." and t.image_id == img["id"]
        assert t.size == (192, 256) and image.shape == (3, 192, 400)    # fixed padding (192, 400)
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        assert t.class_ids.tolist() == [a["category_id"] for a in anns] == t.labels.tolist()
        # Boxes are the COCO boxes scaled by 2 and normalised by the resized size.
        expect = torch.tensor([[x + w / 2, y + h / 2, w, h] for x, y, w, h in (a["bbox"] for a in anns)])
        assert torch.allclose(t.boxes * torch.tensor([128, 96, 128, 96]), expect.reshape(-1, 4), atol=1e-4)


def test_referring_dataset_from_odvg_and_coco_agree(synth, cache, tp):
    kwargs = dict(image_dir=str(synth / "vg" / "images.tar.gz"), text_processor=tp, cache_dir=cache,
                  transform=EvalTransform(test_random_resize=96, fixed_padding=False))
    from_jsonl = ReferringDataset(json_file=str(synth / "vg" / "annotations_odvg.jsonl"), **kwargs)
    from_coco = ReferringDataset(json_file=str(synth / "vg" / "annotations.json"), **kwargs)
    assert len(from_jsonl) == len(from_coco) > 0
    empties = 0
    for i in range(len(from_jsonl)):
        (ia, a), (ib, b) = from_jsonl[i], from_coco[i]
        _check_target_contract(ia, a, tp)
        assert a.caption == b.caption and a.empty == b.empty and a.expression_id == b.expression_id
        assert torch.equal(a.masks, b.masks) and torch.allclose(a.boxes, b.boxes)
        assert a.empty == (len(a) == 0)
        empties += a.empty
    assert empties > 0


def test_grounding_sample_becomes_empty_when_augmentation_drops_its_targets(tp):
    masks = np.zeros((1, 40, 40), bool)
    masks[0, 30:38, 30:38] = True
    caption = build_expression_caption("the square on the right", ["the square on the right"])
    sample = Sample(image=np.zeros((40, 40, 3), np.uint8), boxes=np.array([[30, 30, 38, 38]], np.float32),
                    masks=masks, caption=caption, swap_words=True)
    builder = TargetBuilder(text_processor=tp, transform=lambda s, rng: crop(s, 0, 0, 20, 20),
                            normalize=Normalize())
    meta = SampleMeta(image_id=1, orig_size=(40, 40), grounding=True)
    _, target = builder(sample, meta, np.random.default_rng(0))
    assert len(target) == 0 and target.empty
    meta_od = SampleMeta(image_id=1, orig_size=(40, 40), grounding=False)
    _, target_od = builder(sample, meta_od, np.random.default_rng(0))
    assert len(target_od) == 0 and not target_od.empty


def test_inference_datasets(synth, cache, tp):
    od = InferenceDataset(image_dirs=[str(synth / "val" / "images.tar.gz")], text_processor=tp,
                          captions=["red circle", "blue square"], cache_dir=cache,
                          transform=EvalTransform(test_random_resize=96, fixed_padding=False))
    assert len(od) == 4
    image, t = od[0]
    assert t.caption == "red circle . blue square ." and len(t) == 0 and t.phrases == ["red circle", "blue square"]
    assert t.orig_size == (96, 128) and image.shape == (3, 96, 128) and t.file_name.endswith("val_000000.jpg")
    lines = [json.loads(x) for x in (synth / "vg" / "inference.jsonl").read_text().splitlines()]
    vg = InferenceDataset(image_dirs=[str(synth / "vg" / "images.tar.gz")], text_processor=tp, cache_dir=cache,
                          entries=[InferenceEntry(0, x["image_path"], x["expression"]) for x in lines])
    _, t = vg[1]
    assert t.caption == lines[1]["expression"] + " ." and t.phrase_map.shape == (1, T)
    with pytest.raises(DataError, match="captions"):
        InferenceDataset(image_dirs=[str(synth / "val" / "images.tar.gz")], text_processor=tp, cache_dir=cache)


def test_record_store_round_trip():
    records = [{"a": i, "mask": {"counts": "x" * i}} for i in range(5)]
    packed, plain = RecordStore(records), RecordStore(records, serialized=False)
    assert list(packed) == list(plain) == records and len(packed) == 5
    assert packed[-1] == records[-1] and packed.nbytes > 0 and plain.nbytes == 0
    with pytest.raises(IndexError):
        packed[5]
    assert len(RecordStore([])) == 0
