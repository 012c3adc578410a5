"""The weekly pipeline digest: its figures (pure), the Close reads behind them, its job."""
