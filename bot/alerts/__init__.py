"""Owner alerts: a change made in Close by someone else to your deal (or its assignment to you)
told in one DM per 60-second window, sent once by the scheduled-send machinery (bot/schedule)."""
