"""D-Edit Studio desktop editor (PySide6). Computes nothing the engine owns."""
