"""TAO-named checkpoints: names, the latest link, contents, safe loading, rebuilding the model."""

from __future__ import annotations

import os

import pytest
import torch

from engine_helpers import checkpoint_files, model_weights
from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.checkpoint_io import AtomicCheckpointIO, load_checkpoint_file
from mask_grounding_dino.engine.checkpoints import (LATEST_NAME, checkpoint_name, find_resume_checkpoint,
                                                    list_checkpoints)
from mask_grounding_dino.errors import CheckpointError, UserError


def test_names_follow_tao(reference_run):
    """checkpoint_interval 1 in steps: one file per step, named by the epoch the step belongs to."""
    assert checkpoint_name(3, 42) == "model_epoch_003_step_00042.pth"
    assert checkpoint_files(reference_run) == [f"model_epoch_{(s - 1) // 4:03d}_step_{s:05d}.pth"
                                               for s in range(1, 9)]
    latest = reference_run / LATEST_NAME
    assert latest.is_symlink() and os.readlink(latest) == "model_epoch_001_step_00008.pth"
    assert not [n for n in os.listdir(reference_run) if n.endswith(".tmp")]


def test_contents_identify_the_model_and_the_run(reference_run):
    ckpt = torch.load(reference_run / LATEST_NAME, map_location="cpu", weights_only=True)
    assert ckpt["tao_model"] == "mask_grounding_dino"
    assert (ckpt["epoch"], ckpt["global_step"]) == (1, 8)
    # the resolved spec (Lightning's hyper_parameters) is the one saved beside the run
    spec = load_spec(str(reference_run / "train_spec.yaml"))
    assert ckpt["hyper_parameters"]["spec"] == spec_to_dict(spec)
    config = ckpt["model_config"]
    assert (config["backbone"], config["hidden_dim"], config["num_queries"], config["dec_layers"]) == \
        ("resnet_tiny", 32, 10, 2)
    assert config["text_encoder_config"]["hidden_size"] == 32  # enough to rebuild the text encoder offline
    assert {"state_dict", "optimizer_states", "lr_schedulers", "loops"} <= ckpt.keys()
    assert all(k.startswith("model.") for k in ckpt["state_dict"])


def test_loading_refuses_pickled_objects(tmp_path):
    """Checkpoints load with weights_only=True: a file that needs arbitrary unpickling is refused."""
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Pickled()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(str(path))
    # One line naming the class and what to do; never torch's advice to load the file unsafely.
    message = str(info.value)
    assert f"not safe to load ({__name__}._Pickled); resume only from checkpoints this tool wrote" in message
    assert "\n" not in message and "weights_only" not in message
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint_file(str(tmp_path / "missing.pth"))


class _Pickled:
    pass


def test_atomic_io_round_trip_leaves_no_temporary_file(tmp_path):
    io = AtomicCheckpointIO()
    state = {"state_dict": {"w": torch.arange(6.0)}, "epoch": 0}
    io.save_checkpoint(state, tmp_path / "a.pth")
    assert os.listdir(tmp_path) == ["a.pth"]
    assert torch.equal(io.load_checkpoint(tmp_path / "a.pth")["state_dict"]["w"], torch.arange(6.0))
    io.remove_checkpoint(tmp_path / "a.pth")
    assert not os.listdir(tmp_path)


def test_load_model_rebuilds_a_training_checkpoint(reference_run):
    """``model.checkpoint.load_model(path)`` rebuilds the trained model from the checkpoint alone
    (its ``model_config``), with nothing missing or left over."""
    from mask_grounding_dino.model import load_model

    model, summary = load_model(str(reference_run / LATEST_NAME))
    assert summary.complete, str(summary)
    state = model.state_dict()
    trained = model_weights(reference_run / LATEST_NAME)
    assert all(torch.equal(state[k[len("model."):]], v) for k, v in trained.items())


# -- resume discovery ------------------------------------------------------------------------------
def _touch_checkpoint(folder, epoch, step):
    path = folder / checkpoint_name(epoch, step)
    torch.save({"state_dict": {}}, path)
    return path


def test_resume_prefers_the_latest_link_and_ignores_temporary_files(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None
    older = _touch_checkpoint(tmp_path, 0, 2)
    newer = _touch_checkpoint(tmp_path, 1, 10)
    (tmp_path / ".model_epoch_001_step_00011.pth.abc123.tmp").write_bytes(b"half a checkpoint")
    assert [s for s, _, _ in list_checkpoints(str(tmp_path))] == [2, 10]
    assert find_resume_checkpoint(str(tmp_path)) == str(newer)  # no link yet: the newest file
    os.symlink(older.name, tmp_path / LATEST_NAME)
    assert find_resume_checkpoint(str(tmp_path)) == str(older)  # the link decides


def test_a_dangling_latest_link_falls_back_to_the_newest_file(tmp_path):
    newest = _touch_checkpoint(tmp_path, 0, 3)
    os.symlink("model_epoch_009_step_00099.pth", tmp_path / LATEST_NAME)  # target deleted by hand
    assert find_resume_checkpoint(str(tmp_path)) == str(newest)


def test_an_explicit_resume_path_must_exist(tmp_path):
    with pytest.raises(UserError, match="train.resume_training_checkpoint_path: .*does not exist"):
        find_resume_checkpoint(str(tmp_path), str(tmp_path / "nope.pth"))
    explicit = _touch_checkpoint(tmp_path, 0, 1)
    assert find_resume_checkpoint(str(tmp_path), str(explicit)) == str(explicit)
