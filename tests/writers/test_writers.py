import numpy as np
import torch

from mask_grounding_dino.model.results import Detections
from mask_grounding_dino.writers import draw_detections, format_kitti, write_kitti


def _dets(with_masks=True):
    masks = torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 5:30, 5:25] = True
    return Detections(boxes=torch.tensor([[5.0, 5.0, 25.0, 30.0], [30.0, 20.0, 50.0, 35.0]]),
                      scores=torch.tensor([0.9, 0.4]), labels=torch.tensor([0, 3]),
                      phrases=["red circle", "blue square"], masks=masks if with_masks else None,
                      image_size=(40, 60))


def test_kitti_lines_have_16_fields_and_empty_files_say_empty(tmp_path):
    text = format_kitti(_dets())
    lines = text.strip().splitlines()
    assert len(lines) == 2
    fields = lines[0].split()
    assert len(fields) == 16 and fields[0] == "red_circle"
    assert [float(v) for v in fields[4:8]] == [5.0, 5.0, 25.0, 30.0]
    assert float(fields[-1]) == 0.9
    path = tmp_path / "labels" / "a.txt"
    write_kitti(Detections.empty((40, 60)), str(path))
    assert path.read_text() == "Empty\n"


def test_draw_blends_masks_and_outlines_boxes():
    image = np.full((40, 60, 3), 200, np.uint8)
    out = np.asarray(draw_detections(image, _dets(), color_map={"red circle": "#ff0000"}))
    assert out.shape == image.shape
    # inside the mask, away from the outline and tag: 0.6 * 200 + 0.4 * (255, 0, 0)
    assert tuple(out[25, 15]) == (222, 120, 120)
    # the second box has no mask: its interior is untouched, its outline is drawn
    assert tuple(out[30, 40]) == (200, 200, 200)
    assert tuple(out[35, 40]) != (200, 200, 200)
    # input not modified
    assert (image == 200).all()
