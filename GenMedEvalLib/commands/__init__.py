"""Subcommands of ``genmedeval``: one module per concept, each with ``register(subparsers)``."""
