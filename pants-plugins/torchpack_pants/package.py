"""`pants package` of a `torch_package`: per-file analyses, then the link (`torchpack build`).

Every Python source file among the target's transitive dependencies gets its own analysis
process, keyed by that file (path and content), its module name, the analyzer's files and the
interpreter's version: Pants caches it locally and remotely, and shares it between every
package that uses the file. The link runs the entry with `torchpack build`, resolving the
modules from the pickles and those analyses (parsing no source itself), and writes the
archive. A one-file edit reruns that file's analysis and the links of the packages that use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pants.backend.python.dependency_inference.module_mapper import (
    PythonModuleOwners,
    PythonModuleOwnersRequest,
)
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.target_types import FileSourceField, ResourceSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import (
    AddPrefix,
    Digest,
    DigestSubset,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
    InvalidFieldException,
    SourcesField,
    Targets,
    TransitiveTargets,
    TransitiveTargetsRequest,
)
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from torchpack_pants import interpreter, python_code, torchpack_sources
from torchpack_pants.interpreter import TorchpackPython
from torchpack_pants.python_code import PythonCode, PythonCodeRequest, PythonModule
from torchpack_pants.target_types import (
    PATTERN_FIELDS,
    TorchPackageAllowEmptyField,
    TorchPackageDataField,
    TorchPackageDenyField,
    TorchPackageDependenciesField,
    TorchPackageEntryField,
    TorchPackageExternField,
    TorchPackageInternField,
    TorchPackageMockField,
    TorchPackageOutputPathField,
)
from torchpack_pants.torchpack_sources import SANDBOX_FOLDER, TorchpackSources

# Where the link finds the analyses: one JSON file per source, at the source's path + ".json".
_ANALYSES_FOLDER = "__analyses__"


# -- the entry's module, inferred as a dependency ----------------------------------------------


@dataclass(frozen=True)
class TorchPackageEntryInferenceFieldSet(FieldSet):
    required_fields = (TorchPackageEntryField, TorchPackageDependenciesField)

    entry: TorchPackageEntryField
    dependencies: TorchPackageDependenciesField


class InferTorchPackageEntryDependency(InferDependenciesRequest):
    infer_from = TorchPackageEntryInferenceFieldSet


@rule(desc="Infer the dependency of a torch_package on its entry's module", level=LogLevel.DEBUG)
async def infer_entry_dependency(request: InferTorchPackageEntryDependency) -> InferredDependencies:
    field_set = request.field_set
    module = field_set.entry.module
    explicitly_provided, owners = await MultiGet(
        Get(ExplicitlyProvidedDependencies, DependenciesRequest(field_set.dependencies)),
        # The interpreter is the user's, outside Pants' resolves: any resolve may hold the code.
        Get(PythonModuleOwners, PythonModuleOwnersRequest(module, resolve=None)),
    )
    explicitly_provided.maybe_warn_of_ambiguous_dependency_inference(
        owners.ambiguous,
        field_set.address,
        import_reference="module",
        context=(
            f"The torch_package target {field_set.address} has the field "
            f"`entry={field_set.entry.value!r}`, which names the Python module `{module}`"
        ),
    )
    disambiguated = explicitly_provided.disambiguated(owners.ambiguous)
    return InferredDependencies(owners.unambiguous or ((disambiguated,) if disambiguated else ()))


# -- one analysis per source file -----------------------------------------------------------------


@dataclass(frozen=True)
class ModuleAnalysisRequest:
    module: PythonModule
    source: Digest  # the file alone, at its path


@dataclass(frozen=True)
class ModuleAnalysis:
    digest: Digest  # the JSON file, at `_ANALYSES_FOLDER/<source path>.json`


@rule(desc="Analyse the imports of one Python file", level=LogLevel.DEBUG)
async def analyze_module(
    request: ModuleAnalysisRequest, python: TorchpackPython, torchpack: TorchpackSources
) -> ModuleAnalysis:
    module = request.module
    output = f"{module.path}.json"
    result = await Get(
        ProcessResult,
        python.process(
            (
                # -S: no site-packages; the analyzer needs nothing but torchpack's torch-free core.
                "-S",
                "-m",
                "torchpack.bazel.analyze",
                "--module",
                module.name,
                *(["--is-package"] if module.is_package else []),
                "--source",
                module.path,
                "--output",
                output,
            ),
            env={"PYTHONPATH": SANDBOX_FOLDER},
            key_on_distributions=False,
            input_digest=request.source,
            immutable_input_digests={SANDBOX_FOLDER: torchpack.analyzer},
            output_files=(output,),
            description=f"Analysing the imports of {module.path}",
            level=LogLevel.DEBUG,
        ),
    )
    return ModuleAnalysis(await Get(Digest, AddPrefix(result.output_digest, _ANALYSES_FOLDER)))


# -- the link -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchPackageFieldSet(PackageFieldSet):
    required_fields = (TorchPackageEntryField,)

    entry: TorchPackageEntryField
    data: TorchPackageDataField
    deny: TorchPackageDenyField
    mock: TorchPackageMockField
    extern: TorchPackageExternField
    intern: TorchPackageInternField
    allow_empty: TorchPackageAllowEmptyField
    output_path: TorchPackageOutputPathField

    def pattern_arguments(self) -> list[str]:
        """`--deny GLOB ... --intern GLOB`: in the order where the first match decides."""
        fields = {field_type: getattr(self, field_type.alias) for field_type in PATTERN_FIELDS}
        return [
            argument
            for field_type, field in fields.items()
            for pattern in field.value
            for argument in (f"--{field_type.alias}", pattern)
        ]


@dataclass(frozen=True)
class DataFiles:
    """The files of a torch_package's `data`, at their paths from the build root."""

    digest: Digest
    paths: tuple[str, ...]


