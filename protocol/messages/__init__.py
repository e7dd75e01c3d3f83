"""All message kinds, one module per family; importing this package registers every kind."""
from numa_emu.protocol.messages.base import REGISTRY, ErrorReply, Message, Notice, Ok, Reply, Request, message
from numa_emu.protocol.messages import control, faults, latency, lifecycle, memory, migration, pagecache, tasks, trace  # noqa: F401  (registers the kinds)

__all__ = ["REGISTRY", "ErrorReply", "Message", "Notice", "Ok", "Reply", "Request", "message"]
