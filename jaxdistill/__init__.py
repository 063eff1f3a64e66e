"""jaxdistill: dataset distillation and knowledge distillation in JAX/Flax.

Importing it changes no environment variable or global setting; the CPU speed settings are an explicit opt-in
(`jaxdistill.cpu_tuning.apply()`), which the `jaxdistill` command and the scripts make.
"""
__version__ = "0.1.0"
