"""`attnkit plot attention | positions | curves`: each writes a non-empty PNG or SVG whose size and
axis labels match its input, read back from the figure, the SVG text and the PNG header."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from attnkit.cli.main import main
from attnkit.layers.positional import sinusoidal_table
from attnkit.plotting import attention_figure, curves_figure, positions_figure
from attnkit.tasks import load_inspector
from attnkit.training.metrics import read_metrics


def svg_texts(path: Path) -> list[str]:
    return [t.text for t in ET.parse(path).iter("{http://www.w3.org/2000/svg}text") if t.text]


def heatmaps(fig) -> list:
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def labels(ticks) -> list[str]:
    return [t.get_text() for t in ticks]


def test_transformer_attention_has_every_layer_and_head_with_tokens_on_both_axes(tiny_runs):
    seen = load_inspector(tiny_runs["transformer"]).inspect("ab cd ef gh")
    source = ["ab", "cd", "ef", "gh", "</s>"]
    fig = attention_figure(seen.attention)
    axes = heatmaps(fig)
    assert len(axes) == 3 * 2 * 2  # encoder, decoder self, cross; 2 layers; 2 heads
    for m in seen.attention:
        mine = [ax for ax in axes if ax.get_title().startswith(m.title)]
        assert len(mine) == m.layers * m.heads
        for ax in mine:
            assert ax.images[0].get_array().shape == (len(m.rows), len(m.cols))
            assert labels(ax.get_xticklabels()) == m.cols and labels(ax.get_yticklabels()) == m.rows
    cross = next(m for m in seen.attention if m.name == "cross")
    assert cross.cols == source and cross.rows == seen.result.nbest[0].text.split() + ["</s>"]


def test_plot_attention_writes_an_svg_with_the_tokens_and_a_png_of_the_figure_size(tiny_runs, tmp_path, capsys):
    run = tiny_runs["rnn"]
    svg, png = tmp_path / "att.svg", tmp_path / "att.png"
    assert main(["plot", "attention", str(run), "--text", "ab cd ef", "--out", str(svg)]) == 0
    assert f"wrote {svg}" in capsys.readouterr().out
    texts = svg_texts(svg)
    for token in ("ab", "cd", "ef", "</s>"):
        assert token in texts
    assert "encoder-decoder attention" in texts
    assert main(["plot", "attention", str(run), "--text", "ab cd ef", "--out", str(png)]) == 0
    seen = load_inspector(run).inspect("ab cd ef")
    (cross,) = seen.attention  # an RNN: one map, one layer, one head
    fig = attention_figure(seen.attention, title="the command's figure has a title")
    (ax,) = heatmaps(fig)
    assert ax.images[0].get_array().shape == (len(cross.rows), 4)
    width, height = fig.get_size_inches() * 100
    assert Image.open(png).size == (round(width), round(height)) and png.stat().st_size > 1000


def test_plot_attention_picks_a_kind_a_layer_and_a_head(tiny_runs, tmp_path):
    out = tmp_path / "cross.svg"
    assert main(["plot", "attention", str(tiny_runs["transformer"]), "--text", "ab cd", "--kind", "cross",
                 "--layer", "2", "--head", "1", "--out", str(out)]) == 0
    texts = svg_texts(out)
    assert any("layer 2, head 1" in t for t in texts) and not any("head 2" in t for t in texts)


@pytest.mark.parametrize(("run", "names"), [("tagger", ["encoder"]), ("transformer_classifier", ["encoder", "pooling"]),
                                            ("classifier", ["pooling"]), ("lm", ["self"])])
def test_taggers_classifiers_and_language_models_plot_the_attention_they_have(tiny_runs, tmp_path, run, names):
    seen = load_inspector(tiny_runs[run]).inspect("ab cd ef")
    assert [m.name for m in seen.attention] == names
    out = tmp_path / f"{run}.svg"
    assert main(["plot", "attention", str(tiny_runs[run]), "--text", "ab cd ef", "--out", str(out)]) == 0
    assert {"ab", "cd", "ef"} <= set(svg_texts(out))


@pytest.mark.parametrize(("argv", "message"), [
    (["--out", "x.jpg"], "give a .png or .svg file name"),
    (["--kind", "pooling"], "--kind pooling: this model has encoder, self, cross"),
    (["--layer", "3"], "--layer 3: the encoder self-attention has layers 1 to 2"),
    (["--head", "3"], "--head 3: the encoder self-attention has heads 1 to 2"),
])
def test_plot_attention_errors_are_one_line(tiny_runs, tmp_path, capsys, argv, message):
    argv = ["plot", "attention", str(tiny_runs["transformer"]), "--text", "ab", "--out", str(tmp_path / "a.png"),
            *argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_plot_positions_draws_the_sentence_tokens_by_the_model_dimensions(tmp_path):
    tokens = ["I", "am", "a", "robot"]
    fig = positions_figure(tokens, sinusoidal_table(4, 32))
    (ax,) = heatmaps(fig)
    assert ax.images[0].get_array().shape == (4, 32)
    assert labels(ax.get_yticklabels()) == ["I (0)", "am (1)", "a (2)", "robot (3)"]
    out = tmp_path / "pos.svg"
    assert main(["plot", "positions", "--text", "I am a robot", "--d-model", "32", "--out", str(out)]) == 0
    assert {"I (0)", "am (1)", "a (2)", "robot (3)"} <= set(svg_texts(out))
    png = tmp_path / "pos.png"
    assert main(["plot", "positions", "--text", "I am a robot", "--d-model", "32", "--out", str(png)]) == 0
    width, height = fig.get_size_inches() * 100
    assert Image.open(png).size == (round(width), round(height))


def test_plot_curves_has_loss_scores_and_learning_rate_panels(tiny_runs, tmp_path):
    run = tiny_runs["transformer"]
    records = read_metrics(run)
    fig = curves_figure(records)
    panels = [ax.get_ylabel() for ax in fig.axes]
    assert panels == ["loss", "BLEU", "chrF", "learning rate"]
    loss = fig.axes[0].get_lines()[0]
    assert list(loss.get_xdata()) == [r["step"] for r in records if "loss" in r]
    assert main(["plot", "curves", str(run)]) == 0  # default: RUN_DIR/curves.png
    assert (run / "curves.png").stat().st_size > 1000
    out = tmp_path / "curves.svg"
    assert main(["plot", "curves", str(run), "--out", str(out)]) == 0
    assert {"loss", "BLEU", "chrF", "learning rate", "step"} <= set(svg_texts(out))


def test_plot_curves_of_a_directory_without_metrics_is_a_one_line_error(tmp_path, capsys):
    assert main(["plot", "curves", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_a_captioner_plots_where_each_word_looked_over_the_image(tiny_runs, tmp_path):
    Image.new("L", (24, 24), 200).save(tmp_path / "scene.png")
    run = tiny_runs["captioner"]
    out = tmp_path / "caption.svg"
    assert main(["plot", "attention", str(run), "--image", str(tmp_path / "scene.png"), "--out", str(out)]) == 0
    seen = load_inspector(run).inspect_image((tmp_path / "scene.png").read_bytes())
    words = seen.result.caption.split() + ["</s>"]
    texts = svg_texts(out)
    assert sum(t in words for t in texts) >= len(words)  # every word titles its picture
    from attnkit.plotting import image_attention_figure

    fig = image_attention_figure(seen.image, seen.attention[0])
    titled = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in titled] == words
    assert titled[0].images[1].get_array().shape == (6, 6)  # the attention over the 6x6 grid of cells


def test_the_captioner_picture_says_which_image_and_which_word(tiny_runs, tmp_path):
    Image.new("L", (24, 24), 200).save(tmp_path / "scene-7.png")
    run = tiny_runs["captioner"]
    out = tmp_path / "caption.svg"
    assert main(["-q", "plot", "attention", str(run), "--image", str(tmp_path / "scene-7.png"), "--out", str(out)]) == 0
    caption = load_inspector(run).inspect_image((tmp_path / "scene-7.png").read_bytes()).result.caption
    texts = svg_texts(out)
    assert any("where it looked in scene-7.png for each word" in t for t in texts)
    assert any(f'"{caption}"' in t for t in texts)


def test_caption_attention_pictures_are_renamed_into_place(tmp_path, monkeypatch):
    """``attnkit caption --attention-dir``: a write that fails leaves the picture that was there, and no
    half-written file."""
    import numpy as np

    from attnkit.errors import UserError
    from attnkit.overlay import save_attention

    pixels, alphas = np.full((8, 8, 1), 100, dtype=np.uint8), np.random.default_rng(0).random((2, 2, 2))
    written = save_attention(tmp_path, "scene", pixels, ["four", "</s>"], alphas)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["scene/01-four.png", "scene/02-__s_.png",
                                                                      "scene.png"]
    before = {p: p.read_bytes() for p in written}
    real = Image.Image.save

    def half(self, fp, format=None, **params):  # a disk that fills up halfway through the picture
        real(self, fp, format=format, **params)
        Path(fp).write_bytes(Path(fp).read_bytes()[:20])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half)
    with pytest.raises(UserError, match="01-four.png: could not be written"):
        save_attention(tmp_path, "scene", pixels, ["four", "</s>"], alphas[::-1])
    assert {p: p.read_bytes() for p in written} == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["01-four.png", "02-__s_.png", "scene.png"]
