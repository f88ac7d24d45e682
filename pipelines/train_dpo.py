"""pipeline=train_dpo editor=SFT_DIR pairs=[PAIRS...]: direct preference optimisation of the editor.

    python run.py pipeline=train_dpo editor=editor/artifacts/editor-llm-v12 pairs=[outputs/preference_pairs]
    python run.py pipeline=train_dpo ... resume=true               # after a killed run
    python run.py pipeline=train_dpo ... pipeline.train.workers=4  # Ray Train

DPO (Rafailov et al. 2023), the cheaper comparison to PPO on the same pairs: the policy starts from the
SFT editor and the frozen reference is the SFT editor itself. A sequence's log-probability is summed
over the assistant's audio tokens and <|eos|> only (editor/llm/logprobs.py), so neither the prompt nor
the padding enters a margin. Reported over training and on the held-out pairs: the implicit reward
margin beta*((pc - rc) - (pr - rr)), its accuracy (> 0), and the KL proxy mean(pc - rc) over the chosen
answers (how far the policy moved from SFT where it should). The artifact is an editor LLM (the
SFT artifact's layout and codec record), so Editor.load and the benchmark run it as they run SFT."""
import torch

from editor import artifacts
from editor.llm import model as llm_model
from editor.llm import preference_train as pt
from editor.llm.editor import codec_digest_of, codec_version_of, write_codec_meta
from editor.llm.logprobs import answer_logprobs, dpo_loss


def build(config: dict, log=print) -> pt.Built:
    tc, editor = config["train"], config["editor"]
    beta = float(tc["beta"])
    if beta <= 0:
        raise ValueError(f"pipeline.train.beta={beta}: must be > 0 (the strength of the pull toward the reference)")
    policy, vocab = llm_model.load(editor)
    ref, _ = llm_model.load(editor)
    pt.check_vocab(policy, vocab, f"editor={editor}")
    ref.eval().requires_grad_(False)
    codec = codec_version_of(editor)
    train, val, summary = pt.load_pairs(config["pairs"], vocab, tc["max_len"], codec, log)

    def terms(net, seqs, device):
        """(policy chosen, policy rejected, ref chosen, ref rejected) summed answer log-probs."""
        batch, n = pt.rows_of(seqs, vocab, device)
        ref.to(device)
        lp = answer_logprobs(net, batch)
        with torch.no_grad():
            lr = answer_logprobs(ref, batch)
        return lp[:n], lp[n:], lr[:n], lr[n:]

    def metrics(pc, pr, rc, rr):
        margin = beta * ((pc - rc) - (pr - rr)).detach()
        return {"accuracy": (margin > 0).float().sum(), "margin": margin.sum(),
                "chosen_reward": beta * (pc - rc).detach().sum(), "rejected_reward": beta * (pr - rr).detach().sum(),
                "kl_chosen": (pc - rc).detach().sum()}

    def loss(net, seqs, device):
        pc, pr, rc, rr = terms(net, seqs, device)
        return dpo_loss(pc, pr, rc, rr, beta).sum(), metrics(pc, pr, rc, rr)

    def evaluate(seqs, device):
        n, tot = 0, {}
        for i in range(0, len(seqs), tc["pairs_per_step"]):
            pc, pr, rc, rr = terms(policy, seqs[i:i + tc["pairs_per_step"]], device)
            for k, v in {"loss": dpo_loss(pc, pr, rc, rr, beta).sum(), **metrics(pc, pr, rc, rr)}.items():
                tot[k] = tot.get(k, 0.0) + float(v)
            n += len(pc)
        return {k: v / n for k, v in tot.items()}

    def publish(model, tmp, result):
        model = model.to(torch.bfloat16) if tc.get("save_dtype") == "bfloat16" else model
        llm_model.save(model, vocab, tmp, max_shard_size=tc.get("max_shard_size"))
        if codec:
            write_codec_meta(tmp, codec, codec_digest_of(editor))   # Editor.load checks the codec the LLM speaks
        # decoded as the SFT editor is (its guidance, piece lengths and speed ratios): only the weights differ
        result.update(tokenizer_version=codec, vocab=vocab.version, parameters=llm_model.count_params(model),
                      **artifacts.sft_settings(editor, tmp))

    spec = pt.Spec("DPO", policy, loss, evaluate, publish,
                   [("DPO loss", ["train_loss", "val_loss"]),
                    ("implicit reward margin", ["train_margin", "val_margin", "val_chosen_reward", "val_rejected_reward"]),
                    ("pair accuracy", ["train_accuracy", "val_accuracy"]),
                    ("KL proxy: logp policy - ref, chosen", ["train_kl_chosen", "val_kl_chosen"])])
    fp = pt.fingerprint(tc, editor, train.rows + val.rows, "dpo")
    return pt.Built(spec, train, val, vocab, fp, {"editor": editor, "pairs": config["pairs"], "beta": beta, **summary})


def run(cfg):
    return pt.run_pipeline(cfg, "pipelines.train_dpo", "editor")
