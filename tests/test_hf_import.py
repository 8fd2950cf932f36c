"""attnkit import hf: a MarianMT made here with transformers (tests/hf_fixtures.py), imported, computes
what transformers computes: the same logits, the same greedy and beam translations, the same tokens."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from hf_fixtures import multi30k, tiny_marian

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

SENTENCES = multi30k("train", "en", 100)  # what the fixture's model was trained on: it answers in sentences


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    """(the transformers directory, the imported attnkit directory, the HF model, its tokenizer)."""
    from attnkit.hf.importer import import_hf

    root = tmp_path_factory.mktemp("marian")
    source = tiny_marian(root / "hf")
    imported = import_hf(str(source), root / "attnkit")
    hf = transformers.MarianMTModel.from_pretrained(source).eval()
    return source, imported, hf, transformers.MarianTokenizer.from_pretrained(source)


def marian_ids(tok, hf):
    """attnkit id -> Marian id, rebuilt independently of the import: <pad> <unk> <s> </s>, then Marian's order."""
    pad, unk, eos = tok.pad_token_id, tok.unk_token_id, tok.eos_token_id
    rest = [i for i in range(hf.config.vocab_size) if i not in {pad, unk, eos}]
    return [pad, unk, pad, eos, *rest]


def test_the_tokenizers_give_marians_ids_and_text(marian):
    from attnkit.translator import load_model_dir

    _, imported, hf, tok = marian
    order = marian_ids(tok, hf)
    tr = load_model_dir(imported, "cpu")
    # (a literal "<unk>" or "</s>" in the text differs: transformers reads it as the special token)
    lines = multi30k("val", "en", 200) + [">>deu<< A dog runs.", "Ünïcödé ☃ too", ""]
    for line in lines:
        assert [order[i] for i in tr.encode_source(line)] == tok(line)["input_ids"], line
    for line in multi30k("val", "de", 200):
        ids = tr.tgt_tok.encode(line)
        assert [order[i] for i in ids] + [0] == tok(text_target=line)["input_ids"], line
        assert tr.tgt_tok.decode(ids) == tok.decode([order[i] for i in ids], skip_special_tokens=True)


def test_teacher_forced_logits_equal_transformers(marian):
    from attnkit.specials import BOS, EOS
    from attnkit.translator import load_model_dir

    _, imported, hf, tok = marian
    order = torch.tensor(marian_ids(tok, hf))
    tr = load_model_dir(imported, "cpu")
    worst = 0.0
    for src, ref in zip(multi30k("val", "en", 20), multi30k("val", "de", 20)):
        tgt = tr.tgt_tok.encode(ref)
        with torch.no_grad():
            ours = tr.model(torch.tensor([tr.encode_source(src)]), torch.tensor([[BOS] + tgt])).logits[0]
            theirs = hf(**tok(src, return_tensors="pt"), labels=torch.tensor([order[tgt + [EOS]].tolist()])).logits[0]
        worst = max(worst, float((ours - theirs[:, order]).abs().max()))
    assert worst < 1e-4


def test_greedy_equals_generate_token_for_token(marian):
    from attnkit.translator import load_model_dir

    _, imported, hf, tok = marian
    order = marian_ids(tok, hf)
    tr = load_model_dir(imported, "cpu")
    lengths = set()
    for src in SENTENCES[:50]:
        ours = tr.translate([src], beam=1)[0][0]
        limit = int(len(tr.encode_source(src)) * tr.cfg.decoding.max_len_a + tr.cfg.decoding.max_len_b)
        with torch.no_grad():
            out = hf.generate(**tok(src, return_tensors="pt"), num_beams=1, do_sample=False, min_new_tokens=1,
                              max_new_tokens=limit, forced_eos_token_id=None)[0].tolist()
            # (at its limit attnkit ends a hypothesis without </s>; Marian's config forces one there)
        theirs = [t for t in out[1:] if t not in (tok.eos_token_id, tok.pad_token_id)]
        assert [order[t] for t in ours.tokens] == theirs, src
        assert ours.text == tok.decode(out, skip_special_tokens=True)
        lengths.add(len(theirs))
    assert len(lengths) > 10  # sentences of many lengths, ended by </s>, not by the limit


