"""Image-config effects and history comments of metadata instructions, build-arg scoping."""

from __future__ import annotations

import pytest

from pallet.build import dispatch
from pallet.build.args import BuildArgs
from pallet.build.parser import BuildError, parse
from pallet.oci.image import ContainerConfig, Healthcheck


def _ins(line: str):  # type: ignore[no-untyped-def]
    return parse("FROM x\n" + line).stages[0].instructions[0]


def _apply(line: str, cfg: ContainerConfig | None = None, env: dict[str, str] | None = None,
           cmd_set: bool = False) -> tuple[ContainerConfig, str, bool]:
    return dispatch.apply(_ins(line), cfg or ContainerConfig(), env or {}, "\\", cmd_set)


def test_go_quoting_as_docker_records_it() -> None:
    assert dispatch.go_quote_list(["python", "app.py"]) == '["python" "app.py"]'
    assert dispatch.go_quote('say "hi"\n') == '"say \\"hi\\"\\n"'
    assert dispatch.go_quote_rune(3) == "'\\x03'"
    assert dispatch.go_quote_rune(0) == "'\\x00'"
    assert dispatch.go_quote_rune(65) == "'A'"


@pytest.mark.parametrize("text,ns,back", [
    ("30s", 30 * 10**9, "30s"), ("1m30s", 90 * 10**9, "1m30s"), ("500ms", 5 * 10**8, "500ms"),
    ("1h", 3600 * 10**9, "1h0m0s"), ("1.5s", 15 * 10**8, "1.5s"), ("0", 0, "0s"),
])
def test_durations(text: str, ns: int, back: str) -> None:
    assert dispatch.parse_duration(text) == ns
    assert dispatch.format_duration(ns) == back


def test_cmd_and_entrypoint() -> None:
    cfg, comment, cmd_set = _apply('CMD ["python", "app.py"]')
    assert cfg.cmd == ("python", "app.py") and comment == 'CMD ["python" "app.py"]' and cmd_set
    cfg, comment, _ = _apply("CMD echo hi")
    assert cfg.cmd == ("/bin/sh", "-c", "echo hi") and comment == 'CMD ["/bin/sh" "-c" "echo hi"]'
    # ENTRYPOINT resets a CMD inherited from the base, not one set in this Dockerfile
    base = ContainerConfig(cmd=("sh",))
    cfg, comment, _ = _apply("ENTRYPOINT top -b", base)
    assert cfg.entrypoint == ("/bin/sh", "-c", "top -b") and cfg.cmd is None
    cfg, _, _ = _apply('ENTRYPOINT ["top"]', base, cmd_set=True)
    assert cfg.cmd == ("sh",)
    shell = ContainerConfig(shell=("/bin/bash", "-o", "pipefail", "-c"))
    cfg, _, _ = _apply("CMD a | b", shell)
    assert cfg.cmd == ("/bin/bash", "-o", "pipefail", "-c", "a | b")


def test_env_sees_values_from_before_the_instruction() -> None:
    cfg, comment, _ = _apply('ENV abc=bye def=$abc ghi="$abc x"', ContainerConfig(env=("abc=hello",)),
                             {"abc": "hello"})
    assert cfg.env_dict() == {"abc": "bye", "def": "hello", "ghi": "hello x"}
    assert comment == "ENV abc=bye def=hello ghi=hello x"


def test_label_expose_volume_user_stopsignal() -> None:
    cfg, comment, _ = _apply('LABEL "a b"=c d=\'$X\' e=$X', env={"X": "x"})
    assert cfg.labels == {"a b": "c", "d": "$X", "e": "x"} and comment == "LABEL a b=c d=$X e=x"
    cfg, comment, _ = _apply("EXPOSE $P 53/udp 7000-7001", env={"P": "80 443"})
    assert cfg.exposed_ports == ("443/tcp", "53/udp", "7000/tcp", "7001/tcp", "80/tcp")
    assert comment == "EXPOSE 443 53/udp 7000-7001 80"
    cfg, comment, _ = _apply('VOLUME ["/a", "/b"]')
    assert cfg.volumes == ("/a", "/b") and comment == "VOLUME [/a /b]"
    cfg, comment, _ = _apply("USER ${U:-app}:grp")
    assert cfg.user == "app:grp" and comment == "USER app:grp"
    cfg, comment, _ = _apply("STOPSIGNAL SIGKILL")
    assert cfg.stop_signal == "SIGKILL"
    with pytest.raises(BuildError):
        _apply("STOPSIGNAL not a signal!")


def test_healthcheck() -> None:
    cfg, comment, _ = _apply("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/")
    assert cfg.healthcheck == Healthcheck(("CMD-SHELL", "curl -f http://localhost/"), interval=5 * 10**9, retries=3)
    assert comment == 'HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/"] "5s" "0s" "0s" \'\\x03\'}'
    cfg, _, _ = _apply('HEALTHCHECK CMD ["true"]')
    assert cfg.healthcheck is not None and cfg.healthcheck.test == ("CMD", "true")
    cfg, _, _ = _apply("HEALTHCHECK NONE")
    assert cfg.healthcheck is not None and cfg.healthcheck.test == ("NONE",)
    with pytest.raises(BuildError):
        _apply("HEALTHCHECK --interval=1ns CMD x")


def test_onbuild_and_shell() -> None:
    cfg, comment, _ = _apply("ONBUILD RUN echo $X")
    assert cfg.on_build == ("RUN echo $X",) and comment == "ONBUILD RUN echo $X"
    cfg, comment, _ = _apply('SHELL ["/bin/bash", "-c"]')
    assert cfg.shell == ("/bin/bash", "-c") and comment == "SHELL [/bin/bash -c]"


def test_workdir_normalization() -> None:
    assert dispatch.normalize_workdir("", "app") == "/app"
    assert dispatch.normalize_workdir("/a", "b/../c") == "/a/c"
    assert dispatch.normalize_workdir("/a", "/abs") == "/abs"


def test_build_arg_scoping() -> None:
    args = BuildArgs({"VERSION": "2", "HTTP_PROXY": "http://p", "UNUSED": "u"})
    args.add_meta("VERSION", "1")
    args.add_meta("BASE", "busybox")
    assert args.meta_env() == {"VERSION": "2", "BASE": "busybox"}
    stage = args.for_stage()
    assert stage.values() == {"HTTP_PROXY": "http://p"}  # meta args are not visible until declared
    stage.add("VERSION", None)  # takes the meta arg's (overridden) value
    stage.add("OTHER", "o")
    stage.add("NOVALUE", None)
    assert stage.values() == {"VERSION": "2", "OTHER": "o", "HTTP_PROXY": "http://p"}
    # ENV of the same name wins; predefined args are in the env but not in the history
    assert stage.filter_allowed(("OTHER=env",)) == ["VERSION=2", "HTTP_PROXY=http://p"]
    assert stage.history_args(()) == ["OTHER=o", "VERSION=2"]
    assert args.unused() == ["UNUSED"]
