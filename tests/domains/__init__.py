"""Domain rooms the test suite runs the machinery on, besides the package's own."""
