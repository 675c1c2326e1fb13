"""WORKSPACE set-up of torchpack's rules: what they need, and the Python that runs them.

In the `WORKSPACE` of a workspace that uses torchpack (see the README's "Adopting the rules"):

    local_repository(name = "torchpack", path = "/path/to/torchpack")  # or an http_archive

    load("@torchpack//rules:repositories.bzl", "torchpack_dependencies", "torchpack_register_toolchains")

    torchpack_dependencies()

    torchpack_register_toolchains()

With bzlmod (Bazel 7+), `MODULE.bazel` does both through `//rules:extensions.bzl` instead.
"""

load("//rules/private:python_repository.bzl", "torchpack_python")
load("//rules/private:stand_in_repository.bzl", "stand_in_repository")

# What Bazel 4 and 5 download on first use of py_test/py_binary (rules_cc, rules_java: loaded
# by @bazel_tools; remote_coverage_tools: asked for by `bazel test`), and what BUILD files load
# the Python rules from (rules_python).
_STAND_INS = ["rules_cc", "rules_java", "remote_coverage_tools", "rules_python"]

def _bazel_major_version():
    """Bazel's major version; 0 when it reports none (Debian's bazel-bootstrap 4.2.3)."""
    version = getattr(native, "bazel_version", "") or ""
    major = version.split(".")[0]
    return int(major) if major.isdigit() else 0

def torchpack_dependencies():
    """Declares the repositories torchpack's rules load, offline, unless they are declared.

    On Bazel 4 and 5 it declares tiny stand-ins (from torchpack's `third_party/bazel_shims/`)
    for `rules_cc`, `rules_java`, `remote_coverage_tools` and `rules_python`, each only if the
    WORKSPACE has not declared a repository of that name before this call: declare the real
    ones first to use them. The `rules_python` stand-in maps `py_binary`, `py_library`,
    `py_test`, `PyInfo` (and the runtime rules) to Bazel's native rules.

    On Bazel 6 and later it declares nothing: Bazel brings its own `rules_cc` and `rules_java`,
    and the WORKSPACE must declare the real `rules_python` (see the README).
    """
    if _bazel_major_version() >= 6:
        return
    declared = native.existing_rules()
    for name in _STAND_INS:
        if name not in declared:
            stand_in_repository(
                name = name,
                workspace_file = Label("//third_party/bazel_shims/{}:WORKSPACE".format(name)),
            )

def torchpack_register_toolchains(python = ""):
    """Creates `@torchpack_python`, the interpreter that runs torchpack, and registers it.

    The interpreter must have torch installed. It is, first found first:
    1. `$TORCHPACK_PYTHON` (absolute), for a machine or a CI job that wants another one;
    2. `python`, absolute or relative to the main workspace's root (`"tools/py/.venv/bin/python"`);
    3. the main workspace's `.venv/bin/python`.

    A relative `python` and the `.venv` default need a BUILD file at the workspace's root.

    `@torchpack_python` holds the interpreter's fingerprint (Python version and every installed
    distribution) and registers a Python toolchain (`@bazel_tools//tools/python:toolchain_type`)
    for `py_test`/`py_binary`, so that `torch_package_test` runs in that interpreter too.
    Bazel does not watch the interpreter: after installing packages into it, run
    `bazel sync --configure`.

    Args:
      python: path of the interpreter; empty for `$TORCHPACK_PYTHON` or the workspace's `.venv`.
    """
    torchpack_python(name = "torchpack_python", python = python)
    native.register_toolchains("@torchpack_python//:toolchain")
