"""Opening a served ``.tflite`` model under LiteRT, the way every test's runner does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import ModelError


def open_signature(model: bytes | Path, what: str) -> tuple[Any, Any, dict[str, Any]]:
    """(interpreter, signature runner, signature) of a ``.tflite`` path or bytes with
    exactly one signature, on one thread (the pools scale by processes). Raises
    :class:`ModelError` naming ``what`` when the model has another number of signatures.
    The serving process imports no TensorFlow, only ``ai_edge_litert``."""
    from ai_edge_litert.interpreter import Interpreter

    kwargs = ({"model_content": model} if isinstance(model, bytes)
              else {"model_path": str(model)})
    interpreter = Interpreter(num_threads=1, **kwargs)
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ModelError(f"the {what} model has {len(signatures)} signatures, not one")
    (signature,) = signatures.values()
    return interpreter, interpreter.get_signature_runner(), signature
