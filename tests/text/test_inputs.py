import torch

from mask_grounding_dino.text import TextProcessor, phrase_attention


def _reference_phrase_attention(input_ids, delimiter_ids):
    """Loop form of the original Grounding DINO rule, written from its description."""
    batch, length = input_ids.shape
    mask = torch.eye(length, dtype=torch.bool).repeat(batch, 1, 1)
    pos = torch.zeros(batch, length, dtype=torch.long)
    for b in range(batch):
        prev = 0
        for col in range(length):
            if int(input_ids[b, col]) not in delimiter_ids.tolist():
                continue
            if col not in (0, length - 1):
                mask[b, prev + 1:col + 1, prev + 1:col + 1] = True
                pos[b, prev + 1:col + 1] = torch.arange(col - prev)
            prev = col
    return mask, pos


def test_phrase_attention_matches_loop_rule():
    tp = TextProcessor("bert-base-uncased")
    captions = ["red circle . blue square .", "a cat . the dog with a hat ? x . y .", "hello", ""]
    for pad_to in (None, 32):
        text = tp(captions, pad_to=pad_to)
        ref_mask, ref_pos = _reference_phrase_attention(text.input_ids, tp.delimiter_ids)
        assert torch.equal(text.text_token_mask, ref_mask)
        assert torch.equal(text.position_ids, ref_pos)


def test_phrase_positions_restart_and_blocks():
    tp = TextProcessor("bert-base-uncased")
    text = tp(["red circle . blue square ."])
    # [CLS] red circle . blue square . [SEP]
    assert text.input_ids[0].tolist()[0] == 101 and text.input_ids[0].tolist()[-1] == 102
    assert text.position_ids[0].tolist() == [0, 0, 1, 2, 0, 1, 2, 0]
    m = text.text_token_mask[0]
    assert m[1, 3] and m[3, 1] and not m[1, 4] and not m[0, 1]
    assert text.attention_mask.dtype == torch.bool and text.attention_mask.all()


def test_truncation_and_padding_lengths():
    tp = TextProcessor("bert-base-uncased", max_text_len=16)
    long_caption = " . ".join(f"word{i}" for i in range(40))
    text = tp([long_caption, "a ."])
    assert text.length == 16
    assert not text.attention_mask[1, 4:].any()
    assert tp.num_tokens(long_caption) > 16
    padded = tp(["a ."], pad_to=16)
    assert padded.length == 16


def test_offsets_map_characters():
    tp = TextProcessor("bert-base-uncased")
    caption = "red circle . blue square ."
    offsets = tp.offsets(caption)
    assert offsets[0] == (0, 0)
    assert caption[slice(*offsets[1])] == "red"
    assert caption[slice(*offsets[5])] == "square"


def test_phrase_attention_direct_call_shapes():
    ids = torch.tensor([[101, 5, 1012, 6, 7, 1012, 102, 0]])
    mask, pos = phrase_attention(ids, torch.tensor([101, 102, 1012, 1029]))
    assert mask.shape == (1, 8, 8) and pos.shape == (1, 8)
    assert pos.tolist() == [[0, 0, 1, 0, 1, 2, 0, 0]]
