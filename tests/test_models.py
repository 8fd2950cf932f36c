"""attnkit.models: the decoder contract (incremental == teacher-forced), attention weights through
whole models, padding invariance, sizes and weight tying."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import (
    RNN_CONTEXTS,
    random_model,
    random_src,
    random_tgt_in,
    tiny_rnn,
    tiny_transformer,
)

from attnkit.build import build_model
from attnkit.config import RNNConfig, TransformerConfig
from attnkit.data.batching import pad
from attnkit.errors import UserError
from attnkit.specials import EOS, PAD

RNN_VARIANTS = [
    pytest.param({"context": ctx, "cell": cell, "input_feeding": feed},
                 id=f"{ctx}-{cell}-{'feed' if feed else 'nofeed'}")
    for ctx, cell, feed in itertools.product(RNN_CONTEXTS, ["lstm", "gru"], [True, False])
]
TRANSFORMER_VARIANTS = [
    pytest.param({"positional": pos, "norm": norm}, id=f"{pos}-{norm}")
    for pos, norm in itertools.product(["sinusoidal", "learned"], ["pre", "post"])
]
ABLATIONS = [pytest.param({"norm": "none"}, id="no-layernorm"),  # (their activations grow: weights may underflow)
             pytest.param({"norm": "pre", "residual": False}, id="pre-no-residual"),
             pytest.param({"norm": "post", "residual": False}, id="post-no-residual")]


def incremental_logits(model, src, tgt_in):
    """Logits (B, T, V) from init_state + one step per target position."""
    decoder = model.decoder
    state = decoder.init_state(model.encode(src))
    steps = []
    for t in range(tgt_in.size(1)):
        logits, state = decoder.step(tgt_in[:, t], state)
        steps.append(logits)
    return torch.stack(steps, dim=1)


def check_incremental(model):
    src, tgt_in = random_src(), random_tgt_in()
    with torch.no_grad():
        full = model(src, tgt_in).logits
        inc = incremental_logits(model, src, tgt_in)
    assert full.shape == inc.shape == (6, tgt_in.size(1), 13)
    torch.testing.assert_close(inc, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", RNN_VARIANTS)
def test_rnn_incremental_equals_teacher_forced(kw):
    check_incremental(random_model(tiny_rnn(**kw)))


@pytest.mark.parametrize("kw", TRANSFORMER_VARIANTS + ABLATIONS)
def test_transformer_incremental_equals_teacher_forced(kw):
    check_incremental(random_model(tiny_transformer(**kw), std=0.3))


def test_incremental_with_reorder_equals_teacher_forced():
    """reorder (used by beam search) moves every piece of state with its sentence."""
    for cfg in (tiny_rnn(context="general"), tiny_transformer(positional="learned")):
        model = random_model(cfg, std=0.3)
        src, tgt_in = random_src(), random_tgt_in()
        perm = torch.tensor([3, 3, 0, 5, 1])
        decoder = model.decoder
        with torch.no_grad():
            full = model(src, tgt_in).logits
            state = decoder.init_state(model.encode(src))
            _, state = decoder.step(tgt_in[:, 0], state)
            state = decoder.reorder(state, perm)
            steps = []
            for t in range(1, tgt_in.size(1)):
                logits, state = decoder.step(tgt_in[perm, t], state)
                steps.append(logits)
        torch.testing.assert_close(torch.stack(steps, 1), full[perm, 1:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg", [tiny_rnn(context="additive"), tiny_rnn(context="mean", cell="gru"),
                                 tiny_rnn(context="none"), tiny_transformer(), tiny_transformer(norm="post")],
                         ids=["rnn-additive", "rnn-mean", "rnn-none", "transformer-pre", "transformer-post"])
def test_padding_and_batch_invariance(cfg):
    """A sentence's logits do not depend on extra padding or on the other sentences of its batch."""
    model = random_model(cfg, std=0.3)
    src, tgt_in = random_src(), random_tgt_in()
    with torch.no_grad():
        logits = model(src, tgt_in).logits
        wider = torch.cat([src, torch.full((6, 3), PAD)], dim=1)
        torch.testing.assert_close(model(wider, tgt_in).logits, logits, atol=1e-5, rtol=1e-5)
        for b in (0, 3, 4):
            n = int((src[b] != PAD).sum())
            alone = model(src[b : b + 1, :n], tgt_in[b : b + 1]).logits
            torch.testing.assert_close(alone, logits[b : b + 1], atol=1e-5, rtol=1e-5)


