"""Safe checkpoint reading: files holding unsafe pickled objects are refused with one line that
names them and says what to do, never with torch's advice to load them unsafely."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from mask_grounding_dino.errors import CheckpointError
from mask_grounding_dino.model.checkpoint import read_checkpoint
from mask_grounding_dino.model.checkpoint.io import load_failure, pickled_globals, torch_load

#: The module os.system pickles as (posix on Linux and macOS, nt on Windows).
SYSTEM = f"{os.system.__module__}.system"


class ConfigObject:
    """An arbitrary class pickled beside the weights (a training framework's config)."""

    def __init__(self):
        self.lr = 1e-4


class RunsCommand:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExitsProcess:
    def __reduce__(self):
        return (os._exit, (3,))


def _assert_one_safe_line(message: str) -> None:
    assert "\n" not in message
    assert "weights_only" not in message and "safe_globals" not in message


def test_arbitrary_classes_load_as_inert_placeholders(tmp_path):
    path = tmp_path / "with_config.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "config": ConfigObject()}, path)
    obj = torch_load(path)
    assert torch.equal(obj["state_dict"]["w"], torch.ones(2))
    assert type(obj["config"]) is not ConfigObject      # a stand-in: nothing of the class ran


class OtherConfig:
    pass


class ThirdConfig:
    pass


def test_several_foreign_classes_are_found_in_one_pass(tmp_path, monkeypatch):
    """The reader used to unpickle the whole file once per foreign class (up to 65 times)."""
    path = tmp_path / "three.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "a": ConfigObject(), "b": OtherConfig(), "c": [ThirdConfig()]},
               path)
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    obj = torch_load(path)
    assert len(calls) == 1
    assert [type(obj[k]).__name__ for k in "ab"] == ["ConfigObject", "OtherConfig"]
    assert type(obj["a"]) is not ConfigObject and type(obj["c"][0]) is not ThirdConfig


def test_unsafe_objects_are_named_in_one_line_without_torch_advice(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "a": RunsCommand(marker), "b": ExitsProcess(),
                "c": ConfigObject()}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    _assert_one_safe_line(message)
    assert message.startswith(f"{path}: the file holds pickled Python objects that are not safe to load (")
    # Both unsafe functions are listed (torch itself stops at the first); the config class is not
    # unsafe here (it loads as a placeholder).
    assert SYSTEM in message and f"{os._exit.__module__}._exit" in message and "ConfigObject" not in message
    assert "re-save only the weights" in message
    assert not marker.exists()


def test_other_unreadable_files_give_torch_reason_without_its_advice(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes.pth: not a readable PyTorch checkpoint \(") as info:
        read_checkpoint(text)
    _assert_one_safe_line(str(info.value))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")   # torch notes the raw pickle's protocol
def test_a_raw_pickle_with_a_shell_command_is_refused(tmp_path):
    """Not torch.save's layout (a plain pickle): refused as unreadable, in one safe line."""
    marker = tmp_path / "pwned"
    path = tmp_path / "raw.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": RunsCommand(marker)}, f)
    with pytest.raises(CheckpointError, match="raw.pth: not a readable PyTorch checkpoint") as info:
        read_checkpoint(path)
    _assert_one_safe_line(str(info.value))
    assert not marker.exists()


def test_every_torch_refusal_message_is_rewritten():
    """torch's messages for each kind of refusal (as torch 2.6+ words them) -> our line."""
    advice = ("Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` "
              "argument in `torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set "
              "to `False` will likely succeed, but it can result in arbitrary code execution.\n\n\n")
    cases = {
        "Trying to load unsupported GLOBAL posix.system whose module posix is blocked.": "posix.system",
        "WeightsUnpickler error: Unsupported global: GLOBAL a.B was not an allowed global by default. Please "
        "use `torch.serialization.add_safe_globals([a.B])`": "a.B",
        "Trying to call reduce for unrecognized function <built-in function eval>": "<built-in function eval>",
        "Can only build Tensor, Parameter, OrderedDict or types allowlisted via `add_safe_globals`, but got "
        "<class 'pkg.Thing'>": "pkg.Thing",
    }
    for torch_text, name in cases.items():
        error = load_failure("x.pth", pickle.UnpicklingError(advice + torch_text), placeholders=False)
        assert f"not safe to load ({name})" in str(error), torch_text
        _assert_one_safe_line(str(error))
    other = load_failure("x.pth", pickle.UnpicklingError(advice + "Unsupported operand 149"))
    assert str(other) == "x.pth: not a readable PyTorch checkpoint (UnpicklingError: Unsupported operand 149)"


def test_pickled_globals_reads_opcodes_only(tmp_path):
    path = tmp_path / "c.pth"
    torch.save({"w": torch.zeros(1), "s": {1}, "c": ConfigObject()}, path)
    names = pickled_globals(path)
    assert f"{__name__}.ConfigObject" in names and "builtins.set" in names   # protocol 2's __builtin__ mapped
    assert pickled_globals(tmp_path / "missing.pth") == []
