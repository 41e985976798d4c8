"""Files written from detections: annotated pictures, TAO's KITTI-style label files and COCO
results files."""

from .coco_results import detections_to_coco, encode_masks, write_coco_results
from .draw import draw_detections
from .kitti import format_kitti, write_kitti

__all__ = ["detections_to_coco", "encode_masks", "write_coco_results", "draw_detections", "format_kitti",
           "write_kitti"]
