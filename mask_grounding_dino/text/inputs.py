"""Caption -> the six text tensors Grounding DINO (and its ONNX export) takes.

Grounding DINO splits a caption such as ``"red circle . blue square ."`` into
phrases at the delimiter tokens ``[CLS] [SEP] . ?``. Inside BERT each token may
attend only to the tokens of its own phrase (a block-diagonal mask), and
position ids restart at 0 in every phrase. These are computed here, during
pre-processing, so the model (and the exported graph) receives them as plain
inputs, exactly like TAO's ONNX inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .tokenizer import load_tokenizer

#: Tokens that close a phrase, as text (ids come from the tokenizer).
DELIMITER_TOKENS = ("[CLS]", "[SEP]", ".", "?")


@dataclass
class TextInputs:
    """Tokenised captions for a batch. ``L`` <= ``max_text_len``.

    input_ids:       [B, L] long
    attention_mask:  [B, L] bool, True at real tokens (TAO's ``text_token_mask``
                     inside the model; named ``attention_mask`` at the ONNX boundary)
    position_ids:    [B, L] long, restarting at 0 in each phrase
    token_type_ids:  [B, L] long (zeros)
    text_token_mask: [B, L, L] bool, the phrase-level self-attention mask
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    token_type_ids: torch.Tensor
    text_token_mask: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "TextInputs":
        return TextInputs(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                             for f in fields(self)})

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        """In TAO's ONNX input order (after ``inputs``)."""
        return (self.input_ids, self.attention_mask, self.position_ids, self.token_type_ids,
                self.text_token_mask)

    def select(self, index) -> "TextInputs":
        """Rows ``index`` of the batch (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return TextInputs(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])


def phrase_attention(input_ids: torch.Tensor, delimiter_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Phrase-level self-attention mask and restarted position ids.

    A phrase is the run of tokens after one delimiter up to and including the
    next one. Delimiters at the first or last position (``[CLS]``, and ``[SEP]``
    when the sequence is unpadded) form no phrase; such tokens, and tokens after
    the last delimiter (padding), attend only to themselves with position 0.
    This is the rule of the original Grounding DINO (and of transformers' port).

    Args:
        input_ids: [B, L] long.
        delimiter_ids: [K] long, ids of ``[CLS] [SEP] . ?``.
    Returns:
        mask [B, L, L] bool, position_ids [B, L] long.
    """
    batch, length = input_ids.shape
    device = input_ids.device
    is_delim = (input_ids.unsqueeze(-1) == delimiter_ids.to(device)).any(-1)  # [B, L]
    pos = torch.arange(length, device=device).expand(batch, length)
    # Last delimiter strictly before each token (-1 when none).
    last_at_or_before = torch.where(is_delim, pos, torch.full_like(pos, -1)).cummax(dim=1).values
    prev_delim = torch.cat([torch.full_like(pos[:, :1], -1), last_at_or_before[:, :-1]], dim=1)
    # First delimiter at or after each token (``length`` when none).
    rev = torch.where(is_delim, pos, torch.full_like(pos, length)).flip(1)
    next_delim = rev.cummin(dim=1).values.flip(1)
    in_phrase = (next_delim > 0) & (next_delim < length - 1)
    same_phrase = next_delim.unsqueeze(2) == next_delim.unsqueeze(1)
    mask = same_phrase & in_phrase.unsqueeze(1) & in_phrase.unsqueeze(2)
    mask |= torch.eye(length, dtype=torch.bool, device=device).unsqueeze(0)
    position_ids = torch.where(in_phrase, pos - prev_delim - 1, torch.zeros_like(pos))
    return mask, position_ids


class TextProcessor:
    """Tokenises captions into :class:`TextInputs` for ``model.text_encoder_type``.

    Args:
        text_encoder_type: hub id, local folder or bundled alias (see ``tokenizer.py``).
        max_text_len: captions are truncated to this many tokens (TAO: 256).
    """

    def __init__(self, text_encoder_type: str, max_text_len: int = 256):
        self.tokenizer = load_tokenizer(text_encoder_type)
        self.max_text_len = int(max_text_len)
        ids = self.tokenizer.convert_tokens_to_ids(list(DELIMITER_TOKENS))
        self.delimiter_ids = torch.tensor(ids, dtype=torch.long)

    def __call__(self, captions: list[str], pad_to: int | None = None) -> TextInputs:
        """Tokenise ``captions``; pad to the longest (or to ``pad_to``, e.g. 256 for export)."""
        enc = self.tokenizer(list(captions), padding="max_length" if pad_to else "longest",
                             max_length=pad_to or self.max_text_len, truncation=True,
                             return_tensors="pt")
        input_ids = enc["input_ids"]
        mask, position_ids = phrase_attention(input_ids, self.delimiter_ids)
        return TextInputs(
            input_ids=input_ids,
            attention_mask=enc["attention_mask"].bool(),
            position_ids=position_ids,
            token_type_ids=torch.zeros_like(input_ids),
            text_token_mask=mask,
        )

    def num_tokens(self, caption: str) -> int:
        """Token count of ``caption`` including [CLS] and [SEP], without truncation."""
        return len(self.tokenizer(caption, add_special_tokens=True, truncation=False)["input_ids"])

    def offsets(self, caption: str) -> list[tuple[int, int]]:
        """Character span of every token of ``caption`` as :meth:`__call__` tokenises it
        ((0, 0) for special tokens), truncated to ``max_text_len``."""
        enc = self.tokenizer(caption, max_length=self.max_text_len, truncation=True,
                             return_offsets_mapping=True)
        return [tuple(span) for span in enc["offset_mapping"]]
