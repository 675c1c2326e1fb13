"""Whitespace tokenizer; its vocabulary is the ``vocab.txt`` resource beside this module."""

from __future__ import annotations

import importlib.resources

from examples.models import tinylm


def read_vocabulary() -> list[str]:
    # Through importlib.resources, so that a packaged copy reads the vocabulary from the package.
    # Given the package module, not its name: inside a package module names are mangled.
    resource = importlib.resources.files(tinylm).joinpath("vocab.txt")
    return resource.read_text(encoding="utf-8").split()


class Tokenizer:
    def __init__(self) -> None:
        self.tokens = read_vocabulary()
        self.ids = {token: index for index, token in enumerate(self.tokens)}

    def encode(self, text: str) -> list[int]:
        unknown = self.ids["<unk>"]
        return [self.ids["<bos>"]] + [self.ids.get(w, unknown) for w in text.lower().split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.tokens[i] for i in ids)

    def __reduce__(self) -> tuple[type, tuple[()]]:
        # Pickled without its vocabulary: unpickling reads the resource again.
        return (Tokenizer, ())
