"""Class lists in the forms people type: a list, 'a . b' and 'a, b'; one clear error otherwise."""

import pytest

from mask_grounding_dino.errors import UserError
from mask_grounding_dino.text.class_names import ClassListError, class_names

TWO = ["red circle", "blue square"]


@pytest.mark.parametrize("value", [
    ["red circle", "blue square"], ("red circle", "blue square"), ["red circle.", " blue  square "],
    "red circle . blue square", "red circle . blue square .", "red circle.blue square",
    "red circle, blue square", "red circle,blue square,", " red circle ,  blue square ",
    ["red circle", "blue square", "red circle"],
])
def test_every_form_gives_the_same_class_list(value):
    assert class_names(value) == TWO


def test_single_names_numbers_and_names_with_commas():
    assert class_names("person") == ["person"]
    assert class_names([1, 2]) == ["1", "2"]          # YAML reads [1, 2] as numbers
    # A "." string is Grounding DINO's form: commas stay inside its names.
    assert class_names("person, wearing a vest . forklift") == ["person, wearing a vest", "forklift"]
    # A comma next to a "." is a separator typed twice, not part of a name.
    assert class_names("red circle, . blue square ,") == TWO
    # List items are names as given (a label map's names are never split).
    assert class_names(["st. bernard"]) == ["st. bernard"]


@pytest.mark.parametrize("value", [3, True, {"a": 1}, ["a", {"b": 1}], ["a", ["b"]], " . ", "", ",", " . , ", "., .",
                                   [], [" "]])
def test_anything_else_is_one_line_naming_the_forms_and_the_quoting_rule(value):
    with pytest.raises(ClassListError) as info:
        class_names(value, "dataset.infer_data_sources.captions")
    (line,) = info.value.problems
    assert isinstance(info.value, UserError)
    assert line.startswith("dataset.infer_data_sources.captions: ")
    assert "[red circle, blue square], 'red circle . blue square' or 'red circle, blue square'" in line
    assert line.endswith("put quotes around a value with spaces: "
                         "dataset.infer_data_sources.captions='red circle . blue square'")
    assert not info.value.reason.startswith("dataset.")    # the spec loader adds the key itself


def test_python_callers_can_leave_out_the_shell_hint():
    with pytest.raises(ClassListError) as info:
        class_names(3, "prompts", shell_hint=False)
    assert "quotes" not in str(info.value) and str(info.value).startswith("prompts: expected a class list")
