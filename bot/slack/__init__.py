"""Slack's Web API: the one gateway every write goes through, its typed errors, the observed client."""
