"""`torch_package_test`: a py_test that sees the archive, but not the code packaged in it."""

load("@rules_python//python:defs.bzl", "py_test")

def torch_package_test(
        name,
        package,
        srcs,
        main = None,
        deps = [],
        data = [],
        args = [],
        size = "small",
        **kwargs):
    """A py_test that loads `package` through torchpack's `PackageImporter`.

    The test's first argument is the archive's runfiles path; its runfiles hold the archive,
    torchpack and the interpreter's fingerprint but not the model's source, so a package that is
    not self-contained fails. The test may sit in any package, above the model's too, and the
    repository holding torchpack may have any name (even `torchpack`).
    `torchpack.bazel.package_test` has helpers to open the archive (checking that the packaged
    modules cannot be imported from anywhere else) and to compare the model's output with the
    one recorded at build time.

    Args:
      name: the test's name.
      package: a `torch_package` target.
      srcs: the test's Python sources.
      main: the source that runs, if `srcs` has more than one.
      deps: extra py_library deps of the test; never the packaged model's own library.
      data: extra runfiles.
      args: extra arguments, after the archive's path.
      size: the test size; loading a model takes seconds, so "small".
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    py_test(
        name = name,
        srcs = srcs,
        main = main or srcs[0],
        args = ["$(rootpath {})".format(package)] + args,
        # The fingerprint: a cached result must not outlive a change of torch.
        data = [package, Label("@torchpack_python//:fingerprint.txt")] + data,
        deps = [Label("//:torchpack")] + deps,
        # Bazel would write an empty __init__.py at the root of every external repository's
        # runfiles: for a repository named `torchpack`, it hides the real package.
        legacy_create_init = 0,
        python_version = "PY3",
        size = size,
        **kwargs
    )
