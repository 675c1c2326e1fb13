"""torchpack inspect / audit / why / diff: what a package holds, without running it or torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from torchpack import PackageExporter

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def package(tmp_path, source_tree):
    source_tree(
        {
            "cli_models/__init__.py": "",
            "cli_models/net.py": """
                import torch
                from cli_models import layers

                class Net(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.layer = layers.Scale()
            """,
            "cli_models/layers.py": """
                import torch
                import cli_models.training

                class Scale(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.weight = torch.nn.Parameter(torch.ones(4))
            """,
            "cli_models/training.py": "import os\n",
        }
    )
    from cli_models.net import Net

    def export(path: Path, scale: float = 1.0, notes: str = "v1") -> Path:
        model = Net()
        with torch.no_grad():
            model.layer.weight.mul_(scale)
        with PackageExporter(path) as exporter:
            exporter.intern("cli_models.**", exclude="cli_models.training")
            exporter.mock("cli_models.training")
            exporter.save_pickle("model", "model.pkl", model)
            exporter.save_text("model", "notes.txt", notes)
        return path

    return export


def test_inspect_json_describes_the_package(tmp_path, package):
    path = package(tmp_path / "m.pt")
    result = run_cli("inspect", "--json", str(path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # cli_models itself is a placeholder package: nothing imports it in its own right.
    assert report["interned_modules"] == {
        "cli_models.layers": "cli_models/layers.py",
        "cli_models.net": "cli_models/net.py",
    }
    assert report["mocked_modules"] == ["cli_models.training"]
    assert "torch._utils" in report["extern_modules"]
    assert report["resources"] == ["model/model.pkl", "model/notes.txt"]
    (pickle,) = report["pickles"]
    assert pickle["record"] == "model/model.pkl"
    assert ["cli_models.net", "Net"] in pickle["globals"]
    assert ["torch._utils", "_rebuild_parameter"] in pickle["globals"]
    assert report["storages"] == {".data/0.storage": 16}
    assert report["format_version"] == 6
    assert report["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert report["has_manifest"] is True


def test_inspect_text_shows_tree_modules_and_globals(tmp_path, package):
    result = run_cli("inspect", str(package(tmp_path / "m.pt")))
    assert result.returncode == 0
    for expected in (
        "tensor storages: 1, 16 B",
        "interned modules (their code runs when imported):\n  cli_models.layers\n",
        "mocked modules:\n  cli_models.training",
        "    cli_models.layers.Scale",
        "    │   ├── layers.py\n",
    ):
        assert expected in result.stdout


def test_audit_passes_a_clean_package(tmp_path, package):
    result = run_cli("audit", str(package(tmp_path / "m.pt")))
    assert result.returncode == 0, result.stdout
    assert "package   cli_models.net.Net" in result.stdout
    assert "harmless  torch._utils._rebuild_parameter" in result.stdout


def test_audit_flags_dangerous_and_unknown_globals(tmp_path):
    path = tmp_path / "evil.pt"
    with PackageExporter(path) as exporter:
        exporter.save_source_string("helper", "import subprocess\n")
        exporter.save_binary("data", "evil.pkl", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x85R.")
        exporter.save_pickle("data", "when.pkl", __import__("datetime").date(2026, 1, 1))
    result = run_cli("audit", str(path))
    assert result.returncode == 1
    assert "DANGEROUS os.system" in result.stdout
    assert "UNKNOWN   datetime.date" in result.stdout
    assert "helper   imports subprocess" in result.stdout
    allowed = run_cli("audit", "--allow", "datetime.date", "--allow", "os.system", str(path))
    assert allowed.returncode == 0, allowed.stdout
    as_json = json.loads(run_cli("audit", "--json", str(path)).stdout)
    assert as_json["pickles"]["data/evil.pkl"]["globals"] == {"os.system": "dangerous"}
    assert as_json["ok"] is False


def test_why_prints_the_import_chain(tmp_path, package):
    path = package(tmp_path / "m.pt")
    result = run_cli("why", str(path), "cli_models.training")
    assert result.returncode == 0, result.stdout
    assert "cli_models.training is mocked" in result.stdout
    # The shortest chain: the pickle names cli_models.layers.Scale itself.
    assert "model/model.pkl\n  -> cli_models.layers\n  -> cli_models.training\n" in result.stdout
    absent = run_cli("why", str(path), "numpy")
    assert absent.returncode == 1
    assert "numpy is not in the package, and no pickle or interned module imports it" in (
        absent.stdout
    )


def test_diff_lists_what_changed(tmp_path, package):
    old = package(tmp_path / "old.pt")
    new = package(tmp_path / "new.pt", scale=2.0, notes="v2")
    result = run_cli("diff", str(old), str(new))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "~ resource model/notes.txt",
        "~ tensor storage .data/0.storage",
        "2 difference(s)",
    ]
    same = run_cli("diff", str(old), str(package(tmp_path / "same.pt")))
    assert same.returncode == 0
    assert same.stdout.strip() == "no differences"


def test_commands_never_import_torch(tmp_path, package):
    path = package(tmp_path / "m.pt")
    other = package(tmp_path / "other.pt", scale=3.0)
    script = f"""
import contextlib, io, sys
from torchpack.cli import main
for argv in (["inspect", {str(path)!r}], ["inspect", "--json", {str(path)!r}],
             ["audit", {str(path)!r}], ["verify", {str(path)!r}],
             ["why", {str(path)!r}, "cli_models.training"],
             ["diff", {str(path)!r}, {str(other)!r}]):
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    print(argv[0], status, "torch" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        "inspect 0 False",
        "inspect 0 False",
        "audit 0 False",
        "verify 0 False",
        "why 0 False",
        "diff 1 False",
    ]
