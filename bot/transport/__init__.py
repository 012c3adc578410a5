"""How Slack reaches the bot: the HTTP app and Socket Mode, answering at the listener's ack."""
