"""jaxdistill: dataset distillation and knowledge distillation in JAX/Flax."""
from jaxdistill.cpu_tuning import configure_xla as _configure_xla

_configure_xla()  # before jax starts its CPU backend (see cpu_tuning.py)

__version__ = "0.1.0"
