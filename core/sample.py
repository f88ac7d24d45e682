"""One sample definition, from the factory to the trainer (docs/samples.md).

A Sample is a key, its JSON metadata and any number of binary members named by suffix
(`src.flac`, `tgt.flac`, `sub.flac`, `prompt.flac`, later `*.tok.npy`, ...). Every pipeline builds
its samples as Sample objects, and the shard writer validates each one against the schema of its
`task` (TASK_SCHEMAS) before writing it: a sample that breaks the schema is a bug in the pipeline
that built it, so the run stops with an error naming the key and the field.

Each schema also says how a sample of the task becomes an example for the audio LLM
(`llm_example`), and every sample that carries the voice prompt its source side was cloned from
(`prompt.flac`) also yields a zero-shot cloning example (`clone_example`)."""
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.keys import make_key

# Bumped when the JSON fields or members of the samples change. Version 2: `prompt` (and the
# `prompt.flac` member), `sample_version`. The runner recomputes, under the same keys, the samples
# of an older release instead of reusing them.
SAMPLE_VERSION = 2

NUM = (int, float)
NONE = type(None)
PROMPT = "prompt.flac"
TOKENS = ".tok.npy"
# Fields a token release (pipeline=tokenize) adds to its source sample's JSON; their presence is what
# makes a sample a token sample, whose audio members are replaced by `<stem>.tok.npy` members.
TOKEN_FIELDS = {"tokenizer_version": str, "token_counts": dict, "tokens_per_second": NUM}
# and what token releases made since 2026-12-07 add too: the tokenizer by its config and weights
# (editor/artifacts.py weights_digest), so two tokenizers under one version name are told apart
TOKEN_DIGEST = "tokenizer_digest"
_SUFFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class SampleError(ValueError):
    """A sample that breaks its task's schema: always a bug in the pipeline that built it."""


@dataclass(frozen=True)
class LlmMapping:
    """How a sample of a task becomes one chat example of the audio LLM: values are JSON field
    names (text, instruction) or member suffixes (source, target)."""
    system: str                    # which system prompt: "edit" or "clone"
    instruction: str | None        # JSON field with the instruction (edit), None for clone
    source: str                    # member: the source audio (edit) or the voice prompt (clone)
    target: str                    # member: the audio the assistant turn answers with
    text: str                      # JSON field: the text spoken in the source audio
    target_text: str               # JSON field: the text spoken in the target audio


@dataclass(frozen=True)
class TaskSchema:
    fields: dict                   # dotted field name -> type or tuple of types (NONE: may be null)
    members: tuple = ()            # members every sample of the task has
    member_fields: tuple = ()      # fields whose value names a member that must be present
    llm: LlmMapping | None = None  # None: not an LLM example (e.g. margin scorer training pairs)


# The voice prompt of a sample: None for a sample without one (a user's recording), else the member
# holding it, its transcript, its content hash (samples sharing a prompt share the hash) and the
# member that is `text` spoken in that voice (the target of the clone example).
PROMPT_FIELDS = {"prompt": (dict, NONE), "prompt.member": str, "prompt.text": str, "prompt.sha256": str,
                 "prompt.target": str}
COMMON = {"task": str, "sample_version": int, "text": str, "language": str, "speaker": str, "split": (str, NONE),
          "sample_rate": int, "durations": dict, "provenance": dict, **PROMPT_FIELDS}
EDIT = {**COMMON, "instruction": str, "edit_type": str, "acoustics": dict, "loudness": dict, "quality": dict}
PAIR = ("src.flac", "tgt.flac")
PROMPT_REFS = ("prompt.member", "prompt.target")
EDIT_LLM = LlmMapping("edit", "instruction", "src.flac", "tgt.flac", "text", "text")
CLONED_PAIR = {"edit_info": str, "gender": (str, NONE), "intensity": (*NUM, NONE), "margin": (*NUM, NONE),
               "prompts": dict, "prompts.src": dict, "prompts.tgt": dict, "speaker_sim": (*NUM, NONE)}
AUGMENTED = {"recipe": list, "source": (str, dict)}

