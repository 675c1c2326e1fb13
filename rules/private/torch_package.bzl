"""`torch_package`: run an entry function and write its objects as a torch package archive."""

load("@rules_python//python:defs.bzl", "PyInfo")
load(":module_analysis_aspect.bzl", "module_analysis_aspect")
load(":python_interpreter.bzl", "interpreter_attr")
load(":providers.bzl", "ModuleAnalysisInfo", "TorchPackageInfo", "TorchpackPythonInfo")

# The order patterns reach the exporter in, where the first match decides: the narrow
# exceptions (deny, mock, extern) win over the broad intern globs they usually carve out of.
PATTERN_KINDS = ["deny", "mock", "extern", "intern"]

def _data_argument(file):
    return "{}={}".format(file.short_path, file.path)

def _python_path(ctx, deps):
    """PYTHONPATH of the link: the repositories' roots and the `imports` of every dep."""
    roots = {".": None, ctx.bin_dir.path: None}
    for dep in deps:
        roots[dep.label.workspace_root or "."] = None
        if PyInfo not in dep:
            continue

        # PyInfo.imports are runfiles paths, `repository/folder`; sources sit at `folder` (main
        # repository) or `external/repository/folder`, generated files under the bin folder.
        for runfiles_path in dep[PyInfo].imports.to_list():
            repository, _, folder = runfiles_path.partition("/")
            if repository != ctx.workspace_name:
                folder = "external/{}/{}".format(repository, folder).rstrip("/")
            for root in [folder, ctx.bin_dir.path + "/" + folder]:
                roots[root.rstrip("/") or "."] = None
    return ":".join(roots.keys())

def _torch_package_impl(ctx):
    python = ctx.attr._python[TorchpackPythonInfo]
    archive = ctx.actions.declare_file(ctx.label.name + ".pt")
    deps = ctx.attr.deps + [ctx.attr._torchpack]

    # The runfiles of deps: their sources and their `data`, which package_data names.
    code = depset(transitive = [dep[DefaultInfo].default_runfiles.files for dep in deps])
    analyses = depset(transitive = [dep[ModuleAnalysisInfo].analyses for dep in ctx.attr.deps])
    package_data = depset(transitive = [
        dep[ModuleAnalysisInfo].package_data
        for dep in ctx.attr.deps
    ])
    data = depset(transitive = [target[DefaultInfo].files for target in ctx.attr.data])

    args = ctx.actions.args()
    args.add("--entry", ctx.attr.entry)
    for kind in PATTERN_KINDS:
        args.add_all(getattr(ctx.attr, kind), before_each = "--" + kind)
    if ctx.attr.allow_empty:
        args.add("--allow-empty")
    args.add_all(data, before_each = "--data", map_each = _data_argument)
    args.add_all(package_data, before_each = "--package-data")
    args.add_all(analyses, before_each = "--analysis")
    args.add("--output", archive)
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")

    ctx.actions.run(
        executable = python.launcher,
        arguments = ["-m", "torchpack", "build", args],
        inputs = depset([python.fingerprint], transitive = [code, analyses, data]),
        outputs = [archive],
        env = {
            "PYTHONPATH": _python_path(ctx, deps),
            # Same pickles whatever the hash seed; same floats whatever the machine's cores.
            "PYTHONHASHSEED": "0",
            "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        mnemonic = "TorchPackage",
        progress_message = "Packaging {} from {}".format(ctx.label, ctx.attr.entry),
    )
    return [
        DefaultInfo(files = depset([archive]), runfiles = ctx.runfiles(files = [archive])),
        TorchPackageInfo(archive = archive, entry = ctx.attr.entry),
    ]

torch_package = rule(
    implementation = _torch_package_impl,
    doc = """Runs `entry` in the interpreter of `@torchpack_python` and writes what it returns as `<name>.pt`.

The entry, `module:function`, is called with a dict from each `data` file's workspace-relative
path to a path it can open, and returns one object (saved as `model/model.pkl`) or a dict from
`package/resource` names to objects (`str` saved as text, `bytes` as binary, the rest pickled).
Dependencies are resolved from the pickles and from the per-file import analyses of `deps`
(made by an aspect, shared between packages), then filtered through the patterns, applied in
the order deny, mock, extern, intern: the first pattern that matches a module decides.
Module names are those Python imports: a py_library with `imports = ["src"]` names
`src/pkg/mod.py` `pkg.mod`.
The `data` files of the py_libraries in `deps` that sit inside an interned package are saved
as that package's resources, where `importlib.resources` finds them in the loaded package.
The action sets PYTHONHASHSEED=0 and OMP_NUM_THREADS=1 and takes the interpreter's
fingerprint as an input, so the archive is byte-identical for the same inputs.""",
    attrs = {
        "entry": attr.string(
            mandatory = True,
            doc = "`module:function` returning the object(s) to save; its module must be in `deps`.",
        ),
        "deps": attr.label_list(
            aspects = [module_analysis_aspect],
            providers = [PyInfo],
            doc = "py_library targets holding the entry and the model's code.",
        ),
        "data": attr.label_list(
            allow_files = True,
            doc = "Files the entry reads (checkpoints, vocabularies), keyed by workspace path.",
        ),
        "intern": attr.string_list(
            doc = "Globs of modules whose source goes into the package.",
        ),
        "extern": attr.string_list(
            doc = "Globs of modules left to the loading environment (torch is always extern).",
        ),
        "mock": attr.string_list(
            doc = "Globs of modules replaced by stubs that raise when used.",
        ),
        "deny": attr.string_list(
            doc = "Globs of modules that must not be needed: the build fails if they are.",
        ),
        "allow_empty": attr.bool(
            default = False,
            doc = "Let an `intern`, `extern` or `mock` pattern match no module. By default " +
                  "such a pattern fails the build, naming it: it is usually a typo.",
        ),
        "_torchpack": attr.label(
            default = "//:torchpack",
            doc = "torchpack itself, which runs the entry and writes the archive.",
        ),
        "_python": interpreter_attr("The interpreter that runs the entry."),
    },
    provides = [TorchPackageInfo],
)
