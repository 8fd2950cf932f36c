"""attnkit.training (schedules, strategies, the Trainer) and attnkit.train.train: resuming an
interrupted run reproduces the uninterrupted one exactly."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import random_src, random_tgt_in, tiny_rnn

import attnkit.tasks.translation as translation_task
from attnkit.build import build_model
from attnkit.checkpoint import load_weights, read_checkpoint
from attnkit.config import TrainingConfig
from attnkit.data.batching import make_batch, token_batches
from attnkit.errors import UserError
from attnkit.specials import PAD
from attnkit.train import train
from attnkit.training.schedule import InverseSqrt, Plateau, Schedule, make_schedule
from attnkit.training.strategies import TeacherForcing, make_strategy, token_nll
from attnkit.training.trainer import BEST, LAST, METRICS, Trainer
from attnkit.translator import load_model_dir

# -- schedules -----------------------------------------------------------------------------------------


def lrs(schedule: Schedule, steps: int) -> list[float]:
    """The learning rate each of updates 1..steps uses (``lr()`` is read before the update)."""
    out = []
    for _ in range(steps):
        out.append(schedule.lr())
        schedule.step()
    return out


def test_inverse_sqrt_peaks_at_warmup_then_decays_as_inverse_sqrt():
    lr, warmup = 2e-3, 100
    values = lrs(make_schedule("inverse_sqrt", lr, warmup, 0.5, 2, 0.0), 1000)
    assert max(values) == pytest.approx(lr)
    assert values.index(max(values)) == warmup - 1  # update number `warmup` uses the peak
    for step in (1, 25, 50, 99):
        assert values[step - 1] == pytest.approx(lr * step / warmup)  # linear warmup
    for step in (100, 400, 900, 1000):
        assert values[step - 1] == pytest.approx(lr * math.sqrt(warmup / step))
        assert values[step - 1] * math.sqrt(step) == pytest.approx(lr * math.sqrt(warmup))
    assert values[399] == pytest.approx(lr / 2)
    assert InverseSqrt(lr, 0).lr() == lr  # no warmup: constant


def test_constant_schedule_with_warmup():
    values = lrs(make_schedule("constant", 1e-3, 10, 0.5, 2, 0.0), 30)
    assert values[4] == pytest.approx(5e-4)
    assert values[9:] == [pytest.approx(1e-3)] * 21
    with pytest.raises(ValueError):
        make_schedule("cosine", 1e-3, 10, 0.5, 2, 0.0)


def test_linear_schedule_warms_up_then_falls_with_the_budget_spent():
    s = make_schedule("linear", 1e-3, 10, 0.5, 2, 0.0)
    assert lrs(s, 5)[4] == pytest.approx(5e-4)  # warmup: update 5 of 10
    s.progress = 0.25
    assert s.lr() == pytest.approx(1e-3 * 0.6 * 0.75)  # update 6: warmup factor 0.6, a quarter spent
    s.progress = 1.0
    assert s.lr() == 0.0
    again = make_schedule("linear", 1e-3, 10, 0.5, 2, 0.0)
    again.load_state_dict(s.state_dict())
    assert again.progress == 1.0 and again.step_count == 5


def test_plateau_halves_after_patience_bad_validations():
    sched = Plateau(1e-3, warmup=0, factor=0.5, patience=2, min_lr=1e-4)
    history = []
    for improved in [True, False, False, False, False, True, False, False, False, False, False, False,
                     False, False, False, False]:
        sched.validated(improved)
        history.append(sched.lr())
    assert history[:3] == [pytest.approx(1e-3)] * 3  # two bad validations: patience
    assert history[3] == pytest.approx(5e-4)  # the third bad one halves
    assert history[4:8] == [pytest.approx(5e-4)] * 4  # the improvement at 5 resets the count
    assert history[8] == pytest.approx(2.5e-4)  # third bad one since the improvement
    assert history[11] == pytest.approx(1.25e-4)
    assert history[-1] == pytest.approx(1e-4)  # floored at min_lr
    state = sched.state_dict()
    clone = Plateau(1e-3, 0, 0.5, 2, 1e-4)
    clone.load_state_dict(json.loads(json.dumps(state)))
    assert clone.lr() == sched.lr() and clone.bad == sched.bad


def test_plateau_matches_torch_reduce_lr_on_plateau():
    values = [1.0, 2.0, 1.5, 1.9, 1.8, 2.5, 2.5, 2.4, 2.1, 2.6, 1.0, 1.0, 1.0, 0.5, 3.0, 2.0, 2.0, 2.0]
    ours = Plateau(1.0, warmup=0, factor=0.5, patience=2, min_lr=0.0)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2, threshold=0.0,
                                                     threshold_mode="abs")
    best = None
    for v in values:
        ours.validated(best is None or v > best)
        best = v if best is None else max(best, v)
        ref.step(v)
        assert ours.lr() == pytest.approx(opt.param_groups[0]["lr"])


# -- strategies ----------------------------------------------------------------------------------------


def test_token_nll_ignores_padding():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9)
    gold = torch.tensor([[5, 6, 3, PAD], [7, 3, PAD, PAD]])
    expected = -sum(float(torch.log_softmax(logits[b, t], -1)[gold[b, t]])
                    for b in range(2) for t in range(4) if gold[b, t] != PAD)
    assert float(token_nll(logits, gold)) == pytest.approx(expected, rel=1e-5)
    noisy = logits.clone()
    noisy[gold == PAD] = 100.0
    assert float(token_nll(noisy, gold, 0.1)) == pytest.approx(float(token_nll(logits, gold, 0.1)), rel=1e-6)
    smoothed = F.cross_entropy(logits.flatten(0, 1), gold.flatten(), ignore_index=PAD, label_smoothing=0.1,
                               reduction="sum")
    assert float(token_nll(logits, gold, 0.1)) == pytest.approx(float(smoothed), rel=1e-6)


def test_teacher_forcing_loss():
    torch.manual_seed(0)
    model = build_model(tiny_rnn(), 13, 13).eval()
    batch = make_batch([[5, 6], [7, 8, 9]], [[4, 4, 4], [5]], [0, 1])
    with torch.no_grad():
        loss, n, stats = make_strategy(TrainingConfig(label_smoothing=0.0)).loss(model, batch, step=0)
        expected = token_nll(model(batch.src, batch.tgt_in).logits, batch.tgt_out)
    assert n == batch.num_tokens == 6
    assert float(loss) == pytest.approx(float(expected))
    assert stats == {}


# -- the Trainer on its own ----------------------------------------------------------------------------


def trainer_for(tmp_path: Path, validate, strategy=None, **cfg_kw) -> Trainer:
    r = random.Random(0)
    src = [[r.randrange(4, 13) for _ in range(r.randint(2, 6))] for _ in range(24)]
    tgt = [s[::-1] for s in src]
    lengths = [(len(s), len(t)) for s, t in zip(src, tgt)]
    cfg = TrainingConfig(**{"batch_tokens": 40, "valid_every": 2, "log_every": 1, "schedule": "constant",
                            "warmup_steps": 0, "lr": 1e-3, "patience": 2, **cfg_kw})
    torch.manual_seed(0)
    model = build_model(tiny_rnn(), 13, 13)
    return Trainer(model, strategy or TeacherForcing(), cfg, tmp_path,
                   epoch_batches=lambda epoch, scale=1: token_batches(lengths, cfg.batch_tokens * scale, cfg.seed,
                                                                       epoch),
                   make_batch=lambda idx: make_batch([src[i] for i in idx], [tgt[i] for i in idx], idx),
                   validate=validate, meta={"what": "test"}, progress=False)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / METRICS).read_text().splitlines()]


def test_trainer_early_stopping_and_best_checkpoint(tmp_path):
    bleus = iter([5.0, 7.0, 6.0, 6.5, 1.0, 9.0])
    trainer = trainer_for(tmp_path, lambda m: {"bleu": next(bleus), "loss": 1.0}, patience=2,
                          early_stopping="bleu")
    result = trainer.run()
    st = result.state
    # best at the 2nd validation (step 4); two validations without improvement (steps 6, 8) stop it
    assert st.stopped == "converged" and st.step == 8 and st.best == 7.0 and st.best_step == 4
    _, doc = read_checkpoint(tmp_path / BEST)
    assert doc["step"] == 4 and doc["valid"]["bleu"] == 7.0 and doc["what"] == "test"
    _, last = read_checkpoint(tmp_path / LAST)
    assert last["loop"]["step"] == 8
    recs = records(tmp_path)
    assert [r["step"] for r in recs if "loss" in r] == list(range(1, 9))
    assert [(r["step"], r["best"]) for r in recs if "valid_bleu" in r] == [(2, True), (4, True), (6, False),
                                                                           (8, False)]


def test_trainer_loss_early_stopping_and_max_epochs(tmp_path):
    losses = iter([3.0, 2.0, 2.5] + [2.9] * 50)
    trainer = trainer_for(tmp_path, lambda m: {"bleu": 0.0, "loss": next(losses)}, early_stopping="loss",
                          patience=0, max_epochs=2)
    result = trainer.run()
    n_batches = len(trainer.epoch_batches(0)) + len(trainer.epoch_batches(1))
    assert result.state.stopped == "max_epochs" and result.state.step == n_batches
    assert result.state.best == 2.0 and result.state.best_step == 4


def test_trainer_max_steps_and_closing_validation(tmp_path):
    trainer = trainer_for(tmp_path, lambda m: {"bleu": 1.0, "loss": 1.0}, valid_every=100)
    result = trainer.run(max_steps=3)
    assert result.state.stopped == "max_steps" and result.state.step == 3
    assert [r["step"] for r in records(tmp_path) if "valid_bleu" in r] == [3]  # validated once at the end
    assert (tmp_path / BEST).is_file()


def test_linear_schedule_reaches_zero_at_the_last_step_or_the_deadline(tmp_path):
    trainer = trainer_for(tmp_path, lambda m: {"bleu": 1.0, "loss": 1.0}, schedule="linear", valid_every=100)
    used, step = [], trainer.train_step

    def spy(batch):
        out = step(batch)
        used.append(trainer.optimizer.param_groups[0]["lr"])
        return out

    trainer.train_step = spy
    trainer.run(max_steps=8)
    assert used == pytest.approx([1e-3 * (1 - k / 8) for k in range(8)])  # update k+1 after k of 8 spent
    trainer.schedule.progress, now = 0.0, time.monotonic()
    spent = trainer.budget(0, now + 100)
    assert spent(0, now + 50) == pytest.approx(0.5, abs=1e-3)  # by time: half the minutes
    trainer.schedule.progress = 0.5  # a resumed run goes on from where its schedule stopped
    assert trainer.budget(0, now + 100)(0, now + 50) == pytest.approx(0.75, abs=1e-3)
    assert trainer.budget(10, now + 100)(8, now + 1) == pytest.approx(0.8)  # whichever is further along
    with pytest.raises(UserError, match="training.schedule: linear decays to zero at the end of the budget"):
        trainer.budget(0, None)
    assert trainer_for(tmp_path / "c", lambda m: {"bleu": 1.0, "loss": 1.0}).budget(0, None) is None


def test_trainer_refuses_a_non_finite_loss(tmp_path):
    class Exploding(TeacherForcing):
        def loss(self, model, batch, step):
            loss, n, stats = super().loss(model, batch, step)
            return loss * float("nan") if step == 2 else loss, n, stats

    trainer = trainer_for(tmp_path, lambda m: {"bleu": 1.0, "loss": 1.0}, strategy=Exploding())
    with pytest.raises(FloatingPointError, match="step 3"):
        trainer.run(max_steps=10)


# -- whole runs: resume reproduces the uninterrupted run -----------------------------------------------


def train_records(out: Path) -> dict[int, dict]:
    return {r["step"]: r for r in records(out) if "loss" in r}


def valid_records(out: Path) -> dict[int, dict]:
    return {r["step"]: r for r in records(out) if "valid_loss" in r}


def assert_same_run(a: Path, b: Path, steps: int = 12):
    ra, rb = train_records(a), train_records(b)
    assert sorted(ra) == sorted(rb) == list(range(1, steps + 1))
    for step in ra:
        assert rb[step]["loss"] == pytest.approx(ra[step]["loss"], abs=1e-6), step
        assert rb[step]["lr"] == pytest.approx(ra[step]["lr"], rel=1e-12)
        assert rb[step]["epoch"] == ra[step]["epoch"]
    va, vb = valid_records(a), valid_records(b)
    for step, rec in va.items():  # b validated at least where a did (plus where it stopped)
        assert vb[step]["valid_loss"] == pytest.approx(rec["valid_loss"], abs=1e-6)
    ga, _ = read_checkpoint(a / LAST)
    gb, _ = read_checkpoint(b / LAST)
    for name, t in ga["model"].items():
        torch.testing.assert_close(gb["model"][name], t, atol=1e-6, rtol=0)
    for name, t in ga["optim"].items():
        torch.testing.assert_close(gb["optim"][name], t, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ["transformer", "rnn"])
def test_resumed_run_reproduces_uninterrupted_run(tmp_path, toy_config, arch):
    cfg = toy_config(arch)
    a = train(cfg, tmp_path / "A", max_steps=12, progress=False)
    assert a["stopped"] == "max_steps" and a["steps"] == 12 and a["epochs"] >= 1  # crosses an epoch
    first = train(cfg, tmp_path / "B", max_steps=5, progress=False)
    assert first["steps"] == 5
    _, doc = read_checkpoint(tmp_path / "B" / LAST)
    assert doc["loop"]["step"] == 5 and doc["loop"]["batch_in_epoch"] > 0  # stopped inside an epoch
    b = train(None, tmp_path / "B", resume=True, max_steps=12, progress=False)
    assert b["steps"] == 12 and b["stopped"] == "max_steps"
    assert_same_run(tmp_path / "A", tmp_path / "B")
    assert b["test"]["bleu"] == a["test"]["bleu"]


def test_sgd_with_momentum_resumes_exactly(tmp_path, toy_config):
    """The SGD optimiser's momentum buffers are checkpointed like Adam's moments."""
    cfg = toy_config("rnn", training={"optimizer": "sgd", "momentum": 0.9, "lr": 0.5, "schedule": "constant"})
    train(cfg, tmp_path / "A", max_steps=12, progress=False)
    train(cfg, tmp_path / "B", max_steps=5, progress=False)
    train(None, tmp_path / "B", resume=True, max_steps=12, progress=False)
    assert_same_run(tmp_path / "A", tmp_path / "B")
    groups, _ = read_checkpoint(tmp_path / "A" / LAST)
    assert any("momentum_buffer" in name for name in groups["optim"])


def test_plain_sgd_steps_against_the_gradient():
    from attnkit.config.sections import TrainingConfig
    from attnkit.training.trainer import make_optimizer

    model = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = make_optimizer(model, TrainingConfig(optimizer="sgd", lr=0.1))
    model(torch.randn(4, 3)).square().sum().backward()
    optimizer.step()
    for p, old in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), old - 0.1 * p.grad)


def test_records_logged_after_the_last_checkpoint_are_taken_again_once(tmp_path, toy_config):
    """A run killed (kill -9) after logging steps its checkpoint does not hold: the resumed run drops
    those records and logs the steps again, so each step is in metrics.jsonl exactly once."""
    cfg = toy_config("rnn")
    train(cfg, tmp_path / "A", max_steps=12, progress=False)
    train(cfg, tmp_path / "B", max_steps=5, progress=False)
    log = tmp_path / "B" / METRICS
    with open(log, "a", encoding="utf-8") as f:  # what the killed run had logged past its checkpoint
        f.write(json.dumps({"step": 6, "epoch": 0, "loss": 99.0, "lr": 0.1, "tokens_per_s": 1.0}) + "\n")
        f.write('{"step": 7, "ep')  # torn mid-write
    train(None, tmp_path / "B", resume=True, max_steps=12, progress=False)
    steps = [r["step"] for r in records(tmp_path / "B") if "loss" in r]
    assert steps == list(range(1, 13))
    assert_same_run(tmp_path / "A", tmp_path / "B")


def interrupt_at(monkeypatch, *steps: int):
    """Make the strategy send SIGINT to this process while computing the loss of the given steps."""
    original = translation_task.make_strategy

    def make(cfg):
        strategy = original(cfg)
        loss = strategy.loss

        def interrupting_loss(model, batch, step):
            if step in steps:
                os.kill(os.getpid(), signal.SIGINT)
            return loss(model, batch, step)

        strategy.loss = interrupting_loss
        return strategy

    monkeypatch.setattr(translation_task, "make_strategy", make)


def test_sigint_stops_after_the_step_and_resume_reproduces(tmp_path, toy_config, monkeypatch):
    cfg = toy_config("transformer")
    train(cfg, tmp_path / "A", max_steps=12, progress=False)
    handler = signal.getsignal(signal.SIGINT)  # SIG_IGN, not Python's default, in a background job
    with monkeypatch.context() as m:
        interrupt_at(m, 6)  # during the 7th update
        summary = train(cfg, tmp_path / "B", max_steps=12, progress=False)
    assert summary["stopped"] == "interrupted" and summary["steps"] == 7
    assert "test" not in summary
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored
    assert max(train_records(tmp_path / "B")) == 7
    train(None, tmp_path / "B", resume=True, max_steps=12, progress=False)
    assert_same_run(tmp_path / "A", tmp_path / "B")


def test_sigint_before_the_first_validation(tmp_path, toy_config, monkeypatch):
    """Stopped before any validation: no best model yet, but last.safetensors is complete and loadable."""
    cfg = toy_config("rnn")
    with monkeypatch.context() as m:
        interrupt_at(m, 0)
        summary = train(cfg, tmp_path / "B", max_steps=12, progress=False)
    assert summary["stopped"] == "interrupted" and summary["steps"] == 1 and summary["valid"] == {}
    out = tmp_path / "B"
    assert not (out / BEST).exists()
    groups, doc = read_checkpoint(out / LAST)
    assert doc["loop"]["step"] == 1
    from attnkit.config import load_config
    from attnkit.data.vocab import load_tokenizer
    saved = load_config(out / "config.yaml")
    tok = load_tokenizer(out, "src", "word")
    model = build_model(saved.model, len(tok), len(tok))
    load_weights(model, groups["model"], doc["aliases"], out / LAST)
    resumed = train(None, out, resume=True, max_steps=4, progress=False)
    assert resumed["steps"] == 4 and (out / BEST).is_file()
    assert load_model_dir(out).translate(["ab cd"], beam=1)[0][0].tokens is not None


def test_training_refuses_to_overwrite_or_resume_nothing(tmp_path, toy_config):
    cfg = toy_config("rnn")
    train(cfg, tmp_path / "run", max_steps=2, progress=False)
    with pytest.raises(UserError, match="already holds a run"):
        train(cfg, tmp_path / "run", max_steps=2, progress=False)
    with pytest.raises(UserError, match="nothing to resume"):
        train(None, tmp_path / "empty", resume=True, progress=False)


def test_empty_training_lines_are_skipped_with_a_warning(tmp_path, toy_config, toy_corpus, caplog):
    src, tgt = toy_corpus / "train.src", toy_corpus / "train.tgt"
    src.write_text(src.read_text() + "\nab cd\n\n")
    tgt.write_text(tgt.read_text() + "cd ab\n\n\n")
    summary = train(toy_config("rnn"), tmp_path / "run", max_steps=3, progress=False)
    assert summary["steps"] == 3
    assert "skipped 3 pair(s) with an empty line" in caplog.text


def test_trained_model_is_in_eval_mode_and_translates(tmp_path, toy_config):
    train(toy_config("transformer"), tmp_path / "run", max_steps=3, progress=False)
    translator = load_model_dir(tmp_path / "run")
    assert not translator.model.training
    src, tgt_in = random_src(vocab=10), random_tgt_in(vocab=10)
    assert translator.model(src, tgt_in).logits.shape[:2] == tgt_in.shape


def test_time_budget_stops_the_run(tmp_path, toy_config):
    summary = train(toy_config("rnn"), tmp_path / "run", max_minutes=1e-6, progress=False)
    assert summary["stopped"] == "time" and summary["steps"] == 1
    assert (tmp_path / "run" / BEST).is_file()  # the closing validation still ran


def test_pairs_longer_than_max_positions_are_skipped_not_fatal(tmp_path, toy_config, toy_corpus, caplog):
    """A sentence longer than the Transformer's positions, in training or validation data, is skipped
    (with a warning that counts it) for the loss, and still translated (cut) for validation BLEU."""
    long = " ".join(["ab"] * 40)
    for split in ("train", "valid"):
        src, tgt = toy_corpus / f"{split}.src", toy_corpus / f"{split}.tgt"
        src.write_text(src.read_text() + long + "\n")
        tgt.write_text(tgt.read_text() + long + "\n")
    config = toy_config("transformer", data={"max_len": 100})  # the model's 32 positions are the limit
    summary = train(config, tmp_path / "run", max_steps=3, progress=False)
    assert summary["steps"] == 3 and "bleu" in summary["valid"]
    assert "skipped 1 training pair(s) of 32 tokens or more" in caplog.text
    assert "line 9: source has 41 tokens, more than the model's limit of 32" in caplog.text
    assert "skipped 1 validation (loss only) pair(s)" in caplog.text


def test_trainer_picks_its_direction_from_the_metric(tmp_path):
    auto = trainer_for(tmp_path / "a", lambda m: {"loss": 1.0})
    assert auto.metric == "loss" and not auto.higher_is_better  # early_stopping: auto, with no task to ask
    for metric, higher in (("bleu", True), ("accuracy", True), ("perplexity", False), ("loss", False)):
        t = trainer_for(tmp_path / metric, lambda m, key=metric: {key: 1.0}, early_stopping=metric)
        assert t.metric == metric and t.higher_is_better == higher


def test_settings_of_another_optimizer_are_errors():
    from pydantic import ValidationError

    from attnkit.config.sections import TrainingConfig

    with pytest.raises(ValidationError, match="momentum is an sgd setting"):
        TrainingConfig(optimizer="adam", momentum=0.9)
    with pytest.raises(ValidationError, match="adam_betas is an adam / adamw setting"):
        TrainingConfig(optimizer="sgd", adam_betas=[0.9, 0.999])
    # a saved run config spells out every default: reading it back is not an error
    saved = TrainingConfig(optimizer="sgd", momentum=0.9).model_dump()
    assert TrainingConfig(**saved).adam_betas == [0.9, 0.98]


# -- a moving average of the weights (training.ema_decay) ---------------------------------------------


def test_weight_average_follows_the_ramped_exponential_average():
    from attnkit.training.averaging import WeightAverage

    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    expected = model.weight.detach().clone()
    for t, value in enumerate([1.0, -2.0, 3.0, 0.5, 4.0, 4.0, -1.0, 2.0, 0.0, 5.0, 5.0, 5.0, 5.0], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        d = min(0.9, (1 + t) / (10 + t))  # 0.18, 0.25, ... until it reaches the decay at t = 81
        assert average.rate() == pytest.approx(d)
        average.update(model)
        expected = d * expected + (1 - d) * value
        torch.testing.assert_close(average.model.weight, expected)
    assert not any(p.requires_grad for p in average.model.parameters())
    assert average.model.weight.data_ptr() != model.weight.data_ptr()


def test_weight_average_keeps_tied_weights_tied():
    from attnkit.training.averaging import WeightAverage

    model = build_model(tiny_rnn(tie_embeddings=True), 13, 13)
    average = WeightAverage(model, decay=0.5)
    average.update(model)
    assert average.model.decoder.W_out.weight is average.model.decoder.embed.weight


def test_the_best_checkpoint_holds_the_average_and_validation_sees_it(tmp_path):
    seen = []
    trainer = trainer_for(tmp_path, lambda m: seen.append(m) or {"bleu": 1.0, "loss": 1.0}, ema_decay=0.5,
                          valid_every=100)
    trainer.run(max_steps=6)
    assert seen == [trainer.average.model] and trainer.average.updates == 6
    groups, _ = read_checkpoint(tmp_path / BEST)
    raw, _ = read_checkpoint(tmp_path / LAST)
    for name, t in trainer.average.model.state_dict().items():
        if name in groups["model"]:
            torch.testing.assert_close(groups["model"][name], t)
    moved = [n for n, t in trainer.model.state_dict().items()
             if n in raw["model"] and not torch.equal(groups["model"][n], raw["model"][n])]
    assert moved  # the raw weights went on past their average, and ``last`` keeps both
    assert any(k.startswith("average.") for k in raw["extra"])


def test_a_run_with_a_weight_average_resumes_exactly(tmp_path, toy_config):
    cfg = toy_config("rnn", training={"ema_decay": 0.8})
    a = train(cfg, tmp_path / "A", max_steps=12, progress=False)
    train(cfg, tmp_path / "B", max_steps=5, progress=False)
    b = train(None, tmp_path / "B", resume=True, max_steps=12, progress=False)
    assert_same_run(tmp_path / "A", tmp_path / "B")
    ga, da = read_checkpoint(tmp_path / "A" / LAST)
    gb, db = read_checkpoint(tmp_path / "B" / LAST)
    assert da["average"]["updates"] == db["average"]["updates"] == 12
    for name, t in ga["extra"].items():
        if name.startswith("average."):
            torch.testing.assert_close(gb["extra"][name], t, atol=1e-6, rtol=0)
    assert b["test"]["bleu"] == a["test"]["bleu"]


def test_resuming_with_a_weight_average_needs_one_in_the_checkpoint(tmp_path, toy_config):
    train(toy_config("rnn"), tmp_path / "A", max_steps=3, progress=False)
    with pytest.raises(UserError, match="written without training.ema_decay"):
        train(None, tmp_path / "A", resume=True, max_steps=6, progress=False,
              overrides=["training.ema_decay=0.9"])
