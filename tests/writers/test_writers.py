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


def _scene():
    """A 40 x 60 grey picture with a blue square (rows 5..29, columns 5..24): detection 0 is that
    square, labelled in red by the colour map; detection 1 has no mask."""
    image = np.full((40, 60, 3), 200, np.uint8)
    image[5:30, 5:25] = (30, 30, 220)
    return image


def test_small_pictures_are_drawn_upscaled_and_large_ones_keep_their_size():
    out = draw_detections(_scene(), _dets())
    assert out.size == (512, 341)                       # long side 60 -> 512, aspect kept (40 * 512 / 60)
    assert draw_detections(_scene(), _dets(), min_size=0).size == (60, 40)
    big = np.full((600, 700, 3), 200, np.uint8)
    assert draw_detections(big, Detections.empty((600, 700))).size == (700, 600)


def test_a_mask_keeps_the_object_s_colour_and_is_outlined_in_the_class_colour():
    image = _scene()
    out = np.asarray(draw_detections(image, _dets(), color_map={"red circle": "#ff0000"}), dtype=np.int32)
    scale = 512 / 60
    inside = out[round(20 * scale), round(15 * scale)]                       # centre of the square
    # A light fill (alpha 0.12) moves the blue square at most 0.12 * 225 (+1 rounding) towards red:
    # it stays blue (an alpha 0.4 fill moved it by 90, to purple).
    assert np.abs(inside - (30, 30, 220)).max() <= 0.12 * 225 + 1
    assert inside[2] > 150 and inside[0] < 70
    # The outline runs along the mask's edge in the class colour (anti-aliased: the line's core is exact).
    row = out[round(20 * scale), : round(15 * scale)]
    assert any(tuple(px) == (255, 0, 0) for px in row[round(4 * scale): round(6 * scale)])


def test_boxes_keep_tao_s_outline_width_and_colour_map():
    image = np.full((600, 800, 3), 200, np.uint8)    # no upscaling: widths are in picture pixels
    det = Detections(boxes=torch.tensor([[100.0, 300.0, 500.0, 500.0]]), scores=torch.tensor([0.9]),
                     labels=torch.tensor([0]), phrases=["forklift"], masks=None, image_size=(600, 800))
    for width in (1, 5):
        out = np.asarray(draw_detections(image, det, color_map={"forklift": "#00ff00"}, outline_width=width))
        column = out[:, 300]                             # crosses the top and bottom edges, away from the tag
        green = [y for y in range(600) if tuple(column[y]) == (0, 255, 0)]
        assert len(green) == 2 * width and green[0] == 300 and green[-1] == 500


def test_tags_stay_inside_the_picture_at_its_borders():
    image = np.full((600, 800, 3), 200, np.uint8)
    # A box at the top, near the right edge: its tag can go neither above it nor start at its left edge.
    det = Detections(boxes=torch.tensor([[760.0, 0.0, 790.0, 80.0]]), scores=torch.tensor([0.87]),
                     labels=torch.tensor([0]), phrases=["a long class name here"], masks=None, image_size=(600, 800))
    out = np.asarray(draw_detections(image, det, color_map={"a long class name here": "#0000ff"}))
    blue = (out == (0, 0, 255)).all(axis=2)
    rows_per_column = blue.sum(axis=0)
    tag = np.flatnonzero(rows_per_column > 10)         # the filled tag and the box's 3 px sides
    left = tag.min()
    # The tag, wider than the space right of the box, is moved left so it ends at the picture's
    # edge in one piece (not cut at column 799), and down to row 0 (not above the picture).
    assert left < 700 and tag.max() == 799
    assert (rows_per_column[left:760] > 10).all()      # one solid block from its left end to the box
    assert blue[0, left] and not blue[:, left][40:].any()
