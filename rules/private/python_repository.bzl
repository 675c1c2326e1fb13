"""The Python interpreter that runs torchpack's build actions and tests, found on the host.

Bazel does not track tools outside the workspace: the repository also writes fingerprints of
the interpreter (its version; its version plus every installed distribution) that the actions
take as inputs, so that no cache can serve an archive built against another torch.
"""

# Printed by the interpreter itself: its real path (pyenv's `python3` on PATH is a shim script),
# its version, and the sorted distributions it can import.
_PROBE = """
import importlib.metadata, platform, sys
print(sys.executable)
print(platform.python_implementation(), platform.python_version())
names = sorted({(d.metadata["Name"] or "?").lower() + "==" + d.version
                for d in importlib.metadata.distributions()})
print("\\n".join(names))
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
    path = "{python}",
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

def _candidate(rctx):
    python = rctx.os.environ.get("TORCHPACK_PYTHON", "")
    if python:
        return python, "TORCHPACK_PYTHON"
    workspace = rctx.path(rctx.attr.workspace_marker).dirname
    return str(workspace) + "/.venv/bin/python", "the workspace's .venv"

def _absolute(label):
    # Bazel 4 and 5 print main-repository labels as "//pkg:name", which would point into the
    # generated repository itself.
    text = str(label)
    return text if text.startswith("@") else "@" + text

def _torchpack_python_impl(rctx):
    python, origin = _candidate(rctx)
    if not rctx.path(python).exists:
        fail(("No Python interpreter at {} ({}). Create it with `bash scripts/setup.sh`, or " +
              "point TORCHPACK_PYTHON at a Python that has torch installed.").format(python, origin))
    result = rctx.execute([python, "-c", _PROBE])
    if result.return_code != 0:
        fail("{} ({}) failed to describe itself:\n{}".format(python, origin, result.stderr))
    lines = result.stdout.strip().split("\n")
    executable, version, distributions = lines[0], lines[1], lines[2:]
    rctx.file("python_version.txt", version + "\n")
    # Actions run the interpreter through this file: Bazel's persistent workers need the
    # executable to be a file of the build, not a bare path.
    rctx.file("python.sh", "#!/bin/sh\nexec '{}' \"$@\"\n".format(executable), executable = True)
    rctx.file("fingerprint.txt", "\n".join([version] + distributions) + "\n")
    rctx.file("WORKSPACE", "workspace(name = \"{}\")\n".format(rctx.name))
    rctx.file("BUILD.bazel", _BUILD.format(
        python = executable,
        interpreter_bzl = _absolute(Label("//rules/private:python_interpreter.bzl")),
    ))

torchpack_python = repository_rule(
    implementation = _torchpack_python_impl,
    doc = """Finds the Python that builds and tests torch packages and registers it.

`TORCHPACK_PYTHON` names the interpreter; without it the workspace's `.venv/bin/python` is
used. The generated repository provides `:interpreter` (for torchpack's actions), `:toolchain`
(a Python toolchain for py_binary/py_test) and the fingerprints. Re-run after installing
packages into that interpreter: `bazel sync --configure`.""",
    attrs = {
        "workspace_marker": attr.label(
            default = "//:WORKSPACE.bzlmod",
            doc = "A file at the top of the workspace whose `.venv` is the default interpreter.",
        ),
    },
    environ = ["TORCHPACK_PYTHON"],
    configure = True,
    local = True,
)
