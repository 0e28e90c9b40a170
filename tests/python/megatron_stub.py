"""Imports megatron-core's dataset modules without the rest of megatron.core.

megatron.core's package __init__ pulls in the distributed training stack, which needs PyTorch >= 2;
the dataset code (indexed_dataset, helpers_cpp) needs only numpy and torch dtypes. This registers
empty package modules and the two utility symbols the dataset code imports, then returns them.
Usage: `from megatron_stub import indexed_dataset, helpers_cpp`.
"""
import logging
import site
import sys
import types


def _package(name, path):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules.setdefault(name, module)
    return sys.modules[name]


def _load():
    for root in site.getsitepackages():
        base = root + "/megatron/core"
        try:
            open(base + "/datasets/indexed_dataset.py").close()
        except OSError:
            continue
        _package("megatron", root + "/megatron")
        _package("megatron.core", base)
        _package("megatron.core.datasets", base + "/datasets")
        utils = types.ModuleType("megatron.core.utils")
        utils.log_single_rank = lambda logger, level, *args, **kwargs: logger.log(level, *args)
        sys.modules["megatron.core.utils"] = utils
        msc = types.ModuleType("megatron.core.msc_utils")

        class MultiStorageClientFeature:
            @staticmethod
            def is_enabled():
                return False

        msc.MultiStorageClientFeature = MultiStorageClientFeature
        sys.modules["megatron.core.msc_utils"] = msc
        return
    raise ImportError("megatron-core is not installed (scripts/setup.sh --tests installs it)")


_load()
from megatron.core.datasets import helpers_cpp, indexed_dataset  # noqa: E402

logging.getLogger("megatron").setLevel(logging.WARNING)
