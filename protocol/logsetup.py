"""How the daemons log: one format, and the level `numa-emu up --log-level` chose, handed from the
coordinator to the fork server and every node on their command lines."""
from __future__ import annotations

import logging

LOG_LEVELS = ("debug", "info", "warning")
DEFAULT_LOG_LEVEL = "info"
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure(level: str) -> None:
    """Log to stderr (the process's log file) at `level`, one of LOG_LEVELS."""
    logging.basicConfig(level=getattr(logging, level.upper()), format=FORMAT, force=True)
    logging.getLogger("numa_emu.log").debug("logging at level %s", level)
