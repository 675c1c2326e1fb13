"""One measurement in a fresh process: ``python -m bench.child '<json job>'``.

Prints one JSON line with the measured values. The parent (``bench.runner``) starts a new
process for every measurement, so no run inherits another's imports, caches or heap. Before a
clock starts, the garbage that importing torch and building the inputs left is collected, for
every contender alike (as ``timeit`` keeps the collector out of what it times): otherwise
whichever contender allocates a little more pays for a full collection of torch's heap.
"""

from __future__ import annotations

import gc
import io
import json
import os
import sys
import time
from typing import Any

from .memory import MiB, peak_mib, reset_peak, resident_mib

CHUNK = 64 * MiB


def _start_clock() -> float:
    gc.collect()
    return time.perf_counter()


def _settle_disk(path: str) -> None:
    """Start a timed write to ``path`` from the same state whoever writes.

    The previous run's file goes first: replacing it (torchpack renames a new file over it)
    and truncating it (torch.package and the raw write reuse it) cost differently, and its
    freed pages make the write itself cheaper. Then earlier runs' dirty pages are flushed,
    so that no write is throttled by another's backlog.
    """
    if os.path.exists(path):
        os.unlink(path)
    os.sync()


def raw_write(path: str, nbytes: int) -> dict[str, Any]:
    """Sequential write of ``nbytes`` from memory to a new file: the disk's export limit."""
    data = bytearray(os.urandom(MiB)) * max(1, nbytes // MiB)
    view = memoryview(data)
    _settle_disk(path)
    start = time.perf_counter()
    with open(path, "wb") as f:
        for offset in range(0, len(view), CHUNK):
            f.write(view[offset : offset + CHUNK])
    return {"seconds": time.perf_counter() - start, "bytes": len(data)}


def raw_read(path: str) -> dict[str, Any]:
    """Sequential read of a whole file into fresh memory, one thread: the disk's eager-load
    limit. The memory is allocated on the clock and never touched before, as a loader's new
    tensors are: the kernel faults its pages in as the read first writes them."""
    import mmap

    size = os.path.getsize(path)
    start = time.perf_counter()
    memory = mmap.mmap(-1, size)
    view = memoryview(memory)
    with open(path, "rb", buffering=0) as f:
        offset = 0
        while offset < size:
            offset += f.readinto(view[offset : offset + CHUNK])
    seconds = time.perf_counter() - start
    view.release()
    memory.close()
    return {"seconds": seconds, "bytes": size}


def _forward_after_load(model: Any, width: int, start: float) -> dict[str, Any]:
    """The load's time (the clock started at ``start``), then a first and a second forward
    pass (the second on weights already in memory: what no loader can beat), and memory."""
    import torch

    loaded = time.perf_counter()
    with torch.no_grad():
        output = model(torch.ones(1, width))
    first_forward = time.perf_counter()
    assert torch.isfinite(output).all(), "the loaded model computes garbage"
    with torch.no_grad():
        model(torch.ones(1, width))
    return {
        "load_seconds": loaded - start,
        "first_forward_seconds": first_forward - start,
        "second_forward_seconds": time.perf_counter() - first_forward,
        "resident_mib": resident_mib(),
        # Mapped archive pages are file-backed: shared with the page cache, not a copy.
        "resident_anon_mib": resident_mib("Anon"),
        "resident_file_mib": resident_mib("File"),
    }


def _exporter(impl: str) -> Any:
    if impl == "torchpack":
        from torchpack import PackageExporter
    else:
        from torch.package import PackageExporter
    return PackageExporter


def _importer(impl: str) -> Any:
    if impl == "torchpack":
        from torchpack import PackageImporter
    else:
        from torch.package import PackageImporter
    return PackageImporter


def export(impl: str, path: str, width: int, manifest: bool = True) -> dict[str, Any]:
    from .model import make_model, model_bytes

    model = make_model(width)
    exporter_class = _exporter(impl)
    before = resident_mib()
    _settle_disk(path)
    gc.collect()
    peak_reset = reset_peak()
    start = time.perf_counter()
    options = {} if manifest else {"integrity_manifest": False}
    with exporter_class(path, **options) as exporter:
        exporter.intern("bench.**")
        exporter.save_pickle("model", "model.pkl", model)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "bytes": os.path.getsize(path),
        "model_mib": model_bytes(model) / MiB,
        # Peak resident memory during the export above what the process held before it,
        # model included: what exporting costs on top of having the model.
        "peak_above_model_mib": peak_mib() - before if peak_reset else None,
    }


