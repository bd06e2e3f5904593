"""The prediction service: FastAPI over the ONNX export of the trained pipeline.

Imports only the serving runtime (numpy, onnxruntime, FastAPI, pydantic) and
the light parts of the package (`churn.contract`, `churn.artifacts`), so the
container needs none of the training stack.
"""
