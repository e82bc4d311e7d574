"""`python -m benchrun.cli ARGS` = `benchrun ARGS`."""

from benchrun.cli.app import console

console()
