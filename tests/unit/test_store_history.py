"""history rows: layers matched to history entries, top first, empty layers with size 0."""

from __future__ import annotations

from pathlib import Path

from pallet.cli.history import history_table
from pallet.engine.images import history_rows, inspect_dict
from pallet.oci.image import History
from tests.support.store_helpers import make_image, new_store, tar_of


def test_history_rows_match_layers(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    l1, l2 = tar_of({"a": b"1" * 1000}), tar_of({"b": b"2" * 3000})
    hist = [
        History(created="2024-01-01T00:00:00Z", created_by="/bin/sh -c #(nop) ADD file:abc in /"),
        History(created="2024-01-01T00:00:01Z", created_by='/bin/sh -c #(nop)  CMD ["sh"]', empty_layer=True),
        History(created="2024-01-02T00:00:00Z", created_by="RUN " + "x" * 60, comment="buildkit"),
    ]
    img = make_image(s, [l1, l2], "h:1", history=hist)
    rows = history_rows(img)
    assert [r["Id"] for r in rows] == [img.id, "<missing>", "<missing>"]
    assert [r["Size"] for r in rows] == [len(l2), 0, len(l1)]
    assert rows[0]["Tags"] == ["h:1"] and rows[0]["Comment"] == "buildkit"
    table = history_table(rows, human=True, no_trunc=False)
    assert table[0]["ID"] == img.id[7:19] and table[0]["CreatedBy"].endswith("…")
    assert len(table[0]["CreatedBy"]) == 45
    assert table[1]["Size"] == "0B"
    raw = history_table(rows, human=False, no_trunc=True)
    assert raw[0]["ID"] == img.id and raw[0]["Size"] == str(len(l2))
    assert raw[0]["CreatedSince"] == "2024-01-02T00:00:00Z"


def test_inspect_dict_docker_fields(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    img = make_image(s, [tar_of({"a": b"1"})], "i:1")
    d = inspect_dict(img)
    for k in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Author", "Config",
              "Architecture", "Os", "Size", "RootFS", "Metadata"):
        assert k in d
    assert d["RootFS"] == {"Type": "layers", "Layers": list(img.config.diff_ids)}
    assert d["Config"]["Cmd"] == ["sh"] and d["Config"]["Entrypoint"] is None
