import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_analysis_does_not_import_torch():
    code = (
        "import torchpack.analysis.glob_group, torchpack.analysis.import_scanner, "
        "torchpack.analysis.pickle_scanner, torchpack.analysis.digraph, "
        "torchpack.analysis.stdlib, torchpack.analysis.module_analysis, "
        "torchpack.analysis.defined_names, torchpack.analysis.global_rules, "
        "torchpack.analysis.source_names, torchpack.analysis.code_capabilities, "
        "torchpack.archive.zip_structure, torchpack.archive.zip_index, "
        "torchpack.archive.manifest, torchpack.archive.tamper_signs, "
        "torchpack.loading.module_tree, torchpack.cli.package_contents, "
        "torchpack.cli.import_chain, sys; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'numpy' not in sys.modules, 'numpy imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
