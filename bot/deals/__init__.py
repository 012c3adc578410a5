"""The use case: a submitted form becomes an opportunity in Close, exactly once."""
