"""Shipped experiment files (TOML data). No code lives here."""
