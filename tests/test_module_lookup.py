"""Modules are found without running their parents' code, unless that code may move them."""

from __future__ import annotations

import io
import sys

from torchpack import PackageExporter


def export_modules(user_module: str) -> PackageExporter:
    exporter = PackageExporter(io.BytesIO())
    exporter.intern(user_module)
    exporter.extern("**")
    exporter.add_dependency(user_module)
    exporter.close()
    return exporter


def test_parents_are_not_run_to_find_submodules(source_tree):
    source_tree(
        {
            "noisy/__init__.py": "import os\nos.environ['NOISY_RAN'] = '1'\n",
            "noisy/inner/__init__.py": "raise RuntimeError('a package that must not run')\n",
            "noisy/inner/leaf.py": "VALUE = 1\n",
            "noisy/plain.py": "raise RuntimeError('a module that must not run')\n",
            "quiet_user.py": (
                "from noisy.inner.leaf import VALUE\n"
                "from noisy.plain import helper\n"
                "from noisy import inner\n"
            ),
        }
    )
    exporter = export_modules("quiet_user")
    assert "noisy.inner.leaf" in exporter.externed_modules()
    # `helper` is a name in a plain module, not a submodule: the module is what is needed.
    assert "noisy.plain" in exporter.externed_modules()
    assert "noisy.plain.helper" not in exporter.externed_modules()
    assert "noisy.inner" in exporter.externed_modules()
    assert not {"noisy", "noisy.inner", "noisy.plain"} & set(sys.modules)


def test_parents_that_change_their_path_are_run(source_tree):
    root = source_tree(
        {
            "elsewhere/extra.py": "VALUE = 2\n",
            "moving/__init__.py": (
                "import os\n__path__.append(os.path.join(os.path.dirname(__file__), "
                "'..', 'elsewhere'))\n"
            ),
            "moving_user.py": "from moving import extra\n",
        }
    )
    assert (root / "elsewhere" / "extra.py").is_file()
    exporter = export_modules("moving_user")
    assert "moving.extra" in exporter.externed_modules()
    assert "moving" in sys.modules


def test_modules_a_parent_installs_in_sys_modules(source_tree):
    source_tree(
        {
            "installer/__init__.py": (
                "import sys, types\n"
                "virtual = types.ModuleType(__name__ + '.virtual')\n"
                "sys.modules[virtual.__name__] = virtual\n"
            ),
            "installer_user.py": "import installer.virtual\n",
        }
    )
    exporter = export_modules("installer_user")
    assert "installer.virtual" in exporter.externed_modules()
