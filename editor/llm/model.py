"""The audio LLM: a transformers decoder-only model over the joint vocabulary.

A size preset (configs/llm/*.yaml) builds a fresh model; `init_from` warm-starts from any local
causal-LM checkpoint instead, keeping its text embedding rows and adding fresh rows for the audio
block and the specials. Both use SDPA attention, which takes the packed 4-D masks (packing.py) on
CPU and GPU. Checkpoints are save_pretrained directories (safetensors) plus the text tokenizer and
the vocab layout, so a reader rebuilds exactly the ids the model was trained on.
"""
import json
from pathlib import Path

import torch

from editor.llm.vocab import Vocab

PRESETS = Path(__file__).resolve().parent.parent.parent / "configs" / "llm"
_ARCH = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM")}
_SHAPE = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
          "intermediate_size", "max_position_embeddings", "tie_word_embeddings", "initializer_range")


def load_preset(name: str):
    """configs/llm/<name>.yaml (or a path to a yaml) as an OmegaConf config."""
    from omegaconf import OmegaConf
    p = Path(name) if str(name).endswith(".yaml") else PRESETS / f"{name}.yaml"
    if not p.is_file():
        raise ValueError(f"no LLM preset {name!r} ({p}); presets: {sorted(f.stem for f in PRESETS.glob('*.yaml'))}")
    return OmegaConf.load(p)


def _dtype(cfg) -> torch.dtype:
    name = cfg.get("dtype", "float32")
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"unknown dtype {name!r}")
    return getattr(torch, name)


def model_config(cfg, vocab: Vocab):
    """The transformers config of a preset over this vocab."""
    import transformers
    arch = cfg.get("arch")
    if arch not in _ARCH:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(_ARCH)}")
    conf = getattr(transformers, _ARCH[arch][0])(
        # rope_theta: transformers 5 files it under rope_parameters itself
        vocab_size=vocab.size, rope_theta=float(cfg["rope_theta"]), **{k: cfg[k] for k in _SHAPE},
        bos_token_id=vocab.bos, eos_token_id=vocab.eos, pad_token_id=vocab.pad)
    return conf


def training_vocab(init_from=None, text_tokenizer=None, pronunciation_scheme: str | None = None) -> Vocab:
    """The joint vocabulary a training run builds its prompts with.

    Fresh (no init_from): `text_tokenizer` (default the shipped one). init_from one of our editor
    artifacts: its own vocab, exactly (its text, audio and special rows keep their meaning). init_from
    another causal LM: its own tokenizer.json, with a text block as large as its embedding, so none of
    its rows is given to audio ids; naming another tokenizer is an error (its rows would mean other words)."""
    from editor.llm.text_tokenizer import load as load_text
    from editor.llm.vocab import DEFAULT_TEXT_TOKENIZER, load_vocab
    if not init_from:
        return load_vocab(text_tokenizer or DEFAULT_TEXT_TOKENIZER, pronunciation_scheme=pronunciation_scheme)
    src = Path(init_from)
    if not (src / "config.json").is_file():
        raise ValueError(f"init_from={src}: not a checkpoint directory (no config.json)")
    if (src / "llm_vocab.json").is_file():
        meta = json.loads((src / "llm_vocab.json").read_text())
        if text_tokenizer:
            raise ValueError(f"init_from={src} is an editor LLM: it keeps its own text tokenizer; "
                             f"leave pipeline.train.text_tokenizer unset (given {text_tokenizer})")
        if meta.get("pronunciation_scheme") != pronunciation_scheme:
            raise ValueError(f"init_from={src} was trained with pronunciation scheme {meta.get('pronunciation_scheme')}, "
                             f"this run asks for {pronunciation_scheme} (pipeline.train.pronounce)")
        return load_vocab(src, meta["text_size"], pronunciation_scheme)
    if not (src / "tokenizer.json").is_file():
        raise ValueError(f"init_from={src} has no tokenizer.json: its text rows only mean something with "
                         "the tokenizer it was trained with; save it beside the checkpoint")
    own = load_text(src)
    if text_tokenizer and load_text(text_tokenizer).backend_tokenizer.to_str() != own.backend_tokenizer.to_str():
        raise ValueError(f"pipeline.train.text_tokenizer={text_tokenizer} is not init_from={src}'s tokenizer: "
                         "its embedding rows would mean other words; leave text_tokenizer unset")
    rows = int(json.loads((src / "config.json").read_text())["vocab_size"])
    return load_vocab(src, max(rows, len(own)), pronunciation_scheme)


