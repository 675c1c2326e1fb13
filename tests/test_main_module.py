"""Models defined in ``__main__``: a script's source is saved as the module ``__main__``."""

from __future__ import annotations

import textwrap
from pathlib import Path

from conftest import records_of, run_python

SCRIPT = """\
import sys

import torch
from torch import nn

from torchpack import PackageExporter


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return torch.tanh(self.fc(x))


if __name__ == "__main__":
    torch.manual_seed(0)
    net = Net()
    inputs = torch.randn(3, 4)
    with PackageExporter(sys.argv[1]) as exporter:
        exporter.extern("sys")
        exporter.save_pickle("model", "model.pkl", net)
        exporter.save_pickle("model", "example.pkl", (inputs, net(inputs)))
"""

LOAD = """
import sys

import torch
import torch.package

from torchpack import PackageImporter

path = sys.argv[1]
for importer in (PackageImporter(path), torch.package.PackageImporter(path)):
    net = importer.load_pickle("model", "model.pkl")
    inputs, output = importer.load_pickle("model", "example.pkl")
    assert type(net).__module__ == importer._mangler.parent_name() + ".__main__", type(net)
    assert torch.equal(net(inputs), output)
print("loaded")
"""


def test_model_defined_in_a_script_is_saved_with_the_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    target = tmp_path / "net.pt"
    result = run_python(script, args=(str(target),), cwd=tmp_path)
    assert "top-level code" not in result.stderr  # the script guards its work
    assert "__main__.py" in records_of(target)
    # Loaded where the script is nowhere to be found, by torchpack and by torch.package.
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert run_python(LOAD, args=(str(target),), cwd=other).stdout.strip() == "loaded"


def test_script_without_a_main_guard_is_saved_with_a_warning(tmp_path: Path) -> None:
    unguarded = SCRIPT.replace('if __name__ == "__main__":\n', "if True:\n")
    script = tmp_path / "train.py"
    script.write_text(unguarded)
    target = tmp_path / "net.pt"
    result = run_python(script, args=(str(target),), cwd=tmp_path)
    assert "loading it runs all of its top-level code" in result.stderr
    assert 'if __name__ == "__main__":' in result.stderr


def test_model_defined_without_a_source_file_fails_at_export(tmp_path: Path) -> None:
    # python -c (like a notebook or the interactive prompt) leaves no file to save.
    code = textwrap.dedent(
        """
        import sys
        import torch
        from torchpack import PackageExporter, PackagingError

        class Net(torch.nn.Module):
            pass

        try:
            with PackageExporter(sys.argv[1]) as exporter:
                exporter.save_pickle("model", "model.pkl", Net())
        except PackagingError as err:
            print(err.broken_modules)
            print(err)
        """
    )
    target = tmp_path / "net.pt"
    result = run_python(code, args=(str(target),))
    assert "{'__main__': 'Object is defined in __main__, whose source is not in a file" in (
        result.stdout
    )
    assert "python -c, a notebook, the interactive prompt" in result.stdout
    assert not target.exists()
