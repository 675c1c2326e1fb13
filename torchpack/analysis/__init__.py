"""Torch-free analysis core of torchpack: glob matching of module names and
paths (``glob_group``), standard-library detection (``stdlib``), static
discovery of the imports made by Python source (``import_scanner``, reading
compiled code where it can: ``bytecode_imports``) and of the
globals referenced by pickle data (``pickle_scanner``), and the small
dependency graph (``digraph``) used to explain packaging decisions.  Nothing in
this subpackage imports torch or numpy, so it can be used (and tested) without
either installed.
"""
