"""Embodied AI Deployment Workbook library: envs, models, training, export, runtimes."""
__version__ = "0.1.0"

from embodied_lib import quiet as _quiet

_quiet.install()
