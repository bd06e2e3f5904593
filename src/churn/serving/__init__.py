"""The prediction service: FastAPI over the ONNX export of the trained pipeline.

Imports only the serving runtime (numpy, onnxruntime, FastAPI, pydantic) and
the light parts of the package (`churn.core`, and the standard-library
halves of `churn.monitoring`), so the container needs none of the training
stack. The domain's contract is a value `create_app` receives (or loads
with `churn.core.domain.load_domain`); the request models and routes are
built from it (`churn.serving.schemas.build`), nothing here names a column.
"""
