"""Module extension for bzlmod (Bazel 7+; MODULE.bazel only, never loaded under WORKSPACE)."""

load(":python_repository.bzl", _torchpack_python_repository = "torchpack_python")

def _torchpack_python_impl(module_ctx):
    _torchpack_python_repository(name = "torchpack_python")

torchpack_python = module_extension(
    implementation = _torchpack_python_impl,
    doc = "Creates @torchpack_python: the host interpreter, its toolchain and fingerprints.",
)
