"""Error codes that travel on the wire, and the one exception type that carries them.

Codes are Linux errno names where one fits (see docs/design.md#wire); a handler raises
NumaEmuError, the dispatch boundary turns it into an error reply, and the client side raises
it again from the reply.
"""
from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    EINVAL = "EINVAL"  # bad argument, malformed or unknown message
    ENOMEM = "ENOMEM"  # no frame could be had where the policy allows
    EFAULT = "EFAULT"  # address outside any region
    ENOENT = "ENOENT"  # no such object (task, region, file, cluster)
    ENOTDIR = "ENOTDIR"  # a path that should be a folder is not
    EBUSY = "EBUSY"  # locked or in use
    EACCES = "EACCES"  # not allowed (cpuset, permissions)
    EPERM = "EPERM"  # operation needs a privilege the caller lacks
    EIO = "EIO"  # strict placement could not be met, backing store failure
    ESRCH = "ESRCH"  # no such task / process
    EEXIST = "EEXIST"  # already exists (cluster up, cpuset name)
    ETIMEDOUT = "ETIMEDOUT"  # a peer did not answer within its deadline
    EPROTO = "EPROTO"  # wrong protocol version or undecodable frames
    EMSGSIZE = "EMSGSIZE"  # message larger than the protocol allows
    ENODEV = "ENODEV"  # node offline or absent
    EXDEV = "EXDEV"  # crosses clusters
    ECONNREFUSED = "ECONNREFUSED"  # the daemon cannot be reached
    ESTALE = "ESTALE"  # a mapping outlived its frame (the frame's generation moved on)
    EFBIG = "EFBIG"  # a file offset beyond what the store allows
    EREMCHG = "EREMCHG"  # the task's home node changed (it moved): ask the coordinator for the new one


class NumaEmuError(Exception):
    """An error with an errno-style code and a message a person can read."""

    def __init__(self, code: ErrorCode | str, message: str):
        self.code = ErrorCode(code)
        self.message = message
        super().__init__(f"{self.code.value}: {message}")

    @property
    def errno_name(self) -> str:
        return self.code.value


def einval(message: str) -> NumaEmuError:
    return NumaEmuError(ErrorCode.EINVAL, message)
