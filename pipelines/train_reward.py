"""pipeline=train_reward editor=SFT_DIR pairs=[PAIRS...]: the token-level reward model.

    python run.py pipeline=train_reward editor=editor/artifacts/editor-llm-v12 pairs=[outputs/preference_pairs]
    python run.py pipeline=train_reward ... resume=true               # after a killed run
    python run.py pipeline=train_reward ... pipeline.train.workers=4  # Ray Train

As in the seed: the SFT editor with a scalar head (editor/llm/reward.py), Bradley-Terry loss on the
(chosen, rejected) token sequences of the train-split pairs, one epoch, cosine lr 2e-5 -> 1e-5. The
held-out pair accuracy (validation split: the share of pairs whose chosen answer scores higher) is
measured every eval and recorded in training.json. The artifact is a RewardModel.save directory
(what pipeline=train_ppo loads) with training.json, training_log.jsonl and curves.png."""
import torch

from editor.llm import preference_train as pt
from editor.llm.editor import codec_version_of as codec_of
from editor.llm.reward import RewardModel, bradley_terry_loss


def _scores(rm, seqs, vocab, device):
    batch, n = pt.rows_of(seqs, vocab, device)
    r = rm(batch).float()
    return r[:n], r[n:]


def build(config: dict, log=print) -> pt.Built:
    tc, editor = config["train"], config["editor"]
    rm = RewardModel.from_sft(editor)
    pt.check_vocab(rm.lm, rm.vocab, f"editor={editor}")
    if not rm.lm.config.tie_word_embeddings:
        # the LM head is not used for a reward (nor by DDP, which refuses unused parameters)
        rm.lm.get_output_embeddings().weight.requires_grad_(False)
    # the bias cancels in r_chosen - r_rejected: its true gradient is 0, and Adam would turn the
    # rounding noise in it into lr-sized steps
    rm.head.bias.requires_grad_(False)
    vocab = rm.vocab
    train, val, summary = pt.load_pairs(config["pairs"], vocab, tc["max_len"], codec_of(editor), log)

    def loss(net, seqs, device):
        rc, rr = _scores(net, seqs, vocab, device)
        return bradley_terry_loss(rc, rr).sum(), {"accuracy": (rc > rr).float().sum(), "margin": (rc - rr).sum()}

    def evaluate(seqs, device):
        n, tot = 0, {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
        for i in range(0, len(seqs), tc["pairs_per_step"]):
            rc, rr = _scores(rm, seqs[i:i + tc["pairs_per_step"]], vocab, device)
            tot["loss"] += float(bradley_terry_loss(rc, rr).sum())
            tot["accuracy"] += float((rc > rr).float().sum())   # ties count as wrong
            tot["margin"] += float((rc - rr).sum())
            n += len(rc)
        return {k: v / n for k, v in tot.items()}

    def publish(model, tmp, result):
        if tc.get("save_dtype") == "bfloat16":
            model.lm.to(torch.bfloat16)
        model.save(tmp, meta={"sft": editor, "tokenizer_version": codec_of(editor), "steps": result["steps"],
                              "val_accuracy": result["final"].get("val_accuracy")},
                   max_shard_size=tc.get("max_shard_size"))
        result["tokenizer_version"] = codec_of(editor)

    spec = pt.Spec("reward model", rm, loss, evaluate, publish,
                   [("Bradley-Terry loss", ["train_loss", "val_loss"]),
                    ("pair accuracy", ["train_accuracy", "val_accuracy"]),
                    ("reward margin chosen - rejected", ["train_margin", "val_margin"])])
    fp = pt.fingerprint(tc, editor, train.rows + val.rows, "reward")
    return pt.Built(spec, train, val, vocab, fp, {"editor": editor, "pairs": config["pairs"], **summary})


def run(cfg):
    return pt.run_pipeline(cfg, "pipelines.train_reward", "reward")
