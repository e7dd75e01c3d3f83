"""Error codes that travel on the wire, and the one exception type that carries them.

Codes are Linux errno names where one fits (see docs/design.md#wire); a handler raises
NumaEmuError, the dispatch boundary turns it into an error reply, and the client side raises
it again from the reply.
"""
from __future__ import annotations

import enum
import errno
import os


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
    ERANGE = "ERANGE"  # a node or CPU number beyond the machine (libnuma's numa_node_to_cpus)
    EREMCHG = "EREMCHG"  # the task's home node changed (it moved): ask the coordinator for the new one


class NumaEmuError(OSError):
    """An error with an errno-style code and a message a person can read.

    An OSError, as Python's own wrappers of system calls raise: `errno` is the number of the
    code on this system (errno.ENOMEM, ...) and `strerror` its C text ("Cannot allocate memory"),
    so `except OSError` and `exc.errno == errno.ENOMEM` work as they do for os.* calls. `code` is
    the ErrorCode, `message` the one-line explanation; str() is "CODE: message", unchanged.
    """

    def __init__(self, code: ErrorCode | str, message: str):
        self.code = ErrorCode(code)
        self.message = message
        number = getattr(errno, self.code.value)  # every ErrorCode is a Linux errno name
        super().__init__(number, os.strerror(number))

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"

    def __reduce__(self):
        # OSError pickles as (errno, strerror), and subclasses take other arguments: rebuild any
        # of them from code and message, then restore their own attributes (request_id, ...)
        return _rebuild, (type(self), self.code.value, self.message), dict(self.__dict__)

    @property
    def errno_name(self) -> str:
        return self.code.value


def _rebuild(cls: type[NumaEmuError], code: str, message: str) -> NumaEmuError:
    exc = cls.__new__(cls)
    NumaEmuError.__init__(exc, code, message)
    return exc


def einval(message: str) -> NumaEmuError:
    return NumaEmuError(ErrorCode.EINVAL, message)
