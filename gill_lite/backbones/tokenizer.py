"""Word-level tokenizers for the ShapeStories stand-ins, built in code with the `tokenizers` library.

The world has a closed vocabulary of a few dozen words, so one id per word (and per punctuation mark) is
the honest tokenizer: open_clip's BPE has 49,408 ids and GPT-2's 50,257, far too many for tiny models.
Ids 0..2 are special and shared by every stand-in (OPT's convention: ``</s>`` is both BOS and EOS):

    <pad> = 0, </s> = 1, <unk> = 2
"""
from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
PAD, EOS, UNK = SPECIAL_TOKENS


def build_word_tokenizer(words: Iterable[str], template: str = "bos", model_max_length: int = 128):
    """A `PreTrainedTokenizerFast` with one id per word of ``words``.

    ``template="bos"`` prepends ``</s>`` to every text (OPT's tokenizer does this);
    ``template="eos"`` appends it (CLIP's text towers pool the state at the end-of-text token).
    The normaliser lowercases, the pre-tokenizer splits as `word_tokens` does (newlines are whitespace),
    and the decoder glues punctuation back ("a red circle." rather than "a red circle .").
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if template not in ("bos", "eos"):
        raise ValueError(f"template must be 'bos' or 'eos', not {template!r}")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in sorted({w.lower() for w in words if w and not w.isspace()}):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # Same split as `gill_lite.world.text.word_tokens`: runs of letters, or any single other character.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[a-z]+|[^a-z]"), behavior="isolated")]
    )
    single = f"{EOS} $A" if template == "bos" else f"$A {EOS}"
    pair = f"{EOS} $A $B" if template == "bos" else f"$A $B {EOS}"
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(EOS, vocab[EOS])]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=model_max_length, padding_side="right",
    )


def world_words() -> list[str]:
    """Every word the world's texts use (`gill_lite.world.text.world_vocabulary`)."""
    from gill_lite.world.text import world_vocabulary

    return list(world_vocabulary())
