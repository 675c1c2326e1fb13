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


def test_import_torchpack_imports_none_of_its_modules_yet_every_name_resolves() -> None:
    result = run_python(
        """
        import sys
        import torchpack
        loaded = sorted(name for name in sys.modules if name.startswith("torchpack."))
        print(loaded, "typing" in sys.modules)
        for name in torchpack.__all__:
            getattr(torchpack, name)
        public = set(torchpack.__all__)
        print(public == set(torchpack._LAZY) and public <= set(dir(torchpack)))
        """
    )
    assert result.stdout.split("\n")[:2] == ["[] False", "True"]


def test_build_restarts_under_a_fixed_hash_seed_before_importing_the_build(tmp_path) -> None:
    """The process that restarts does as little as it can: only the command line module."""
    result = run_python(
        """
        import os, sys
        os.execve = lambda path, argv, env: print(
            env["PYTHONHASHSEED"], sorted(m for m in sys.modules if m.startswith("torchpack")),
            "argparse" in sys.modules,
        ) or sys.exit(0)
        from torchpack.cli import main
        main(["build", "--entry", "x:y", "-o", "out.pt"])
        """,
        env={"PYTHONHASHSEED": "random"},
    )
    assert result.stdout.strip() == "0 ['torchpack', 'torchpack.cli'] False"
