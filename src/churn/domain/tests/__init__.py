"""The example's own tests: what is true of the IBM Telco data and a model trained on it.

THESE TESTS ARE YOURS TO REPLACE. The machinery's tests (``tests/``) hold
for any domain; these check the example's raw file, its repairs and the
behaviour a churn model should show on it. Write the same kind for your
data: its file's hash and size, its quirks and their repairs, and what your
model must (directional) and must not (invariance) react to.
"""
