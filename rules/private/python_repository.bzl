"""`@torchpack_python`: the consumer's Python interpreter, its fingerprints and its toolchain.

Bazel does not track tools outside the workspace: the repository writes fingerprints of the
interpreter (its version; its version plus every installed distribution) that the actions
take as inputs, so that no cache serves an archive built against another torch.

The interpreter's location, on the other hand, is kept out of every action's key: actions run
`python.sh`, whose text is the same everywhere, and which reads the interpreter's path from
`interpreter_path.txt` beside its real location, a file no action declares. Two clones of a
repository at different paths, each with its own `.venv`, thus share every cache entry.
"""

# Printed by the interpreter itself: its path (pyenv's `python3` on PATH is a shim script; a
# virtual environment's own path is kept, since it is what selects the environment), its
# version, and the sorted distributions it can import.
_PROBE = """
import importlib.metadata, platform, sys
print(sys.executable)
print(platform.python_implementation(), platform.python_version())
names = sorted({(d.metadata["Name"] or "?").lower() + "==" + d.version
                for d in importlib.metadata.distributions()})
print("\\n".join(names))
"""

_LAUNCHER = """\
#!/bin/sh
# Runs the interpreter of @torchpack_python. Its path is read from interpreter_path.txt beside
# this file's real location (sandboxes hold a link to it), not written here: this file is an
# input of every torchpack action, and must be the same wherever the interpreter lives.
exec "$(cat "$(dirname "$(readlink -f "$0")")/interpreter_path.txt")" "$@"
"""

_BUILD = """\
load("@rules_python//python:defs.bzl", "py_runtime", "py_runtime_pair")
load("{interpreter_bzl}", "torchpack_interpreter")

package(default_visibility = ["//visibility:public"])

exports_files(["fingerprint.txt", "python_version.txt"])

torchpack_interpreter(
    name = "interpreter",
    fingerprint = "fingerprint.txt",
    launcher = "python.sh",
    python_version = "python_version.txt",
)

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _main_workspace_root(rctx):
    # Bazel 6+ tells; Bazel 4 and 5 only resolve labels, which need a package (a BUILD file).
    root = getattr(rctx, "workspace_root", None)
    if root != None:
        return str(root)
    return str(rctx.path(Label("@//:WORKSPACE")).dirname)

def _chosen_interpreter(rctx):
    """`(path, where the choice came from)`."""
    python = rctx.os.environ.get("TORCHPACK_PYTHON", "")
    if python:
        return python, "$TORCHPACK_PYTHON"
    python = rctx.attr.python
    if python.startswith("/"):
        return python, "the `python` argument of torchpack_register_toolchains"
    if python:
        return (
            _main_workspace_root(rctx) + "/" + python,
            "the `python` argument of torchpack_register_toolchains, relative to the workspace",
        )
    return _main_workspace_root(rctx) + "/.venv/bin/python", "the main workspace's .venv"

def _absolute(label):
    # Bazel 4 and 5 print main-repository labels as "//pkg:name", which would point into the
    # generated repository itself.
    text = str(label)
    return text if text.startswith("@") else "@" + text

def _torchpack_python_impl(rctx):
    python, origin = _chosen_interpreter(rctx)
    if not rctx.path(python).exists:
        fail(("torchpack: no Python interpreter at {} ({}). Create a virtual environment with " +
              "torch there, pass `python = ...` to torchpack_register_toolchains(), or set " +
              "TORCHPACK_PYTHON to a Python that has torch installed.").format(python, origin))
    result = rctx.execute([python, "-c", _PROBE])
    if result.return_code != 0:
        fail("torchpack: {} ({}) failed to describe itself:\n{}".format(
            python,
            origin,
            result.stderr,
        ))
    lines = result.stdout.strip().split("\n")
    executable, version, distributions = lines[0], lines[1], lines[2:]
    rctx.file("python_version.txt", version + "\n")
    rctx.file("fingerprint.txt", "\n".join([version] + distributions) + "\n")
    rctx.file("interpreter_path.txt", executable)
    rctx.file("python.sh", _LAUNCHER, executable = True)
    rctx.file("WORKSPACE", "workspace(name = \"{}\")\n".format(rctx.name))
    rctx.file("BUILD.bazel", _BUILD.format(
        python = executable,
        interpreter_bzl = _absolute(Label("//rules/private:python_interpreter.bzl")),
    ))

torchpack_python = repository_rule(
    implementation = _torchpack_python_impl,
    doc = """Finds the Python that builds and tests torch packages (use torchpack_register_toolchains).

The generated repository provides `:interpreter` (for torchpack's actions), `:toolchain` (a
Python toolchain for py_binary/py_test) and `:fingerprint.txt`. Re-run after installing
packages into the interpreter: `bazel sync --configure`.""",
    attrs = {
        "python": attr.string(
            doc = "The interpreter: absolute, or relative to the main workspace's root. " +
                  "`$TORCHPACK_PYTHON` wins over it; empty means the workspace's `.venv`.",
        ),
    },
    environ = ["TORCHPACK_PYTHON"],
    configure = True,
    local = True,
)
