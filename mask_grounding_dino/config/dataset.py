"""``dataset``: where the data lives, how it is batched, and the augmentation."""

from __future__ import annotations

from dataclasses import dataclass

from ..text.class_names import class_names
from .fields import INF, spec_field

#: ``data_type`` of evaluation/inference sources: object detection or visual grounding.
DATA_TYPES = ("OD", "VG")

_IMAGE_DIR = ("Folder of images, an images.tar.gz archive, or an fsspec URL (s3://...); "
              "relative file names in the annotations resolve against it.")


@dataclass
class TrainDataSource:
    """One annotated source: ODVG jsonl (+ label map for detection records).

    Also the shape of ``quant_calibration_data_sources``. ``label_map`` None means
    the key is absent (grounding data); ``""`` means "not given yet" (TAO templates).
    """

    image_dir: str = spec_field("", description=_IMAGE_DIR)
    json_file: str = spec_field("", description="Annotation file: ODVG jsonl or COCO json.")
    label_map: str | None = spec_field(
        None, description="JSON map from contiguous label id to class name (ODVG detection data only).")

    @property
    def is_unset(self) -> bool:
        """True for a placeholder entry (no image folder and no annotation file)."""
        return not self.image_dir and not self.json_file


@dataclass
class EvalDataSource:
    """A validation or test source: COCO json (OD) or ODVG grounding jsonl (VG)."""

    image_dir: str = spec_field("", description=_IMAGE_DIR)
    json_file: str = spec_field("", description="Annotation file: COCO json for OD, ODVG jsonl for VG.")
    data_type: str = spec_field(
        "", valid_options=DATA_TYPES, ignore_case=True, allow_empty=True,
        description="OD for detection metrics (COCO AP), VG for referring metrics; empty means OD.")

    @property
    def is_unset(self) -> bool:
        return not self.image_dir and not self.json_file


@dataclass
class InferDataSource:
    """Images to run inference on, with the prompts (OD captions or a VG jsonl)."""

    image_dir: str | list[str] = spec_field(
        "", description="One image folder/archive/URL, or a list of them.")
    data_type: str = spec_field(
        "", valid_options=DATA_TYPES, ignore_case=True, allow_empty=True,
        description="OD: every image gets the same class-name prompt (captions); VG: per-image "
                    "expressions come from json_file.")
    json_file: str | None = spec_field(
        None, description="Per-image prompts (ODVG-style jsonl) for VG inference.")
    captions: list[str] | None = spec_field(
        None, normalise=lambda value, key: class_names(value, key),
        description="Class names joined into the prompt for OD inference: a list [a, b], 'a . b' or 'a, b'.")

    @property
    def image_dirs(self) -> list[str]:
        """``image_dir`` as a list (empty entries dropped)."""
        dirs = self.image_dir if isinstance(self.image_dir, list) else [self.image_dir]
        return [d for d in dirs if d]


@dataclass
class AugmentationConfig:
    """Resize, crop, flip and normalisation applied to images."""

    scales: list[int] = spec_field(
        [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800], title="Training short sides",
        automl_enabled=False,
        description="Candidate short-side lengths; each training image is resized to one at random.")
    input_mean: list[float] = spec_field(
        [0.485, 0.456, 0.406], title="Pixel mean", automl_enabled=False,
        description="Per-channel mean subtracted after scaling pixels to [0, 1].")
    input_std: list[float] = spec_field(
        [0.229, 0.224, 0.225], title="Pixel standard deviation", automl_enabled=False,
        description="Per-channel divisor applied after the mean is subtracted.")
    train_random_resize: list[int] = spec_field(
        [400, 500, 600], title="Pre-crop short sides", automl_enabled=False,
        description="Short sides used before the random crop in the crop branch of training augmentation.")
    horizontal_flip_prob: float = spec_field(
        0.5, title="Horizontal flip probability", valid_min=0.0, valid_max=1.0, automl_enabled=True,
        description="Chance of mirroring a training image (phrases with left/right are swapped too).")
    train_random_crop_min: int = spec_field(
        384, title="Smallest random crop", valid_min=32, valid_max=INF, parent_param=True, automl_enabled=True,
        description="Lower bound of the random crop side in pixels.")
    train_random_crop_max: int = spec_field(
        600, title="Largest random crop", valid_min=32, valid_max=1333,
        depends_on="dataset.augmentation.train_random_crop_min", math_cond="> depends_on", automl_enabled=True,
        description="Upper bound of the random crop side in pixels; must exceed train_random_crop_min.")
    random_resize_max_size: int = spec_field(
        1333, title="Longest side cap", valid_min=1, valid_max=INF,
        description="Longest image side allowed after resizing.")
    test_random_resize: int = spec_field(
        800, title="Evaluation short side", valid_min=32, valid_max=INF, automl_enabled=False,
        description="Short side that validation, test and inference images are resized to.")
    fixed_padding: bool = spec_field(
        True, title="Fixed-size padding",
        description="Pad every batch to the largest possible size so tensor shapes stay constant.")
    fixed_random_crop: int | None = spec_field(
        None, schema_default=1024, title="Square crop size (LSJ)", valid_min=1, valid_max=INF,
        description="When set, training uses large-scale jitter with a square crop of this size; unset (the "
                    "runtime default, as in TAO) uses the multi-scale resize and crop above.")


