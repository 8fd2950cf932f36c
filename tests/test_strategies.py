"""Training strategies beyond teacher forcing: scheduled sampling, parallel scheduled sampling,
professor forcing. Each is pinned to teacher forcing where it must equal it, to greedy decoding where
it must feed the model's own predictions, and to its schedule's formulas."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import random_src, random_tgt_in, randomize, tiny_rnn, tiny_transformer

from attnkit.build import build_language_model, build_model
from attnkit.checkpoint import read_checkpoint
from attnkit.config import LSTMLMConfig, TrainingConfig, TransformerLMConfig
from attnkit.config.strategies import (
    ParallelScheduledSamplingConfig,
    ProfessorForcingConfig,
    ScheduledSamplingConfig,
)
from attnkit.data.batching import Batch
from attnkit.decoding.rollout import DecoderView, rollout
from attnkit.decoding.search import greedy_decode
from attnkit.specials import BOS, EOS, PAD
from attnkit.train import train
from attnkit.training.professor_forcing import ProfessorForcing
from attnkit.training.scheduled_sampling import ParallelScheduledSampling, ScheduledSampling, eps_schedule
from attnkit.training.strategies import TeacherForcing, make_strategy
from attnkit.training.trainer import LAST

VOCAB = 13


def translation_batch() -> Batch:
    tgt_in = random_tgt_in()
    tgt_out = torch.cat([tgt_in[:, 1:], torch.zeros_like(tgt_in[:, :1])], 1)
    lengths = (tgt_in != PAD).sum(1)
    tgt_out[torch.arange(tgt_in.size(0)), lengths - 1] = EOS
    return Batch(random_src(), tgt_in, tgt_out, list(range(tgt_in.size(0))))


def lm_batch():
    from attnkit.tasks.language_model import LMBatch

    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(4, VOCAB, (4, 9), generator=g)
    return LMBatch(tokens[:, :-1], tokens[:, 1:], [0, 1, 2, 3])


def model_and_batch(kind: str, dropout: float = 0.0):
    torch.manual_seed(0)
    if kind == "rnn":
        model = build_model(tiny_rnn(dropout=dropout, input_feeding=False), VOCAB, VOCAB)
    elif kind == "rnn_feeding":
        model = build_model(tiny_rnn(dropout=dropout), VOCAB, VOCAB)
    elif kind == "transformer":
        model = build_model(tiny_transformer(dropout=dropout, attention_dropout=dropout), VOCAB, VOCAB)
    elif kind == "lstm_lm":
        model = build_language_model(LSTMLMConfig(embed_dim=8, hidden=8, num_layers=2, dropout=dropout), VOCAB)
    else:
        model = build_language_model(TransformerLMConfig(d_model=16, num_heads=2, ff_dim=24, num_layers=2,
                                                         dropout=dropout, attention_dropout=dropout,
                                                         max_positions=32), VOCAB)
    randomize(model, std=0.5)  # a fresh model repeats one token: too easy to agree with
    return model, (lm_batch() if kind.endswith("_lm") else translation_batch())


KINDS = ("rnn", "rnn_feeding", "transformer", "lstm_lm", "transformer_lm")


def loss_and_grads(strategy, model, batch, seed: int = 11):
    torch.manual_seed(seed)
    model.zero_grad()
    loss, n, _ = strategy.loss(model, batch, step=0)
    (loss / n).backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def assert_same(a, b):
    assert torch.equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert torch.equal(a[1][k], b[1][k]), k


# -- schedules -----------------------------------------------------------------------------------------------

def test_eps_schedules_hit_their_documented_values():
    def cfg(**kw):
        return ScheduledSamplingConfig(name="scheduled_sampling", **kw)

    linear = cfg(schedule="linear", k=1.0, c=0.001, eps_min=0.1)
    assert [eps_schedule(linear, i) for i in (0, 250, 500, 900, 5000)] == pytest.approx([1.0, 0.75, 0.5, 0.1, 0.1])
    exponential = cfg(schedule="exponential", k=0.99)
    assert eps_schedule(exponential, 0) == 1.0
    assert eps_schedule(exponential, 100) == pytest.approx(0.99**100)  # 0.366
    inverse = cfg(schedule="inverse_sigmoid", k=10.0)
    assert eps_schedule(inverse, 0) == pytest.approx(10 / 11)
    assert eps_schedule(inverse, round(10 * math.log(10) * 1000) / 1000) == pytest.approx(0.5, abs=1e-4)
    assert eps_schedule(inverse, 10**9) == 0.0  # no overflow far out
    assert eps_schedule(cfg(schedule="constant", k=0.3), 12345) == 0.3
    # every schedule only falls
    for c in (linear, exponential, inverse):
        values = [eps_schedule(c, i) for i in range(0, 3000, 50)]
        assert values == sorted(values, reverse=True)


def test_strategy_config_names_and_errors():
    from attnkit.config import parse_config
    from attnkit.errors import UserError

    tagging = {"task": "tagging", "data": {"train": "a", "valid": "b"}}
    for training, what in (({"strategy": "professor_forcing"}, "learns from its labels"),
                           ({"init_from": "runs/x"}, "starts from scratch")):
        with pytest.raises(UserError, match=what):
            parse_config({**tagging, "training": training}, "t.yaml")
    assert TrainingConfig(strategy="teacher_forcing").strategy.name == "teacher_forcing"
    s = TrainingConfig(strategy={"name": "parallel_scheduled_sampling", "passes": 3}).strategy
    assert isinstance(make_strategy(TrainingConfig(strategy=s)), ParallelScheduledSampling)
    with pytest.raises(ValueError, match="inverse_sigmoid schedule needs k >= 1"):
        ScheduledSamplingConfig(name="scheduled_sampling", schedule="inverse_sigmoid", k=0.5)
    with pytest.raises(ValueError, match="slope"):
        ScheduledSamplingConfig(name="scheduled_sampling", schedule="linear", k=1.0)


# -- scheduled sampling ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_scheduled_sampling_with_eps_1_is_teacher_forcing_exactly(kind):
    model, batch = model_and_batch(kind, dropout=0.2)  # dropout on: the same random masks too
    model.train()
    ss = ScheduledSampling(ScheduledSamplingConfig(name="scheduled_sampling", schedule="constant", k=1.0), 0.1)
    assert_same(loss_and_grads(ss, model, batch), loss_and_grads(TeacherForcing(0.1), model, batch))


@pytest.mark.parametrize("kind", KINDS)
def test_rollout_with_eps_0_feeds_exactly_the_greedy_predictions(kind):
    model, batch = model_and_batch(kind)
    model.eval()
    view = DecoderView(model, batch)
    fed = rollout(view, batch.tgt_in, eps=0.0, feed="greedy")
    B, T = batch.tgt_in.shape
    limit = torch.full((B,), T)
    hyps = greedy_decode(view.decoder, view.init_state(), batch.tgt_in[:, 0], limit, 0)
    for b in range(B):
        n = int((batch.tgt_in[b] != PAD).sum()) - 1  # inputs fed after the first
        own = (hyps[b][0].tokens + [EOS])[:n]  # greedy stops after EOS; the rollout goes on
        assert fed[b, 1 : 1 + len(own)].tolist() == own
        assert (fed[b, 1 + n :] == PAD).all()


@pytest.mark.parametrize("kind", ("rnn", "rnn_feeding", "transformer", "lstm_lm"))
def test_scheduled_sampling_logits_equal_stepping_through_the_fed_inputs(kind):
    """The loss is taken on one teacher-forced pass over the fed inputs: the same logits as the
    step-by-step decode that produced them."""
    model, batch = model_and_batch(kind)
    model.eval()
    view = DecoderView(model, batch)
    torch.manual_seed(3)
    fed = rollout(view, batch.tgt_in, eps=0.5, feed="sample")
    assert 0 < (fed[:, 1:] != batch.tgt_in[:, 1:]).sum()  # some inputs are the model's own
    with torch.no_grad():
        full = view.forward(fed).logits
        state, steps = view.init_state(), []
        for i in range(fed.size(1)):
            logits, state = view.decoder.step(fed[:, i], state)
            steps.append(logits)
    real = batch.tgt_out != PAD
    torch.testing.assert_close(torch.stack(steps, 1)[real], full[real], atol=1e-5, rtol=1e-5)


def test_scheduled_sampling_logs_its_eps():
    model, batch = model_and_batch("rnn")
    cfg = ScheduledSamplingConfig(name="scheduled_sampling", schedule="linear", k=1.0, c=0.25)
    _, _, stats = ScheduledSampling(cfg).loss(model.train(), batch, step=2)
    assert stats["eps"] == 0.5
    assert 0.0 <= stats["gold_inputs"] <= 1.0


# -- parallel scheduled sampling -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_parallel_scheduled_sampling_with_one_pass_is_teacher_forcing_exactly(kind):
    model, batch = model_and_batch(kind, dropout=0.2)
    model.train()
    pss = ParallelScheduledSampling(ParallelScheduledSamplingConfig(
        name="parallel_scheduled_sampling", passes=1, schedule="constant", k=0.0), 0.1)
    assert_same(loss_and_grads(pss, model, batch), loss_and_grads(TeacherForcing(0.1), model, batch))


@pytest.mark.parametrize("kind", ("transformer", "rnn", "transformer_lm"))
def test_parallel_second_pass_reads_the_first_pass_argmax(kind):
    model, batch = model_and_batch(kind)
    model.eval()
    view = DecoderView(model, batch)
    cfg = ParallelScheduledSamplingConfig(name="parallel_scheduled_sampling", passes=2, schedule="constant",
                                          k=0.0, feed="greedy")
    fed = ParallelScheduledSampling(cfg).inputs(view, batch.tgt_in, eps=0.0)
    with torch.no_grad():
        logits = view.forward(batch.tgt_in).logits.clone()
    logits[..., PAD] = logits[..., BOS] = float("-inf")  # never PAD or BOS
    expected = torch.cat([batch.tgt_in[:, :1], logits[:, :-1].argmax(-1)], 1).masked_fill(batch.tgt_in == PAD, PAD)
    assert torch.equal(fed, expected)


# -- professor forcing ------------------------------------------------------------------------------------------

def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("kind", ("rnn", "transformer", "lstm_lm"))
def test_professor_forcing_updates_touch_only_their_own_side(kind):
    model, batch = model_and_batch(kind)
    model.train()
    pf = ProfessorForcing(ProfessorForcingConfig(name="professor_forcing", disc_hidden=8, weight=1.0,
                                                 generator_min_accuracy=0.0, discriminator_max_accuracy=1.0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(2)
    pf.loss(model, batch, step=0)  # builds the discriminator and updates it once
    model_before, disc_before = snapshot(model), snapshot(pf.discriminator)
    loss, n, stats = pf.loss(model, batch, step=1)  # the discriminator's update happens here ...
    assert changed(model_before, model) == set()  # ... and leaves the model alone
    assert changed(disc_before, pf.discriminator) == set(disc_before)
    assert stats["adversarial"] > 0 and 0.0 <= stats["d_accuracy"] <= 1.0
    # per sequence, as in the paper: the summed token NLL plus one adversarial cost per sequence
    sequences = batch.tgt_out.size(0)
    assert loss.item() == pytest.approx(stats["nll"] * n + 1.0 * sequences * stats["adversarial"], rel=1e-5)
    disc_after = snapshot(pf.discriminator)
    optimizer.zero_grad()
    (loss / n).backward()  # the model's update ...
    assert all(p.grad is None for p in pf.discriminator.parameters())
    optimizer.step()
    assert changed(disc_after, pf.discriminator) == set()  # ... leaves the discriminator alone
    assert changed(model_before, model)  # and does change the model
    # the adversarial term reaches the model: without it the gradients differ
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    torch.manual_seed(4)
    weightless = ProfessorForcing(ProfessorForcingConfig(name="professor_forcing", disc_hidden=8, weight=0.0))
    model.zero_grad()
    loss0, n0, _ = weightless.loss(model, batch, step=0)
    (loss0 / n0).backward()
    assert any(not torch.allclose(grads[k], p.grad) for k, p in model.named_parameters() if p.grad is not None)


def test_professor_forcing_state_round_trips():
    model, batch = model_and_batch("rnn")
    cfg = ProfessorForcingConfig(name="professor_forcing", disc_hidden=8)
    pf = ProfessorForcing(cfg)
    pf.loss(model.train(), batch, step=0)
    tensors, doc = pf.state_dict()
    copy = ProfessorForcing(cfg)
    copy.load_state_dict(tensors, json.loads(json.dumps(doc)))
    for k, v in pf.discriminator.state_dict().items():
        assert torch.equal(copy.discriminator.state_dict()[k], v)
    assert copy.optimizer.state_dict()["state"].keys() == pf.optimizer.state_dict()["state"].keys()


# -- through the trainer ---------------------------------------------------------------------------------------

def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_strategies_train_end_to_end_and_log_their_stats(tmp_path, toy_config):
    ss = {"name": "scheduled_sampling", "schedule": "linear", "k": 1.0, "c": 0.1}
    cfg = toy_config("rnn", training={"strategy": ss, "log_every": 2})
    summary = train(cfg, tmp_path / "ss", max_steps=6, progress=False)
    assert summary["steps"] == 6
    eps = [r["eps"] for r in metrics(tmp_path / "ss") if "eps" in r]
    assert eps == pytest.approx([0.95, 0.75, 0.55])  # the mean eps of steps 0-1, 2-3, 4-5
    pf = {"name": "professor_forcing", "disc_hidden": 8}
    cfg = toy_config("transformer", name="pf.yaml", training={"strategy": pf, "log_every": 2})
    train(cfg, tmp_path / "pf", max_steps=4, progress=False)
    assert all("d_accuracy" in r and "nll" in r for r in metrics(tmp_path / "pf") if "loss" in r)


def test_professor_forcing_resume_reproduces_the_run(tmp_path, toy_config):
    from test_training import assert_same_run

    pf = {"name": "professor_forcing", "disc_hidden": 8, "generator_min_accuracy": 0.0}
    cfg = toy_config("rnn", training={"strategy": pf})
    train(cfg, tmp_path / "A", max_steps=12, progress=False)
    train(cfg, tmp_path / "B", max_steps=7, progress=False)
    groups, _ = read_checkpoint(tmp_path / "B" / LAST)
    assert any(k.startswith("strategy.disc.") for k in groups["extra"])  # the discriminator is kept
    train(None, tmp_path / "B", resume=True, max_steps=12, progress=False)
    assert_same_run(tmp_path / "A", tmp_path / "B")


# -- the exposure-bias diagnostic -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ("rnn", "transformer"))
def test_exposure_bias_is_zero_when_the_references_are_the_models_own_output(kind):
    from attnkit.decoding.search import greedy
    from attnkit.diagnostics import exposure_bias

    model, _ = model_and_batch(kind)
    model.eval()
    src = random_src()
    hyps = greedy(model, src, torch.full((src.size(0),), 6))
    src_ids = [[t for t in row.tolist() if t not in (PAD, EOS)] for row in src]
    own = [h[0].tokens for h in hyps]
    x = exposure_bias(model, src_ids, own, max_position=4)
    assert x["teacher_forced"] == x["self_fed"] and x["nll_gap"] == 0.0
    assert sum(x["tokens"]) == sum(len(t) + 1 for t in own)  # every reference token and its EOS
    # other references: position 0 reads only BOS either way; later the two readings part
    g = torch.Generator().manual_seed(9)
    other = [torch.randint(4, VOCAB, (6,), generator=g).tolist() for _ in src_ids]
    y = exposure_bias(model, src_ids, other, max_position=8)
    assert y["teacher_forced"]["nll"][0] == y["self_fed"]["nll"][0]
    assert y["teacher_forced"]["nll"][1:] != y["self_fed"]["nll"][1:]


def test_evaluate_exposure_flag(model_dir, capsys):
    from attnkit.cli.main import main

    data = model_dir.parent / "data"
    assert main(["-q", "evaluate", str(model_dir), "--src", str(data / "test.src"), "--ref", str(data / "test.tgt"),
                 "--beam", "1", "--exposure", "--json"]) == 0
    x = json.loads(capsys.readouterr().out)["exposure"]
    assert {"teacher_forced", "self_fed", "nll_gap", "accuracy_gap", "tokens"} <= x.keys()
    assert sum(x["tokens"]) > 0
    assert main(["-q", "evaluate", str(model_dir), "--src", str(data / "test.src"), "--ref", str(data / "test.tgt"),
                 "--beam", "1", "--exposure"]) == 0
    assert "exposure bias:" in capsys.readouterr().out


# -- starting from a trained model (the experiments' fine-tuning) --------------------------------------------

def test_init_from_starts_from_the_models_weights_and_tokenizers(tmp_path, toy_config, model_dir):
    from attnkit.config import load_config
    from attnkit.errors import UserError
    from attnkit.translator import load_model_dir

    base = load_model_dir(model_dir)
    ss = {"name": "scheduled_sampling", "schedule": "constant", "k": 0.5}
    cfg = toy_config("transformer", training={"init_from": str(model_dir), "strategy": ss},
                     model={"max_positions": 12})
    out = tmp_path / "tuned"
    train(cfg, out, max_steps=1, progress=False)
    tuned = load_model_dir(out)
    assert tuned.src_tok.itos == base.src_tok.itos  # the tokenizer came along, none was trained
    assert load_config(out / "config.yaml").training.init_from == str(model_dir.resolve())
    # one update away from the base weights: close, not equal
    moved = [float((a - b).abs().max()) for a, b in zip(tuned.model.state_dict().values(),
                                                       base.model.state_dict().values())]
    assert 0 < max(moved) < 0.1
    # a model of another shape does not fit, and says so
    bad = toy_config("transformer", name="bad.yaml", training={"init_from": str(model_dir)}, model={"d_model": 32})
    with pytest.raises(UserError, match="weights do not fit"):
        train(bad, tmp_path / "bad", max_steps=1, progress=False)
    with pytest.raises(UserError, match="not a trained model directory"):
        train(toy_config("rnn", name="b2.yaml", training={"init_from": str(tmp_path)}), tmp_path / "b2",
              max_steps=1, progress=False)
