"""An aspect that analyses the imports of every Python source file in `deps`, once per file.

Each analysis is its own action whose inputs are the file, the analyzer and the interpreter's
version: its result is shared by every `torch_package` that depends on the library, locally and
through a remote cache. Import patterns stay out of it so that every package can share it.

Module names are what Python imports the files as: paths below the deepest import root that
holds them, the roots being the repositories' own and those of py_library's `imports`
attribute (`PyInfo.imports`), so that src layouts are named as they are imported.
"""

load("@rules_python//python:defs.bzl", "PyInfo")
load(":python_interpreter.bzl", "interpreter_attr")
load(":providers.bzl", "ModuleAnalysisInfo", "TorchpackPythonInfo")

def _runfiles_path(file, workspace_name):
    """`repository/path` of `file`, the form of PyInfo.imports entries."""
    if file.short_path.startswith("../"):
        return file.short_path[len("../"):]
    return workspace_name + "/" + file.short_path

def _import_roots(target):
    """The `imports` folders of `target` and its deps (runfiles paths), deepest first."""
    if PyInfo not in target:
        return []
    return sorted(target[PyInfo].imports.to_list(), key = len, reverse = True)

def _below_import_root(path, roots):
    """`path` (a runfiles path) relative to each root that holds it, deepest root first.

    The last is always the path within its repository, whose root Bazel puts on sys.path.
    """
    below = [path[len(root) + 1:] for root in roots if path.startswith(root + "/")]
    return below + [path.partition("/")[2]]

def _module_name(file, roots, workspace_name):
    """`(dotted module name, is_package)` of a `.py` file; `(None, False)` if it has none."""
    for relative in _below_import_root(_runfiles_path(file, workspace_name), roots):
        path = relative[:-len(".py")]
        is_package = path == "__init__" or path.endswith("/__init__")
        if is_package:
            path = path[:-len("__init__")].rstrip("/")
        if path:  # a root's own __init__.py is named from a shallower root
            return path.replace("/", "."), is_package
    return None, False

def _analyze(ctx, source, module, is_package, python, analyzer):
    output = ctx.actions.declare_file("{}.torchpack/{}.json".format(
        ctx.label.name,
        source.short_path.replace("../", "external/"),
    ))
    args = ctx.actions.args()
    args.add("--module", module)
    if is_package:
        args.add("--is-package")
    args.add("--source", source)
    args.add("--output", output)
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    ctx.actions.run(
        executable = python.launcher,
        # -S: no site-packages; the analyzer needs nothing but torchpack's torch-free core.
        arguments = ["-S", "-m", "torchpack.bazel.analyze", args],
        inputs = [source, python.python_version],
        tools = analyzer.files,
        outputs = [output],
        env = {"PYTHONPATH": ctx.attr._analyzer.label.workspace_root or "."},
        mnemonic = "TorchpackAnalyze",
        progress_message = "Analysing the imports of {}".format(source.short_path),
        # Bazel's default (proto) worker protocol: no flag needed on any Bazel from 4 to 8.
        execution_requirements = {"supports-workers": "1"},
    )
    return output

def _module_analysis_aspect_impl(target, ctx):
    python = ctx.attr._python[TorchpackPythonInfo]
    analyzer = ctx.attr._analyzer[DefaultInfo]
    roots = _import_roots(target)
    own_analyses = []
    for source in getattr(ctx.rule.files, "srcs", []):
        if source.extension != "py":
            continue
        module, is_package = _module_name(source, roots, ctx.workspace_name)
        if module:
            own_analyses.append(_analyze(ctx, source, module, is_package, python, analyzer))

    # Data files are named like modules, `examples/models/tinylm/vocab.txt`: the link packages
    # those inside interned packages as resources. Their bytes reach the link through the
    # runfiles of `deps`.
    own_data = []
    for file in getattr(ctx.rule.files, "data", []):
        if file.extension == "py":
            continue
        named = _below_import_root(_runfiles_path(file, ctx.workspace_name), roots)[0]
        own_data.append("{}={}".format(named, file.path))
    deps = [dep for dep in getattr(ctx.rule.attr, "deps", []) if ModuleAnalysisInfo in dep]
    return [ModuleAnalysisInfo(
        analyses = depset(own_analyses, transitive = [dep[ModuleAnalysisInfo].analyses for dep in deps]),
        package_data = depset(own_data, transitive = [dep[ModuleAnalysisInfo].package_data for dep in deps]),
    )]

module_analysis_aspect = aspect(
    implementation = _module_analysis_aspect_impl,
    doc = "Writes one JSON import analysis per `.py` file of the target and its transitive deps.",
    attr_aspects = ["deps"],
    attrs = {
        "_analyzer": attr.label(
            default = "//:analyzer",
            doc = "The torch-free sources of `python -m torchpack.bazel.analyze`.",
        ),
        "_python": interpreter_attr("The interpreter that runs the analyzer."),
    },
    provides = [ModuleAnalysisInfo],
)
