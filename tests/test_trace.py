"""Search traces (issue 27): what each step kept, finished and pruned, rebuilt into the hypotheses the
search returned."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import random_model, random_src, tiny_rnn, tiny_transformer

from attnkit.decoding.search import beam_search, greedy
from attnkit.decoding.trace import FINISHED, KEPT, PRUNED, SearchTrace
from attnkit.specials import EOS

CONFIGS = [tiny_transformer(), tiny_rnn()]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["transformer", "rnn"])
@pytest.mark.parametrize("beam,alpha", [(2, 1.0), (4, 0.6), (5, 0.0)])
def test_traced_beam_finishes_with_what_beam_search_returns(cfg, beam, alpha):
    model, src = random_model(cfg), random_src()
    limit = torch.full((src.size(0),), 7)
    plain = beam_search(model, src, beam, limit, alpha, nbest=beam)
    trace = SearchTrace()
    traced = beam_search(model, src, beam, limit, alpha, nbest=beam, trace=trace)
    assert [[h.tokens for h in row] for row in traced] == [[h.tokens for h in row] for row in plain]
    for b, row in enumerate(plain):
        rebuilt = trace.finished(b, beam)
        assert [tokens for tokens, _ in rebuilt] == [h.tokens for h in row]
        assert [c.score for _, c in rebuilt] == pytest.approx([h.score for h in row], abs=1e-6)
        assert [c.log_prob for _, c in rebuilt] == pytest.approx([h.log_prob for h in row], abs=1e-5)
        for t, step in enumerate(trace.steps[b]):
            kept = sorted(c.slot for c in step if c.fate == KEPT)
            assert kept == list(range(len(kept))) and len(kept) <= beam  # the live slots, each once
            assert all(c.token == EOS or t == 6 for c in step if c.fate == FINISHED)  # or at the limit
            if t == 6:
                assert not any(c.fate == KEPT for c in step)  # the last step keeps nothing
            assert len(step) <= 2 * beam and {c.fate for c in step} <= {KEPT, FINISHED, PRUNED}
            if t == 0:
                assert {c.parent for c in step} == {0}  # the first step extends the start alone
            # the kept and finished candidates outrank every pruned one that is not an EOS past the beam
            best_pruned = max((c.log_prob for c in step if c.fate == PRUNED and c.token != EOS), default=None)
            if best_pruned is not None and kept and len(kept) == beam:
                assert min(c.log_prob for c in step if c.fate == KEPT) >= best_pruned


@pytest.mark.parametrize("cfg", CONFIGS, ids=["transformer", "rnn"])
def test_traced_greedy_keeps_the_argmax_and_rebuilds_the_output(cfg):
    model, src = random_model(cfg), random_src()
    limit = torch.full((src.size(0),), 6)
    trace = SearchTrace(width=3)
    out = greedy(model, src, limit, trace=trace)
    assert [row[0].tokens for row in out] == [row[0].tokens for row in greedy(model, src, limit)]
    for b, row in enumerate(out):
        steps = trace.steps[b]
        chosen = [c for step in steps for c in step if c.fate != PRUNED]
        assert len(chosen) == len(steps)  # one hypothesis: one choice per step
        assert all(len(step) <= 3 for step in steps)
        assert all(c.log_prob == max(x.log_prob for x in step) for c, step in zip(chosen, steps))
        tokens = [c.token for c in chosen]
        assert chosen[-1].fate == FINISHED  # by EOS, or at the limit
        assert (tokens[:-1] if tokens[-1] == EOS else tokens) == row[0].tokens
        assert chosen[-1].log_prob == pytest.approx(row[0].log_prob, abs=1e-5)


def test_translate_trace_prints_the_steps_and_the_same_translations(model_dir, tmp_path, capsys):
    from attnkit.cli.main import main

    text = tmp_path / "in.txt"
    text.write_text("ab cd ef\n\ngh ij\n", encoding="utf-8")
    assert main(["-q", "translate", str(model_dir), "--input", str(text), "--beam", "3"]) == 0
    plain = capsys.readouterr().out
    assert main(["-q", "translate", str(model_dir), "--input", str(text), "--beam", "3", "--trace"]) == 0
    traced = capsys.readouterr()
    assert traced.out == plain  # the trace goes to stderr; stdout is what translate always writes
    err = traced.err
    assert err.count("line ") == 3 and "(beam 3): ab cd ef" in err and "step 1:" in err
    assert "kept[0]" in err and "finished" in err  # (this 6-step model ends every line at its limit, without </s>)


def test_plot_beam_draws_the_tree(model_dir, tmp_path):
    from attnkit.cli.main import main
    from attnkit.translator import load_model_dir

    out = tmp_path / "beam.svg"
    assert main(["-q", "plot", "beam", str(model_dir), "--text", "ab cd ef", "--beam", "2", "--out", str(out)]) == 0
    translations, steps = load_model_dir(model_dir).trace("ab cd ef", 2)
    svg = out.read_text()
    assert "beam 2: ab cd ef" in svg and "best finished hypothesis" in svg
    first = max(steps[0], key=lambda c: c["log_prob"])
    assert f"{first['log_prob']:.2f}" in svg
    assert len(translations) == 2 and translations[0].score >= translations[1].score


def test_a_hypothesis_finished_by_eos_reads_with_its_end_one_at_the_limit_without():
    from attnkit.decoding.trace import Candidate, readable

    trace = SearchTrace()
    trace.record(0, [Candidate(0, 5, -1.0, KEPT, slot=0), Candidate(0, EOS, -2.0, FINISHED, score=-2.0),
                     Candidate(0, 7, -4.0, PRUNED)])
    trace.record(0, [Candidate(0, 6, -3.0, FINISHED, score=-1.5)])  # the sentence's last step: no EOS
    steps = readable(trace, 0, lambda ids: " ".join(map(str, ids)), str)
    assert [[c["text"] for c in step] for step in steps] == [["5", "</s>", "7"], ["5 6"]]
    assert [tokens for tokens, _ in trace.finished(0)] == [[5, 6], []]  # by score, EOS left out
    assert [tokens for tokens, _ in trace.finished(0, beam=1)] == [[]]  # the most probable one


class Bigram:
    """A decoder whose next token depends on the last one only (the decoder contract, no model): from
    <s>, 4 (p 0.6) or 5 (0.3); after 4, 6 (0.7) or </s> (0.2); after 5 or 6, </s> (0.8); the rest of
    each row's probability spread over the other tokens a search may produce (not <pad> or <s>)."""

    def __init__(self):
        table = torch.zeros(8, 8)
        rules = {2: {4: 0.6, 5: 0.3}, 4: {6: 0.7, EOS: 0.2}, 5: {EOS: 0.8}, 6: {EOS: 0.8}}
        for row in range(8):
            given = rules.get(row, {})
            others = [t for t in range(8) if t not in given and t not in (0, 2)]
            table[row, others] = (1.0 - sum(given.values())) / len(others)
            for token, p in given.items():
                table[row, token] = p
        self.logits = table.log()

    def step(self, tokens, state):
        return self.logits[tokens], state

    def reorder(self, state, index):
        return state


