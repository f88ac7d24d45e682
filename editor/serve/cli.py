"""The editor's command line, like upstream's inference script.

    python -m editor clone --prompt P.wav --prompt-text "what P says" --text "new words" -o out.wav
    python -m editor edit --input IN.wav --text "what IN says" --edit-type emotion --edit-info happy \\
        --n-iter 2 -o out.wav

Output is 16 kHz WAV. An edit of n > 1 iterations writes each one (out_iter1.wav ... out_iterN.wav)
and the last again as out.wav, so `-o` always names the final result. Progress and timing (load,
generation, audio seconds, real-time factor) go to stdout; bad input is one line `error: ...` on
stderr and exit status 2, without a traceback.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from editor.artifacts import SHIPPED_LLM


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", required=True, help="output WAV path")
    common.add_argument("--llm", default=str(SHIPPED_LLM), help="audio-LLM artifact dir (default: the shipped editor)")
    common.add_argument("--tokenizer", default=None, help="codec tokenizer dir (default: the one the LLM speaks, found in editor/artifacts)")
    common.add_argument("--decoder", default=None, help="codec decoder dir (default: the one the LLM speaks, found in editor/artifacts)")
    common.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when visible")
    common.add_argument("--f0-decimation", type=int, default=1,
                        help="the codec's F0 search on a copy downsampled this many times (4: faster analysis)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    common.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: more are faster on an idle machine, 1.5x with 2 of "
                             "2 cores, and several times slower on a busy one; docs/serving.md)")

    p = argparse.ArgumentParser(prog="python -m editor", description="Zero-shot voice cloning and instruction "
                                "edits of speech (Step-Audio-EditX recipe).")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clone", parents=[common], help="say new words in the voice of a prompt clip")
    c.add_argument("--prompt", required=True, help="voice prompt audio file (at most 30 s)")
    c.add_argument("--prompt-text", required=True, help="what the prompt says")
    c.add_argument("--text", required=True, help="the words to say")
    e = sub.add_parser("edit", parents=[common], help="edit a clip: emotion, style, speed, paralinguistic, denoise, vad")
    e.add_argument("--input", required=True, help="the audio file to edit")
    e.add_argument("--text", default="", help="what the input says (not needed for denoise and vad)")
    e.add_argument("--edit-type", required=True, help="emotion, style, speed, paralinguistic, denoise or vad")
    e.add_argument("--edit-info", default=None, help="the tag (happy, whisper, faster, ...); for paralinguistic, "
                   "the new text with [Tag] marks")
    e.add_argument("--n-iter", type=int, default=1, help="iterations, each editing the last output")
    e.add_argument("--prompt-fixed", action="store_true", help="every iteration edits the original input")
    e.add_argument("--guidance", type=float, default=None,
                   help="guidance weight of this edit (1 = off; default: the LLM's inference.json for the edit type)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as e:       # bad input or artifacts: say what, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _read(path: str, option: str, max_s: float) -> np.ndarray:
    from core import audio
    from editor.llm.editor import MIN_S, SR
    try:
        return audio.load(path, SR, max_s=max_s, limit_key=f"{option} limit", min_s=MIN_S)
    except audio.BadAudio as e:
        raise ValueError(f"{option}: {e}") from None


# the Editor's argument names -> this command's options, so an error names what the user typed
FLAGS = {"wav": "--input", "prompt_wav": "--prompt", "text": "--text", "prompt_text": "--prompt-text",
         "edit_info": "--edit-info", "seed": "--seed", "temperature": "--temperature", "n_iter": "--n-iter"}


def _check(fn, path: str, **request) -> None:
    """The Editor's own checks of the whole request, before the (slow) model load."""
    try:
        fn(**request)
    except ValueError as e:
        name, _, rest = str(e).partition(": ")
        if name not in FLAGS:
            raise
        flag = FLAGS[name] + (f" {path}" if name in ("wav", "prompt_wav") else "")
        raise ValueError(f"{flag}: {rest}") from None


