"""python -m report [--check]: rewrite (or check) every README's generated blocks (readmes.py)."""

import sys

from report.readmes import main

sys.exit(main())
