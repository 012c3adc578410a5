"""Running the bot: the command line, the servers and worker processes, the checks before start."""