def test_beam_4_equals_generate_with_the_length_penalty_mapped(marian):
    """transformers divides a finished hypothesis's log-probability by length^length_penalty, attnkit by
    GNMT's ((5 + length) / 6)^alpha: the two agree at 0 (raw log-probabilities), and there they rank alike."""
    from attnkit.translator import load_model_dir

    _, imported, hf, tok = marian
    order = marian_ids(tok, hf)
    tr = load_model_dir(imported, "cpu")
    d = tr.cfg.decoding.model_copy(update={"length_penalty": 0.0, "max_len_a": 0.0, "max_len_b": 100})
    tr.cfg = tr.cfg.model_copy(update={"decoding": d})
    same = 0
    for src in SENTENCES:
        ours = tr.translate([src], beam=4)[0][0]
        with torch.no_grad():
            out = hf.generate(**tok(src, return_tensors="pt"), num_beams=4, length_penalty=0.0, do_sample=False,
                              min_new_tokens=1, max_new_tokens=101)[0].tolist()
        same += [order[t] for t in ours.tokens] == [t for t in out[1:] if t not in (0, tok.pad_token_id)]
    assert same >= 0.95 * len(SENTENCES)


def test_every_verb_reads_the_imported_directory(marian, tmp_path, capsys):
    from attnkit.cli.main import main

    _, imported, _, _ = marian
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("\n".join(SENTENCES[:5]) + "\n", encoding="utf-8")
    ref.write_text("\n".join(multi30k("train", "de", 5)) + "\n", encoding="utf-8")
    assert main(["translate", str(imported), "--input", str(src)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert main(["evaluate", str(imported), "--src", str(src), "--ref", str(ref), "--json", "--by-length"]) == 0
    assert "by_length" in json.loads(capsys.readouterr().out)
    assert main(["plot", "attention", str(imported), "--text", SENTENCES[0], "--out", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 0
    summary = json.loads((imported / "summary.json").read_text())
    assert summary["imported_from"].endswith("hf") and summary["params"] > 0


def test_export_to_ctranslate2_translates_as_attnkit(marian, tmp_path):
    pytest.importorskip("ctranslate2")
    from attnkit.errors import UserError
    from attnkit.export import export_ctranslate2
    from attnkit.translator import load_model_dir

    _, imported, _, _ = marian
    out = export_ctranslate2(imported, tmp_path / "ct2")
    ours = [t[0].text for t in load_model_dir(imported, "cpu").translate(SENTENCES[:30], beam=1)]
    theirs = [t[0].text for t in load_model_dir(out, "cpu", "ctranslate2").translate(SENTENCES[:30], beam=1)]
    assert ours == theirs
    with pytest.raises(UserError, match="add --engine ctranslate2"):
        load_model_dir(out, "cpu")


def test_the_imported_model_fine_tunes_and_translates(marian, tmp_path):
    from attnkit.train import train
    from attnkit.translator import load_model_dir

    _, imported, _, _ = marian
    for side, lang in (("src", "en"), ("tgt", "de")):
        for split in ("train", "val"):
            (tmp_path / f"{split}.{side}").write_text("\n".join(multi30k(split, lang, 64)) + "\n", encoding="utf-8")
    cfg = yaml.safe_load((imported / "config.yaml").read_text())
    cfg["data"] = {split: {"src": str(tmp_path / f"{name}.src"), "tgt": str(tmp_path / f"{name}.tgt")}
                   for split, name in (("train", "train"), ("valid", "val"))}
    cfg["training"] = {"init_from": str(imported), "batch_tokens": 600, "lr": 1e-4, "warmup_steps": 0,
                       "schedule": "constant", "valid_every": 20}
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    summary = train(tmp_path / "tune.yaml", tmp_path / "tuned", max_steps=20, progress=False)
    before, after = load_model_dir(imported, "cpu"), load_model_dir(tmp_path / "tuned", "cpu")
    moved = max(float((a - b).abs().max()) for a, b in zip(after.model.state_dict().values(),
                                                           before.model.state_dict().values()))
    assert 0 < moved < 0.1
    assert all(t[0].text for t in after.translate(SENTENCES[:5], beam=2))
    assert summary["steps"] == 20


@pytest.mark.parametrize("activation,scale", [("gelu", True), ("relu", False)])
def test_the_options_of_the_transformer_carry_the_logits(tmp_path, activation, scale):
    """Untrained variants: the FFN activation and an unscaled embedding, each imported exactly."""
    from attnkit.hf.importer import import_hf
    from attnkit.translator import load_model_dir

    source = tiny_marian(tmp_path / "hf", activation=activation, steps=0, scale_embedding=scale)
    tr = load_model_dir(import_hf(str(source), tmp_path / "ak"), "cpu")
    assert tr.cfg.model.activation == activation and tr.cfg.model.scale_embeddings is scale
    hf = transformers.MarianMTModel.from_pretrained(source).eval()
    tok = transformers.MarianTokenizer.from_pretrained(source)
    order = torch.tensor(marian_ids(tok, hf))
    src = SENTENCES[3]
    with torch.no_grad():
        ours = tr.model(torch.tensor([tr.encode_source(src)]), torch.tensor([[2, 10, 11, 12]])).logits[0]
        theirs = hf(**tok(src, return_tensors="pt"), decoder_input_ids=order[[2, 10, 11, 12]][None]).logits[0]
    assert float((ours - theirs[:, order]).abs().max()) < 1e-4


def test_what_attnkit_cannot_represent_is_a_one_line_error(tmp_path):
    from attnkit.errors import UserError
    from attnkit.hf.importer import import_hf

    def config_only(name, **kw):
        path = tmp_path / name
        transformers.MarianConfig(vocab_size=50, d_model=16, encoder_attention_heads=2, decoder_attention_heads=2,
                                  **kw).save_pretrained(path)
        return str(path)

    cases = [(config_only("ffn", encoder_ffn_dim=32, decoder_ffn_dim=64),
              "encoder_ffn_dim \\(32\\) and decoder_ffn_dim"),
             (config_only("norm", normalize_before=True), "normalize_before is set"),
             (config_only("final", add_final_layer_norm=True), "add_final_layer_norm is set"),
             (config_only("act", activation_function="gelu_new"), "activation_function 'gelu_new'")]
    bart = tmp_path / "bart"
    transformers.BartConfig(vocab_size=50, d_model=16).save_pretrained(bart)
    cases.append((str(bart), "a bart model; attnkit imports MarianMT"))
    for source, message in cases:
        with pytest.raises(UserError, match=message):
            import_hf(source, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="not a transformers model directory"):
        import_hf(str(tmp_path / "nothing-here"), tmp_path / "out")
    no_spm = tmp_path / "no-spm"  # a MarianMT without its SentencePiece models
    transformers.MarianMTModel(transformers.MarianConfig(
        vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, pad_token_id=49,
        decoder_start_token_id=49)).save_pretrained(no_spm)
    with pytest.raises(UserError, match="no Marian SentencePiece tokenizer"):
        import_hf(str(no_spm), tmp_path / "out")
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="already exists"):
        import_hf(cases[0][0], tmp_path / "out")


def test_an_imported_config_has_no_data_and_training_it_says_so(marian, tmp_path):
    from attnkit.errors import UserError
    from attnkit.train import train

    _, imported, _, _ = marian
    shutil.copy(imported / "config.yaml", tmp_path / "c.yaml")
    with pytest.raises(UserError, match="data: null"):
        train(tmp_path / "c.yaml", tmp_path / "run", max_steps=1, progress=False)


def test_an_imported_model_exports_back_to_marian_and_translates_the_same(marian, tmp_path):
    from attnkit.hf.exporter import export_hf

    _, imported, hf, tok = marian
    out = export_hf(imported, tmp_path / "back")
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(out).eval()
    back_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert type(back).__name__ == "MarianMTModel"
    for src in SENTENCES[:20]:
        with torch.no_grad():
            a = hf.generate(**tok(src, return_tensors="pt"), num_beams=1, min_new_tokens=1, max_new_tokens=40,
                            forced_eos_token_id=None)  # the export does not force </s> at the limit
            b = back.generate(**back_tok(src, return_tensors="pt"), num_beams=1, min_new_tokens=1, max_new_tokens=40)
        assert tok.decode(a[0], skip_special_tokens=True) == back_tok.decode(b[0], skip_special_tokens=True)
