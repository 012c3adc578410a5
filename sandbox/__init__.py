"""Local stand-ins for Slack and Close: real HTTP servers on 127.0.0.1 speaking their wire format.

Used by `python -m bot demo` (run from a clone: bot.runtime.cli loads sandbox.demo when asked), the
tests and the benchmarks. A top-level package beside tests/ and bench/, not in the bot's wheel;
nothing in bot/ imports it.
"""
