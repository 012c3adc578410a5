"""Link previews: a Close lead link shared in Slack unfolds into the lead and its open deals."""
