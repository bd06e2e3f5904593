"""Helpers shared by the test modules (tests never import from each other or from bench/)."""
