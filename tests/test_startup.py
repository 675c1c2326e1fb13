"""``import torchpack`` stays cheap: torch loads only when an exporter or importer is used."""

from conftest import run_python


def test_import_torchpack_does_not_import_torch() -> None:
    result = run_python(
        """
        import sys
        import torchpack
        from torchpack import GlobGroup, Directory, PackagingError, OrderedImporter, sys_importer
        import torchpack.analyze, torchpack.export.hooks, torchpack.cli
        print("torch" in sys.modules)
        """
    )
    assert result.stdout.strip() == "False"


def test_exporter_is_loaded_on_first_use() -> None:
    result = run_python(
        """
        import sys
        import torchpack
        exporter_class = torchpack.PackageExporter
        print(exporter_class.__module__, "torch" in sys.modules)
        """
    )
    assert result.stdout.split() == ["torchpack.package_exporter", "True"]
