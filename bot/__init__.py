"""close-opportunity-bot: log Close CRM opportunities from Slack."""

__version__ = "0.1.0"
