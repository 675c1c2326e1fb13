"""torchpack inspect / audit / why / diff: what a package holds, without running it or torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from bad_archives import manifest_for
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


def test_inspect_summarises_by_default(tmp_path, package):
    path = str(package(tmp_path / "m.pt"))
    sizes = json.loads(run_cli("inspect", "--json", path).stdout)["sizes"]
    source = sizes["cli_models/net.py"] + sizes["cli_models/layers.py"]
    resources = sizes["model/model.pkl"] + sizes["model/notes.txt"]
    result = run_cli("inspect", path)
    assert result.returncode == 0, result.stderr
    for expected in (
        "integrity:        manifest present",
        f"interned modules: 2, {source} B of source",
        f"\n  cli_models                 2 modules, {source} B\n",
        "mocked modules:   1 (stubs that raise when used): cli_models.training\n",
        "extern modules:   4 (the loading environment provides them)\n"
        "  outside the standard library: torch (2)\n"
        "  standard library: 2 modules\n",
        f"resources:        2, {resources} B: model/model.pkl, model/notes.txt\n",
        "tensor storages:  1, 16 B",
        "  model/model.pkl: 7 globals from builtins, cli_models (2), collections, torch (3)\n",
    ):
        assert expected in result.stdout
    assert "layers.py" not in result.stdout  # the file tree is for --full


def test_inspect_full_shows_tree_modules_and_globals(tmp_path, package):
    result = run_cli("inspect", "--full", str(package(tmp_path / "m.pt")))
    assert result.returncode == 0
    for expected in (
        "tensor storages:  1, 16 B",
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
    assert "  helper   uses process: subprocess (line 1)\n" in result.stdout
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


# -- audit analyses exactly what the importer would run ----------------------------------------


def _rewrite(path: Path, target: Path, edit) -> Path:
    """The package's records passed through ``edit(records)``, with a manifest to match:
    a package made by hand, as an attacker makes one."""
    with zipfile.ZipFile(path) as archive:
        top = archive.namelist()[0].split("/", 1)[0]
        records = {i.filename.split("/", 1)[1]: archive.read(i) for i in archive.infolist()}
    records = edit(records)
    records[".data/manifest.blake3"] = manifest_for(list(records.items()))
    with zipfile.ZipFile(target, "w") as out:
        for name, data in records.items():
            out.writestr(f"{top}/{name}", data)
    return target


def _audit(path: Path) -> tuple[int, str]:
    result = run_cli("audit", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def _audit_hand_made(tmp_path: Path, edit) -> tuple[int, str]:
    """Audit a small package after ``edit`` changed its records (manifest recomputed)."""
    base = tmp_path / "base.pt"
    with PackageExporter(base) as exporter:
        exporter.save_text("data", "notes.txt", "x")
    return _audit(_rewrite(base, tmp_path / "hand_made.pt", edit))


def test_audit_shows_a_mock_support_module_that_is_not_torchpacks(tmp_path, package):
    def evil_mock(records):
        records["_mock.py"] = b"import subprocess\nsubprocess.run(['id'])\n" + records["_mock.py"]
        return records

    path = _rewrite(package(tmp_path / "m.pt"), tmp_path / "evil.pt", evil_mock)
    status, out = _audit(path)
    assert status == 1
    assert "  _mock   CALLED ON IMPORT process: subprocess.run (line 2)\n" in out
    modules = json.loads(run_cli("audit", "--json", str(path)).stdout)["interned_modules"]
    assert "cli_models.training" in modules  # its stub runs _mock: code, not a mock


def test_audit_reads_the_source_the_importer_runs(tmp_path):
    path = tmp_path / "shadow.pt"
    with PackageExporter(path) as exporter:
        exporter.save_source_string("pkg", "VALUE = 1\n")  # pkg.py: never runs
        exporter.save_text("pkg", "__init__.py", "import subprocess\n")  # runs instead
    _, out = _audit(path)
    assert "  pkg   uses process: subprocess (line 1)\n" in out


def test_audit_scans_pickles_whatever_their_name(tmp_path):
    path = tmp_path / "named.pt"
    with PackageExporter(path) as exporter:
        exporter.save_binary("data", "model.bin", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.")
        exporter.save_text("data", "labels.txt", "cat\ndog\n")
    status, out = _audit(path)
    assert status == 1
    assert "pickle data/model.bin:\n  DANGEROUS os.system" in out
    assert "labels.txt" not in out  # text, and names nothing importable


def test_audit_judges_a_shipped_module_shadowed_by_an_extern_one(tmp_path):
    def ship_os(records):
        records["os.py"] = b"def system(command):\n    return 0\n"
        records[".data/extern_modules"] += b"os\n"
        records["data/t.pkl"] = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."
        return records

    status, out = _audit_hand_made(tmp_path, ship_os)
    assert status == 1
    assert "DANGEROUS os.system" in out


def test_audit_calls_the_importer_itself_dangerous(tmp_path):
    def ship_importer(records):
        records["torch_package_importer.py"] = b"def import_module(name):\n    pass\n"
        records["data/t.pkl"] = (
            b"\x80\x02ctorch_package_importer\nimport_module\nX\x02\x00\x00\x00os\x85R."
        )
        return records

    status, out = _audit_hand_made(tmp_path, ship_importer)
    assert status == 1
    assert "DANGEROUS torch_package_importer.import_module" in out


def test_audit_labels_only_what_the_package_defines_as_its_own(tmp_path):
    path = tmp_path / "imported.pt"
    with PackageExporter(path) as exporter:
        exporter.save_source_string("victim", "from os import system\n\nclass Own:\n    pass\n")
        exporter.save_binary("data", "t.pkl", b"\x80\x02cvictim\nsystem\nX\x02\x00\x00\x00id\x85R.")
        exporter.save_binary("data", "own.pkl", b"\x80\x02cvictim\nOwn\n)\x81.")
    status, out = _audit(path)
    assert status == 1
    assert "UNKNOWN   victim.system" in out
    assert "package   victim.Own" in out


def test_audit_fails_code_that_reaches_out_when_imported(tmp_path):
    path = tmp_path / "phone_home.pt"
    with PackageExporter(path) as exporter:
        exporter.save_source_string(
            "tracker", "import socket\nsocket.create_connection(('example.org', 80))\n"
        )
        exporter.save_source_string(
            "tools",
            "import subprocess\nfrom ctypes import CDLL\n\n"
            "def version():\n    return subprocess.check_output(['git', 'describe'])\n",
        )
        exporter.save_text("data", "notes.txt", "x")
    status, out = _audit(path)
    assert status == 1
    assert "  can reach the network: 1, start processes: 1, load native libraries: 1" in out
    assert "  tracker   CALLED ON IMPORT network: socket.create_connection (line 2)\n" in out
    # Used in a function, or only imported: reported, for a person to judge.
    assert (
        "  tools   uses process: subprocess (line 1), subprocess.check_output (line 5); "
        "native library: ctypes.CDLL (line 2)\n"
    ) in out
    assert "FAIL: interned code calls socket.create_connection when imported" in out
    allowed = run_cli("audit", "--allow", "socket.create_connection", str(path))
    assert allowed.returncode == 0, allowed.stdout
    report = json.loads(run_cli("audit", "--json", str(path)).stdout)
    assert report["interned_modules"]["tracker"] == {
        "uses": [
            {"capability": "network", "name": "socket", "line": 1, "called_on_import": False},
            {
                "capability": "network",
                "name": "socket.create_connection",
                "line": 2,
                "called_on_import": True,
            },
        ],
        "error": None,
    }
    assert report["ok"] is False


# -- commands stay linear and stream records ---------------------------------------------------


def test_commands_stream_records_bigger_than_their_memory(tmp_path):
    big = 32 << 20  # 128 MiB of float32, with the commands limited to 96 MiB of address space
    paths = []
    for value in (1.0, 2.0):
        path = tmp_path / f"big{int(value)}.pt"
        with PackageExporter(path) as exporter:
            exporter.save_pickle("data", "t.pkl", torch.full((big,), value))
            exporter.save_binary("data", "blob.bin", bytes(4 * big))  # not a pickle
        paths.append(str(path))
    diff = run_cli("diff", *paths, memory_limit_mib=96)
    assert diff.returncode == 1, diff.stderr
    assert "~ tensor storage .data/0.storage" in diff.stdout
    for command in ("verify", "inspect", "audit"):
        result = run_cli(command, paths[0], memory_limit_mib=96)
        assert result.returncode == 0, (command, result.stderr)


# -- a reader that stops early (`| head`) ends the command quietly ---------------------------


@pytest.mark.parametrize(
    ("command", "unbuffered"),
    [(command, "") for command in ("inspect", "audit", "verify", "why", "diff", "--help")]
    + [("diff", "1")],  # every print writes through at once: the first one fails
)
def test_commands_end_quietly_when_their_reader_is_gone(tmp_path, package, command, unbuffered):
    path = str(package(tmp_path / "m.pt"))
    argv = {
        "why": ["why", path, "cli_models.training"],
        "diff": ["diff", path, str(package(tmp_path / "other.pt", scale=2.0))],
        "--help": ["--help"],
    }.get(command, [command, path])
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    env.update(PYTHONPATH=str(REPO), **({"PYTHONUNBUFFERED": "1"} if unbuffered else {}))
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the first line, as `| head -n 0` is: every write fails
    try:
        result = subprocess.run(
            [sys.executable, "-m", "torchpack", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141  # 128 + SIGPIPE, as a shell reports `yes | head`
