"""The LLM's text tokenizer: round trips, loads through transformers, trains deterministically."""
import json

from transformers import PreTrainedTokenizerFast

from editor.llm import text_tokenizer as tt
from editor.llm.vocab import DEFAULT_TEXT_TOKENIZER
from tts import texts

SMALL = ["The bus stops at the corner every fifteen minutes.", "The library opens at eight.",
         "今天下午有小雨，气温在十五度左右。", "图书馆每天早上八点开门。", "[Sichuanese]今天天气好"]


def test_shipped_tokenizer_round_trips_english_and_chinese():
    tok = tt.load(DEFAULT_TEXT_TOKENIZER)
    assert isinstance(tok, PreTrainedTokenizerFast)
    for lang in ("en", "zh"):
        for s in texts.sentences(lang, "happy") + ["Unseen words: zyzzyva, 鑫犇 and 😀."]:
            ids = tok.encode(s, add_special_tokens=False)
            assert tok.decode(ids) == s
    # Chinese characters are one token each; English words mostly one token each
    assert len(tok.encode("今天下午有小雨", add_special_tokens=False)) == 7
    assert tok.convert_ids_to_tokens(tok.encode("The weather today", add_special_tokens=False)) == \
        ["The", "Ġweather", "Ġtoday"]


def test_training_is_deterministic_and_the_shipped_artifact_reproduces():
    a, b = tt.train(SMALL, 300), tt.train(SMALL, 300)
    assert a.to_str() == b.to_str()
    assert a.get_vocab_size() == 300
    info = json.loads((DEFAULT_TEXT_TOKENIZER / "training.json").read_text())
    parts = tt.corpus()
    assert info["corpus_counts"] == {k: len(v) for k, v in parts.items()}
    again = tt.train([s for v in parts.values() for s in v], info["vocab_size_requested"])
    assert json.loads(again.to_str()) == json.loads((DEFAULT_TEXT_TOKENIZER / "tokenizer.json").read_text())


def test_cli_writes_tokenizer_and_training_record(tmp_path, monkeypatch):
    extra = tmp_path / "extra" / "en"
    extra.mkdir(parents=True)
    (extra / "happy.txt").write_text("A brand new sentence for the corpus.\n")
    tt.main(["--out", str(tmp_path / "tok"), "--vocab-size", "600", "--extra-dir", str(tmp_path / "extra")])
    info = json.loads((tmp_path / "tok" / "training.json").read_text())
    assert info["vocab_size"] == 600 and info["corpus_counts"]["sentences_en"] == 424
    tok = tt.load(tmp_path / "tok")
    assert tok.decode(tok.encode("A brand new sentence", add_special_tokens=False)) == "A brand new sentence"