def finished_by_text(steps: list[list[dict]]) -> dict[str, tuple[float, float]]:
    return {c["text"]: (c["log_prob"], c["score"]) for step in steps for c in step if c["fate"] == FINISHED}


@pytest.mark.parametrize("alpha", [1.0, 0.6, 0.0])
def test_a_hypothesis_has_the_same_log_prob_and_score_in_a_greedy_and_a_beam_trace(alpha):
    """The greedy picture showed 'score -3.26' where the beam picture showed -1.63 for the same hypothesis:
    greedy's score is its raw log P (it ranks nothing), beam search's log P / lp(|Y|). ``normalised``
    scores both as beam search does."""
    from attnkit.decoding.search import beam_decode, greedy_decode, length_penalty
    from attnkit.decoding.trace import normalised, readable

    start, limit = torch.tensor([2]), torch.tensor([5])
    seen = {}
    for beam in (1, 3):
        trace = SearchTrace()
        if beam == 1:
            ((hyp,),) = greedy_decode(Bigram(), None, start, limit, trace=trace)
            assert hyp.score == hyp.log_prob  # what greedy returns is unchanged: its raw log P
        else:
            beam_decode(Bigram(), None, start, beam, limit, alpha, nbest=beam, trace=trace)
        raw = readable(trace, 0, lambda ids: " ".join(map(str, ids)), str)
        seen[beam] = finished_by_text(normalised(raw, alpha))
        if beam > 1:  # beam search's own scores are the ones normalised computes
            assert all(pair == pytest.approx(seen[beam][text]) for text, pair in finished_by_text(raw).items())
    log_p = math.log(0.6 * 0.7 * 0.8)
    assert list(seen[1]) == ["4 6 </s>"]
    assert seen[1]["4 6 </s>"] == pytest.approx((log_p, log_p / length_penalty(3, alpha)), abs=1e-6)
    assert seen[3]["4 6 </s>"] == pytest.approx(seen[1]["4 6 </s>"], abs=1e-6) and len(seen[3]) >= 2


def test_plot_beam_shows_log_p_and_the_score_of_a_finished_hypothesis(model_dir, tmp_path):
    from attnkit.cli.main import main
    from attnkit.decoding.search import length_penalty
    from attnkit.translator import load_model_dir

    translator = load_model_dir(model_dir)
    alpha = translator.cfg.decoding.length_penalty
    _, steps = translator.trace("ab cd ef", 1)
    (last,) = [c for c in steps[-1] if c["fate"] == FINISHED]
    length = len(steps) + (0 if last["token"] == EOS else 1)  # (this model ends at its limit, without </s>)
    score = last["log_prob"] / length_penalty(length, alpha)
    assert alpha > 0 and f"{score:.2f}" != f"{last['log_prob']:.2f}"
    for beam in (1, 2):
        out = tmp_path / f"beam{beam}.svg"
        assert main(["-q", "plot", "beam", str(model_dir), "--text", "ab cd ef", "--beam", str(beam),
                     "--out", str(out)]) == 0
        svg = out.read_text()
        assert "log P" in svg and f"alpha = {alpha:g}" in svg
    svg = (tmp_path / "beam1.svg").read_text()
    assert f"log P {last['log_prob']:.2f}" in svg and f"score {score:.2f}" in svg
