"""ONNX export with TAO's interface, and its check against onnxruntime.

    result = export_onnx(model, "model.onnx", input_size=(544, 960))   # opset 17, dynamic batch
    report = check_onnx(model, "model.onnx", batch_sizes=(1, 2))       # max |onnxruntime - torch|
    print(report.summary())

Inputs ``inputs, input_ids, attention_mask, position_ids, token_type_ids,
text_token_mask``; outputs ``pred_logits, pred_boxes, pred_masks`` (+ ``no_targets,
union_mask_logits`` with the region head). See ``io_names.py``.
"""

from .io_names import BATCH_AXIS, INPUT_NAMES, OUTPUT_NAMES, ExampleInputs, example_inputs
from .onnx_check import OnnxCheckReport, OutputDiff, check_onnx
from .onnx_export import ExportError, ExportOptions, ExportResult, export_onnx, export_with_options
from .wrapper import OnnxWrapper

__all__ = ["BATCH_AXIS", "INPUT_NAMES", "OUTPUT_NAMES", "ExampleInputs", "example_inputs", "OnnxCheckReport",
           "OutputDiff", "check_onnx", "ExportError", "ExportOptions", "ExportResult", "export_onnx",
           "export_with_options", "OnnxWrapper"]
