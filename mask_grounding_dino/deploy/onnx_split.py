"""Split an exported graph into its text side and the rest, so a runner can cache text features.

A Mask Grounding DINO graph takes the image and the tokenised prompt together (TAO's six
inputs), so onnxruntime runs the text encoder on every call, although an evaluation or a
deployment asks the same class list for every image. PyTorch encodes a prompt once
(:class:`~.backend.TorchBackend`'s cache); this module gives ONNX graphs the same:

* the **text side** is every node computed from the five text inputs alone (constants
  allowed): the text encoder, its projection, the text masks and position encodings;
* the **boundary** is the text-side tensors the rest of the graph reads (plus raw text inputs
  that image-side nodes read directly);
* two graphs are cut out with ``onnx.utils.Extractor``: text inputs -> boundary, and
  ``inputs`` + boundary -> the outputs. Running one after the other computes exactly what the
  whole graph computes, node for node.

Shapes: the boundary tensors keep the batch of the text inputs they were computed from; the
runner feeds the text side the full batch (the caption repeated), so no axis needs guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..export.io_names import INPUT_NAMES

IMAGE_INPUT, *_TEXT = INPUT_NAMES
TEXT_INPUTS = tuple(_TEXT)


@dataclass
class SplitGraph:
    """The two halves of a graph (serialized ``ModelProto`` bytes) and the tensors between them."""

    text: bytes            # text inputs -> boundary
    image: bytes           # inputs + boundary -> outputs
    boundary: list[str]    # in the text graph's output order


def text_boundary(graph) -> list[str]:
    """Names of the text-side tensors that the rest of ``graph`` (an ``onnx.GraphProto``) reads; empty
    when nothing can be split off (a graph without the text inputs)."""
    inputs = {i.name for i in graph.input}
    if not set(TEXT_INPUTS) <= inputs:
        return []
    free = {i.name for i in graph.initializer}          # usable by either side
    text = set(TEXT_INPUTS)
    text_nodes = set()
    for index, node in enumerate(graph.node):           # ONNX stores nodes in topological order
        used = [name for name in node.input if name]
        if any(a.HasField("g") for a in node.attribute):
            continue                                     # subgraphs (If/Loop) stay on the image side
        if all(name in free for name in used):
            free.update(node.output)
        elif all(name in free or name in text for name in used):
            text.update(node.output)
            text_nodes.add(index)
    read = set()
    for index, node in enumerate(graph.node):
        if index not in text_nodes:
            read.update(name for name in node.input if name in text)
    read.update(o.name for o in graph.output if o.name in text)
    ordered = [name for name in TEXT_INPUTS if name in read]
    for index in sorted(text_nodes):
        ordered.extend(name for name in graph.node[index].output if name in read)
    return ordered


_BOOL_OPS = {"Not", "And", "Or", "Xor", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "IsNaN", "IsInf"}


def _element_types(graph, known: dict[str, int]) -> dict[str, int]:
    """ONNX element type of every tensor, where shape inference left some out (it stops at symbolic
    shapes it cannot follow); propagated node by node from the inputs and initializers."""
    from onnx import TensorProto

    types = dict(known)
    for node in graph.node:
        if all(name in types for name in node.output):
            continue
        attrs = {a.name: a for a in node.attribute}
        typed = [types[name] for name in node.input if name in types]
        if node.op_type == "Cast":
            kind = attrs["to"].i
        elif node.op_type in ("Shape", "Size", "NonZero", "ArgMax", "ArgMin"):
            kind = TensorProto.INT64
        elif node.op_type in _BOOL_OPS:
            kind = TensorProto.BOOL
        elif node.op_type == "DequantizeLinear":
            kind = types.get(node.input[1], TensorProto.FLOAT)
        elif node.op_type == "QuantizeLinear":
            kind = types.get(node.input[2], TensorProto.UINT8) if len(node.input) > 2 else TensorProto.UINT8
        elif node.op_type == "Where" and len(node.input) > 1 and node.input[1] in types:
            kind = types[node.input[1]]
        elif node.op_type == "Constant" and "value" in attrs:
            kind = attrs["value"].t.data_type
        elif typed:
            kind = typed[0]
        else:
            continue
        for name in node.output:
            types.setdefault(name, kind)
    return types


def _typed_extractor(model):
    """``onnx.utils.Extractor`` whose value infos cover every tensor (element type at least)."""
    from onnx import helper, shape_inference
    from onnx.utils import Extractor

    extractor = Extractor(shape_inference.infer_shapes(model))
    infos = extractor.value_infos
    known = {name: info.type.tensor_type.elem_type for name, info in infos.items() if info.type.tensor_type.elem_type}
    known.update({init.name: init.data_type for init in model.graph.initializer})
    for name, kind in _element_types(model.graph, known).items():
        if name not in infos or not infos[name].type.tensor_type.elem_type:
            infos[name] = helper.make_tensor_value_info(name, kind, None)
    return extractor


def split_text_side(model) -> SplitGraph | None:
    """Cut ``model`` (an ``onnx.ModelProto``) into text and image graphs; None when it has no text side
    worth caching (nothing but raw inputs would cross)."""
    import onnx

    boundary = text_boundary(model.graph)
    computed = [name for name in boundary if name not in TEXT_INPUTS]
    if not computed:
        return None
    outputs = [o.name for o in model.graph.output]
    extractor = _typed_extractor(model)
    text = extractor.extract_model(list(TEXT_INPUTS), boundary)
    image = extractor.extract_model([IMAGE_INPUT, *boundary], outputs)
    for part in (text, image):
        part.metadata_props.extend(model.metadata_props)
        del part.opset_import[:]
        part.opset_import.extend(model.opset_import)
    return SplitGraph(onnx.ModelProto.SerializeToString(text), onnx.ModelProto.SerializeToString(image), boundary)
