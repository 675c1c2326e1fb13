"""The targets: `torch_package` (built by `pants package`) and `torch_package_test`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Optional

from pants.core.goals.package import OutputPathField
from pants.core.goals.test import TestTimeoutField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    InvalidFieldException,
    SingleSourceField,
    SpecialCasedDependencies,
    StringField,
    StringSequenceField,
    Target,
)

_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class TorchPackageEntryField(StringField):
    alias = "entry"
    required = True
    help = (
        "`module:function` returning the object(s) to save, e.g. `models.resnet:build`. Pants "
        "infers a dependency on the module's `python_source`, as it does for the imports of "
        "Python files."
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        module, _, function = value.partition(":")
        if not (_DOTTED_NAME.match(module) and function.isidentifier()):
            raise InvalidFieldException(
                f"The `entry` field of the target {address} must look like `module:function` "
                f"(e.g. `models.resnet:build`), not {value!r}."
            )
        return value

    @property
    def module(self) -> str:
        return self.value.partition(":")[0]


class TorchPackageDependenciesField(Dependencies):
    help = (
        "The model's code: `python_source(s)` targets (and the `resource(s)` they use). The "
        "entry module's owner is inferred, and Pants infers the rest from its imports; list "
        "what inference cannot see (modules imported by name at run time)."
    )


class TorchPackageDataField(SpecialCasedDependencies):
    alias = "data"
    help = (
        "Files the entry reads (checkpoints, vocabularies): `file(s)` or `resource(s)` targets, "
        "or targets that generate files (`adhoc_tool`, `shell_command`). The entry gets them "
        "keyed by their path from the build root."
    )


class _PatternsField(StringSequenceField):
    default: tuple[str, ...] = ()


class TorchPackageInternField(_PatternsField):
    alias = "intern"
    help = "Globs of modules whose source goes into the package (`models.**`)."


class TorchPackageExternField(_PatternsField):
    alias = "extern"
    help = "Globs of modules left to the loading environment (torch is always extern)."


class TorchPackageMockField(_PatternsField):
    alias = "mock"
    help = "Globs of modules replaced by stubs that raise when used."


class TorchPackageDenyField(_PatternsField):
    alias = "deny"
    help = "Globs of modules that must not be needed: the build fails if they are."


# The order patterns reach `torchpack build` in, where the first match decides: the narrow
# exceptions (deny, mock, extern) win over the broad intern globs they usually carve out of.
PATTERN_FIELDS = (
    TorchPackageDenyField,
    TorchPackageMockField,
    TorchPackageExternField,
    TorchPackageInternField,
)


class TorchPackageAllowEmptyField(BoolField):
    alias = "allow_empty"
    default = False
    help = (
        "Let an `intern`, `extern` or `mock` pattern match no module. By default such a "
        "pattern fails the build, naming it: it is usually a typo."
    )


class TorchPackageOutputPathField(OutputPathField):
    help = (
        "Where `pants package` writes the archive, below `--distdir` (`dist/`). Defaults to "
        "the BUILD file's folder with dots for slashes, then the target's name and `.pt`: "
        "`models/BUILD`'s `resnet_pkg` writes `dist/models/resnet_pkg.pt`. The archive's top "
        "folder is the file's name without `.pt`, as in torch.package: archives are "
        "byte-identical to the Bazel rule's (`<name>.pt`) when the file names are."
    )


class TorchPackageTarget(Target):
    alias = "torch_package"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        TorchPackageEntryField,
        TorchPackageDependenciesField,
        TorchPackageDataField,
        *PATTERN_FIELDS,
        TorchPackageAllowEmptyField,
        TorchPackageOutputPathField,
    )
    help = (
        "A torch package archive: `pants package` runs `entry` in the interpreter of "
        "`[torchpack].python` and writes what it returns.\n\n"
        "The entry, `module:function`, is called with a dict from each `data` file's path (from "
        "the build root) to a path it can open, and returns one object (saved as "
        "`model/model.pkl`) or a dict from `package/resource` names to objects (`str` saved as "
        "text, `bytes` as binary, the rest pickled). Dependencies are resolved from the pickles "
        "and from per-file import analyses of the Python sources in `dependencies` (one cached "
        "process per file, shared between packages), then filtered through the patterns, "
        "applied in the order deny, mock, extern, intern: the first pattern that matches a "
        "module decides. Module names are those Python imports: paths below their source root. "
        "The `resource` files among the dependencies that sit inside an interned package are "
        "saved as that package's resources, where `importlib.resources` finds them. The link "
        "runs with PYTHONHASHSEED=0 and OMP_NUM_THREADS=1 and takes the interpreter's "
        "fingerprint as an input, so the archive is byte-identical for the same inputs (and to "
        "what `torchpack build` and the Bazel rule write)."
    )


class TorchPackageTestPackageField(SpecialCasedDependencies):
    alias = "package"
    required = True
    help = "The `torch_package` target whose archive the test loads."

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[tuple[str, ...]]:
        # One address, written as a plain string like every other single address in BUILD files.
        value = super().compute_value(
            [raw_value] if isinstance(raw_value, str) else raw_value, address
        )
        if value is None or len(value) != 1:
            raise InvalidFieldException(
                f"The `package` field of the target {address} must name one `torch_package` "
                f'target (`package=":resnet_pkg"`), not {raw_value!r}.'
            )
        return value


class TorchPackageTestSourceField(SingleSourceField):
    expected_file_extensions = (".py",)
    help = (
        "The test script, run as `python SCRIPT ARCHIVE`; "
        "`torchpack.bazel.package_test.open_package()` opens the archive it is given."
    )


class TorchPackageTestDependenciesField(Dependencies):
    help = (
        "What the script needs besides the archive and torchpack: helper `python_source`s, "
        "`file`s, `resource`s. Never the packaged model's own code: the test would then not "
        "show that the archive is self-contained."
    )


class TorchPackageTestTimeoutField(TestTimeoutField):
    help = (
        "A timeout (in seconds) for the script. Unset, `[test].timeout_default` applies; it "
        "never exceeds `[test].timeout_maximum`, and applies only with `--test-timeouts` (the "
        "default)."
    )


class TorchPackageTestTarget(Target):
    alias = "torch_package_test"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        TorchPackageTestPackageField,
        TorchPackageTestSourceField,
        TorchPackageTestDependenciesField,
        TorchPackageTestTimeoutField,
    )
    help = (
        "A test (`pants test`) that loads a `torch_package`'s archive through torchpack's "
        "`PackageImporter`.\n\n"
        "The script runs in the interpreter of `[torchpack].python` with the archive's path as "
        "its first argument, in a sandbox that holds the archive, torchpack and the script's own "
        "`dependencies`, but not the model's source: a package that is not self-contained fails. "
        "`torchpack.bazel.package_test` has helpers to open the archive (checking that the "
        "packaged modules cannot be imported from anywhere else) and to compare the model's "
        "output with the one recorded at build time."
    )
