"""bench/course.sh, which draws the course's pictures (docs/course/img): it draws every one of them, and
where the runs behind page 2 are missing it redraws by-length.png from the numbers the repository has."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "course.sh"
IMG = ROOT / "docs" / "course" / "img"


def drawn() -> list[re.Pattern]:
    """The pictures course.sh writes (--out $img/NAME), a $variable in a name matching any word, and
    those it copies from the notebooks' folder (``for picture in NAME...; ... cp ... $img/$picture.png``)."""
    script = SCRIPT.read_text(encoding="utf-8")
    outs = re.findall(r"--(?:out|plot) \$img/(\S+)", script)
    patterns = [re.compile("[^/]+".join(map(re.escape, re.split(r"\$\w+", out))) + "$") for out in outs]
    for names, body in re.findall(r"for picture in ([^;]+); do(.*?)\ndone", script, re.S):
        if "cp course-img/$picture.png $img/$picture.png" in body:
            patterns += [re.compile(re.escape(f"{name}.png") + "$") for name in names.split()]
    return patterns


def test_course_sh_draws_every_picture_of_the_course():
    patterns = drawn()
    pictures = sorted(p.name for p in IMG.glob("*.png"))
    assert "caption-attention.png" in pictures and "by-length.png" in pictures
    for name in pictures:
        assert any(p.match(name) for p in patterns), f"bench/course.sh does not draw {name}"
    script = SCRIPT.read_text(encoding="utf-8")
    assert "train course-digits-captioner configs/digits-captioner.yaml" in script
    assert "plot attention runs/course-digits-captioner --image $scene --out $img/caption-attention.png" in script


def test_course_sh_redraws_by_length_from_its_numbers_with_the_models_named(tmp_path, capsys):
    from attnkit.cli.main import main

    script = SCRIPT.read_text(encoding="utf-8")
    assert "by_length --from-json $img/by-length.json" in script
    body = re.search(r"by_length\(\) \{.*?\n\}", script, re.S).group(0)  # the function that draws it
    labels = re.findall(r'--label "([^"]+)"', body)
    numbers = json.loads((IMG / "by-length.json").read_text(encoding="utf-8"))
    runs = list(numbers["1"])
    assert len(labels) == len(runs) == len(set(labels)) == 7
    out = tmp_path / "by-length.svg"
    assert main(["-q", "plot", "by-length", "--from-json", str(IMG / "by-length.json"), "--out", str(out),
                 *[f"--label={name}" for name in labels]]) == 0
    printed = capsys.readouterr().out
    assert all(f"| {name} |" in printed for name in labels) and "runs/" not in printed
    svg = out.read_text(encoding="utf-8")
    assert all(name in svg for name in labels) and "runs/" not in svg
