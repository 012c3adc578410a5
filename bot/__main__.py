"""`python -m bot` entry point."""

from bot.runtime.cli import main

raise SystemExit(main())
