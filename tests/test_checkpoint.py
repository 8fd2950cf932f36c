"""attnkit.checkpoint: safetensors round trips, tied weights, atomic writes, bad files."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import random_src, random_tgt_in, tiny_rnn, tiny_transformer
from safetensors.torch import save_file

import attnkit.checkpoint as ckpt
from attnkit import FORMAT_VERSION
from attnkit.build import build_model
from attnkit.checkpoint import (
    atomic_write,
    atomic_write_text,
    load_weights,
    model_tensors,
    optimizer_state,
    optimizer_tensors,
    read_checkpoint,
    save_checkpoint,
)
from attnkit.errors import UserError


def tied_transformer(seed: int):
    torch.manual_seed(seed)
    return build_model(tiny_transformer(tie_embeddings=True, share_src_tgt_embeddings=True,
                                        positional="learned"), 13, 13).eval()


def test_round_trip_with_tied_weights(tmp_path):
    model = tied_transformer(0)
    tensors, aliases = model_tensors(model)
    # one stored copy of the shared embedding; the others are aliases of it
    assert set(aliases) == {"decoder.embed.token.weight", "decoder.W_out.weight",
                            "decoder.embed.positions.embedding.weight"}
    assert aliases["decoder.W_out.weight"] == "encoder.embed.token.weight"
    assert not set(aliases) & set(tensors)
    save_checkpoint(tmp_path / "m.safetensors", model, {"note": "hi", "valid": {"bleu": 1.5}})
    groups, doc = read_checkpoint(tmp_path / "m.safetensors")
    assert doc["format_version"] == FORMAT_VERSION and doc["note"] == "hi" and doc["valid"] == {"bleu": 1.5}
    assert set(groups["model"]) == set(tensors) and not groups["optim"]

    fresh = tied_transformer(1)
    src, tgt_in = random_src(), random_tgt_in()
    assert not torch.allclose(fresh(src, tgt_in).logits, model(src, tgt_in).logits)
    load_weights(fresh, groups["model"], doc["aliases"], tmp_path / "m.safetensors")
    for name, t in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], t), name
    # the tying survives loading
    assert fresh.decoder.W_out.weight is fresh.encoder.embed.token.weight
    torch.testing.assert_close(fresh(src, tgt_in).logits, model(src, tgt_in).logits, rtol=0, atol=0)


def test_optimizer_and_extra_tensors_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_rnn(tie_embeddings=True, embed_dim=12), 13, 13)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model(random_src(), random_tgt_in()).logits.square().mean()
    loss.backward()
    opt.step()
    rng = torch.get_rng_state()
    save_checkpoint(tmp_path / "last.safetensors", model, {"loop": {"step": 1}}, opt, {"torch_rng": rng})
    groups, doc = read_checkpoint(tmp_path / "last.safetensors")
    assert torch.equal(groups["extra"]["torch_rng"], rng)
    assert doc["loop"] == {"step": 1}

    torch.manual_seed(1)
    clone = build_model(tiny_rnn(tie_embeddings=True, embed_dim=12), 13, 13)
    load_weights(clone, groups["model"], doc["aliases"], tmp_path)
    opt2 = torch.optim.Adam(clone.parameters(), lr=1e-3)
    opt2.load_state_dict(optimizer_state(groups["optim"], doc["optimizer"]))
    for m, o in ((model, opt), (clone, opt2)):  # one more identical step on both
        o.zero_grad()
        m(random_src(), random_tgt_in()).logits.square().mean().backward()
        o.step()
    for (n, a), b in zip(model.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), n


def test_optimizer_tensors_split():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p])
    p.grad = torch.ones(3)
    opt.step()
    tensors, meta = optimizer_tensors(opt)
    assert {"0.exp_avg", "0.exp_avg_sq"} <= set(tensors)
    json.dumps(meta)  # the rest is plain JSON
    state = optimizer_state(tensors, meta)
    assert torch.equal(state["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "model.safetensors"
    model = tied_transformer(0)
    save_checkpoint(path, model, {"round": 1})
    before = path.read_bytes()

    def failing_writer(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, failing_writer)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]

    # the same inside save_checkpoint: the safetensors writer dies half way
    def dying_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)
        raise OSError("disk full")

    original = ckpt.save_file
    ckpt.save_file = dying_save_file
    try:
        with pytest.raises(UserError, match=r"model.safetensors: could not be written \(disk full\); the previous "
                                            "one is kept"):
            save_checkpoint(path, tied_transformer(1), {"round": 2})
    finally:
        ckpt.save_file = original
    assert path.read_bytes() == before
    assert read_checkpoint(path)[1]["round"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_atomic_write_text(tmp_path):
    path = tmp_path / "config.yaml"
    atomic_write_text(path, "a: 1\n")
    atomic_write_text(path, "a: 2\n")
    assert path.read_text() == "a: 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "none.safetensors")
    text = tmp_path / "text.safetensors"
    text.write_text("this is a text file, not a checkpoint\n" * 3)
    with pytest.raises(UserError, match=r"text\.safetensors: not a readable attnkit checkpoint"):
        read_checkpoint(text)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty.safetensors"):
        read_checkpoint(empty)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))  # a safetensors file, but not attnkit's
    with pytest.raises(UserError, match=r"foreign\.safetensors: not a readable attnkit checkpoint"):
        read_checkpoint(foreign)
    save_file({"model.w": torch.zeros(2)}, str(foreign))
    with pytest.raises(UserError, match=r"foreign\.safetensors: not an attnkit checkpoint \(no attnkit metadata\)"):
        read_checkpoint(foreign)


def test_other_format_version_is_refused(tmp_path):
    path = tmp_path / "old.safetensors"
    save_file({"model.w": torch.zeros(2)}, str(path),
              metadata={"attnkit": json.dumps({"format_version": FORMAT_VERSION + 1, "attnkit_version": "9.9",
                                               "aliases": {}})})
    with pytest.raises(UserError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert "old.safetensors" in msg and f"format {FORMAT_VERSION + 1}" in msg and "9.9" in msg


def test_weights_of_another_model_are_refused(tmp_path):
    save_checkpoint(tmp_path / "m.safetensors", build_model(tiny_rnn(), 13, 13), {})
    groups, doc = read_checkpoint(tmp_path / "m.safetensors")
    other = build_model(tiny_rnn(decoder_hidden=14, context="general"), 13, 13)
    with pytest.raises(UserError, match="do not fit the model"):
        load_weights(other, groups["model"], doc["aliases"], tmp_path / "m.safetensors")
