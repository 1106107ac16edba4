"""A byte-level BPE tokenizer trained on the world's text, saved in the standard Hugging Face format.

Byte-level, so any text round-trips exactly (a user's question with unseen words included); the
vocabulary is large enough that the world's names are mostly whole tokens, which keeps sequences
short and makes "copy this name" one decision for the policy. The protocol tags are added as
ordinary (non-special) tokens: atomic, but kept when text is decoded with
``skip_special_tokens=True`` (TRL decodes completions that way).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

EOS = "<|endoftext|>"
PAD = "<|pad|>"
PROTOCOL_TOKENS = (
    "<think>",
    "</think>",
    "<search>",
    "</search>",
    "<result>",
    "</result>",
    "<answer>",
    "</answer>",
    "\\boxed{",
)


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4096,
    min_frequency: int = 2,
    *,
    pad_token: str = PAD,
    added_tokens: Iterable[str] = PROTOCOL_TOKENS,
    chat_template: str | None = None,
):
    """Train on ``texts`` and return a ``PreTrainedTokenizerFast`` with eos and pad set.

    The one byte-level BPE recipe of the project: the demo, the test fixtures, the tiny assets and
    the benchmark all build theirs here. ``pad_token=EOS`` pads with EOS (one special token only);
    ``added_tokens`` are added as ordinary tokens (``()`` for none).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(dict.fromkeys([EOS, pad_token])),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=pad_token)
    fast.add_tokens(list(added_tokens))
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def save_tokenizer(tokenizer, out_dir: str | Path) -> None:
    tokenizer.save_pretrained(str(out_dir))
