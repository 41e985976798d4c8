"""``references/skill_info.yaml``: how an agent or pipeline drives our CLI (TAO's skill layout)."""

from __future__ import annotations

from .experiment import ACTIONS
from .overrides import SHORTHAND_KEYS
from .schema import MODEL_ID, NETWORK_ARCH

_TRAIN_SOURCE = "dataset.train_data_sources[0]"
_FOLDER, _FILE = {"type": "folder"}, {"type": "file"}

#: Per action: the spec keys that name inputs and outputs.
_INPUTS = {
    "train": {f"{_TRAIN_SOURCE}.image_dir": _FOLDER, f"{_TRAIN_SOURCE}.json_file": _FILE,
              f"{_TRAIN_SOURCE}.label_map": _FILE, "dataset.val_data_sources.image_dir": _FOLDER,
              "dataset.val_data_sources.json_file": _FILE,
              "model.pretrained_backbone_path": {"type": "file", "optional": True},
              "train.pretrained_model_path": {"type": "file", "optional": True},
              "train.resume_training_checkpoint_path": {"type": "file", "optional": True}},
    "evaluate": {"evaluate.checkpoint": _FILE, "dataset.test_data_sources.image_dir": _FOLDER,
                 "dataset.test_data_sources.json_file": _FILE},
    "inference": {"inference.checkpoint": _FILE, "dataset.infer_data_sources.image_dir": _FOLDER,
                  "dataset.infer_data_sources.captions": {"type": "list"}},
    "export": {"export.checkpoint": _FILE},
    "quantize": {"quantize.model_path": _FILE, f"{_TRAIN_SOURCE}.image_dir": _FOLDER,
                 f"{_TRAIN_SOURCE}.json_file": _FILE, f"{_TRAIN_SOURCE}.label_map": _FILE,
                 "dataset.val_data_sources.image_dir": _FOLDER, "dataset.val_data_sources.json_file": _FILE,
                 "dataset.quant_calibration_data_sources.image_dir": _FOLDER,
                 "dataset.quant_calibration_data_sources.json_file": _FILE,
                 "dataset.quant_calibration_data_sources.label_map": _FILE},
    "gen_trt_engine": {"gen_trt_engine.onnx_file": _FILE},
}
_EXTRA_OUTPUTS = {"export": {"export.onnx_file": _FILE}, "gen_trt_engine": {"gen_trt_engine.trt_engine": _FILE}}

#: Where a job finds each input in a dataset of the TAO layout.
_TRAIN_FILES = {f"{_TRAIN_SOURCE}.image_dir": ("train_datasets", "images.tar.gz"),
                f"{_TRAIN_SOURCE}.json_file": ("train_datasets", "annotations_odvg.jsonl"),
                f"{_TRAIN_SOURCE}.label_map": ("train_datasets", "annotations_odvg_labelmap.json"),
                "dataset.val_data_sources.image_dir": ("eval_dataset", "images.tar.gz"),
                "dataset.val_data_sources.json_file": ("eval_dataset", "annotations.json")}
_CALIBRATION_FILES = {"dataset.quant_calibration_data_sources.image_dir": ("train_datasets", "images.tar.gz"),
                      "dataset.quant_calibration_data_sources.json_file": ("train_datasets",
                                                                           "annotations_odvg.jsonl"),
                      "dataset.quant_calibration_data_sources.label_map": ("train_datasets",
                                                                           "annotations_odvg_labelmap.json")}
_DATA_FILES = {
    "train": _TRAIN_FILES,
    "quantize": {**_TRAIN_FILES, **_CALIBRATION_FILES},
    "evaluate": {"dataset.test_data_sources.image_dir": ("eval_dataset", "images.tar.gz"),
                 "dataset.test_data_sources.json_file": ("eval_dataset", "annotations.json")},
    "inference": {"dataset.infer_data_sources.image_dir": ("inference_dataset", "images.tar.gz")},
}
_LIST_INPUTS = {"dataset.infer_data_sources.image_dir"}

#: Spec keys a job fills in itself (TAO's spec-parameter inference).
_SPEC_PARAMS = {
    "train": {"model.pretrained_backbone_path": "ptm_if_no_resume_model",
              "train.pretrained_model_path": "ptm_if_no_resume_model",
              "train.resume_training_checkpoint_path": "resume_model"},
    "evaluate": {"evaluate.checkpoint": "parent_model"},
    "export": {"export.checkpoint": "parent_model", "export.onnx_file": "create_onnx_file"},
    "inference": {"inference.checkpoint": "parent_model"},
    "quantize": {"quantize.model_path": "parent_model"},
    "gen_trt_engine": {"gen_trt_engine.onnx_file": "parent_model", "gen_trt_engine.trt_engine": "create_engine_file"},
}


def _data_sources(action: str) -> dict:
    out = {}
    for key, (source, path) in _DATA_FILES.get(action, {}).items():
        entry: dict = {"source": source, "path": path}
        if key in _LIST_INPUTS:
            entry["list"] = True
        if path.endswith(".tar.gz"):
            entry["runtime"] = "extracted_folder"
        out[key] = entry
    return out


def build_skill_info() -> dict:
    """The skill description: commands, inputs/outputs, data layout, spec inference, shorthands."""
    actions = {}
    for action in ACTIONS:
        actions[action] = {
            "command": f"{NETWORK_ARCH} {action} -e {{config_path}}",
            "config_format": "yaml",
            "mode": "config",
            "inputs": dict(_INPUTS[action]),
            "outputs": {"results_dir": _FOLDER, **_EXTRA_OUTPUTS.get(action, {})},
            "upload_excludes": ["inputs/"],
        }
    return {
        "name": MODEL_ID,
        "network_arch": NETWORK_ARCH,
        "automl_enabled": True,
        "data_format": "odvg",
        "gpu_spec_key": "train.num_gpus",
        "actions": actions,
        "data_sources": {action: _data_sources(action) for action in ACTIONS if action in _DATA_FILES},
        "spec_params": {action: {"encryption_key": "key", "results_dir": "output_dir", **_SPEC_PARAMS[action]}
                        for action in ACTIONS},
        "key_defaults": {},
        "spec_shorthand_keys": dict(SHORTHAND_KEYS),
        "spec_templates": {action: f"../references/spec_template_{action}.yaml" for action in ACTIONS},
        "description": "Text-prompted instance segmentation (boxes and masks for the objects a prompt names), "
                       "an open re-implementation of TAO's Mask Grounding DINO that runs on CPUs and GPUs.",
    }
