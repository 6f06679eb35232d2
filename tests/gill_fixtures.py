"""Tiny random frozen parts for GILL's tests: a random OPT, a word-level tokenizer, fake encoders.

No trained weights, no downloads: everything is built in-process from seeds in well under a second.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from gill_lite.world.attributes import COLOURS, KINDS, POSITIONS, SIZES

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
EXTRA = "a an the there is we see sits at on in of and next to it top bottom left right middle , . : ? \n".split(" ")


def words() -> list[str]:
    ws = set(KINDS) | set(COLOURS) | set(SIZES) | {w for p in POSITIONS for w in p.split()} | set(EXTRA)
    return SPECIALS + sorted(w for w in ws if w and w not in SPECIALS)


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(words())}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


@dataclass
class FakeLM:
    model: object
    tokenizer: object
    hidden_size: int
    config_name: str


class FakeImageEncoder:
    """Deterministic pooled features: a fixed random projection of the mean-pooled, downsampled pixels."""

    def __init__(self, hidden_size: int = 24, name: str = "fake-clip"):
        self.hidden_size, self.config_name = hidden_size, name
        g = torch.Generator().manual_seed(1)
        self.proj = torch.randn(3 * 16, hidden_size, generator=g)

    def encode(self, images) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images)).float().div(255).permute(0, 3, 1, 2)
        x = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return x @ self.proj


class FakeGenerator:
    """``encode_text``: per-word hashed vectors padded to ``max_length``; ``generate``: images from embeds."""

    def __init__(self, max_length: int = 6, text_width: int = 16, name: str = "fake-sd"):
        self.max_length, self.text_width, self.config_name = max_length, text_width, name

    def _word(self, w: str) -> torch.Tensor:
        seed = int(hashlib.sha256(w.encode()).hexdigest()[:8], 16)
        return torch.randn(self.text_width, generator=torch.Generator().manual_seed(seed))

    def encode_text(self, captions) -> torch.Tensor:
        out = torch.zeros(len(captions), self.max_length, self.text_width)
        for i, c in enumerate(captions):
            for j, w in enumerate(c.lower().split()[: self.max_length]):
                out[i, j] = self._word(w)
        return out

    def generate(self, prompt_embeds, seed=0, **kwargs) -> np.ndarray:
        v = prompt_embeds.detach().float().mean(1)[:, :3].sigmoid().mul(255).to(torch.uint8).numpy()
        return np.broadcast_to(v[:, None, None, :], (len(v), 8, 8, 3)).copy()

    def generate_from_text(self, captions, seed=0, **kwargs) -> np.ndarray:
        return self.generate(self.encode_text(captions), seed=seed)


def tiny_parts(hidden: int = 32, layers: int = 1, heads: int = 2, image_hidden: int = 24, max_length: int = 6,
               text_width: int = 16, tied: bool = True, lm_name: str = "fake-opt", seed: int = 0):
    """A `FrozenParts`-shaped namespace with a random OPT and fake image encoder / generator."""
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(seed)
    tok = make_tokenizer()
    cfg = OPTConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, ffn_dim=2 * hidden,
                    num_attention_heads=heads, max_position_embeddings=128, word_embed_proj_dim=hidden,
                    pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                    dropout=0.0, tie_word_embeddings=tied)
    lm = OPTForCausalLM(cfg).eval()
    return SimpleNamespace(lm=FakeLM(lm, tok, hidden, lm_name), image_encoder=FakeImageEncoder(image_hidden),
                           generator=FakeGenerator(max_length, text_width), eval_clip=None)


def tiny_train_cfg(**changes):
    from gill_lite.config import get_profile
    from dataclasses import replace

    base = get_profile("ci").train
    return replace(base, **{"mapper_d_model": 16, "mapper_heads": 2, "mapper_ffn": 32, "retrieval_dim": 8, **changes})
