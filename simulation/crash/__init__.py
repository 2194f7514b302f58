"""Failures on purpose: the random-kill crash harness (`simulation.crash.harness`) and the
child process it kills (`simulation.crash.child`). `python -m simulation.crash --kills 20`
runs it and prints a summary per area."""
