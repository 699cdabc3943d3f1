"""Load: many simulated users against the production servers of `python -m stack run`."""
