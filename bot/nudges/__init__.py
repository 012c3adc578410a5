"""Overdue nudges: one DM per owner per local day listing their overdue deals, each with
one-tap Won, Lost, +1 week and Pick a date."""
