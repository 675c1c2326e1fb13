"""A generated library of many small modules: the shape of a monorepo's model code.

``smalllib.groupG.mN`` modules, each importing three earlier ones and defining a function and
an ``nn.Module`` that calls it; ``smalllib.model.Model`` holds one instance of every class,
so that a pickle of it reaches every module, and ``build`` is its ``torchpack build`` entry.
"""

from __future__ import annotations

import compileall
import random
import shutil
from pathlib import Path

PACKAGE = "smalllib"
ENTRY = f"{PACKAGE}.model:build"
_GROUP_SIZE = 25


def write_library(root: Path, modules: int, *, bytecode: bool) -> list[str]:
    """Write ``modules`` modules (package inits and the model included) under ``root``;
    with ``bytecode``, compiled as Python leaves them after importing them once."""
    shutil.rmtree(root / PACKAGE, ignore_errors=True)
    rng = random.Random(0)
    # The root package and the model module, then as many groups of layers as fit.
    count = modules - 2
    while count > 1 and count + -(-count // _GROUP_SIZE) > modules - 2:
        count -= 1
    groups = [f"group{index}" for index in range(-(-count // _GROUP_SIZE))]
    _write(root / PACKAGE / "__init__.py", "")
    for group in groups:
        _write(root / PACKAGE / group / "__init__.py", "")
    names = [f"{PACKAGE}.{groups[index // _GROUP_SIZE]}.m{index}" for index in range(count)]
    for index, name in enumerate(names):
        imported = rng.sample(names[:index], min(index, 3))
        uses = "".join(f" + {other}.f{other.rsplit('m', 1)[1]}(x) * 0" for other in imported[:1])
        lines = ["import math", "", "import torch", *(f"import {other}" for other in imported)]
        lines += [
            "",
            f"def f{index}(x):",
            f"    return x * math.sqrt({index % 7 + 1}){uses}",
            "",
            f"class Layer{index}(torch.nn.Module):",
            "    def forward(self, x):",
            f"        return f{index}(x)",
        ]
        _write(root / Path(*name.split(".")).with_suffix(".py"), "\n".join(lines) + "\n")
    model = ["import torch", *(f"import {name}" for name in names), ""]
    model += [
        "class Model(torch.nn.Module):",
        "    def __init__(self):",
        "        super().__init__()",
        "        self.layers = torch.nn.ModuleList([",
        *(f"            {name}.Layer{name.rsplit('m', 1)[1]}()," for name in names),
        "        ])",
        "",
        "    def forward(self, x):",
        "        for layer in self.layers:",
        "            x = layer(x)",
        "        return x",
        "",
        "def build(data):",
        "    return Model()",
    ]
    _write(root / PACKAGE / "model.py", "\n".join(model) + "\n")
    if bytecode:
        compileall.compile_dir(root / PACKAGE, quiet=1)
    return names


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