#: What TAO's schema shows for train_data_sources: a detection source (with a label map)
#: and a grounding source. At run time the list starts empty, as in TAO.
_SCHEMA_TRAIN_SOURCES = [{"image_dir": "", "json_file": "", "label_map": ""}, {"image_dir": "", "json_file": ""}]


@dataclass
class DatasetConfig:
    """Data sources, loading and augmentation."""

    train_data_sources: list[TrainDataSource] = spec_field(
        [], schema_default=_SCHEMA_TRAIN_SOURCES, title="Training sources", opaque=True, automl_enabled=False,
        description="Training sources, mixed together: detection (ODVG + label map) or grounding (ODVG).")
    val_data_sources: EvalDataSource = spec_field(
        EvalDataSource(data_type="VG"), title="Validation source", opaque=True, automl_enabled=False,
        description="Data evaluated during training.")
    test_data_sources: EvalDataSource = spec_field(
        EvalDataSource(), title="Test source", opaque=True, automl_enabled=False,
        description="Data scored by the evaluate action.")
    infer_data_sources: InferDataSource = spec_field(
        InferDataSource(), title="Inference source", opaque=True, automl_enabled=False,
        description="Images and prompts for the inference action.")
    quant_calibration_data_sources: TrainDataSource = spec_field(
        TrainDataSource(), title="Calibration source", opaque=True, automl_enabled=False,
        description="Images (and annotations) used to calibrate static quantisation.")
    batch_size: int = spec_field(
        4, title="Batch size", valid_min=1, valid_max=INF,
        description="Images per batch on each device.")
    workers: int = spec_field(
        8, title="Loader workers", valid_min=0, valid_max=INF,
        description="Background processes that read and augment images; 0 loads in the main process.")
    pin_memory: bool = spec_field(
        True, title="Pinned memory",
        description="Place batches in page-locked memory for faster copies to the GPU.")
    dataset_type: str = spec_field(
        "serialized", title="Dataset storage", valid_options=("serialized", "default"),
        description="'serialized' packs annotations into shared buffers so loader workers do not copy them; "
                    "'default' keeps Python objects.")
    max_labels: int = spec_field(
        50, title="Classes per prompt", valid_min=1, valid_max=INF, math_cond=">0",
        description="Most class names put into one training prompt (positives plus sampled negatives).")
    eval_class_ids: list[int] | None = spec_field(
        None, schema_default=[1], title="Evaluated class ids", automl_enabled=False,
        description="Kept for TAO compatibility, no effect: COCO evaluation scores every category (TAO's Mask "
                    "Grounding DINO does not read this key either).")
    augmentation: AugmentationConfig = spec_field(
        AugmentationConfig(), title="Augmentation",
        description="Image resizing, cropping, flipping and normalisation.")
    has_mask: bool = spec_field(
        True, title="Load masks",
        description="Read instance masks from the annotations (needed to train the mask head).")

    def used_train_data_sources(self) -> list[TrainDataSource]:
        """Training sources that name data (placeholders from the defaults are skipped)."""
        return [source for source in self.train_data_sources if not source.is_unset]
