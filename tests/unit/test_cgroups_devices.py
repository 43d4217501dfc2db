"""The cgroup v2 device filter: OCI rules compiled to eBPF, checked by interpreting it."""

from __future__ import annotations

import struct

import pytest

from pallet.engine.security import DEFAULT_DEVICE_RULES
from pallet.errors import InvalidArgument
from pallet.runtime.cgroups_devices import program, run

DOCKER = [dict(r) for r in DEFAULT_DEVICE_RULES] + [
    {"allow": True, "type": "b", "major": 8, "minor": 16, "access": "r"},  # --device /dev/sdb:r
]


@pytest.mark.parametrize(
    ("dev", "major", "minor", "access", "allowed"),
    [
        ("c", 1, 3, "rw", True),  # null
        ("c", 1, 9, "r", True),  # urandom
        ("c", 136, 4, "rw", True),  # a pts
        ("c", 10, 200, "rw", True),  # tun
        ("c", 1, 1, "r", False),  # /dev/mem
        ("b", 8, 0, "r", False),  # the host's disk
        ("b", 8, 0, "m", True),  # mknod of anything is allowed, using it is not
        ("c", 4, 1, "m", True),
        ("c", 4, 1, "rm", False),
        ("b", 8, 16, "r", True),  # the --device, read only
        ("b", 8, 16, "w", False),
    ],
)
def test_docker_defaults(dev: str, major: int, minor: int, access: str, allowed: bool) -> None:
    assert run(program(DOCKER), dev, major, minor, access) is allowed


def test_later_rules_win() -> None:
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rw"},
    ]
    prog = program(rules)
    assert run(prog, "c", 1, 5, "r")
    assert not run(prog, "c", 1, 3, "r")
    assert run(prog, "c", 1, 3, "m")  # the deny covered r and w only; the wildcard allows m
    assert not run(prog, "b", 1, 3, "r")


def test_nothing_matched_is_denied_and_allow_all() -> None:
    assert not run(program([]), "c", 1, 3, "r")
    assert run(program([{"allow": True, "access": "rwm"}]), "b", 8, 0, "rwm")


def test_no_unreachable_code() -> None:
    # an unconditional rule ends the program: the verifier refuses dead instructions
    prog = program([{"allow": True, "type": "c", "major": 1, "minor": 3}, {"allow": False, "access": "rwm"}])
    insns = [struct.unpack("<BBhi", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    assert insns[-1][0] == 0x95 and insns[-2] == (0xB7, 0, 0, 0)
    assert sum(1 for i in insns if i[0] == 0x95) == 1


def test_bad_rules() -> None:
    with pytest.raises(InvalidArgument):
        program([{"allow": True, "type": "x"}])
    with pytest.raises(InvalidArgument):
        program([{"allow": True, "type": "c", "access": "rwx"}])
