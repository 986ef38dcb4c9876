"""The checks the simulator runs on an ITI-41 request; each returns a list of `Problem`."""
