"""A tiny Qwen3 model whose tokenizer knows ``<think>``/``</think>``/``<tool_call>``/``</tool_call>`` (added
tokens, as in Qwen3) and carries a Qwen3-style chat template written for these tests: ``reasoning_content``
(or an inline ``<think>`` block) rendered as ``<think>\\nR\\n</think>\\n\\n`` only for assistant turns after the
last user message (and an empty block on the last one), ``tool_calls`` as ``<tool_call>`` JSON, tool
messages as ``<tool_response>`` user turns. It mimics the behaviour of Qwen3's official template; it is not
that file."""

from __future__ import annotations

import shutil
from pathlib import Path

THINK_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]

QWEN3_THINK_TEMPLATE = (
    "{%- set ns = namespace(last_query=-1) %}"
    "{%- for m in messages %}{%- if m['role'] == 'user' %}{%- set ns.last_query = loop.index0 %}{%- endif %}"
    "{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- set content = message['content'] if message['content'] is string else '' %}"
    "{%- set reasoning = '' %}"
    "{%- if message['reasoning_content'] is string %}{%- set reasoning = message['reasoning_content'] %}"
    "{%- elif '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1] %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}"
    "{%- if message['tool_calls'] %}"
    "{%- for call in message['tool_calls'] %}"
    "{%- set fn = call['function'] if call['function'] is defined else call %}"
    "{%- if loop.first and content or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{{- '<tool_call>\\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' }}"
    "{%- if fn['arguments'] is string %}{{- fn['arguments'] }}{%- else %}{{- fn['arguments'] | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message['content'] + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)


def build_think_model(tiny_model: Path, path: Path) -> Path:
    """Copy the tiny model to ``path``, add the think/tool-call tokens (embeddings resized) and the template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(tiny_model, path)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.add_tokens(THINK_TOKENS)
    tok.chat_template = QWEN3_THINK_TEMPLATE
    tok.save_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(path)
    return path