@rule(desc="Gather the data files of a torch_package", level=LogLevel.DEBUG)
async def data_files(field: TorchPackageDataField) -> DataFiles:
    targets = await Get(Targets, UnparsedAddressInputs, field.to_unparsed_address_inputs())
    per_target = await MultiGet(
        Get(
            SourceFiles,
            SourceFilesRequest(
                [target.get(SourcesField)],
                for_sources_types=(FileSourceField, ResourceSourceField),
                enable_codegen=True,
            ),
        )
        for target in targets
    )
    for target, files in zip(targets, per_target):
        if not files.files:
            raise InvalidFieldException(
                f"The `data` field of the target {field.address} names {target.address}, a "
                f"target of type `{target.alias}`, which gives no files: list `file(s)` or "
                "`resource(s)` targets, or targets that generate files (`adhoc_tool`, "
                "`shell_command`). The model's code goes in `dependencies`."
            )
    merged = await Get(Digest, MergeDigests(files.snapshot.digest for files in per_target))
    return DataFiles(merged, tuple(sorted({path for files in per_target for path in files.files})))


def _summary(stderr: bytes) -> tuple[str, ...]:
    """`torchpack build`'s last line: what it interned, and how many analyses it used."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return tuple(lines[-1:])


@rule(desc="Package a torch_package", level=LogLevel.DEBUG)
async def package_torch_package(
    field_set: TorchPackageFieldSet, python: TorchpackPython, torchpack: TorchpackSources
) -> BuiltPackage:
    transitive, data = await MultiGet(
        Get(TransitiveTargets, TransitiveTargetsRequest([field_set.address])),
        Get(DataFiles, TorchPackageDataField, field_set.data),
    )
    code = await Get(PythonCode, PythonCodeRequest(tuple(transitive.dependencies)))
    modules = code.modules()
    if field_set.entry.module not in {module.name for module in modules}:
        raise InvalidFieldException(
            f"The `entry` field of the target {field_set.address} names the module "
            f"`{field_set.entry.module}`, which is in none of the Python sources it depends on: "
            "add the `python_source` that holds it to `dependencies` (Pants infers it only when "
            "exactly one target owns the module)."
        )
    singles = await MultiGet(
        Get(Digest, DigestSubset(code.digest, PathGlobs([module.path]))) for module in modules
    )
    analyses = await MultiGet(
        Get(ModuleAnalysis, ModuleAnalysisRequest(module, single))
        for module, single in zip(modules, singles)
    )
    output_path = field_set.output_path.value_or_default(file_ending="pt")
    argv = [
        "-m",
        "torchpack",
        "build",
        "--entry",
        field_set.entry.value,
        *field_set.pattern_arguments(),
        *(["--allow-empty"] if field_set.allow_empty.value else []),
        *(argument for path in data.paths for argument in ("--data", f"{path}={path}")),
        *(
            argument
            for path in code.resources()
            for argument in ("--package-data", f"{code.name(path)}={path}")
        ),
        *(
            argument
            for module in modules
            for argument in ("--analysis", f"{_ANALYSES_FOLDER}/{module.path}.json")
        ),
        "--output",
        output_path,
    ]
    input_digest = await Get(
        Digest,
        MergeDigests(
            [
                code.digest,
                data.digest,
                *(analysis.digest for analysis in analyses),
            ]
        ),
    )
    result = await Get(
        ProcessResult,
        python.process(
            tuple(argv),
            env={
                "PYTHONPATH": os.pathsep.join([*code.python_path, SANDBOX_FOLDER]),
                # Same pickles whatever the hash seed; same floats whatever the machine's cores.
                "PYTHONHASHSEED": "0",
                "OMP_NUM_THREADS": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            key_on_distributions=True,
            input_digest=input_digest,
            immutable_input_digests={SANDBOX_FOLDER: torchpack.everything},
            output_files=(output_path,),
            description=f"Packaging {field_set.address} from {field_set.entry.value}",
            level=LogLevel.INFO,
        ),
    )
    return BuiltPackage(
        result.output_digest,
        (BuiltPackageArtifact(output_path, extra_log_lines=_summary(result.stderr)),),
    )


def rules() -> list:
    return [
        *collect_rules(),
        *interpreter.rules(),
        *torchpack_sources.rules(),
        *python_code.rules(),
        UnionRule(PackageFieldSet, TorchPackageFieldSet),
        UnionRule(InferDependenciesRequest, InferTorchPackageEntryDependency),
    ]
