"""Map the layers of a :class:`~.layers.LayerPlan` to the nodes of an exported ONNX graph.

The TorchScript exporter names each node after the modules it was traced in
(``/model/transformer/encoder/layers.0/linear1/MatMul``), with two quirks: a container's
child repeats the container's name (``/model/backbone/backbone.0/...``) and some wrapper
modules leave no scope (the ResNet's ``body``, the mask head). A Linear / Conv node (a
``MatMul`` / ``Gemm`` / ``Conv`` whose second input is a stored weight) belongs to the
module whose dotted name contains the node's scope names in order and ends with the same
name; the closest such module wins.
"""

from __future__ import annotations

import re

WEIGHT_OPS = ("MatMul", "Gemm", "Conv")


def scope_tokens(node_name: str) -> list[str]:
    """``/model/backbone/backbone.0/layer1/layer1.0/conv1/Conv`` -> ``[backbone, 0, layer1, 0, conv1]``."""
    parts = [p for p in node_name.split("/") if p][:-1]
    if parts and parts[0] == "model":                  # the export wrapper's attribute
        parts = parts[1:]
    path: list[str] = []
    for part in parts:
        part = re.sub(r"_\d+$", "", part)              # a module called twice: layers.0_1
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path).split(".") if path else []


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(token in it for token in short)


def weight_nodes(graph) -> dict:
    """Name -> node (``onnx.NodeProto``) of the Linear/Conv nodes of ``graph`` (an ``onnx.GraphProto``)."""
    stored = {init.name for init in graph.initializer}
    stored |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    return {node.name: node for node in graph.node
            if node.op_type in WEIGHT_OPS and len(node.input) > 1 and node.input[1] in stored}


def parameter_module(node) -> str | None:
    """The module path in the weight's name (``model.mask_head.lay1.weight`` -> ``mask_head.lay1``), or None
    when the exporter renamed the weight (``onnx::MatMul_123``: transposed Linear weights)."""
    weight = node.input[1]
    if not weight.endswith(".weight") or weight.startswith("onnx::"):
        return None
    name = weight[: -len(".weight")]
    return name[len("model."):] if name.startswith("model.") else name


def graph_layers(graph) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(layers as (module path, class name, kind), node name -> module path) of an exported graph whose
    modules are not at hand (``quantize.model_path`` is an ``.onnx`` file)."""
    layers, owner = {}, {}
    for name, node in weight_nodes(graph).items():
        path = parameter_module(node) or ".".join(scope_tokens(name))
        if not path:
            continue
        kind = "Conv2d" if node.op_type == "Conv" else "Linear"
        layers.setdefault(path, (path, kind, kind))
        owner[name] = path
    return list(layers.values()), owner


def module_of_nodes(graph, module_names: list[str]) -> dict[str, str | None]:
    """Node name -> the module (from ``module_names``) it was exported from, or None."""
    by_last: dict[str, list[list[str]]] = {}
    for name in module_names:
        tokens = name.split(".")
        by_last.setdefault(tokens[-1], []).append(tokens)
    known = set(module_names)
    found: dict[str, str | None] = {}
    for node, proto in weight_nodes(graph).items():
        named = parameter_module(proto)
        if named in known:
            found[node] = named
            continue
        tokens = scope_tokens(node)
        candidates = [m for m in by_last.get(tokens[-1] if tokens else "", []) if _is_subsequence(tokens, m)]
        best = min(candidates, key=len, default=None)
        found[node] = ".".join(best) if best is not None else None
    return found


def read_metadata(path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (the export's tokenizer, text length, input size)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def write_metadata(path, metadata: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of the ONNX file at ``path`` (a temporary file of the caller)."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {str(k): str(v) for k, v in metadata.items()})
    onnx.save(model, str(path))
