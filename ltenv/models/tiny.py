"""A tiny Qwen3-architecture causal LM with a locally trained tokenizer, for tests and demos.

Nothing is downloaded: a byte-level BPE tokenizer is trained on a small built-in corpus (plus any text
you pass), wrapped as a :class:`transformers.PreTrainedTokenizerFast` with a Qwen-style chat template
(``<|im_start|>role\\n...<|im_end|>``, assistant turns inside ``{% generation %}`` markers so
``return_assistant_tokens_mask`` works), and a randomly initialised ``Qwen3ForCausalLM`` is saved next to it.
Its replies are nonsense; it exercises every code path of generation and training at CPU speed.

Example:
    >>> from ltenv.models.tiny import build_tiny_qwen3
    >>> path = build_tiny_qwen3("/tmp/tiny-qwen3")                           # doctest: +SKIP
    >>> AutoModelForCausalLM.from_pretrained(path, local_files_only=True)    # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _corpus() -> list[str]:
    from importlib import resources

    texts = [
        p.read_text(encoding="utf-8")
        for p in resources.files("ltenv.agents").joinpath("prompts").iterdir()
        if p.name.endswith(".txt")
    ]
    texts += [
        'ls -la /app\ncat /app/seed.txt\necho "hello" > /app/greeting.txt\ncd /tmp && grep -rn TODO .\n',
        "python3 -m pytest -q tests/\ngit status\ngit log --oneline | head\nmake -j2 && ./run.sh\n",
        '{"analysis": "The file is missing.", "plan": "Create it.", "commands": '
        '[{"keystrokes": "touch a.txt\\n", "duration": 0.1}], "task_complete": false}\n',
        "The quick brown fox jumps over the lazy dog. 0123456789 !@#$%^&*()[]{}<>|\\/'\"`~-_=+;:,.?\n",
    ]
    return texts


def build_tiny_qwen3(
    path: str | Path,
    *,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    max_position_embeddings: int = 4096,
    seed: int = 0,
    texts: Iterable[str] = (),
    isolate: bool = False,
    whole_words: Iterable[str] = (),
) -> Path:
    """Build and save a tiny Qwen3 model and its tokenizer in ``path``; returns ``path``.

    ``vocab_size`` is the BPE target (the 256 byte symbols and the special tokens included);
    ``texts`` are added to the tokenizer's training corpus. Deterministic for a given ``seed``.

    ``isolate``: pre-split every whitespace run and punctuation mark into its own token and every digit
    into its own token (as Qwen's tokenizer does for digits), so a string is tokenized the same wherever it
    appears (``fulu87`` in ``"fulu87"`` and in ``echo fulu87``). Copying a value from an observation into
    a command is then a token-for-token copy, which a small model learns far sooner.

    ``whole_words`` (with ``isolate``): these words stay whole (one token each, their merges learned) and
    every other run of letters falls apart into single characters, so a random name is always the same
    letters whatever merges the corpus taught (``kefo`` is ``k e f o``, never ``ke fo`` here and ``k e fo``
    there).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    if isolate:
        from tokenizers import Regex

        pattern = r"\s+|[^\w\s]"
        words = sorted({w for w in whole_words if w}, key=lambda w: (-len(w), w))
        if words:
            alternatives = "|".join(re.escape(w) for w in words)
            pattern = rf"\b(?:{alternatives})\b|{pattern}|\w"
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([*_corpus(), *texts], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=max_position_embeddings,
        padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path
