"""One module per ``scripts/bench.py`` mode; each exposes ``run(profile) -> list[Row]``."""
