"""Language-model training end to end on a tiny seeded text, and the n-gram LM through `train`."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from helpers import write_yaml

from attnkit.tasks.language_model import LanguageModel
from attnkit.train import train

WORDS = "the cat dog sat ran on mat log big small".split()


def lines(n: int, seed: int) -> list[str]:
    """A tiny grammar: DET (ADJ) NOUN VERB on DET NOUN."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        adj = [r.choice(["big", "small"])] if r.random() < 0.5 else []
        out.append(" ".join(["the", *adj, r.choice(["cat", "dog"]), r.choice(["sat", "ran"]), "on", "the",
                             r.choice(["mat", "log"])]))
    return out


@pytest.fixture
def lm_corpus(tmp_path) -> dict[str, Path]:
    out = {}
    for split, n, seed in (("train", 400, 0), ("valid", 40, 1), ("test", 40, 2)):
        out[split] = tmp_path / f"{split}.txt"
        out[split].write_text("\n".join(lines(n, seed)) + "\n", encoding="utf-8")
    return out


def lm_config(tmp_path, corpus, model: dict, max_len: int = 16) -> Path:
    raw = {"task": "language_model",
           "data": {k: str(v) for k, v in corpus.items()} | {"max_len": max_len},
           "vocab": {"level": "word"},
           "model": model,
           "training": {"batch_tokens": 128, "lr": 0.01, "schedule": "constant", "warmup_steps": 0,
                        "label_smoothing": 0.0, "valid_every": 50, "patience": 0, "log_every": 10}}
    return write_yaml(tmp_path / "lm.yaml", raw)


# the grammar's true entropy per token: a uniform choice among 2 (or 3 for the optional adjective)
# at some positions; a good model gets close to exp(average of those choices)
@pytest.mark.parametrize("model", [
    {"arch": "lstm_lm", "embed_dim": 16, "hidden": 16, "num_layers": 1, "dropout": 0.0},
    {"arch": "lstm_lm", "embed_dim": 16, "hidden": 16, "num_layers": 1, "dropout": 0.0, "carry_state": False},
    {"arch": "lstm_lm", "embed_dim": 16, "hidden": 16, "num_layers": 1, "dropout": 0.0, "adaptive_softmax": [8]},
    {"arch": "transformer_lm", "d_model": 32, "num_heads": 2, "ff_dim": 64, "num_layers": 2, "dropout": 0.0,
     "attention_dropout": 0.0, "max_positions": 16},
], ids=["lstm", "lstm-shuffled-chunks", "lstm-adaptive-softmax", "transformer"])
def test_tiny_lm_learns_the_grammar(tmp_path, lm_corpus, model):
    summary = train(lm_config(tmp_path, lm_corpus, model), tmp_path / "run", max_steps=300, progress=False)
    ppl = summary["test"]["perplexity"]
    assert ppl < 2.2, summary  # choices: 1.5 adj-or-not, 2 nouns, 2 verbs, 2 nouns in 8 tokens: about 1.4
    lm = LanguageModel.load(tmp_path / "run")
    assert lm.perplexity(lines(40, 2)) < 2.5


def test_untrained_lm_with_uniform_output_has_perplexity_equal_to_the_vocabulary_size(tmp_path, lm_corpus):
    import torch

    model = {"arch": "lstm_lm", "embed_dim": 8, "hidden": 8, "num_layers": 1, "dropout": 0.0}
    train(lm_config(tmp_path, lm_corpus, model), tmp_path / "run", max_steps=1, progress=False)
    lm = LanguageModel.load(tmp_path / "run")
    with torch.no_grad():  # uniform output: zero weights and bias in the softmax layer
        lm.model.W_out.weight.zero_()
        lm.model.W_out.bias.zero_()
    assert lm.perplexity(lines(20, 5)) == pytest.approx(len(lm.tok), rel=1e-4)


def test_kneser_ney_through_train(tmp_path, lm_corpus):
    summary = train(lm_config(tmp_path, lm_corpus, {"arch": "kneser_ney", "order": 3}), tmp_path / "run",
                    progress=False)
    assert summary["stopped"] == "counted" and 1.0 < summary["test"]["perplexity"] < 2.5
    lm = LanguageModel.load(tmp_path / "run")
    assert lm.perplexity(lines(40, 2)) == pytest.approx(summary["test"]["perplexity"], abs=0.01)
    assert math.isfinite(lm.perplexity(["the zebra sat on the moon"]))


