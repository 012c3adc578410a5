"""Local stand-ins for Slack and Close: real HTTP servers on 127.0.0.1 speaking their wire format.

Used by `python -m bot demo`, the tests and the benchmark. Never imported by production code paths.
"""