TASK_SCHEMAS: dict[str, TaskSchema] = {
    "emotion_edit": TaskSchema({**EDIT, **CLONED_PAIR}, PAIR, PROMPT_REFS, EDIT_LLM),
    "style_edit": TaskSchema({**EDIT, **CLONED_PAIR}, PAIR, PROMPT_REFS, EDIT_LLM),
    "speed_edit": TaskSchema({**EDIT, **AUGMENTED, "edit_info": str, "factor": NUM}, PAIR, PROMPT_REFS, EDIT_LLM),
    "denoise": TaskSchema({**EDIT, **AUGMENTED, "edit_info": NONE, "snr_db": NUM, "noise_source": str},
                          PAIR, PROMPT_REFS, EDIT_LLM),
    "silence_trim": TaskSchema({**EDIT, **AUGMENTED, "edit_info": NONE, "inserted_silences_s": (list, NONE),
                                "vad_segments_s": list}, PAIR, PROMPT_REFS, EDIT_LLM),
    "paralinguistic_edit": TaskSchema(
        {**EDIT, "edit_info": list, "text_with_tags": str, "events": list, "gender": (str, NONE),
         "prompts": dict, "source": str, "speaker_sim": (*NUM, NONE),
         "substitution": (dict, NONE), "substitution.text": str, "substitution.member": str},
        PAIR, (*PROMPT_REFS, "substitution.member"),
        LlmMapping("edit", "instruction", "src.flac", "tgt.flac", "text", "text_with_tags")),
    # zero-shot cloning: prompt.flac (saying prompt.text) gives the voice, tgt.flac says `text` in it
    "clone": TaskSchema({**COMMON, "prompt": dict, "source_key": (str, NONE)}, (PROMPT, "tgt.flac"),
                        PROMPT_REFS, LlmMapping("clone", None, PROMPT, "tgt.flac", "prompt.text", "text")),
    # one recording of a user's folder (pipeline=tokenize source=folder): speech for pre-training or
    # as edit sources; not an example by itself
    "recording": TaskSchema({**COMMON, "source": str}, ("audio.flac",)),
    # the audio LLM's outputs over a release (pipeline=edit, pipeline=clone): the source's JSON plus
    # which model made them; not training data
    "edited": TaskSchema({**COMMON, "source_key": str, "source_task": str, "edit_type": str, "instruction": str,
                          "llm": str, "n_iter": int, "prompt_fixed": bool, "seed": int, "temperature": NUM},
                         ("src.flac", "edit1.flac")),
    "cloned": TaskSchema({**COMMON, "source_key": str, "source_task": str, "llm": str, "seed": int,
                          "temperature": NUM}, ("prompt.flac", "clone.flac")),
    # one prompt of the SFT editor with its K sampled answers (pipeline=preference_pairs): src.flac is
    # what the answers are rated against (the edit's source, or a clone's voice prompt), cand<i>.flac
    # and cand<i>.tok.npy are answer i as audio and codec ids. `candidates` lists, per answer,
    # {"member", "seed", "score", "rater"} (score None where no rater applies); `example` is
    # editor/llm/pairs.example_json of the prompt, so a pairs table can be rebuilt from the sample alone.
    "preference_candidates": TaskSchema(
        {**COMMON, "prompt_key": str, "source_task": str, "instruction": (str, NONE), "edit_type": (str, NONE),
         "edit_info": (str, list, NONE), "llm": str, "temperature": NUM, "candidates": list, "example": str},
        ("src.flac", "cand0.flac", "cand0.tok.npy")),
    # the margin scorer's bootstrap pairs (pipelines/train_margin_scorer.py): scorer data, not LLM data
    "margin_bootstrap": TaskSchema(
        {"task": str, "sample_version": int, "text": str, "language": str, "speaker": str, "tag": str,
         "kind": str, "label": NUM, "intensity": (*NUM, NONE), "acoustics": dict, "durations": dict,
         "speaker_sim": NUM, "rendered_tag": (str, NONE), "other_speaker": (str, NONE)}, PAIR),
}


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {int: "int", float: "number", str: "string", dict: "object", list: "list", NONE: "null"}
    out = [names.get(t, t.__name__) for t in types if not (t is int and float in types)]
    return " or ".join(dict.fromkeys(out))


def _is(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):  # True is an int to Python, not to a schema
        return bool in types
    return isinstance(value, types)


def _get(doc: dict, dotted: str):
    """(present, value) of a dotted field; absent when a parent is null or missing."""
    cur = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


