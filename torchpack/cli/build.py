"""``torchpack build``: run an entry function and package what it returns.

The backend of the Bazel ``torch_package`` rule, usable on its own::

    python -m torchpack build --entry examples.models.resnet:build \\
        --intern 'examples.models.**' --extern 'torch.**' --data CKPT -o resnet.pt

The entry contract: ``module:function`` is imported (from the current folder or ``PYTHONPATH``)
and called with one argument, a mapping from data names to paths (``--data NAME=PATH``, or
``--data PATH`` for NAME=PATH; Bazel passes each ``data`` file under its workspace-relative
path). It returns either one object, saved as ``model/model.pkl``, or a mapping from
``package/resource`` names (``model/model.pkl``, ``model/labels.txt``) to what to save there:
``str`` is saved as text, ``bytes`` as binary, anything else is pickled.
Patterns apply in the order given, whatever their kind; the first that matches a module
decides, as with ``PackageExporter``. An intern, extern or mock pattern that matches no module
fails the build unless ``--allow-empty`` is given. ``--package-data NAME=PATH`` names a file by
its path below an import root (``examples/models/tinylm/vocab.txt``): if it lies inside an
interned package it is saved as that package's resource, where ``importlib.resources`` finds
it. The build runs with ``PYTHONHASHSEED=0`` (it restarts itself under it if need be), so set
iteration order cannot change the archive.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torchpack.analysis.module_analysis import AnalysisCache, AnalysisIndex, ModuleAnalyzer
from torchpack.cli.collector import imports_spared

DEFAULT_RESOURCE = "model/model.pkl"


class _AppendPattern(argparse.Action):
    """Keeps intern/extern/mock/deny patterns in one list, in command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        patterns = list(getattr(namespace, self.dest) or [])
        patterns.append((self.const, values))
        setattr(namespace, self.dest, patterns)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Bazel passes long argument lists in a params file: `torchpack build @args`.
    parser.fromfile_prefix_chars = "@"
    parser.add_argument("--entry", required=True, help="module:function returning the objects")
    for kind in ("intern", "extern", "mock", "deny"):
        parser.add_argument(
            f"--{kind}",
            dest="patterns",
            action=_AppendPattern,
            const=kind,
            default=[],
            metavar="GLOB",
            help=f"{kind} the modules matching GLOB (repeatable)",
        )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="let an intern, extern or mock pattern match no module (an error by default)",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a file the entry reads, passed to it as data[NAME] (repeatable)",
    )
    parser.add_argument(
        "--package-data",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a data file of the code, NAME below its import root: saved as a resource of "
        "the interned package that holds it (repeatable)",
    )
    parser.add_argument("-o", "--output", required=True, help="the archive to write")
    parser.add_argument(
        "--cache-dir", help="folder of cached per-module analyses, reused across builds"
    )
    parser.add_argument(
        "--analysis",
        action="append",
        default=[],
        metavar="JSON",
        help="a precomputed module analysis (from the Bazel aspect; repeatable)",
    )


class BuildError(Exception):
    """The build cannot start or its entry returned something unusable."""


def load_entry(entry: str) -> Callable[[Mapping[str, Path]], Any]:
    module_name, _, function_name = entry.partition(":")
    if not module_name or not function_name:
        raise BuildError(f"--entry must look like module:function, not {entry!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BuildError(
            f"cannot import the entry module {module_name!r}: {err}. Run from the folder that "
            "holds it or put it on PYTHONPATH (with Bazel: list its py_library in deps; for a "
            'src layout, give that py_library `imports = ["src"]`).'
        ) from err
    function = getattr(module, function_name, None)
    if not callable(function):
        raise BuildError(f"{module_name!r} has no function {function_name!r} (--entry {entry})")
    return function


def parse_data(specs: Sequence[str]) -> dict[str, Path]:
    data: dict[str, Path] = {}
    for spec in specs:
        name, separator, path = spec.partition("=")
        data[name] = Path(path if separator else name)
    return data


