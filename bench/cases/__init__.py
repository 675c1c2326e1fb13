"""The benchmark's cases, one module each.

Every case module has ``NAME``, ``run(work, settings)`` (a :class:`~bench.runner.CaseResult`,
or a string saying why the case cannot run here), ``targets(result)`` and ``seconds(result)``
(each contender's median seconds, for the chart).
"""

from . import bazel, export, library, load, resolve, scan, small_modules

# In the order they run: each writes its own archives and inputs.
CASES = {case.NAME: case for case in (export, load, small_modules, library, resolve, scan, bazel)}
