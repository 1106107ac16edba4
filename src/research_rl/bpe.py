"""The project's one byte-level BPE recipe, for models made from scratch: the demo's policy, the
test fixtures, the tiny assets and the benchmarks train their tokenizers here.

Pre-tokens are split exactly as transformers' ``Qwen2Tokenizer`` splits them (NFC, then Qwen2's
regex): beside a Qwen2 ``config.json``, ``AutoTokenizer`` loads the saved files as a
``Qwen2Tokenizer``, which replaces the normaliser and pre-tokeniser with its own, and any other
split would make the tokenizer in memory and the one loaded from disk encode the same text
differently. Byte-level, so any text round-trips exactly. The protocol tags are added as ordinary
(non-special) tokens: atomic, but kept when text is decoded with ``skip_special_tokens=True`` (TRL
decodes completions that way).
"""

from __future__ import annotations

from collections.abc import Iterable

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

    ``pad_token=EOS`` pads with EOS (one special token only);
    ``added_tokens`` are added as ordinary tokens (``()`` for none).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
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