def package_data_resources(
    files: Mapping[str, Path], interned: Iterable[str], left_out: Iterable[str]
) -> list[tuple[str, str, Path]]:
    """``(package, resource, path)`` of each data file that lies inside an interned package.

    The deepest module among the file's folders decides: it is packaged if that module is
    interned or the parent package of an interned one (a placeholder in the archive, whose
    resources are still read from it), not if it is mocked or extern (``left_out``). It is
    saved under its own folder, so that its record is its path: with ``a.b`` interned,
    ``a/b/c/d.txt`` (``c`` need not be a package) is ``a.b.c``'s resource ``d.txt``, where
    ``importlib.resources.files(a.b) / "c/d.txt"`` looks.
    """
    interned = list(interned)
    parents = (name[:index] for name in interned for index, char in enumerate(name) if char == ".")
    decided = (
        dict.fromkeys(parents, True)
        | dict.fromkeys(left_out, False)
        | dict.fromkeys(interned, True)
    )
    resources = []
    for name, path in sorted(files.items()):
        folders, _, file_name = name.rpartition("/")
        parts = folders.split("/")
        owners = (".".join(parts[:depth]) for depth in range(len(parts), 0, -1))
        if next((decided[owner] for owner in owners if owner in decided), False):
            resources.append((".".join(parts), file_name, path))
    return resources


def objects_to_save(result: Any, entry: str) -> list[tuple[str, str, Any]]:
    """``(package, resource, object)`` triples in a stable order."""
    if not isinstance(result, Mapping):
        result = {DEFAULT_RESOURCE: result}
    triples = []
    for key in sorted(result):
        package, _, resource = str(key).partition("/")
        if not package or not resource:
            raise BuildError(
                f"{entry} returned the key {key!r}; keys name where to save each object, "
                f"as package/resource (e.g. {DEFAULT_RESOURCE!r})"
            )
        triples.append((package, resource, result[key]))
    return triples


def _analyzer(args: argparse.Namespace) -> ModuleAnalyzer | None:
    cache = AnalysisCache(args.cache_dir) if args.cache_dir else None
    if args.analysis:
        return AnalysisIndex.from_files(args.analysis, fallback=cache)
    return cache


def build(args: argparse.Namespace) -> str:
    """Write the archive; returns a one-line summary."""
    with imports_spared() as imports_done:
        entry = load_entry(args.entry)
        import torchpack.package_exporter  # noqa: F401  (torch too, if the entry did not)

        imports_done()  # what the imports made lives until the process ends
        return _export(entry, args)


def _export(entry: Callable[[Mapping[str, Path]], Any], args: argparse.Namespace) -> str:
    from torchpack import PackageExporter

    objects = objects_to_save(entry(parse_data(args.data)), args.entry)
    analyzer = _analyzer(args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with PackageExporter(args.output, analysis_cache=analyzer) as exporter:
        for kind, pattern in args.patterns:
            if kind == "deny":  # a deny pattern that matches nothing is the export going well
                exporter.deny(pattern)
            else:
                getattr(exporter, kind)(pattern, allow_empty=args.allow_empty)
        for package, resource, obj in objects:
            if isinstance(obj, str):
                exporter.save_text(package, resource, obj)
            elif isinstance(obj, bytes):
                exporter.save_binary(package, resource, obj)
            else:
                exporter.save_pickle(package, resource, obj)
        # Every object is saved, so every module it needs has its decision: the interned
        # packages are known.
        saved = {(package, resource) for package, resource, _ in objects}
        resources = package_data_resources(
            parse_data(args.package_data),
            exporter.interned_modules(),
            exporter.mocked_modules() + exporter.externed_modules(),
        )
        for package, resource, path in resources:
            if (package, resource) in saved:
                raise BuildError(
                    f"{args.entry} returned {package}/{resource}, which is also the data file "
                    f"{path} of the interned package {package} (saved as its resource "
                    "automatically): stop returning it"
                )
            exporter.save_binary(package, resource, path.read_bytes())
    summary = (
        f"wrote {args.output}: {len(exporter.interned_modules())} module(s) interned, "
        f"{len(resources)} data file(s) saved as resources"
    )
    if isinstance(analyzer, AnalysisIndex):
        missing = ", ".join(analyzer.misses) or "none"
        summary += f"; {analyzer.hits} precomputed analyses used, analysed here: {missing}"
    elif isinstance(analyzer, AnalysisCache):
        summary += f"; analysis cache: {analyzer.hits} hit(s), {analyzer.misses} miss(es)"
    return summary


def run(args: argparse.Namespace) -> int:
    from torchpack.errors import EmptyMatchError, PackagingError

    try:
        print(build(args), file=sys.stderr)
    except EmptyMatchError as err:
        print(
            f"torchpack build: {err} (torch_package: allow_empty = True; torchpack build: "
            "--allow-empty)",
            file=sys.stderr,
        )
        return 1
    except (BuildError, PackagingError) as err:
        print(f"torchpack build: {err}", file=sys.stderr)
        return 1
    return 0
