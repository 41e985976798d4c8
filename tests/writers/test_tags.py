"""Tag placement: inside the picture, off each other, near their box."""

from mask_grounding_dino.writers.tags import TagPlacer


def _inside(rect, size):
    return 0 <= rect[0] and 0 <= rect[1] and rect[2] <= size[0] and rect[3] <= size[1]


def test_a_tag_goes_above_its_box_and_moves_inside_the_picture_at_the_borders():
    placer = TagPlacer((200, 100))
    assert placer.place((50, 40, 90, 80), (60, 12)) == (50, 28, 110, 40)     # above, left-aligned
    assert placer.place((180, 0, 200, 30), (60, 12)) == (140, 0, 200, 12)    # top-right corner: pulled in
    assert all(_inside(rect, (200, 100)) for rect in placer.placed)


def test_tags_of_boxes_at_the_same_place_do_not_cover_each_other():
    placer = TagPlacer((200, 100))
    rects = [placer.place((50, 40, 90, 80), (60, 12)) for _ in range(4)]
    assert len(set(rects)) == 4
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])   # disjoint
    assert rects[1] == (50, 40, 110, 52)                                     # second: inside the box's top


def test_when_nothing_is_free_the_least_covered_spot_is_taken():
    placer = TagPlacer((60, 12))                         # room for exactly one tag
    first, second = placer.place((0, 0, 60, 12), (60, 12)), placer.place((0, 0, 60, 12), (60, 12))
    assert first == second == (0, 0, 60, 12)
