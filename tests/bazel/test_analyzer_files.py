"""The analysis action's declared tools are exactly what the analyzer imports.

Bazel runs the analyzer in a sandbox that holds only the files ``//:analyzer`` lists: a module
missing from the list breaks every build, an extra one reruns every analysis when it changes.
"""

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_analyzer_filegroup_lists_every_module_the_analyzer_imports():
    build = (REPO_ROOT / "BUILD.bazel").read_text()
    block = re.search(r'filegroup\(\s*name = "analyzer",\s*srcs = \[(.*?)\]', build, re.S)
    assert block is not None
    declared = sorted(re.findall(r'"([^"]+\.py)"', block.group(1)))
    code = (
        "import sys, torchpack.bazel.analyze; "
        "assert 'torch' not in sys.modules, 'the analyzer imported torch'; "
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() if n.startswith('torchpack')))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO_ROOT)},
    )
    imported = sorted(str(Path(path).relative_to(REPO_ROOT)) for path in result.stdout.split())
    assert declared == imported
