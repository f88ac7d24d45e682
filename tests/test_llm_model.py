"""The LLM model: presets, warm start from a local checkpoint, save/load, parameter and FLOP counts."""
import numpy as np
import pytest
import torch
import transformers

from editor.llm import text_tokenizer as tt
from editor.llm.model import build_model, count_params, flops_per_token, load, load_preset, model_config, save
from editor.llm.vocab import Vocab, load_vocab

V = load_vocab()


def test_tiny_builds_over_the_joint_vocab():
    m = build_model(load_preset("tiny"), V)
    assert m.config.vocab_size == V.size and m.get_input_embeddings().num_embeddings == V.size
    assert m.config._attn_implementation == "sdpa"
    assert m.generation_config.eos_token_id == V.eos
    assert flops_per_token(m, 100) > 6 * count_params(m, non_embedding=True)


def test_preset_sizes():
    # counted on the meta device: no memory for the weights
    sizes = {}
    for name in ("small", "medium", "base_0p5b", "base_1p5b"):
        cfg = load_preset(name)
        with torch.device("meta"):
            m = getattr(transformers, {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[cfg.arch])(
                model_config(cfg, V))
        sizes[name] = count_params(m) / 1e6
    assert 7 < sizes["small"] < 10 and 28 < sizes["medium"] < 40 and 300 < sizes["base_0p5b"] < 520 and 1200 < sizes["base_1p5b"] < 1600
    with pytest.raises(ValueError, match="no LLM preset 'huge'"):
        load_preset("huge")


def test_init_from_keeps_text_rows_and_adds_audio_and_specials(tmp_path):
    text = tt.load(_small_tokenizer(tmp_path))
    rows = 320                                  # the checkpoint's text embedding (tokenizer + padding rows)
    torch.manual_seed(1)
    ckpt = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=rows, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, tie_word_embeddings=False))
    ckpt.save_pretrained(tmp_path / "ckpt")
    vocab = Vocab(text, text_size=rows)
    cfg = load_preset("tiny")
    cfg.init_from = str(tmp_path / "ckpt")
    m = build_model(cfg, vocab)
    emb, head = m.get_input_embeddings().weight, m.get_output_embeddings().weight
    assert emb.shape == (vocab.size, 32) and head.shape == (vocab.size, 32) and m.config.vocab_size == vocab.size
    assert torch.equal(emb[:rows], ckpt.get_input_embeddings().weight)
    assert torch.equal(head[:rows], ckpt.get_output_embeddings().weight)
    new = emb[rows:vocab.special_offset + 9]
    assert torch.isfinite(new).all() and new.std() > 0
    # a text block smaller than the checkpoint would overwrite its rows with audio ids
    with pytest.raises(ValueError, match="320 embedding rows"):
        build_model(cfg, Vocab(text))
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        cfg.init_from = str(tmp_path)
        build_model(cfg, vocab)


def test_save_and_load_round_trip(tmp_path):
    m = build_model(load_preset("tiny"), V).eval()
    save(m, V, tmp_path / "llm")
    assert (tmp_path / "llm" / "model.safetensors").is_file()
    m2, v2 = load(tmp_path / "llm")
    assert v2.version == V.version
    x = torch.from_numpy(np.arange(V.text_size - 5, V.text_size + 20))[None]
    with torch.no_grad():
        assert torch.equal(m(x).logits, m2.eval()(x).logits)


def _small_tokenizer(tmp_path):
    tok = tt.train(["hello world", "你好世界", "the audio editor"], 300)
    d = tmp_path / "tok"
    d.mkdir()
    tok.save(str(d / "tokenizer.json"))
    return d


def test_presets_are_a_hydra_group():
    from conftest import make_cfg
    assert make_cfg([]).llm.hidden_size == load_preset("small").hidden_size
    assert make_cfg(["llm=tiny", "llm.init_from=/some/dir"]).llm.init_from == "/some/dir"