def load(impl: str, path: str, width: int, mmap: bool, verify: bool = True) -> dict[str, Any]:

    importer_class = _importer(impl)
    options = {"mmap": True} if mmap else {}
    if not verify:
        options["verify"] = False
    start = _start_clock()
    importer = importer_class(path, **options)
    model = importer.load_pickle("model", "model.pkl")
    return _forward_after_load(model, width, start)


def resolve(impl: str, modules: list[str], exclude: list[str], cache: str | None) -> dict[str, Any]:
    """Export nothing but ``modules`` interned with all they import, everything else mocked
    (but ``sys`` and ``io``: torchpack refuses to mock them, so both sides extern them)."""
    import importlib

    import torch  # noqa: F401  both exporters need it; its import is not what we measure

    for module in modules:
        importlib.import_module(module)
    exporter_class = _exporter(impl)
    options = {"analysis_cache": cache} if cache else {}
    start = _start_clock()
    with exporter_class(io.BytesIO(), **options) as exporter:
        exporter.extern(["sys", "io"])
        exporter.intern([f"{module}.**" for module in modules], exclude=exclude)
        exporter.mock("**")
        for module in modules:
            exporter.add_dependency(module)
    return {"seconds": time.perf_counter() - start, "modules": len(exporter.interned_modules())}


def scan(path: str, record: str, mode: str) -> dict[str, Any]:
    """The safe=True pre-scan of a pickle, or loading it (plain or safe), timed alone."""
    from torchpack import PackageImporter
    from torchpack.analysis.pickle_scanner import scan_pickle

    importer = PackageImporter(path, safe=mode == "safe load")
    data = importer.read_record(record)
    start = _start_clock()
    if mode == "scan":
        scan_pickle(data, record, max_depth=1000, strict=True)
    else:
        importer.load_pickle(*record.split("/"))
    return {"seconds": time.perf_counter() - start, "pickle_mib": len(data) / MiB}


def safetensors_save(path: str, width: int) -> dict[str, Any]:
    """The benchmark model's weights as a safetensors file (an input, not a measurement)."""
    from safetensors.torch import save_file

    from .model import make_model

    save_file(make_model(width).state_dict(), path)
    return {"bytes": os.path.getsize(path)}


def safetensors_load(path: str, width: int) -> dict[str, Any]:
    """What a user of safetensors does for fast, safe weights: ``load_file`` (memory-mapped),
    the model built on the meta device, the tensors assigned to it, then a forward pass."""
    from safetensors.torch import load_file

    from .model import make_empty_model

    start = _start_clock()
    model = make_empty_model(width)
    model.load_state_dict(load_file(path, device="cpu"), assign=True)
    return _forward_after_load(model, width, start)


def small_export(impl: str, root: str, package: str) -> dict[str, Any]:
    """Export the generated library's model, its modules imported before the clock starts."""
    import importlib

    sys.path.insert(0, root)
    model = importlib.import_module(f"{package}.model").build({})
    exporter_class = _exporter(impl)
    start = _start_clock()
    with exporter_class(io.BytesIO()) as exporter:
        exporter.intern(f"{package}.**")
        exporter.save_pickle("model", "model.pkl", model)
    return {"seconds": time.perf_counter() - start, "modules": len(exporter.interned_modules())}


def library_export(impl: str, case: str, path: str) -> dict[str, Any]:
    """Export a real-library model (built before the clock starts, by the example's code)."""
    from examples.real_libraries import export as export_case

    return {"seconds": export_case(case, path, _exporter(impl))}


def command(
    argv: list[str], cwd: str, pythonpath: str | None = None, clear: str | None = None
) -> dict[str, Any]:
    """A whole command's wall time, as a user waits for it (``clear``: a folder emptied first,
    such as a cache)."""
    import shutil
    import subprocess

    if clear is not None:
        shutil.rmtree(clear, ignore_errors=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed:\n{result.stderr[-4000:]}")
    return {"seconds": seconds}


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")  # torch.package's deprecation warnings are not results
    job = json.loads(sys.argv[1])
    kind = job.pop("kind")
    result = {
        "raw_write": raw_write,
        "raw_read": raw_read,
        "export": export,
        "load": load,
        "resolve": resolve,
        "scan": scan,
        "safetensors_save": safetensors_save,
        "safetensors_load": safetensors_load,
        "small_export": small_export,
        "library_export": library_export,
        "command": command,
    }[kind](**job)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
