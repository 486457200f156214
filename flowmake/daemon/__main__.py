"""`python -m flowmake.daemon ROOT FLOWFILE IDLE_SECONDS`: the resident process control.py starts."""

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
