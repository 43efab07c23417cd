"""The prediction server: a Starlette app with dynamic batching, limits, an optional bearer
token and a web page, served by uvicorn on loopback unless told otherwise.

    from cnnzoo.infer.runtime import load_predictor
    from cnnzoo.serve import build_app, model_card, serving
    predictor = load_predictor("model.onnx")
    app = build_app(predictor, model_card(predictor.meta, "model.onnx", "onnxruntime"))
    with serving(app) as url:        # a background thread on 127.0.0.1, a free port
        ...
"""

from cnnzoo.serve.app import build_app
from cnnzoo.serve.card import model_card
from cnnzoo.serve.server import ConnectionRules, serving
from cnnzoo.serve.uploads import Limits, UploadError

__all__ = ["ConnectionRules", "Limits", "UploadError", "build_app", "model_card", "serving"]
