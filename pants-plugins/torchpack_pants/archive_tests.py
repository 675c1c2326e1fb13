"""`pants test` of a `torch_package_test`: the script loads the archive, without the model's source.

The sandbox holds the archive (built as `pants package` builds it), torchpack and the script
with its own `dependencies`; the `package` field is no dependency of the script, so the model's
code stays out and a package that is not self-contained fails its test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest
from pants.core.goals.test import TestFieldSet, TestRequest, TestResult, TestSubsystem
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import Digest, MergeDigests
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    InvalidFieldException,
    Targets,
    TransitiveTargets,
    TransitiveTargetsRequest,
)
from pants.util.logging import LogLevel

from torchpack_pants.interpreter import TorchpackPython, TorchpackSubsystem
from torchpack_pants.package import TorchPackageFieldSet
from torchpack_pants.python_code import PythonCode, PythonCodeRequest
from torchpack_pants.target_types import (
    TorchPackageTestPackageField,
    TorchPackageTestSourceField,
    TorchPackageTestTimeoutField,
)
from torchpack_pants.torchpack_sources import SANDBOX_FOLDER, TorchpackSources


@dataclass(frozen=True)
class TorchPackageTestFieldSet(TestFieldSet):
    required_fields = (TorchPackageTestPackageField, TorchPackageTestSourceField)

    sources: TorchPackageTestSourceField
    package: TorchPackageTestPackageField
    timeout: TorchPackageTestTimeoutField


class TorchPackageTestRequest(TestRequest):
    tool_subsystem = TorchpackSubsystem
    field_set_type = TorchPackageTestFieldSet


@rule(desc="Run a torch_package_test", level=LogLevel.DEBUG)
async def run_torch_package_test(
    batch: TorchPackageTestRequest.Batch[TorchPackageTestFieldSet, Any],
    test_subsystem: TestSubsystem,
    python: TorchpackPython,
    torchpack: TorchpackSources,
) -> TestResult:
    field_set = batch.single_element
    (package_target,) = await Get(
        Targets, UnparsedAddressInputs, field_set.package.to_unparsed_address_inputs()
    )
    if not TorchPackageFieldSet.is_applicable(package_target):
        raise InvalidFieldException(
            f"The `package` field of the target {field_set.address} names "
            f"{package_target.address}, a `{package_target.alias}` target: it must name a "
            "`torch_package`."
        )
    built, script, transitive = await MultiGet(
        Get(
            BuiltPackage,
            EnvironmentAwarePackageRequest(TorchPackageFieldSet.create(package_target)),
        ),
        Get(SourceFiles, SourceFilesRequest([field_set.sources])),
        Get(TransitiveTargets, TransitiveTargetsRequest([field_set.address])),
    )
    helpers = await Get(PythonCode, PythonCodeRequest(tuple(transitive.dependencies)))
    input_digest = await Get(
        Digest,
        MergeDigests([built.digest, script.snapshot.digest, helpers.digest]),
    )
    (archive,) = (artifact.relpath for artifact in built.artifacts)
    result = await Get(
        FallibleProcessResult,
        python.process(
            (script.files[0], archive),
            env={"PYTHONPATH": os.pathsep.join([*helpers.python_path, SANDBOX_FOLDER])},
            key_on_distributions=True,
            input_digest=input_digest,
            immutable_input_digests={SANDBOX_FOLDER: torchpack.everything},
            timeout_seconds=field_set.timeout.calculate_from_global_options(test_subsystem),
            cache_scope=(
                ProcessCacheScope.PER_SESSION
                if test_subsystem.force
                else ProcessCacheScope.SUCCESSFUL
            ),
            description=f"Run {field_set.address} against {archive}",
            level=LogLevel.DEBUG,
        ),
    )
    return TestResult.from_fallible_process_result(
        result, address=field_set.address, output_setting=test_subsystem.output
    )


def rules() -> list:
    return [*collect_rules(), *TorchPackageTestRequest.rules()]
