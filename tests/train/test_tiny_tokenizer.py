"""The tiny model's tokenizer options: ``isolate`` (whitespace, punctuation and digits on their own) and
``whole_words`` (those words one token each, every other letter run split into characters)."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = ["sed", "port", "conf", "app", "etc", "echo", "answer", "txt", "DONE", "user", "assistant"]


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    from ltenv.models.tiny import build_tiny_qwen3

    path = build_tiny_qwen3(
        tmp_path_factory.mktemp("tok") / "m",
        vocab_size=600,
        texts=[" ".join(WORDS)] * 50,
        isolate=True,
        whole_words=WORDS,
    )
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def pieces(tok, text: str) -> list[str]:
    return [tok.decode([i]) for i in tok(text, add_special_tokens=False)["input_ids"]]


def test_whole_words_are_one_token_and_other_words_are_letters(word_tokenizer):
    got = pieces(word_tokenizer, "sed -i 's/^port=.*/port=30375/' /app/etc/kefo.conf")
    assert got[:1] == ["sed"] and got.count("port") == 2 and "conf" in got and "etc" in got
    assert got[got.index("etc") + 2 : got.index("conf") - 1] == ["k", "e", "f", "o"]
    assert [p for p in got if p.isdigit()] == list("30375")
    # the corpus taught merges such as "re" or "to" (English prompts): they never apply to other words
    for name in ("torero", "report", "kapore"):
        assert pieces(word_tokenizer, name) == list(name)
    # a whole word inside a longer word is not split out of it
    assert pieces(word_tokenizer, "seder") == list("seder")


def test_a_name_is_the_same_tokens_wherever_it_appears(word_tokenizer):
    alone = pieces(word_tokenizer, "tofopu")
    for text in ("echo tofopu > /app/answer.txt", "-gupuge=tofopu", "/app/tofopu/x", "(tofopu)"):
        got = pieces(word_tokenizer, text)
        n = len(alone)
        assert any(got[i : i + n] == alone for i in range(len(got) - n + 1)), (text, got)


def test_chat_roles_and_done_are_single_tokens(word_tokenizer):
    text = word_tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "DONE"}], tokenize=False
    )
    got = pieces(word_tokenizer, text)
    assert "user" in got and "assistant" in got and "DONE" in got


def test_without_whole_words_nothing_changes(tmp_path: Path):
    from transformers import AutoTokenizer

    from ltenv.models.tiny import build_tiny_qwen3

    path = build_tiny_qwen3(tmp_path / "m", vocab_size=600, isolate=True)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    # plain BPE over the default corpus: common English words merge
    assert "the" in pieces(tok, "the")
