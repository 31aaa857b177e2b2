"""A jar left truncated in Spark's Ivy directory is removed before a session starts."""

from __future__ import annotations

import zipfile
from pathlib import Path

from resources.spark.resource import retrieved_jars_checked


def test_truncated_retrieved_jars_are_removed_and_whole_ones_kept(tmp_path: Path) -> None:
    jars = tmp_path / "jars"
    jars.mkdir()
    whole = jars / "whole.jar"
    with zipfile.ZipFile(whole, "w") as archive:
        archive.writestr("com/example/Thing.class", b"\xca\xfe\xba\xbe" + bytes(4096))
    truncated = jars / "truncated.jar"
    # As a copy killed halfway leaves it: the start of a jar, no central directory.
    truncated.write_bytes(whole.read_bytes()[:1024])

    with retrieved_jars_checked(str(tmp_path)):
        assert whole.exists()
        assert not truncated.exists()
    assert (tmp_path / ".session-start.lock").exists()
