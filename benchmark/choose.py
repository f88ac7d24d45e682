"""`pipeline.editor=` and `pipeline.judge=` values to objects: one place that names what is accepted."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED_JUDGE = REPO / "scorers" / "artifacts" / "judge-v2"
NAMED = ("identity", "engine")


def load_editor(spec: str, device: str = "auto", temperature: float = 0.7, quantize: str | None = None):
    """identity | engine | http(s)://URL | an audio-LLM artifact directory (quantize: None or "int8",
    for an audio LLM only)."""
    from benchmark.editors import IdentityEditor, LlmEditor
    from benchmark.engine_editor import EngineEditor
    from benchmark.http_editor import HttpEditor
    if not spec:
        raise ValueError("pipeline.editor is required: an audio-LLM artifact dir, identity, engine or http://URL")
    spec = str(spec)
    if spec == "identity":
        return IdentityEditor(EngineEditor())
    if spec == "engine":
        return EngineEditor()
    if spec.startswith(("http://", "https://")):
        return HttpEditor(spec)
    d = Path(spec)
    if not (d / "llm_vocab.json").is_file():
        raise ValueError(f"pipeline.editor={spec}: not an audio-LLM artifact (no llm_vocab.json), nor one of "
                         f"{', '.join(NAMED)} or an http:// URL")
    return LlmEditor.load(d, device=device, temperature=temperature, quantize=quantize)


def editor_name(spec: str, quantize: str | None = None) -> str:
    """The name results carry for an editor spec, without loading a model (an LLM's version from its
    training.json, with "+int8" when quantized; a server's from its /health)."""
    from benchmark.editors import IdentityEditor
    from benchmark.engine_editor import EngineEditor
    from benchmark.http_editor import HttpEditor
    from pipelines.llm_over_release import llm_version
    spec = str(spec)
    if spec == "identity":
        return IdentityEditor.name
    if spec == "engine":
        return EngineEditor.name
    if spec.startswith(("http://", "https://")):
        return HttpEditor(spec).name
    if not (Path(spec) / "llm_vocab.json").is_file():
        load_editor(spec)      # the named error
    return llm_version(Path(spec)) + (f"+{quantize}" if quantize else "")


def load_judge(spec):
    """A judge artifact directory (default the shipped judge-v2) or http(s)://URL of a judge server."""
    from scorers.judge import LocalJudge
    from scorers.judge.http_client import HttpJudge
    spec = str(spec or SHIPPED_JUDGE)
    if spec.startswith(("http://", "https://")):
        return HttpJudge(spec)
    if not (Path(spec) / "config.json").is_file():
        raise ValueError(f"pipeline.judge={spec}: not a judge artifact (no config.json) nor an http:// URL")
    return LocalJudge.load(spec)
