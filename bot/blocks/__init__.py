"""Pure Block Kit builders: data in, Slack JSON out, always within Slack's limits."""
