"""`python -m benchrun.cli ARGS` = `benchrun ARGS`."""

import sys

from benchrun.cli.app import main

sys.exit(main())
