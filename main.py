"""Launch D-Edit Studio: ``python main.py [IMAGE | PROJECT.dedit]``."""

from ui.app import main

if __name__ == "__main__":
    raise SystemExit(main())
