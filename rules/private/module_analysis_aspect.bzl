"""An aspect that analyses the imports of every Python source file in `deps`, once per file.

Each analysis is its own action whose inputs are the file, the analyzer and the interpreter's
version: its result is shared by every `torch_package` that depends on the library, locally and
through a remote cache. Import patterns stay out of it so that every package can share it.
"""

load(":python_interpreter.bzl", "interpreter_attr")
load(":providers.bzl", "ModuleAnalysisInfo", "TorchpackPythonInfo")

def module_name_of(file):
    """`(dotted module name, is_package)` of a `.py` file, from its workspace-relative path.

    Files of external repositories are named from their repository's root. The `imports`
    attribute of py_library (extra import roots) is not supported.
    """
    path = file.short_path
    if path.startswith("../"):
        path = path.split("/", 2)[2]
    path = path[:-len(".py")]
    is_package = path == "__init__" or path.endswith("/__init__")
    if is_package:
        path = path[:-len("__init__")].rstrip("/")
    return path.replace("/", "."), is_package

def import_root(label):
    """The folder to put on PYTHONPATH for the sources of `label`'s repository."""
    return label.workspace_root or "."

def _analyze(ctx, source, python, analyzer):
    module, is_package = module_name_of(source)
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
        env = {"PYTHONPATH": import_root(ctx.attr._analyzer.label)},
        mnemonic = "TorchpackAnalyze",
        progress_message = "Analysing the imports of {}".format(source.short_path),
        # Bazel's default (proto) worker protocol: no flag needed on any Bazel from 4 to 8.
        execution_requirements = {"supports-workers": "1"},
    )
    return output

def _module_analysis_aspect_impl(target, ctx):
    python = ctx.attr._python[TorchpackPythonInfo]
    analyzer = ctx.attr._analyzer[DefaultInfo]
    own = [
        _analyze(ctx, source, python, analyzer)
        for source in getattr(ctx.rule.files, "srcs", [])
        if source.extension == "py"
    ]
    transitive = [
        dep[ModuleAnalysisInfo].analyses
        for dep in getattr(ctx.rule.attr, "deps", [])
        if ModuleAnalysisInfo in dep
    ]
    return [ModuleAnalysisInfo(analyses = depset(own, transitive = transitive))]

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
