"""Network, process and native-library access found in source, as ``torchpack audit`` reports it."""

from __future__ import annotations

import textwrap

import pytest

from torchpack.analysis.code_capabilities import capability_uses, may_use_capabilities
from torchpack.analysis.source_names import names_text


def _uses(source: str, module: str = "lib.mod", is_package: bool = False) -> set[tuple]:
    data = textwrap.dedent(source).encode("utf-8")
    found = capability_uses(data, module, is_package, "mod.py")
    # Whatever parsing finds, the word search that spares parsing must not rule out.
    assert not found or may_use_capabilities(names_text(data, module, "mod.py"), module)
    return {(use.capability, use.name, use.line, use.called_on_import) for use in found}


def test_every_way_of_naming_an_api_is_a_use():
    assert _uses(
        """
        import os, subprocess as sp
        from ctypes import cdll
        import urllib.request
        import importlib
        from huggingface_hub import hf_hub_download as download
        def fetch(url):
            urllib.request.urlopen(url)
            sp.run(["id"])
            os.execv("/bin/sh", [])
            cdll.LoadLibrary("libc.so.6")
            download("repo", "file")
            importlib.import_module("socket")
            __import__("multiprocessing")
        """
    ) == {
        ("process", "subprocess", 2, False),
        ("native library", "ctypes.cdll", 3, False),
        ("network", "urllib.request", 4, False),
        ("network", "huggingface_hub.hf_hub_download", 6, False),
        ("network", "urllib.request.urlopen", 8, False),
        ("process", "subprocess.run", 9, False),
        ("process", "os.execv", 10, False),
        ("native library", "ctypes.cdll.LoadLibrary", 11, False),
        ("network", "socket", 13, False),
        ("process", "multiprocessing", 14, False),
    }


def test_calls_that_run_when_the_module_is_imported_are_told_apart():
    assert _uses(
        """
        import os
        os.system("id")
        class Config:
            shell = os.popen("uname").read()
        @register(os.spawnv)
        def f(run=os.fork()):
            os.system("later")
        if True:
            lazy = lambda: os.forkpty()
        """
    ) == {
        ("process", "os.system", 3, True),  # its first call on import, not the one in f
        ("process", "os.popen", 5, True),  # a class body runs on import
        ("process", "os.spawnv", 6, False),  # named, not called
        ("process", "os.fork", 7, True),  # a default is computed where f is defined
        ("process", "os.forkpty", 10, False),  # in a lambda's body
    }


def test_a_library_using_its_own_api_by_relative_import_is_seen():
    # huggingface_hub interned: its own modules name the API without the library's name.
    source = "from .file_download import hf_hub_download\nhf_hub_download('r', 'f')\n"
    assert _uses(source, "huggingface_hub.hub_mixin") == {
        ("network", "huggingface_hub.file_download.hf_hub_download", 2, True),
    }


def test_names_a_star_import_may_have_bound_are_qualified_by_it():
    assert _uses("from os import *\nsystem('id')\npath.join('a')\n") == {
        ("process", "os.system", 2, True)
    }


def test_names_written_with_other_unicode_letters_are_read_as_python_reads_them():
    # NFKC: Python reads ｓｙｓｔｅｍ as system.
    assert _uses("import os\nos.ｓｙｓｔｅｍ('id')\n") == {("process", "os.system", 2, True)}


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.path.join('a', 'b')\nos.environ.get('HOME')\n",
        "from urllib.parse import quote\nquote('x')\n",
        "from multiprocessing import cpu_count\ncpu_count()\n",
        "from huggingface_hub import constants\nfrom huggingface_hub.errors import HfHubError\n",
        "from http import HTTPStatus\nimport ctypes\nctypes.c_int(3)\n",
        "def system(command):\n    return command\nsystem('id')\n",  # its own function
    ],
)
def test_computing_and_harmless_helpers_are_no_use(source):
    assert _uses(source) == set()
