"""Providers shared by torchpack's rules and aspect."""

TorchpackPythonInfo = provider(
    doc = "The host Python that runs torchpack's actions, with the fingerprints actions depend on.",
    fields = {
        "launcher": "File: runs the interpreter with its arguments; its text names no path.",
        "python_version": "File: implementation and version; an input of analysis actions.",
        "fingerprint": "File: version plus every installed distribution; an input of links.",
    },
)

ModuleAnalysisInfo = provider(
    doc = "Per-module import analyses of a target's Python sources and of its transitive deps.",
    fields = {
        "analyses": "depset of JSON files, one per .py file (see torchpack.analysis.module_analysis).",
        "package_data": "depset of `name=path` strings, one per file in `data`: `name` is its " +
                        "path below its import root (`pkg/sub/vocab.txt`), `path` its exec path.",
    },
)

TorchPackageInfo = provider(
    doc = "A torch package archive built by `torch_package`.",
    fields = {
        "archive": "File: the package archive.",
        "entry": "The entry, `module:function`, that produced the archive's objects.",
    },
)
