"""D-Edit Studio engine: item partitions, projects, SDXL fine-tuning and masked editing.

This package never imports Qt; the desktop editor lives in ``ui/``.
"""

__version__ = "0.1.0"