@dataclass
class Sample:
    key: str
    json: dict
    members: dict = field(default_factory=dict)  # suffix -> bytes (written; read raw) or decoded value (read)
    shard: Path | None = None                     # the shard it was read from, if any

    @property
    def task(self):
        return self.json.get("task")

    @property
    def tokenized(self) -> bool:
        """A token release's sample: `<stem>.tok.npy` members instead of audio."""
        return "tokenizer_version" in self.json

    @property
    def schema(self) -> TaskSchema:
        task = self.task
        if task not in TASK_SCHEMAS:
            raise self._error("task", f"is {task!r}, not one of {', '.join(TASK_SCHEMAS)}")
        return TASK_SCHEMAS[task]

    def _error(self, name: str, what: str, kind: str = "field") -> SampleError:
        return SampleError(f"sample {self.key}: {kind} {name!r} {what}")

    def validate(self) -> "Sample":
        """Check the key, the members and the task's fields; raise SampleError naming the key and
        the field (or member) at the first problem. Returns the sample."""
        if not isinstance(self.key, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", self.key):
            raise SampleError(f"invalid key {self.key!r}: keys contain no dots or slashes "
                              "(letters, digits, '_' and '-' only)")
        if not isinstance(self.json, dict):
            raise SampleError(f"sample {self.key}: its JSON is a {type(self.json).__name__}, not an object")
        schema = self.schema
        for name, data in self.members.items():
            if not isinstance(name, str) or name == "json" or not _SUFFIX.fullmatch(name):
                raise self._error(name, "is not a member suffix (like 'src.flac'; 'json' is the metadata)", "member")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise self._error(name, f"is a {type(data).__name__}, not bytes", "member")
            if not len(data):
                raise self._error(name, "is empty", "member")
            if name.endswith(".flac") and bytes(data[:4]) != b"fLaC":
                raise self._error(name, "is not FLAC audio", "member")
            if name.endswith(TOKENS) and bytes(data[:6]) != b"\x93NUMPY":
                raise self._error(name, "is not a .npy array", "member")
        tokenized = self.tokenized
        for name in map(token_member, schema.members) if tokenized else schema.members:
            if name not in self.members:
                raise self._error(name, f"is missing (a {self.task} sample has {', '.join(schema.members)})",
                                  "member")
        for name, types in {**schema.fields, **(TOKEN_FIELDS if tokenized else {})}.items():
            present, value = _get(self.json, name)
            parent = name.rpartition(".")[0]
            if not present and parent and _get(self.json, parent)[1] is None:
                continue  # inside an object that is null here
            if not present:
                raise self._error(name, f"is missing ({_type_names(types)})")
            if not _is(value, types):
                raise self._error(name, f"must be {_type_names(types)}, got {type(value).__name__} {value!r:.60}")
        if tokenized and TOKEN_DIGEST in self.json and not isinstance(self.json[TOKEN_DIGEST], str):
            raise self._error(TOKEN_DIGEST, f"must be a string, got {type(self.json[TOKEN_DIGEST]).__name__}")
        if self.json["sample_version"] != SAMPLE_VERSION:
            raise self._error("sample_version", f"is {self.json['sample_version']}, this code writes {SAMPLE_VERSION}")
        for name in schema.member_fields:
            present, value = _get(self.json, name)
            if present and (token_member(value) if tokenized else value) not in self.members:
                raise self._error(name, f"names member {value!r}, which the sample does not have"
                                  + (f" (as {token_member(value)})" if tokenized else ""))
        if (token_member(PROMPT) if tokenized else PROMPT) in self.members and self.json.get("prompt") is None:
            raise self._error("prompt", f"is null, but the sample has a {PROMPT} member")
        prompt = self.json.get("prompt")
        if not tokenized and prompt and prompt["member"] in self.members and \
                hashlib.sha256(self.members[prompt["member"]]).hexdigest() != prompt["sha256"]:
            raise self._error("prompt.sha256", f"is not the hash of member {prompt['member']!r}")
        return self

    def encoded_json(self) -> bytes:
        try:
            return json.dumps(self.json, ensure_ascii=False, sort_keys=True).encode()
        except (TypeError, ValueError) as e:
            bad = next((k for k, v in self.json.items() if not _dumps_ok(v)), "?")
            raise self._error(bad, f"is not JSON ({e})") from e

    def files(self) -> dict[str, bytes]:
        """Suffix -> bytes as written to a shard (KEY.<suffix>): the members, then `json`."""
        return {**{k: bytes(v) for k, v in self.members.items()}, "json": self.encoded_json()}

    @classmethod
    def from_files(cls, key: str, files: dict[str, bytes]) -> "Sample":
        """A sample read back from a shard's KEY.* members."""
        files = dict(files)
        return cls(key, json.loads(files.pop("json")), files)

    def transcript(self, member: str) -> str | None:
        """The text spoken in an audio member: the prompt's own text, the substitution's, the tagged
        text of a paralinguistic target, else the sample's text."""
        j = self.json
        if j.get("prompt") and member == j["prompt"]["member"]:
            return j["prompt"]["text"]
        if (j.get("substitution") or {}).get("member") == member:
            return j["substitution"]["text"]
        llm = self.schema.llm
        if llm and member == llm.target:
            return _get(j, llm.target_text)[1]
        if llm and member == llm.source:
            return _get(j, llm.text)[1]
        return j.get("text")


def token_member(member: str) -> str:
    """The token release's member for an audio member: src.flac -> src.tok.npy."""
    return member.split(".")[0] + TOKENS


def _dumps_ok(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def prompt_info(members: dict, text: str | None, target: str) -> dict | None:
    """The JSON `prompt` field of a sample with these members: None without a prompt.flac, else
    which member is the prompt, its transcript, its content hash and the member that speaks the
    sample's text in the prompt's voice."""
    data = members.get(PROMPT)
    if data is None:
        return None
    return {"member": PROMPT, "text": text, "sha256": hashlib.sha256(data).hexdigest(), "target": target}


def llm_example(sample: Sample) -> dict | None:
    """The sample as one chat example of the audio LLM (docs/samples.md): which system prompt, the
    instruction, the source and target audio members, the text of each. None for scorer data."""
    llm = sample.schema.llm
    if llm is None:
        return None
    j = sample.json
    member = token_member if sample.tokenized else (lambda m: m)  # a token sample names its token members
    out = {"system": llm.system, "instruction": j[llm.instruction] if llm.instruction else None,
           "source": member(llm.source), "target": member(llm.target), "text": _get(j, llm.text)[1],
           "target_text": _get(j, llm.target_text)[1], "language": j["language"]}
    if llm.system == "clone":  # the speaker block of the clone system prompt
        out["speaker"] = {"name": j["speaker"], "prompt_text": j["prompt"]["text"], "prompt_audio": member(PROMPT)}
    return out


def clone_example(sample: Sample) -> Sample | None:
    """The zero-shot cloning example a sample yields: its voice prompt and the member that speaks the
    sample's text in that voice. None for a sample without a prompt (a user's recording).

    The key is made from the content (prompt and target audio), so samples sharing both (e.g. the
    neutral side of several triplets) give one clone example; `source_key` names one of them."""
    p = sample.json.get("prompt")
    if not p:
        return None
    member = token_member if sample.tokenized else (lambda m: m)
    target = sample.members[member(p["target"])]
    j = sample.json
    text = sample.transcript(p["target"])
    key = make_key(["clone", j["speaker"]], {"prompt": p["sha256"], "target": _content_hash(target)})
    out = {
        "task": "clone", "sample_version": SAMPLE_VERSION, "text": text, "language": j["language"],
        "speaker": j["speaker"], "split": j["split"], "sample_rate": j["sample_rate"],
        "durations": {"tgt": j["durations"].get(p["target"].split(".")[0])},
        "prompt": {**p, "target": "tgt.flac"}, "source_key": sample.key,
        "provenance": {**j["provenance"], "from_task": j["task"]},
    }
    if sample.tokenized:
        stem = p["target"].split(".")[0]
        out.update({k: j[k] for k in (*TOKEN_FIELDS, TOKEN_DIGEST) if k in j},
                   token_counts={"prompt": j["token_counts"]["prompt"], "tgt": j["token_counts"][stem]})
    clone = Sample(key, out, {member(PROMPT): sample.members[member(PROMPT)], member("tgt.flac"): target})
    # a sample read with decoded members gives a decoded clone example: the schema checks bytes
    return clone.validate() if isinstance(target, (bytes, bytearray, memoryview)) else clone


def _content_hash(value) -> str:
    """The same hash for a member's content whether it was read raw or decoded: token arrays hash
    their ids (raw .npy bytes are parsed first), audio files their bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)) and bytes(value[:6]) == b"\x93NUMPY":
        value = np.load(io.BytesIO(bytes(value)), allow_pickle=False)
    if isinstance(value, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(value, dtype="<i2").tobytes()).hexdigest()
    if isinstance(value, tuple):  # decoded audio: (samples, rate)
        return hashlib.sha256(np.ascontiguousarray(value[0]).tobytes() + str(value[1]).encode()).hexdigest()
    return hashlib.sha256(bytes(value)).hexdigest()
