"""Close -> Slack: changes made in Close (webhook or event log) kept true in Slack."""
