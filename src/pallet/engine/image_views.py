"""Docker's JSON views of an image: ``image inspect`` and ``history`` rows (pure)."""

from __future__ import annotations

from pallet.oci.image import History
from pallet.store import Image

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import Any


def inspect_dict(img: Image) -> dict[str, Any]:
    c = img.config.config
    cfg: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": c.user,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
    }
    if c.exposed_ports:
        cfg["ExposedPorts"] = {p: {} for p in c.exposed_ports}
    cfg.update(
        {
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": list(c.env) or None,
            "Cmd": list(c.cmd) if c.cmd is not None else None,
        }
    )
    if c.healthcheck is not None:
        cfg["Healthcheck"] = c.healthcheck.to_dict()
    if c.args_escaped:
        cfg["ArgsEscaped"] = True
    cfg.update(
        {
            "Image": "",
            "Volumes": {v: {} for v in c.volumes} or None,
            "WorkingDir": c.working_dir,
            "Entrypoint": list(c.entrypoint) if c.entrypoint is not None else None,
            "OnBuild": list(c.on_build) or None,
            "Labels": dict(c.labels) or None,
        }
    )
    if c.stop_signal:
        cfg["StopSignal"] = c.stop_signal
    if c.shell:
        cfg["Shell"] = list(c.shell)
    d: dict[str, Any] = {
        "Id": img.id,
        "RepoTags": list(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Parent": str(img.config.extra.get("parent", "")),
        "Comment": str(img.config.extra.get("comment", "")),
        "Created": img.created,
        "DockerVersion": str(img.config.extra.get("docker_version", "")),
        "Author": img.config.author,
        "Config": cfg,
        "Architecture": img.config.architecture,
    }
    if img.config.variant:
        d["Variant"] = img.config.variant
    d.update(
        {
            "Os": img.config.os,
            "Size": img.size,
            "GraphDriver": {"Data": None, "Name": "overlayfs"},
            "RootFS": {"Type": "layers", "Layers": list(img.config.diff_ids)},
            "Metadata": {"LastTagTime": img.last_tag_time or "0001-01-01T00:00:00Z"},
            "Descriptor": {
                "mediaType": img.manifest.media_type,
                "digest": img.manifest_digest,
                "size": len(img.manifest.to_json()),
            },
        }
    )
    return d


def history_rows(img: Image) -> list[dict[str, Any]]:
    layers = list(img.manifest.layers)
    hist = list(img.config.history) or [History(created=img.created) for _ in layers]
    rows: list[dict[str, Any]] = []
    li = 0
    for h in hist:
        size = 0
        if not h.empty_layer and li < len(layers):
            size = layers[li].size
            li += 1
        rows.append(
            {"Id": "<missing>", "Created": h.created, "CreatedBy": h.created_by,
             "Size": size, "Comment": h.comment, "Tags": None}
        )
    rows.reverse()
    if rows:
        rows[0]["Id"] = img.id
        rows[0]["Tags"] = list(img.repo_tags) or None
    return rows
