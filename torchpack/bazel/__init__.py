"""What torchpack's Bazel rules run: the per-file analysis action and package test helpers."""
