"""attnkit.datasets: the datasets a notebook fetches where ../shared/data is missing (Colab), tested
against local copies laid out as their sources lay them out (our machines reach no GitHub)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attnkit.datasets import SOURCES, fetch
from attnkit.errors import UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data beside the checkout")


def upstream(tmp_path: Path, name: str) -> str:
    """A file:// address under which ``name``'s files lie where their sources keep them."""
    for source, target, _ in SOURCES[name]:
        where = tmp_path / "upstream" / source
        where.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / target, where)
    return (tmp_path / "upstream").as_uri() + "/"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_fetch_lays_the_files_out_as_shared_data_does(tmp_path, name):
    paths = fetch(name, tmp_path / "data", base=upstream(tmp_path, name))
    for path, (_, target, _) in zip(paths, SOURCES[name]):
        assert path == tmp_path / "data" / target
        assert path.read_bytes() == (SHARED / target).read_bytes()
    assert not list((tmp_path / "data").rglob(".*"))  # no half-written file left


def test_a_file_that_is_there_is_not_fetched_again(tmp_path):
    first = fetch("sst2", tmp_path / "data", base=upstream(tmp_path, "sst2"))
    shutil.rmtree(tmp_path / "upstream")  # the source is gone: nothing may be asked of it
    assert fetch("sst2", tmp_path / "data", base=(tmp_path / "upstream").as_uri() + "/") == first


def test_a_wrong_file_is_refused_and_leaves_nothing(tmp_path):
    base = upstream(tmp_path, "ptb_lm")
    source = tmp_path / "upstream" / SOURCES["ptb_lm"][0][0]
    source.write_bytes(source.read_bytes()[:-10])  # truncated
    with pytest.raises(UserError, match="not the expected file"):
        fetch("ptb_lm", tmp_path / "data", base=base)
    assert not (tmp_path / "data" / SOURCES["ptb_lm"][0][1]).exists()
    assert not list((tmp_path / "data").rglob(".*"))  # no half-written file left


def test_what_cannot_be_fetched_is_one_line(tmp_path):
    with pytest.raises(UserError, match="attnkit fetches"):
        fetch("wikitext", tmp_path)
    with pytest.raises(UserError, match="cannot download"):
        fetch("sst2", tmp_path / "data", base=(tmp_path / "nowhere").as_uri() + "/")
