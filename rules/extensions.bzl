"""bzlmod (Bazel 7+) set-up of torchpack's rules; not tested here (CI runs Bazel 4.2.3).

torchpack's own MODULE.bazel uses this extension and registers the interpreter's toolchain, so
a consumer needs only `bazel_dep(name = "torchpack", ...)`. To choose the interpreter, the root
module adds:

    torchpack = use_extension("@torchpack//rules:extensions.bzl", "torchpack")
    torchpack.interpreter(python = "tools/py/.venv/bin/python")

Never loaded under WORKSPACE; `repositories.bzl` is the WORKSPACE equivalent.
"""

load("//rules/private:python_repository.bzl", "torchpack_python")

_interpreter = tag_class(
    doc = "Chooses the interpreter, as `python` of torchpack_register_toolchains() does.",
    attrs = {
        "python": attr.string(
            doc = "The interpreter: absolute, or relative to the root module's folder. " +
                  "`$TORCHPACK_PYTHON` wins over it; empty means the root module's `.venv`.",
        ),
    },
)

def _torchpack_impl(module_ctx):
    # Only the root module chooses: the interpreter belongs to the workspace being built.
    python = ""
    for module in module_ctx.modules:
        if module.is_root:
            for tag in module.tags.interpreter:
                python = tag.python
    torchpack_python(name = "torchpack_python", python = python)

torchpack = module_extension(
    implementation = _torchpack_impl,
    doc = "Creates @torchpack_python: the interpreter that runs torchpack, and its toolchain.",
    tag_classes = {"interpreter": _interpreter},
)
