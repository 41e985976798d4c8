"""decode_mask / encode_rle / check_mask on polygons, both RLE forms and arrays."""

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from mask_grounding_dino.data.masks import (check_mask, decode_mask, encode_rle, mask_area, mask_to_bbox,
                                            rle_string_counts)
from mask_grounding_dino.errors import DataError

H, W = 12, 16


def _square_mask() -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[2:6, 3:9] = True   # rows 2..5, cols 3..8
    return m


def _uncompressed(mask: np.ndarray) -> dict:
    """Column-major run lengths starting with a run of 0s (COCO's uncompressed RLE)."""
    flat = mask.flatten(order="F").astype(np.uint8)
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return {"size": [H, W], "counts": runs}


def test_rle_string_roundtrip_and_counts_parser_agree_with_pycocotools():
    mask = _square_mask()
    rle = encode_rle(mask)
    assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(decode_mask(rle, H, W), mask)
    # Our parser of the compressed string gives the same runs as the uncompressed form.
    assert rle_string_counts(rle["counts"]) == _uncompressed(mask)["counts"]


def test_uncompressed_rle_decodes():
    mask = _square_mask()
    np.testing.assert_array_equal(decode_mask(_uncompressed(mask), H, W), mask)


def test_polygon_decodes_to_pycocotools_rasterisation():
    poly = [[3.0, 2.0, 9.0, 2.0, 9.0, 6.0, 3.0, 6.0]]
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, H, W))).astype(bool)
    got = decode_mask(poly, H, W)
    np.testing.assert_array_equal(got, expected)
    assert got.sum() > 0
    # A flat list is one polygon.
    np.testing.assert_array_equal(decode_mask(poly[0], H, W), expected)
    # No polygons: an empty mask.
    assert decode_mask([], H, W).shape == (H, W) and not decode_mask([], H, W).any()


def test_arrays_and_nested_lists():
    mask = _square_mask()
    np.testing.assert_array_equal(decode_mask(mask.astype(np.uint8), H, W), mask)
    np.testing.assert_array_equal(decode_mask(mask.astype(int).tolist(), H, W), mask)


@pytest.mark.parametrize("ann, fragment", [
    ({"size": [H, W]}, "needs 'size' and 'counts'"),
    ({"size": [H, W], "counts": [5, 3]}, "cover 8 pixels"),
    ({"size": [H, W], "counts": "\x01\x02"}, "not valid COCO RLE"),
    ({"size": [H + 1, W], "counts": [(H + 1) * W]}, "RLE size is 13x16"),
    ([[1, 2, 3, 4, 5]], "has 5 numbers"),
    ([[1, 2, 3, 4]], "has 4 numbers"),
    ([[[1, 2], [3, 4], [5, 6]]], "must be a flat list of numbers"),
    ([[0, 0, 5, 0, float("nan"), 5]], "non-finite"),
    (np.zeros((H, W + 2)), "mask array is 12x18"),
    ("oops", "got str"),
])
def test_malformed_masks_raise_dataerror_naming_where(ann, fragment):
    with pytest.raises(DataError) as info:
        decode_mask(ann, H, W, where="a.jsonl line 17: detection.instances[0].mask")
    assert "a.jsonl line 17: detection.instances[0].mask" in str(info.value)
    assert fragment in str(info.value)


def test_check_mask_reports_polygon_outside_without_failing_decode():
    poly = [[-5.0, 0.0, 10.0, 0.0, 10.0, 40.0]]  # 40 > H: outside by far more than the 1 px tolerance
    issues = check_mask(poly, H, W)
    assert [i.kind for i in issues] == ["mask_outside_image"] and not issues[0].fatal
    assert decode_mask(poly, H, W).shape == (H, W)  # clipped, still decodes
    # Sub-pixel overshoot (converter rounding) is tolerated.
    assert check_mask([[0.0, 0.0, W + 0.4, 0.0, W + 0.4, H + 0.4]], H, W) == []


def test_area_and_bbox():
    mask = _square_mask()
    assert mask_area(mask) == 24
    assert mask_area(encode_rle(mask)) == 24
    assert mask_area(_uncompressed(mask)) == 24
    assert mask_area([[3, 2, 9, 2, 9, 6, 3, 6]], H, W) == int(decode_mask([[3, 2, 9, 2, 9, 6, 3, 6]], H, W).sum())
    assert mask_to_bbox(mask) == (3.0, 2.0, 9.0, 6.0)
    assert mask_to_bbox(np.zeros((H, W), bool)) is None
