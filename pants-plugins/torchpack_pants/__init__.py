"""torchpack's Pants backend: the `torch_package` and `torch_package_test` targets.

Enable it with `backend_packages = ["torchpack_pants"]` and this folder's parent on `pythonpath`
(see the README's Pants section). It runs on Pants 2.17 (Python 3.7-3.9); everything torch
touches runs as Pants processes in the interpreter that `[torchpack].python` names.
"""
