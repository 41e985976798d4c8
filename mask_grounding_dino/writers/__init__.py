"""Files written from detections: annotated pictures and TAO's KITTI-style label files."""

from .draw import draw_detections
from .kitti import format_kitti, write_kitti

__all__ = ["draw_detections", "format_kitti", "write_kitti"]