def assert_cross_weights(weights: torch.Tensor, src: torch.Tensor):
    """weights (B, L, h, T, S): exactly zero at padded source positions, rows summing to 1."""
    B, S = src.shape
    assert weights.shape[0] == B and weights.shape[-1] == S
    pad_pos = (src == PAD)[:, None, None, None, :].expand_as(weights)
    assert (weights[pad_pos] == 0.0).all()
    assert (weights[~pad_pos] > 0.0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


@pytest.mark.parametrize("context", ["dot", "general", "additive"])
@pytest.mark.parametrize("input_feeding", [True, False])
def test_rnn_cross_attention_is_zero_at_padding(context, input_feeding):
    model = random_model(tiny_rnn(context=context, input_feeding=input_feeding), std=0.3)
    src, tgt_in = random_src(), random_tgt_in()
    with torch.no_grad():
        out = model(src, tgt_in, need_weights=True)
    cross = out.attention["cross"]
    assert cross.shape == (6, 1, 1, tgt_in.size(1), src.size(1))
    assert_cross_weights(cross, src)
    # asking for weights changes nothing else
    torch.testing.assert_close(out.logits, model(src, tgt_in).logits)


@pytest.mark.parametrize("context", ["none", "mean"])
def test_rnn_without_attention_has_no_weights(context):
    model = random_model(tiny_rnn(context=context))
    out = model(random_src(), random_tgt_in(), need_weights=True)
    assert "cross" not in out.attention


def test_rnn_mean_context_is_the_masked_average():
    model = random_model(tiny_rnn(context="mean"))
    src = random_src()
    enc = model.encode(src)
    state = model.decoder.init_state(enc)
    for b in range(src.size(0)):
        n = int((src[b] != PAD).sum())
        torch.testing.assert_close(state.mean[b], enc.memory[b, :n].mean(0))


@pytest.mark.parametrize("kw", TRANSFORMER_VARIANTS)
def test_transformer_attention_weights(kw):
    cfg = tiny_transformer(**kw)
    model = random_model(cfg, std=0.3)
    src, tgt_in = random_src(), random_tgt_in()
    with torch.no_grad():
        out = model(src, tgt_in, need_weights=True)
        plain = model(src, tgt_in)
    T, S = tgt_in.size(1), src.size(1)
    cross, self_w, enc_w = out.attention["cross"], out.attention["self"], out.attention["encoder"]
    assert cross.shape == (6, cfg.decoder_layers, cfg.num_heads, T, S)
    assert_cross_weights(cross, src)
    assert self_w.shape == (6, cfg.decoder_layers, cfg.num_heads, T, T)
    assert (self_w.triu(1) == 0).all()  # causal: no weight on future positions
    torch.testing.assert_close(self_w.sum(-1), torch.ones(self_w.shape[:-1]))
    assert enc_w.shape == (6, cfg.encoder_layers, cfg.num_heads, S, S)
    assert_cross_weights(enc_w, src)  # encoder self-attention ignores padded keys too
    # the explicit-weights path and the fused path compute the same thing
    torch.testing.assert_close(out.logits, plain.logits, atol=1e-5, rtol=1e-5)


def test_general_attention_with_encoder_and_decoder_of_different_sizes():
    cfg = RNNConfig(cell="lstm", embed_dim=16, encoder_hidden=24, decoder_hidden=40, bidirectional=True,
                    encoder_layers=1, decoder_layers=1, context="general", input_feeding=True, dropout=0.0)
    model = random_model(cfg, std=0.2)
    assert model.encoder.output_dim == 48
    assert tuple(model.decoder.attention.W.weight.shape) == (40, 48)
    src, tgt_in = random_src(), random_tgt_in()
    with torch.no_grad():
        out = model(src, tgt_in, need_weights=True)
    assert out.logits.shape == (6, tgt_in.size(1), 13)
    assert_cross_weights(out.attention["cross"], src)
    check_incremental(model)


def test_dot_attention_with_different_sizes_is_refused():
    with pytest.raises(ValueError):
        build_model(RNNConfig.model_construct(**{**tiny_rnn(context="dot").model_dump(), "decoder_hidden": 10}),
                    13, 13)


def test_tied_and_shared_embeddings():
    model = build_model(tiny_transformer(tie_embeddings=True, share_src_tgt_embeddings=True), 13, 13)
    assert model.encoder.embed is model.decoder.embed
    assert model.decoder.W_out.weight is model.decoder.embed.token.weight
    rnn = build_model(tiny_rnn(tie_embeddings=True), 13, 13)
    assert rnn.decoder.W_out.weight is rnn.decoder.embed.weight
    untied = build_model(tiny_transformer(), 13, 17)
    assert untied.encoder.embed is not untied.decoder.embed
    assert untied.decoder.W_out.weight.shape == (17, 16)
    with pytest.raises(UserError, match="one vocabulary for both sides"):
        build_model(tiny_transformer(share_src_tgt_embeddings=True), 13, 17)


def test_max_positions_and_padding_embedding():
    assert build_model(tiny_rnn(), 13, 13).max_positions is None
    model = build_model(tiny_transformer(max_positions=40), 13, 13)
    assert model.max_positions == 40
    assert (model.encoder.embed.token.weight[PAD] == 0).all()


def test_train_mode_dropout_and_eval_determinism():
    cfg = tiny_transformer(dropout=0.3, attention_dropout=0.3)
    torch.manual_seed(0)
    model = build_model(cfg, 13, 13)
    src, tgt_in = random_src(), random_tgt_in()
    model.eval()
    a, b = model(src, tgt_in).logits, model(src, tgt_in).logits
    assert torch.equal(a, b)
    model.train()
    assert not torch.allclose(model(src, tgt_in).logits, a)


def test_encoder_output_select():
    model = random_model(tiny_rnn(cell="lstm"))
    src = pad([[5, 6, EOS], [7, EOS], [8, 9, 10, EOS]])
    enc = model.encode(src)
    sub = enc.select(torch.tensor([2, 0]))
    assert torch.equal(sub.memory, enc.memory[[2, 0]])
    assert torch.equal(sub.src_mask, enc.src_mask[[2, 0]])
    assert all(torch.equal(s, f[[2, 0]]) for s, f in zip(sub.final, enc.final))


def test_transformer_config_defaults_build():
    model = build_model(TransformerConfig(d_model=32, num_heads=4, ff_dim=64, encoder_layers=1, decoder_layers=1),
                        20, 20)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_the_ablations_take_out_what_they_say():
    """norm: none leaves no LayerNorm in the model; residual: false makes each sublayer's output replace
    its input (post-norm: x = LayerNorm(Dropout(sublayer(x)))), and nothing else changes."""
    from attnkit.layers.transformer import Sublayer

    plain = build_model(tiny_transformer(norm="none"), 13, 13)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in plain.modules())
    torch.manual_seed(0)
    cut = build_model(tiny_transformer(norm="post", residual=False), 13, 13).eval()
    sublayers = [m for m in cut.modules() if isinstance(m, Sublayer)]
    assert sublayers and not any(m.residual for m in sublayers)
    x, y = torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    torch.testing.assert_close(sublayers[0].out(x, y), sublayers[0].norm(y))
    torch.manual_seed(0)
    whole = build_model(tiny_transformer(norm="post"), 13, 13).eval()
    assert whole.state_dict().keys() == cut.state_dict().keys()  # the same weights, other wiring
    whole.load_state_dict(cut.state_dict())
    src, tgt_in = random_src(), random_tgt_in()
    with torch.no_grad():
        assert not torch.allclose(whole(src, tgt_in).logits, cut(src, tgt_in).logits)
