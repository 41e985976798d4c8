"""Text side shared by config, data, model and export: tokenizer resolution, the tensors
Grounding DINO takes for a caption (phrase masks, restarted positions) and class lists as
users type them.

Heavy imports (torch, transformers) happen on first use of an attribute, so the spec
loader can use ``text.class_names`` without loading torch.
"""

from __future__ import annotations

from ..utils.lazy import lazy_attributes

_EXPORTS = {
    "TextInputs": ".inputs",
    "TextProcessor": ".inputs",
    "phrase_attention": ".inputs",
    "load_tokenizer": ".tokenizer",
    "resolve_text_encoder": ".tokenizer",
    "ClassListError": ".class_names",
    "class_names": ".class_names",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
