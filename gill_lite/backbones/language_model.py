"""The frozen language model: OPT from the hub (``paper``) or a tiny OPT pretrained on ShapeStories text.

Both load through the same call, ``AutoModelForCausalLM.from_pretrained(name_or_path)``: the stand-in is a
folder written by ``save_pretrained``, exactly like a hub snapshot.

What GILL reads from it: the input embeddings (``model.get_input_embeddings()``), the last-layer hidden states
*after* the final layer norm, and the hidden size. In transformers 5 (as in 4.x) an OPT decoder records the
input of every layer (the embeddings, then each layer's output) and, after the loop, the output of
``final_layer_norm``; the last layer's raw output is not recorded. So with ``output_hidden_states=True``,
``len(hidden_states) == num_layers + 1`` and ``hidden_states[-1]`` is the normalised state the LM head reads.
``tests/test_backbones_lm.py`` checks this against ``final_layer_norm`` applied by hand to the last layer's
output (captured with a hook), and that ``lm_head`` of it gives the logits.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from .cards import config_name_for, weights_digest, write_model_card
from .tokenizer import build_word_tokenizer, world_words


@dataclass
class LanguageModel:
    """A causal LM plus its tokenizer. ``config_name`` names the frozen part in GILL checkpoints."""

    model: object  # transformers PreTrainedModel (OPTForCausalLM at every profile)
    tokenizer: object
    config_name: str

    @property
    def hidden_size(self) -> int:
        # OPT projects embeddings when word_embed_proj_dim != hidden_size; the states GILL reads are hidden_size
        return int(self.model.config.hidden_size)

    @property
    def embed_dim(self) -> int:
        """Width of the input embeddings (``word_embed_proj_dim`` for OPT; equal to hidden_size for 6.7B)."""
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def device(self):
        return next(self.model.parameters()).device


def _dtype(name: str):
    import torch

    try:
        return getattr(torch, name)
    except AttributeError:
        raise ValueError(f"unknown dtype {name!r}") from None


def load_language_model(profile, device: str | None = None) -> LanguageModel:
    """Load the profile's LM (``profile.lm.name_or_path``: a hub id, or a local folder) frozen, in eval mode.

    A local folder never touches the network; a hub id respects ``HF_HUB_OFFLINE``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = profile.resolve(profile.lm.name_or_path)
    local = Path(source).is_dir()
    if not local and source.startswith(("/", "./", "models/")):
        raise FileNotFoundError(
            f"language model folder {source} does not exist; build the stand-ins with "
            f"`gill_lite.backbones.ensure_standins(profile)` (profile {profile.name!r})"
        )
    kwargs = {"local_files_only": True} if local else {}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=_dtype(profile.lm.dtype), **kwargs)
    model.requires_grad_(False).eval()
    if device:
        model.to(device)
    name = config_name_for(source, model.config.to_dict(), weights_digest(source) if local else None)
    return LanguageModel(model=model, tokenizer=tokenizer, config_name=name)


def build_tiny_tokenizer(words, model_max_length: int = 128):
    """The stand-in LM's word-level tokenizer: ``</s>`` is prepended to every text, as OPT's tokenizer does."""
    return build_word_tokenizer(words, template="bos", model_max_length=model_max_length)


def tiny_opt_config(lm_cfg, vocab_size: int):
    """An `OPTConfig` from a `LanguageModelRecipe` with the stand-in tokenizer's special ids."""
    from transformers import OPTConfig

    return OPTConfig(
        vocab_size=vocab_size, hidden_size=lm_cfg.hidden_size, num_hidden_layers=lm_cfg.num_layers,
        ffn_dim=lm_cfg.ffn_dim, num_attention_heads=lm_cfg.num_heads,
        max_position_embeddings=lm_cfg.max_positions, word_embed_proj_dim=lm_cfg.hidden_size,
        do_layer_norm_before=True, dropout=0.0, attention_dropout=0.0,
        pad_token_id=0, bos_token_id=1, eos_token_id=1, tie_word_embeddings=True,
    )


def _pack(texts, tokenizer, block: int):
    """Concatenate ``</s> text`` for every text and cut into blocks of ``block`` tokens (GPT-style packing)."""
    import torch

    ids = [i for t in texts for i in tokenizer(t).input_ids]
    n = len(ids) // block
    return torch.tensor(ids[: n * block]).view(n, block)


