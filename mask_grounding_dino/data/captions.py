"""Training and evaluation captions, TAO's rules, with the character span of every phrase.

* OD (detection records): the positive class names plus negatives sampled from the label
  map, ``max_labels`` names in total (all positives are kept even beyond it), shuffled,
  joined with ``" . "`` and ending with ``" ."``.
* VG caption-style records: the unique region phrases, shuffled, joined the same way.
* VG expression records: the cleaned expression is the caption; the labels are the region
  phrases when they occur in it, else the whole expression is class 0.
* OD evaluation: every category name in id order.

Every builder records where each phrase sits in the caption (``phrase_spans``), so the
positive token maps never have to search for a phrase (a name inside another name, such as
"cat" in "bobcat", cannot be confused). Randomness comes only from the generator passed in.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..text.spans import TERMINATOR, Span, find_phrase, join_phrases


@dataclass(frozen=True)
class CaptionSample:
    """A caption and how instances map onto it.

    caption: the prompt text.
    phrases: the phrases (class names / region phrases) in caption order.
    labels: per instance, the index of its phrase in ``phrases``.
    phrase_spans: per phrase, its character spans ``[(start, end), ...]`` in ``caption``.
    instance_spans: per instance, character spans overriding its phrase's (from the
        annotation's ``tokens_positive``), or None.
    class_ids: per instance, the dataset class id (OD) or -1 (VG).
    """

    caption: str
    phrases: list[str]
    labels: list[int]
    phrase_spans: list[list[Span]]
    instance_spans: list[list[Span] | None] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)

    def select(self, keep: Sequence[int]) -> "CaptionSample":
        """The same caption for the instances ``keep`` (e.g. after dropping degenerate boxes)."""
        spans = self.instance_spans or [None] * len(self.labels)
        ids = self.class_ids or [-1] * len(self.labels)
        return replace(self, labels=[self.labels[i] for i in keep],
                       instance_spans=[spans[i] for i in keep], class_ids=[ids[i] for i in keep])

    def swap_left_right(self) -> "CaptionSample":
        """The caption after a horizontal flip: "left" <-> "right" (spans follow the text)."""
        text, remap = swap_left_right(self.caption)
        if text == self.caption:
            return self
        return replace(
            self, caption=text,
            phrases=[swap_left_right(p)[0] for p in self.phrases],
            phrase_spans=[[remap_span(s, remap) for s in spans] for spans in self.phrase_spans],
            instance_spans=[None if spans is None else [remap_span(s, remap) for s in spans]
                            for spans in self.instance_spans])


def build_od_caption(instance_class_ids: Sequence[int], label_map: Mapping[int, str], max_labels: int,
                     rng: random.Random) -> CaptionSample:
    """TAO's training caption for a detection record.

    Args:
        instance_class_ids: [N] class id of each instance (keys of ``label_map``).
        label_map: class id -> name.
        max_labels: names in the caption, positives first, topped up with random negatives.
        rng: the sample's generator (negatives and order).
    """
    positives = sorted(set(int(c) for c in instance_class_ids))
    negatives = [c for c in sorted(label_map) if c not in set(positives)]
    extra = min(len(negatives), max(0, int(max_labels) - len(positives)))
    chosen = positives + (rng.sample(negatives, extra) if extra else [])
    rng.shuffle(chosen)
    # Two ids with the same name would be one phrase in the caption: keep the first.
    phrases: list[str] = []
    index_of_name: dict[str, int] = {}
    for class_id in chosen:
        name = label_map[class_id]
        if name not in index_of_name:
            index_of_name[name] = len(phrases)
            phrases.append(name)
    caption, spans = join_phrases(phrases)
    labels = [index_of_name[label_map[int(c)]] for c in instance_class_ids]
    return CaptionSample(caption, phrases, labels, spans, [None] * len(labels),
                         [int(c) for c in instance_class_ids])


def build_eval_caption(label_map: Mapping[int, str], instance_class_ids: Sequence[int] = ()) -> CaptionSample:
    """The OD evaluation prompt: every category name in id order; instances (class ids) are
    labelled with their category's position."""
    ids = sorted(label_map)
    phrases = [label_map[k] for k in ids]
    caption, spans = join_phrases(phrases)
    position = {k: i for i, k in enumerate(ids)}
    labels = [position[int(c)] for c in instance_class_ids]
    return CaptionSample(caption, phrases, labels, spans, [None] * len(labels), [int(c) for c in instance_class_ids])


def build_grounding_caption(region_phrases: Sequence[str], rng: random.Random) -> CaptionSample:
    """VG caption-style record: the unique phrases, shuffled; each region labelled by its phrase."""
    unique = list(dict.fromkeys(region_phrases))
    rng.shuffle(unique)
    caption, spans = join_phrases(unique)
    index = {p: i for i, p in enumerate(unique)}
    labels = [index[p] for p in region_phrases]
    return CaptionSample(caption, unique, labels, spans, [None] * len(labels), [-1] * len(labels))


