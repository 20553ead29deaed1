"""`python -m kerasnas`: the `kerasnas` command."""

import sys

from kerasnas.cli import main

sys.exit(main())
