"""A target that hands the host interpreter and its fingerprints to torchpack's rules."""

load(":providers.bzl", "TorchpackPythonInfo")

def _torchpack_interpreter_impl(ctx):
    return [TorchpackPythonInfo(
        launcher = ctx.executable.launcher,
        python_version = ctx.file.python_version,
        fingerprint = ctx.file.fingerprint,
    )]

torchpack_interpreter = rule(
    implementation = _torchpack_interpreter_impl,
    doc = "The Python interpreter found by torchpack_register_toolchains (generated; not for direct use).",
    attrs = {
        "launcher": attr.label(
            allow_single_file = True,
            executable = True,
            cfg = "exec",
            mandatory = True,
            doc = "Shell script that runs the interpreter with its arguments, the same on every machine.",
        ),
        "python_version": attr.label(
            allow_single_file = True,
            mandatory = True,
            doc = "File with the interpreter's implementation and version.",
        ),
        "fingerprint": attr.label(
            allow_single_file = True,
            mandatory = True,
            doc = "File with the version and every installed distribution.",
        ),
    },
    provides = [TorchpackPythonInfo],
)

def interpreter_attr(doc):
    """The private `_python` attribute of torchpack's rules and aspect."""
    return attr.label(
        default = "@torchpack_python//:interpreter",
        providers = [TorchpackPythonInfo],
        doc = doc,
    )