def build_expression_caption(expression: str, region_phrases: Sequence[str],
                             region_spans: Sequence[Sequence[Sequence[int]] | None] | None = None
                             ) -> CaptionSample:
    """VG expression record: the cleaned expression is the caption.

    Region phrases found in the expression (whole words) become the phrases; a region whose
    phrase is the expression itself or is not found in it gets the whole expression (class 0).
    ``region_spans`` (``tokens_positive`` of each region, offsets into ``expression``) are
    carried over to the cleaned text.
    """
    caption, remap = clean_expression(expression)
    body = caption[: len(caption) - len(TERMINATOR)] if caption.endswith(TERMINATOR) else caption
    whole = [(0, len(body))]
    phrases: list[str] = [body]
    spans: list[list[Span]] = [whole]
    labels: list[int] = []
    for phrase in region_phrases:
        cleaned = _normalise_space(phrase).lower().rstrip(".?! ")
        if not cleaned or cleaned == body:
            labels.append(0)
            continue
        if cleaned in phrases:
            labels.append(phrases.index(cleaned))
            continue
        found = find_phrase(body, cleaned)
        if found is None:
            labels.append(0)
            continue
        phrases.append(cleaned)
        spans.append([found])
        labels.append(len(phrases) - 1)
    if any(lab != 0 for lab in labels) and 0 not in labels:
        # The whole expression is not a target phrase here: drop it, renumber.
        phrases, spans = phrases[1:], spans[1:]
        labels = [lab - 1 for lab in labels]
    inst_spans: list[list[Span] | None] = []
    for i in range(len(labels)):
        given = region_spans[i] if region_spans is not None and i < len(region_spans) else None
        inst_spans.append(None if not given else
                          [s for s in (remap_span((int(a), int(b)), remap) for a, b in given) if s[1] > s[0]])
    return CaptionSample(caption, phrases, labels, spans, inst_spans, [-1] * len(labels))


# --- Text helpers -------------------------------------------------------------------------

_LR = re.compile(r"(?<![0-9A-Za-z])(left|right|leftmost|rightmost)(?![0-9A-Za-z])", re.IGNORECASE)
_SWAP = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost"}


def _normalise_space(text: str) -> str:
    return " ".join(text.split())


def clean_expression(expression: str) -> tuple[str, list[int]]:
    """Lower-case, single spaces, no trailing ``.?!``, then ``" ."`` (Grounding DINO's prompt
    form). Returns the text and, for every original character, its new index (-1 if removed),
    plus one entry for the end position."""
    out: list[str] = []
    remap: list[int] = []
    pending_space = False
    for ch in expression:
        if ch.isspace():
            pending_space = bool(out)
            remap.append(-1)
            continue
        if pending_space:
            out.append(" ")
            pending_space = False
        remap.append(len(out))
        out.extend(ch.lower())  # a few characters lower-case to two
    while out and out[-1] in ".?!":
        # Trailing punctuation is replaced by the terminator below.
        removed = len(out) - 1
        out.pop()
        remap = [-1 if r == removed else r for r in remap]
        while out and out[-1] == " ":
            out.pop()
    text = "".join(out)
    remap.append(len(text))
    return text + TERMINATOR, remap


def remap_span(span: Span, remap: Sequence[int]) -> Span:
    """Move a ``(start, end)`` span through a character index map (``remap[i]``: new index of
    character ``i``, -1 if removed; one more entry for the end of the text). ``(0, 0)`` when
    nothing of the span is left."""
    start, end = max(0, span[0]), min(span[1], len(remap) - 1)
    new_start = next((remap[i] for i in range(start, end) if remap[i] >= 0), -1)
    if end < len(remap) and remap[end] >= 0:
        new_end = remap[end]    # the next character kept: the end is exact
    else:
        new_end = next((remap[i] + 1 for i in range(end - 1, start - 1, -1) if remap[i] >= 0), -1)
    if new_start < 0 or new_end <= new_start:
        return (0, 0)
    return (new_start, new_end)


def swap_left_right(text: str) -> tuple[str, list[int]]:
    """Swap "left"/"right" (and "leftmost"/"rightmost"), whole words, any case.

    Returns the new text and, per original character (plus the end), an index in it;
    characters inside a swapped word map proportionally into the new word.
    """
    out: list[str] = []
    remap: list[int] = []
    pos = 0
    for m in _LR.finditer(text):
        for i in range(pos, m.start()):
            remap.append(len(out))
            out.append(text[i])
        word = m.group(0)
        new = _SWAP[word.lower()]
        if word.isupper():
            new = new.upper()
        elif word[0].isupper():
            new = new.capitalize()
        base = len(out)
        for k in range(len(word)):
            remap.append(base + min(len(new) - 1, k * len(new) // len(word)))
        out.extend(new)
        pos = m.end()
    for i in range(pos, len(text)):
        remap.append(len(out))
        out.append(text[i])
    remap.append(len(out))
    return "".join(out), remap
