"""Exporting models to ONNX and TorchScript with their preprocessing inside the file, proved
equal to the PyTorch model before the file is kept; and running exported ONNX files.

    from cnnzoo.export import export_model, load_onnx
    result = export_model(model, meta, "model.onnx", dynamic_batch=True)
    print(result.parity.summary())
    module, meta = load_onnx("model.onnx")     # a torch module backed by onnxruntime
"""

from cnnzoo.export.exporter import FORMATS, ExportResult, ParityError, export_model, model_meta
from cnnzoo.export.parity import ParityReport, check_parity
from cnnzoo.infer.runtime import BACKENDS, OnnxModule, load_model, load_onnx

__all__ = [
    "BACKENDS",
    "FORMATS",
    "ExportResult",
    "OnnxModule",
    "ParityError",
    "ParityReport",
    "check_parity",
    "export_model",
    "load_model",
    "load_onnx",
    "model_meta",
]
