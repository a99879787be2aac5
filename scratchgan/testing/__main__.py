"""``python -m scratchgan.testing``: run scratchgan's built-in GAN-theory checks and print their reports."""

import sys

from .builtin import run_all

if __name__ == "__main__":
    sys.exit(0 if run_all() else 1)
