"""`python -m auditor` entry point."""

import sys

from auditor.cli import main

sys.exit(main())