def build_model(cfg, vocab: Vocab):
    """A fresh model from the preset, or the `cfg.init_from` checkpoint resized to the joint vocab.

    cfg: a preset (load_preset, the Hydra group `llm`) or a plain dict with the same keys."""
    import transformers
    dtype = _dtype(cfg)
    if cfg.get("init_from"):
        src = Path(cfg["init_from"])
        if not (src / "config.json").is_file():
            raise ValueError(f"init_from={src}: not a checkpoint directory (no config.json)")
        model = transformers.AutoModelForCausalLM.from_pretrained(
            src, local_files_only=True, attn_implementation="sdpa", dtype=dtype)
        rows = model.get_input_embeddings().num_embeddings
        ours = (src / "llm_vocab.json").is_file() and json.loads((src / "llm_vocab.json").read_text())["version"] == vocab.version
        if rows > vocab.text_size and not ours:
            # Its rows [0, rows) mean its own text ids; ours would overwrite some with audio ids.
            raise ValueError(f"init_from={src} has {rows} embedding rows but the vocab's text block has "
                             f"{vocab.text_size}: build the vocab from its tokenizer with text_size>={rows}")
        # Old rows are copied; new rows get the model's own init (mean_resizing would make all 5120
        # audio rows near-copies of the average text row).
        if not ours:
            model.resize_token_embeddings(vocab.size, mean_resizing=False)
    else:
        conf = model_config(cfg, vocab)
        model = getattr(transformers, _ARCH[cfg["arch"]][1])._from_config(conf, attn_implementation="sdpa", dtype=dtype)
    model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id = vocab.bos, vocab.eos, vocab.pad
    model.generation_config.bos_token_id = vocab.bos
    model.generation_config.eos_token_id = vocab.eos
    model.generation_config.pad_token_id = vocab.pad
    return model


def save(model, vocab: Vocab, out, max_shard_size: str | None = None) -> Path:
    """save_pretrained (safetensors, in shards of at most max_shard_size) + the text tokenizer + the
    vocab layout, in one directory."""
    out = Path(out)
    model.save_pretrained(out, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    vocab.text.backend_tokenizer.save(str(out / "tokenizer.json"))
    meta = {"version": vocab.version, "text_size": vocab.text_size}
    if vocab.pronunciation_scheme:      # absent for models without one, so their files stay as they were
        meta["pronunciation_scheme"] = vocab.pronunciation_scheme
    (out / "llm_vocab.json").write_text(json.dumps(meta) + "\n")
    return out


def load(path, dtype: str = "float32"):
    """(model, vocab) from a `save` directory; refuses a tokenizer that does not match the layout."""
    import transformers
    from editor.llm.vocab import load_vocab
    path = Path(path)
    meta = json.loads((path / "llm_vocab.json").read_text())
    vocab = load_vocab(path, meta["text_size"], meta.get("pronunciation_scheme"))
    if vocab.version != meta["version"]:
        raise ValueError(f"{path}: vocab {vocab.version} does not match the saved {meta['version']}")
    if vocab.pronunciation_scheme:
        from editor.llm.pronounce import check_scheme
        check_scheme(vocab.pronunciation_scheme, str(path))
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, attn_implementation="sdpa", dtype=getattr(torch, dtype))
    return model, vocab


def count_params(model, non_embedding: bool = False) -> int:
    """Parameters (tied weights once); non_embedding drops the input embedding table."""
    n = sum(p.numel() for p in model.parameters())
    return n - model.get_input_embeddings().weight.numel() if non_embedding else n


def flops_per_token(model, context: int) -> float:
    """Training FLOPs per token, 6N + 12·layers·d_attn·context (the PaLM appendix estimate).

    N counts every matmul weight: the non-embedding parameters plus the lm_head (a matmul even when
    tied to the embedding). `context` is the attended length per token: with packing that is the
    example length, not the row length (sum(len_i^2) / sum(len_i) over the examples)."""
    c = model.config
    d_attn = c.num_attention_heads * (getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)
    n = count_params(model, non_embedding=True)
    if c.tie_word_embeddings:
        n += model.get_output_embeddings().weight.numel()
    return 6.0 * n + 12.0 * c.num_hidden_layers * d_attn * context