def text_perplexity(model, tokenizer, texts, batch_size: int = 64) -> float:
    """Per-token perplexity of ``texts`` (each scored on its own, after its ``</s>``), end token included."""
    import torch

    eos = tokenizer.eos_token_id
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer([t for t in texts[i:i + batch_size]], return_tensors="pt", padding=True)
            ids, mask = enc.input_ids, enc.attention_mask
            # append </s> at each text's end so the model is also scored on stopping
            lengths = mask.sum(1)
            ids = torch.cat([ids, torch.zeros_like(ids[:, :1])], 1)
            mask = torch.cat([mask, torch.zeros_like(mask[:, :1])], 1)
            ids[torch.arange(len(ids)), lengths] = eos
            mask[torch.arange(len(ids)), lengths] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((target != -100).sum())
    return math.exp(total / max(count, 1))


def greedy_samples(model, tokenizer, prompts, max_new_tokens: int = 40) -> list[str]:
    """Greedy continuations of ``prompts`` (decoded, prompt included), stopping at ``</s>``."""
    import torch

    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            gen = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            )
            out.append(tokenizer.decode(gen[0], skip_special_tokens=True))
    return out


SAMPLE_PROMPTS = ("A small red", "There is a", "A large blue square on the left, small. Next", "Q: what colour is the circle?\nA:")


def heldout_texts(world_cfg, n: int = 200) -> dict[str, list[str]]:
    """Texts the LM never reads: test-split captions and evaluation-stream stories."""
    from gill_lite.world.corpus import make_split
    from gill_lite.world.stories import make_stories

    captions = [e.caption for e in make_split("test", n, world_cfg.seed, world_cfg.heldout_fraction, world_cfg.image_size)]
    stories = [s.text for s in make_stories(n, world_cfg.seed, stream="eval", image_size=world_cfg.image_size)]
    return {"captions": captions, "stories": stories}


def pretrain_language_model(profile, recipe, out_dir, log=print) -> dict:
    """Pretrain the stand-in OPT of ``recipe`` (a `LanguageModelRecipe`) on `lm_pretraining_texts` of the
    profile's world and save it (model, tokenizer, MODEL_CARD.md).

    Returns the measured figures (held-out perplexities, greedy samples, time).
    """
    import torch
    from transformers import OPTForCausalLM
    from tqdm.auto import tqdm

    from gill_lite.world.text import lm_pretraining_texts

    cfg = recipe
    torch.manual_seed(cfg.seed)
    tokenizer = build_tiny_tokenizer(world_words(), model_max_length=cfg.max_positions)
    model = OPTForCausalLM(tiny_opt_config(cfg, len(tokenizer)))
    texts = lm_pretraining_texts(profile.world, cfg.n_stories, tuple(cfg.story_frames))
    block = min(cfg.block_size, cfg.max_positions)
    data = _pack(texts, tokenizer, block)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, cfg.pretrain_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.pretrain_steps) / cfg.pretrain_steps))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    t0 = time.time()
    for step in (bar := tqdm(range(cfg.pretrain_steps), desc="pretrain LM", mininterval=10)):
        batch = data[torch.randint(len(data), (cfg.batch_size,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    train_s = time.time() - t0
    model.eval()
    held = heldout_texts(profile.world, n=min(200, profile.world.n_stories))
    figures = {f"perplexity_{k}": round(text_perplexity(model, tokenizer, v), 3) for k, v in held.items()}
    samples = greedy_samples(model, tokenizer, SAMPLE_PROMPTS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    write_model_card(
        out_dir, title="Language model stand-in (OPT architecture)",
        config=dict(vars(cfg)) | {"vocab_size": len(tokenizer), "parameters": n_params, "block": block},
        data=f"`lm_pretraining_texts(world, {cfg.n_stories}, {tuple(cfg.story_frames)})`: {len(texts)} texts (train-split captions, "
             f"narrated 'lm'-stream stories of {cfg.story_frames[0]}-{cfg.story_frames[1]} frames, "
             f"Q/A dialogues), packed into {len(data)} blocks of {block} tokens",
        recipe=f"AdamW lr {cfg.lr}, betas (0.9, 0.95), wd 0.01, warm-up {warmup} then cosine, {cfg.pretrain_steps} "
               f"steps of batch {cfg.batch_size}, seed {cfg.seed}, {train_s / 60:.1f} min on CPU",
        figures=figures, samples=samples,
    )
    log(f"LM: {figures} in {train_s:.0f}s")
    return figures | {"samples": samples, "train_seconds": round(train_s, 1)}
