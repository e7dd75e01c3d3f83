"""`file import`: a host file streamed into the cluster's backing store by the client.

The client opens the file with its own rights and sends it in chunks of at most
IMPORT_CHUNK_BYTES (protocol.messages.pagecache.FileImport): the coordinator never opens a host
path for anyone (it would read whatever its own user can), and no chunk holds its loop for long.
"""
from __future__ import annotations

import os
import secrets
import stat

from numa_emu.protocol.client import Client
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc


def import_file(client: Client, path: str, name: str) -> dict:
    """Copy host file `path` into the store as `name`; the stored file's record (name, size, ...)."""
    try:
        src = open(path, "rb")
    except FileNotFoundError:
        raise NumaEmuError(ErrorCode.ENOENT, f"no file {path} to import") from None
    except PermissionError:
        raise NumaEmuError(ErrorCode.EACCES, f"cannot import {path}: permission denied "
                                             "(the import reads it with your own rights)") from None
    except OSError as exc:
        raise NumaEmuError(ErrorCode.EINVAL, f"cannot import {path}: {exc.strerror}") from None
    with src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise NumaEmuError(ErrorCode.EINVAL, f"cannot import {path}: not a regular file")
        upload, offset = secrets.token_hex(8), 0
        chunk = src.read(pc.IMPORT_CHUNK_BYTES)
        while True:
            following = src.read(pc.IMPORT_CHUNK_BYTES)  # read ahead: the last chunk says done
            reply = client.call(pc.FileImport(name=name, upload=upload, offset=offset, data=chunk,
                                              done=not following))
            if not following:
                return reply.file
            offset, chunk = offset + len(chunk), following
