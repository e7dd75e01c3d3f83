"""Machine descriptions (TOML data files, each citing its sources). No code lives here."""
