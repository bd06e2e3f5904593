"""Batch scoring: a whole file of records through the served model, in chunks.

`churn score` reads CSV or Parquet (a local path or ``s3://``), checks every
row against the data contract, scores the valid ones with the same ONNX
model and threshold as the service, and writes Parquet. The parts:

- `rows`: the contract's checks, row by row, vectorised: a reason per
  rejected row (pandas, numpy);
- `chunk`: one chunk of text records in, scored rows and rejected rows out;
  shared by both engines, so they cannot give different answers;
- `summary`: the run's counts, score distribution and feature bin counts
  (the drift profile's bins), written as JSON next to the output;
- `storage`: reading in chunks and writing under a temporary name, on a
  local disk or S3 (pyarrow's file systems);
- `local`: the single-process engine; `spark`: the same as a Spark job
  (``mapInPandas``), with a ``spark-submit`` entry point.

docs/scoring.md describes the command, its exit codes and its memory bound.
"""
