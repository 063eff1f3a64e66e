"""Distillation methods behind one interface (see `base.py`); importing this package registers them all."""
from jaxdistill.methods.base import METHODS, Method, get_entry, make_method, method_config, register_method
from jaxdistill.methods import coreset, datm, dc, idc, mtt, psg  # noqa: F401  (registers every method)

__all__ = ["METHODS", "Method", "get_entry", "make_method", "method_config", "register_method"]
