"""Session fixtures for engine tests (tiny random models built offline)."""