def _writable(out: Path) -> None:
    """The output's folder made (or there) and writable, before anything slow runs."""
    if out.is_dir():
        raise ValueError(f"--output {out}: is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--output {out}: cannot make its folder ({e.strerror or e})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"--output {out}: not writable")


def run(args) -> int:
    out = Path(args.output)
    if out.suffix.lower() != ".wav":
        raise ValueError(f"--output {out}: must end in .wav")
    _writable(out)
    option, path = ("--input", args.input) if args.command == "edit" else ("--prompt", args.prompt)
    if not Path(path).is_file():     # before the slow imports: a mistyped path fails at once
        raise ValueError(f"{option}: {path}: no such audio file")
    import soundfile as sf
    import torch

    from editor.features import check_f0_decimation
    from editor.llm.editor import MAX_GUIDANCE, SR, Editor, clone_request, edit_request
    # every input is checked before the (slow) model load
    check_f0_decimation(args.f0_decimation)
    if args.threads < 1:
        raise ValueError(f"--threads {args.threads}: must be at least 1")
    if args.command == "edit":
        if args.n_iter < 1:
            raise ValueError(f"--n-iter {args.n_iter}: must be at least 1")
        if args.guidance is not None and not 0 <= args.guidance <= MAX_GUIDANCE:
            raise ValueError(f"--guidance {args.guidance}: must be a number >= 0 and <= {MAX_GUIDANCE:g} (1 = off)")
        # a paralinguistic edit's tagged text cannot be split at pauses: one answer's audio at most
        src = _read(args.input, "--input", Editor.max_chunk_s if args.edit_type == "paralinguistic" else Editor.max_edit_s)
        _check(edit_request, path, wav=src, text=args.text, edit_type=args.edit_type, edit_info=args.edit_info,
               n_iter=args.n_iter, seed=args.seed, temperature=args.temperature)
    else:
        src = _read(args.prompt, "--prompt", Editor.max_chunk_s)
        _check(clone_request, path, prompt_wav=src, prompt_text=args.prompt_text, text=args.text, seed=args.seed,
               temperature=args.temperature)
    print(f"read {path}: {len(src) / SR:.2f} s", flush=True)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible")
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()       # "Loading weights" bars: the command prints its own progress

    t0 = time.perf_counter()
    ed = Editor.load(args.llm, args.tokenizer, args.decoder, device=args.device, f0_decimation=args.f0_decimation)
    load_s = time.perf_counter() - t0
    print(f"loaded {args.llm} on {ed.codec.device} in {load_s:.1f} s", flush=True)
    if args.command == "edit" and args.guidance is not None:
        ed.guidance = {**ed.guidance, args.edit_type: args.guidance}

    t0 = time.perf_counter()
    if args.command == "edit":
        print(f"editing: {' '.join(filter(None, (args.edit_type, args.edit_info)))}, {args.n_iter} iteration(s)", flush=True)
        outs = ed.edit(src, args.text, args.edit_type, args.edit_info, n_iter=args.n_iter,
                       prompt_fixed=args.prompt_fixed, seed=args.seed, temperature=args.temperature)
    else:
        print("cloning", flush=True)
        outs = [ed.clone(src, args.prompt_text, args.text, seed=args.seed, temperature=args.temperature)]
    gen_s = time.perf_counter() - t0

    if any(len(o) == 0 for o in outs):
        print(f"error: the editor produced no audio (iteration {[len(o) for o in outs].index(0) + 1}); "
              "try another --seed or --temperature", file=sys.stderr)
        return 1
    paths = [out.with_name(f"{out.stem}_iter{k}{out.suffix}") for k in range(1, len(outs) + 1)] if len(outs) > 1 else []
    for p, y in zip(paths + [out], outs + outs[-1:]):
        try:
            sf.write(p, y, SR, subtype="PCM_16")
        except (OSError, RuntimeError) as e:    # soundfile's errors are RuntimeErrors
            raise ValueError(f"--output {p}: cannot write it ({e})") from None
        print(f"wrote {p} ({len(y) / SR:.2f} s)", flush=True)
    audio_s = sum(len(o) for o in outs) / SR
    print(f"timing: load {load_s:.2f} s, generation {gen_s:.2f} s, audio {audio_s:.2f} s, "
          f"RTF {gen_s / audio_s:.3f} (generation time / audio seconds)", flush=True)
    return 0
