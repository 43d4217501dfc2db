import pytest

from pallet.errors import InvalidReference
from pallet.oci.digest import chain_ids, of_bytes
from pallet.oci.reference import parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "ref,full,familiar",
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
        ("quay.io/org/img", "quay.io/org/img:latest", "quay.io/org/img:latest"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
        (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}", f"busybox:1@{D}"),
        ("my-app_x.y__z", "docker.io/library/my-app_x.y__z:latest", "my-app_x.y__z:latest"),
    ],
)
def test_normalizes_like_docker(ref: str, full: str, familiar: str) -> None:
    r = parse(ref)
    assert str(r) == full
    assert r.familiar() == familiar


@pytest.mark.parametrize(
    "bad",
    ["", "Busybox", "busybox:", ":tag", "a//b", "-a", "a-", "busybox@sha256:xyz", "a:b:c",
     "a" * 64, "busybox:" + "t" * 129],
)
def test_rejects_bad_references(bad: str) -> None:
    with pytest.raises(InvalidReference):
        parse(bad)


def test_uppercase_first_component_is_a_registry() -> None:
    r = parse("Registry/app")
    assert r.domain == "Registry" and r.path == "app"


def test_chain_ids() -> None:
    a, b = of_bytes(b"a"), of_bytes(b"b")
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b]) == [a, of_bytes(f"{a} {b}".encode())]