@pytest.mark.parametrize("model", [
    {"arch": "lstm_lm", "embed_dim": 16, "hidden": 16, "num_layers": 1, "dropout": 0.0},
    {"arch": "kneser_ney", "order": 3},
], ids=["lstm", "kneser-ney"])
def test_generate_continues_prompts_with_every_search(tmp_path, lm_corpus, model, capsys):
    from attnkit.cli.main import main

    cfg = lm_config(tmp_path, lm_corpus, model)
    assert main(["-q", "train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "300"]) == 0
    capsys.readouterr()
    for method in ("greedy", "beam", "sample"):
        assert main(["-q", "generate", str(tmp_path / "run"), "--prompt", "the big cat", "--method", method,
                     "--seed", "1"]) == 0
        words = capsys.readouterr().out.split()
        assert words and words[0] in ("sat", "ran"), (method, words)  # the grammar's next word is a verb
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the dog\nthe small dog ran\n", encoding="utf-8")
    assert main(["-q", "generate", str(tmp_path / "run"), "--input", str(prompts), "--method", "greedy"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_prompt_longer_than_the_context_is_cut_with_a_warning(tmp_path, lm_corpus, caplog):
    model = {"arch": "transformer_lm", "d_model": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 1,
             "dropout": 0.0, "attention_dropout": 0.0, "max_positions": 16}
    train(lm_config(tmp_path, lm_corpus, model), tmp_path / "run", max_steps=5, progress=False)
    lm = LanguageModel.load(tmp_path / "run")
    text = lm.generate(" ".join(lines(5, 3)), method="greedy", max_tokens=8)
    assert isinstance(text, str)
    assert "longer than the model's context" in caplog.text


# -- truncated backpropagation through time (model.carry_state) --------------------------------------------------

def test_in_order_batches_tile_the_stream_rows():
    import torch

    from attnkit.tasks.language_model import in_order, stream_rows

    ids = torch.arange(4, 4 + 47)  # 46 predictions: 3 rows of 15, read 4 columns at a time (the last 3)
    epoch_batches, make_batch = in_order(ids, chunk=4, batch_tokens=12)
    batches = [make_batch(idx) for idx in epoch_batches(0)]
    x, y = stream_rows(ids, 3)
    assert x.shape == (3, 15) and epoch_batches(1) == epoch_batches(0)
    assert torch.equal(torch.cat([b.tgt_in for b in batches], 1), x)
    assert torch.equal(torch.cat([b.tgt_out for b in batches], 1), y)
    assert torch.equal(y[:, :-1], x[:, 1:])  # each target is the next input
    assert [b.continues for b in batches] == [False, True, True, True]


def test_carried_state_scores_the_rows_as_one_pass_and_cuts_the_graph():
    import torch

    from attnkit.build import build_language_model
    from attnkit.config.models import LSTMLMConfig
    from attnkit.tasks.language_model import in_order, stream_rows
    from attnkit.training.strategies import CarriedState, token_nll

    torch.manual_seed(0)
    model = build_language_model(LSTMLMConfig(embed_dim=8, hidden=8, num_layers=2, dropout=0.0), 20)
    ids = torch.randint(4, 20, (61,))
    epoch_batches, make_batch = in_order(ids, chunk=5, batch_tokens=20)  # 4 rows of 15: 3 batches
    strategy = CarriedState()
    total = 0.0
    for idx in epoch_batches(0):
        loss, n, _ = strategy.loss(model, make_batch(idx), step=0)
        total += loss.item()
        assert not any(h.requires_grad for h in strategy.state.hidden)  # gradients stop at the boundary
    x, y = stream_rows(ids, 4)
    with torch.no_grad():
        whole = token_nll(model(x).logits, y).item()
    assert total == pytest.approx(whole, rel=1e-5)
    first = make_batch(epoch_batches(0)[0])  # continues false: from a zero state, whatever came before
    with torch.no_grad():
        assert strategy.loss(model, first, 0)[0].item() == pytest.approx(token_nll(model(first.tgt_in).logits,
                                                                                   first.tgt_out).item(), rel=1e-6)


def test_adaptive_softmax_cutoffs_past_the_vocabulary_are_a_user_error(tmp_path, lm_corpus):
    from attnkit.errors import UserError

    model = {"arch": "lstm_lm", "embed_dim": 8, "hidden": 8, "num_layers": 1, "adaptive_softmax": [5, 40]}
    with pytest.raises(UserError, match=r"model.adaptive_softmax: cutoffs \[5, 40\] must stay below"):
        train(lm_config(tmp_path, lm_corpus, model), tmp_path / "run", max_steps=1, progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_carry_state_with_another_strategy_is_a_config_error(tmp_path, lm_corpus):
    from attnkit.config import load_config
    from attnkit.errors import UserError

    model = {"arch": "lstm_lm", "embed_dim": 8, "hidden": 8, "num_layers": 1, "dropout": 0.0}
    path = lm_config(tmp_path, lm_corpus, model)
    sampling = ["training.strategy.name=scheduled_sampling"]
    with pytest.raises(UserError, match="carry_state: false"):
        load_config(path, sampling)
    assert load_config(path, [*sampling, "model.carry_state=false"]).model.carry_state is False


@pytest.mark.parametrize("carry", [True, False])
def test_stream_perplexity_scores_every_token_once_in_parallel_rows(carry):
    """Four rows of a 63-token stream (62 predictions: 4 x 15 and 2 left over): its NLL is each row's
    own NLL read alone, the last row continued by the 2 tokens no row holds."""
    import math

    import torch

    from attnkit.build import build_language_model
    from attnkit.config.models import LSTMLMConfig
    from attnkit.tasks.language_model import stream_perplexity

    torch.manual_seed(0)
    model = build_language_model(LSTMLMConfig(embed_dim=8, hidden=8, num_layers=2, dropout=0.0), 20)
    model.carries_state = carry  # False: each chunk read from a zero state, as a Transformer reads its window
    ids = torch.randint(4, 20, (63,))
    chunk = 4 if carry else 15  # without carrying, one chunk a row, so that reading it alone is the same
    nll = lambda part: math.log(stream_perplexity(model, part, chunk, rows=1)) * (part.numel() - 1)  # noqa: E731
    parts = [ids[0:16], ids[15:31], ids[30:46], ids[45:63] if carry else ids[45:61]]
    expected = sum(nll(p) for p in parts)
    if not carry:  # the 2 tokens left over are read from a zero state too
        expected += nll(ids[60:63])
    assert math.log(stream_perplexity(model, ids, chunk, rows=4)) * 62 == pytest.approx(expected, rel=1e-5)
