"""The run directory: its layout and atomic writes, reading and finding runs, compare, diff and plots."""

import sys
import types


class _RunsPackage(types.ModuleType):
    """This package, callable: `dlrun.runs("runs")` is `dlrun.api.runs` (the package and the API share a name)."""

    def __call__(self, *folders):
        from dlrun.api import runs

        return runs(*folders)


sys.modules[__name__].__class__ = _RunsPackage
