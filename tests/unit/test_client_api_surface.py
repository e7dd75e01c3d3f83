"""The client API as Python users expect it: NumaEmuError is an OSError with errno numbers, the
policy constants are exported, the package is typed, every public call has a docstring."""
from __future__ import annotations

import copy
import errno
import inspect
import os
import pickle
import tomllib
from pathlib import Path

import pytest

import numa_emu
from numa_emu import api, libnuma
from numa_emu.protocol.codec import WireError
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import Mode

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_is_an_oserror_with_its_errno(code):
    exc = NumaEmuError(code, "what went wrong")
    assert isinstance(exc, OSError)
    assert exc.errno == getattr(errno, code.value)
    assert exc.strerror == os.strerror(exc.errno)
    assert (exc.code, exc.errno_name, exc.message) == (code, code.value, "what went wrong")
    assert str(exc) == f"{code.value}: what went wrong"  # the CLI's one-line errors are unchanged


def test_errno_numbers_are_linux_ones():
    assert [NumaEmuError(c, "").errno for c in ("EINVAL", "ENOMEM", "EFAULT", "ENOENT", "EIO")] == [22, 12, 14, 2, 5]
    assert NumaEmuError("ENOMEM", "").strerror == "Cannot allocate memory"


def test_except_oserror_catches_it_and_errno_compares():
    with pytest.raises(OSError) as err:
        raise NumaEmuError(ErrorCode.EACCES, "node 3 is outside cpuset 'a'")
    assert err.value.errno == errno.EACCES
    assert repr(err.value) == "NumaEmuError('EACCES', \"node 3 is outside cpuset 'a'\")"


@pytest.mark.parametrize("exc", [NumaEmuError("ENOMEM", "no frame"), WireError(ErrorCode.EPROTO, "bad frame", 7)])
def test_pickle_and_copy_keep_code_message_and_attributes(exc):
    for other in (pickle.loads(pickle.dumps(exc)), copy.copy(exc), copy.deepcopy(exc)):
        assert type(other) is type(exc)
        assert (other.code, other.message, other.errno, str(other)) == (exc.code, exc.message, exc.errno, str(exc))
        assert other.__dict__ == exc.__dict__


def test_policy_constants_are_exported_as_in_numaif_h():
    assert {"Mode", "MPOL_BIND", "MPOL_MF_MOVE", "MPOL_F_NODE", "MPOL_F_STATIC_NODES", "libnuma"} <= set(numa_emu.__all__)
    for name in numa_emu.__all__:
        assert getattr(numa_emu, name) is not None, name
    assert numa_emu.MPOL_BIND is Mode.BIND and numa_emu.MPOL_BIND == 2
    assert (numa_emu.MPOL_DEFAULT, numa_emu.MPOL_INTERLEAVE, numa_emu.MPOL_WEIGHTED_INTERLEAVE) == (0, 3, 6)
    assert (numa_emu.MPOL_MF_STRICT, numa_emu.MPOL_MF_MOVE, numa_emu.MPOL_MF_MOVE_ALL) == (1, 2, 4)
    assert (numa_emu.MPOL_F_NODE, numa_emu.MPOL_F_ADDR, numa_emu.MPOL_F_MEMS_ALLOWED) == (1, 2, 4)
    assert numa_emu.MPOL_F_STATIC_NODES == 1 << 15 and numa_emu.MPOL_F_RELATIVE_NODES == 1 << 14
    with pytest.raises(AttributeError):
        numa_emu.MPOL_NOPE  # noqa: B018


def test_the_package_is_typed():
    assert (ROOT / "numa_emu" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["numa_emu"]


def _public_calls():
    for cls in (api.Task, api.Region, api.File):
        for name, member in vars(cls).items():
            if not name.startswith("_") or name in ("__enter__", "__exit__"):
                if callable(member) or isinstance(member, property):
                    yield f"{cls.__name__}.{name}", member
    yield "attach", api.attach
    yield "attached_tasks", api.attached_tasks
    for name in libnuma.__all__:
        if callable(getattr(libnuma, name)):
            yield f"libnuma.{name}", getattr(libnuma, name)


@pytest.mark.parametrize("name,member", list(_public_calls()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_public_call_has_a_docstring(name, member):
    doc = inspect.getdoc(member.fget if isinstance(member, property) else member)
    assert doc and doc.strip(), f"{name} has no docstring"


def test_public_classes_have_docstrings():
    for cls in (api.Task, api.Region, api.File, NumaEmuError):
        assert inspect.getdoc(cls)


def test_star_import_gives_every_name_of_all():
    namespace: dict = {}
    exec("from numa_emu import *", namespace)  # noqa: S102
    assert set(numa_emu.__all__) <= set(namespace)
    assert namespace["MPOL_INTERLEAVE"] is Mode.INTERLEAVE and namespace["libnuma"] is libnuma
