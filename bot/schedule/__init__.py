"""Scheduled sends (nudges now; digests and alerts later): planned once per (kind, recipient,
period), sent exactly once by the one job runner; the time arithmetic is pure (timing.py)."""
