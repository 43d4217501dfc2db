"""--change instructions of import."""

from __future__ import annotations

import pytest

from pallet.engine.image_changes import apply_changes
from pallet.errors import InvalidArgument
from pallet.oci.image import ContainerConfig


def test_each_instruction() -> None:
    c = apply_changes(
        ContainerConfig(),
        [
            'CMD ["sh", "-c", "echo hi"]',
            "ENTRYPOINT /bin/init --x",
            "ENV A=1 B='two words'",
            "ENV LEGACY value with spaces",
            "EXPOSE 80 53/udp 8000-8001",
            'LABEL maintainer="me" version=1',
            "USER app:app",
            "VOLUME /data /logs",
            'VOLUME ["/cache"]',
            "WORKDIR /srv",
            "WORKDIR app",
            "STOPSIGNAL SIGINT",
        ],
    )
    assert c.cmd == ("sh", "-c", "echo hi")
    assert c.entrypoint == ("/bin/sh", "-c", "/bin/init --x")
    assert c.env_dict() == {"A": "1", "B": "two words", "LEGACY": "value with spaces"}
    assert c.exposed_ports == ("53/udp", "80/tcp", "8000/tcp", "8001/tcp")
    assert c.labels == {"maintainer": "me", "version": "1"}
    assert c.user == "app:app"
    assert c.volumes == ("/cache", "/data", "/logs")
    assert c.working_dir == "/srv/app"
    assert c.stop_signal == "SIGINT"


def test_shell_form_cmd() -> None:
    assert apply_changes(ContainerConfig(), ["CMD echo hi"]).cmd == ("/bin/sh", "-c", "echo hi")


@pytest.mark.parametrize("bad", ["RUN echo x", "FROM scratch", "EXPOSE 80/xyz", "USER", "ENV =1 x=y"])
def test_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        apply_changes(ContainerConfig(), [bad])


def test_not_a_valid_change_command_wording() -> None:
    with pytest.raises(InvalidArgument, match="run is not a valid change command"):
        apply_changes(ContainerConfig(), ["RUN x"])
