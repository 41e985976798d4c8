"""Run an exported ONNX file with onnxruntime behind the PyTorch pre/post-processing.

The file has TAO's six inputs (``inputs``, ``input_ids``, ``attention_mask``,
``position_ids``, ``token_type_ids``, ``text_token_mask``) and named outputs
(``pred_logits``, ``pred_boxes``, ``pred_masks``, ``no_targets``, ``union_mask_logits``).
This runner

* tokenises captions with the same :class:`TextProcessor` as PyTorch, padded to the
  graph's text length (``pad_to=256``; to the longest caption when the graph's text axis is
  dynamic), the tokenizer named in the file's metadata;
* reports the image size the graph was exported at (``fixed_input_size``): callers resize
  images to exactly that size, aspect ratio not kept, as TAO Deploy does; a graph with
  dynamic height/width takes images as they come (``fixed_input_size`` None);
* feeds a fixed-batch graph in slices of its batch (the last slice padded with copies);
* returns :class:`GroundingOutputs` (CPU tensors), so post-processing, chunking of long
  prompts and the evaluators are the PyTorch ones.

The graph is cut into its text side and the rest at load time (``onnx_split.py``): a prompt
seen before (an evaluation's class list, a deployment's fixed prompt) runs the image side
only, its text-side tensors taken from a cache, as :class:`~.backend.TorchBackend` does.
The whole graph's own session is built only when a call needs it (a fixed-batch graph given a
larger batch, or a graph without a text side to cut): Swin-T + BERT-base at 800x1333 then
loads in 9.0 s and 2.55 GB instead of 10.8 s and 3.07 GB with all three sessions.

The graph has no padding-mask input: every image must fill the tensor
(``supports_padding`` False). Long class lists run the image side once per chunk (its
backbone and encoder read the text, so they cannot be shared between chunks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import fileio
from ..errors import CheckpointError
from ..export.io_names import INPUT_NAMES
from ..model.outputs import GroundingOutputs
from ..text import TextProcessor
from .devices import onnx_providers
from .prompt_cache import PromptCache

@dataclass
class OnnxImages:
    """The image side of an ONNX run: the batch as the graph takes it."""

    images: np.ndarray          # [B, 3, H, W] float32

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])


def _dims(value_info) -> list[int | None]:
    """The sizes of a graph input's axes: an int for a fixed axis, None for a named (dynamic) one."""
    return [_static(d.dim_value if d.HasField("dim_value") else None) for d in value_info.type.tensor_type.shape.dim]


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxBackend:
    """onnxruntime session over an exported Mask Grounding DINO.

    Args:
        path: the ``.onnx`` file (local or a URL, fetched once into the cache).
        device: ``cuda`` uses onnxruntime's CUDA provider when the installed build has one.
        text_encoder_type: tokenizer to use when the file's metadata does not name one.
        text_cache_size: prompts whose text-side tensors are kept. The graph is cut into its text
            side and the rest (``onnx_split.py``); a prompt seen before then runs the image side
            only, as PyTorch runs it. 0 runs the whole graph on every call.
    """

    kind = "onnx"
    supports_padding = False

    def __init__(self, path: str | os.PathLike, *, device: str | torch.device = "cpu",
                 text_encoder_type: str | None = None, text_cache_size: int = 64):
        import onnx

        from ..quantize.onnx_session import session_options

        self.path = os.fspath(path)
        if not fileio.isfile(self.path):
            raise CheckpointError(f"ONNX file '{fileio.redact(self.path)}' does not exist")
        self.device = torch.device(device)
        self._local = fileio.local_copy(self.path)
        self._options = session_options(self._local)          # TensorRT's Q/DQ graphs run as written
        self._options.log_severity_level = 3
        self._providers = onnx_providers(self.device)
        try:
            model = onnx.load(self._local)
        except Exception as exc:  # onnx raises protobuf's and its own exception types for unreadable files
            raise self._unloadable(exc) from exc
        # Inputs, outputs and metadata come from the file itself, so that no session of the whole
        # graph is built when its two halves (below) run every call anyway.
        weights = {t.name for t in model.graph.initializer}
        inputs = {i.name: i for i in model.graph.input if i.name not in weights}
        if tuple(inputs) != INPUT_NAMES:
            raise CheckpointError(f"'{self.path}' does not have Mask Grounding DINO's inputs: it has "
                                  f"{list(inputs)}, expected {list(INPUT_NAMES)} (export it with the export action)")
        self._input_types = {name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).type
                             for name, i in inputs.items()}
        self.output_names = [o.name for o in model.graph.output]
        for needed in ("pred_logits", "pred_boxes"):
            if needed not in self.output_names:
                raise CheckpointError(f"'{self.path}' has no '{needed}' output (outputs: {self.output_names})")
        image_dims = _dims(inputs["inputs"])
        self.fixed_batch = image_dims[0]
        height, width = image_dims[2], image_dims[3]
        self.fixed_input_size = (height, width) if height and width else None
        meta = {prop.key: prop.value for prop in model.metadata_props}
        fixed_text = _dims(inputs["input_ids"])[1]
        tokenizer = meta.get("text_encoder_type") or text_encoder_type or "bert-base-uncased"
        self.text_len = int(fixed_text or meta.get("max_text_len", 256))
        # A graph with a dynamic text axis gets captions padded to the longest, as PyTorch runs them.
        self.pad_to = fixed_text
        self.text_processor = TextProcessor(tokenizer, self.text_len)
        self.metadata = meta
        self._text_cache = PromptCache(text_cache_size)
        self._session = None
        self._split = self._split_sessions(model) if self._text_cache.size > 0 else None
        if self._split is None:
            self.session  # noqa: B018 - the whole graph runs every call: build it now, so a bad graph fails here

    def _new_session(self, graph):
        """An onnxruntime session over ``graph`` (a path or serialised bytes) with this backend's options."""
        import onnxruntime as ort

        try:
            return ort.InferenceSession(graph, self._options, providers=self._providers)
        except Exception as exc:  # onnxruntime raises its own exception types for graphs it cannot run
            raise self._unloadable(exc) from exc

    def _unloadable(self, exc: Exception) -> CheckpointError:
        return CheckpointError(f"'{self.path}' is not a loadable ONNX model "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")

    @property
    def session(self):
        """The whole graph's session, built on first use: runs that do not fit the split halves
        (a fixed-batch graph given a larger batch, a graph without a text side to cut)."""
        if self._session is None:
            self._session = self._new_session(self._local)
        return self._session

    def set_intra_op_threads(self, threads: int) -> None:
        """Use ``threads`` intra-op threads from now on: the sessions built so far are rebuilt."""
        self._options.intra_op_num_threads = int(threads)
        if self._session is not None:
            self._session = self._new_session(self._local)
        if self._split is not None:
            import onnx

            self._split = self._split_sessions(onnx.load(self._local))     # the halves are not kept in memory

    def _split_sessions(self, model):
        """(text session, image session, boundary names) when the graph's text side can be cut off
        (``onnx_split.py``), else None: the whole graph then runs on every call."""
        from .onnx_split import split_text_side

        try:
            split = split_text_side(model)
            if split is None:
                return None
            return self._new_session(split.text), self._new_session(split.image), split.boundary
        except Exception:  # a graph the splitter cannot cut (unusual ops): run it whole
            return None

    def describe(self) -> str:
        size = "any size" if self.fixed_input_size is None else "x".join(map(str, self.fixed_input_size))
        batch = "dynamic batch" if self.fixed_batch is None else f"batch {self.fixed_batch}"
        providers = ", ".join((self._split[1] if self._split is not None else self.session).get_providers())
        return f"ONNX model {self.path} ({size}, {batch}) on onnxruntime [{providers}]"

    def encode_image(self, images: torch.Tensor, pixel_mask: torch.Tensor | None) -> OnnxImages:
        """Check the batch fits the graph; nothing runs yet (the graph takes image and text together)."""
        if pixel_mask is not None and bool(pixel_mask.any()):
            raise ValueError("the ONNX graph has no padding mask: resize every image to the graph's input "
                             "size instead of padding")
        if self.fixed_input_size is not None and tuple(images.shape[-2:]) != self.fixed_input_size:
            raise ValueError(f"the ONNX graph takes {self.fixed_input_size[0]}x{self.fixed_input_size[1]} images, "
                             f"got {images.shape[-2]}x{images.shape[-1]}")
        return OnnxImages(images.detach().to("cpu", torch.float32).numpy())

    def run(self, image: OnnxImages, captions: Sequence[str]) -> GroundingOutputs:
        batch = image.batch_size
        if len(captions) not in (1, batch):
            raise ValueError(f"run: {len(captions)} captions for a batch of {batch} images")
        text = self.text_processor(list(captions) if len(captions) == batch else list(captions) * batch,
                                   pad_to=self.pad_to)
        feed = {"inputs": image.images}
        for name, tensor in zip(INPUT_NAMES[1:], text.as_tuple()):
            feed[name] = tensor.numpy()
        if self._split is not None and (self.fixed_batch is None or self.fixed_batch >= batch):
            results = self._run_cached(feed, tuple(captions), batch)
        else:
            results = self._run_sliced(feed, batch)
        out = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in results.items()}
        height, width = image.images.shape[-2:]
        return GroundingOutputs(pred_logits=out["pred_logits"].float(), pred_boxes=out["pred_boxes"].float(),
                                text_mask=text.attention_mask.clone(), pred_masks=out.get("pred_masks"),
                                no_targets=out.get("no_targets"), union_mask_logits=out.get("union_mask_logits"),
                                input_size=(int(height), int(width)))

    def _run_cached(self, feed: dict[str, np.ndarray], captions: tuple[str, ...], batch: int) -> dict[str, np.ndarray]:
        """The image side with the prompt's text-side tensors from the cache (computed on first use).

        The text side runs on the same batch the image side gets (the graph's fixed batch, padded with
        copies as :meth:`_run_sliced` does), so every boundary tensor has the shape it has in the whole graph."""
        text_session, image_session, boundary = self._split
        rows = self.fixed_batch or batch
        typed = _padded(self._typed(feed), rows)
        cached = self._text_cache.get((captions, rows), lambda: text_session.run(
            boundary, {i.name: typed[i.name] for i in text_session.get_inputs()}))
        available = {"inputs": typed["inputs"], **dict(zip(boundary, cached))}
        got = image_session.run(self.output_names, {i.name: available[i.name] for i in image_session.get_inputs()})
        return {name: value[:batch] for name, value in zip(self.output_names, got)}

    def _typed(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.astype(self._input_types[k], copy=False) for k, v in feed.items()}

    def _run_sliced(self, feed: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        """Run the whole batch, or slices of the graph's fixed batch (last one padded with copies)."""
        typed = self._typed(feed)
        step = self.fixed_batch or batch
        parts: list[list[np.ndarray]] = []
        for start in range(0, batch, step):
            piece = {k: v[start:start + step] for k, v in typed.items()}
            n = next(iter(piece.values())).shape[0]
            got = self.session.run(self.output_names, _padded(piece, step))
            parts.append([g[:n] for g in got])
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.output_names)}


def _padded(arrays: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """``arrays`` with their last row repeated up to ``rows`` rows (a fixed-batch graph's batch)."""
    n = next(iter(arrays.values())).shape[0]
    if n >= rows:
        return arrays
    return {k: np.concatenate([v, np.repeat(v[-1:], rows - n, axis=0)]) for k, v in arrays.items()}
