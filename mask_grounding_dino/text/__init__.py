"""Text side shared by data, model and export: tokenizer resolution and the
tensors Grounding DINO takes for a caption (phrase masks, restarted positions)."""

from .inputs import TextInputs, TextProcessor, phrase_attention
from .tokenizer import load_tokenizer, resolve_text_encoder

__all__ = ["TextInputs", "TextProcessor", "phrase_attention", "load_tokenizer", "resolve_text_encoder"]
