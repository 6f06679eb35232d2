"""The language-model loader, its tokenizer, and the hidden state GILL reads (no hub, random weights)."""
import os

import pytest
import torch

from gill_lite.backbones.language_model import build_tiny_tokenizer, load_language_model, tiny_opt_config
from gill_lite.backbones.recipes import standin_recipe
from gill_lite.backbones.tokenizer import world_words
from gill_lite.config import get_profile

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _profile(path, **lm):
    return get_profile("ci", lm={"name_or_path": str(path), **lm})


def _save_opt(tmp_path, hidden=32, layers=2, heads=2, ffn=64, dtype=torch.float32):
    tok = build_tiny_tokenizer(world_words())
    cfg = standin_recipe(get_profile("ci")).lm
    from dataclasses import replace

    from transformers import OPTForCausalLM

    cfg = replace(cfg, hidden_size=hidden, num_layers=layers, num_heads=heads, ffn_dim=ffn)
    torch.manual_seed(0)
    model = OPTForCausalLM(tiny_opt_config(cfg, len(tok))).to(dtype)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return model, tok


def test_tokenizer_covers_world_texts_and_prepends_bos():
    from gill_lite.world.text import lm_pretraining_texts

    tok = build_tiny_tokenizer(world_words())
    ci = get_profile("ci")
    recipe = standin_recipe(ci).lm
    texts = lm_pretraining_texts(ci.world, recipe.n_stories, recipe.story_frames)[::25]
    for text in texts:
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id == tok.eos_token_id == 1
        assert tok.unk_token_id not in ids, text
    assert tok.decode(tok("A small red circle, at the top.").input_ids, skip_special_tokens=True) == \
        "a small red circle, at the top."


def test_hidden_states_last_is_after_final_layer_norm(tmp_path):
    model, tok = _save_opt(tmp_path)
    model.eval()
    ids = tok(["a red circle on the left."], return_tensors="pt").input_ids
    captured = {}
    last_layer = model.model.decoder.layers[-1]
    handle = last_layer.register_forward_hook(lambda m, i, o: captured.setdefault("x", o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    handle.remove()
    manual = model.model.decoder.final_layer_norm(captured["x"])
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(out.hidden_states[-1], manual)
    # and it is what the (tied) LM head reads
    torch.testing.assert_close(out.logits, model.lm_head(manual))
    assert not torch.allclose(out.hidden_states[-1], captured["x"])


def test_load_language_model_from_local_folder(tmp_path):
    model, _ = _save_opt(tmp_path)
    lm = load_language_model(_profile(tmp_path))
    assert lm.hidden_size == 32 and lm.embed_dim == 32
    assert not any(p.requires_grad for p in lm.model.parameters())
    for a, b in zip(model.state_dict().values(), lm.model.state_dict().values()):
        assert torch.equal(a, b)
    assert lm.tokenizer("a red circle.").input_ids[0] == lm.tokenizer.bos_token_id
    assert lm.config_name.startswith(tmp_path.name + "-")
    assert load_language_model(_profile(tmp_path)).config_name == lm.config_name


def test_config_name_changes_with_the_model(tmp_path):
    _save_opt(tmp_path / "a", layers=1)
    _save_opt(tmp_path / "b", layers=2)
    (tmp_path / "b").rename(tmp_path / "a2")
    name_a = load_language_model(_profile(tmp_path / "a")).config_name
    name_b = load_language_model(_profile(tmp_path / "a2")).config_name
    assert name_a.split("-")[-1] != name_b.split("-")[-1]


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ensure_standins"):
        load_language_model(_profile("models/does-not-exist"))


def test_paper_shaped_opt(tmp_path):
    """OPT-6.7B's width (4096, 32 heads) at one layer with a small vocab and FFN, in bfloat16 like paper."""
    _save_opt(tmp_path, hidden=4096, layers=1, heads=32, ffn=64, dtype=torch.bfloat16)
    lm = load_language_model(_profile(tmp_path, dtype="bfloat16"))
    assert lm.hidden_size == 4096 and lm.embed_dim == 4096
    assert lm.model.dtype == torch.bfloat16
    ids = lm.tokenizer(["a red circle.", "a blue square at the top."], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = lm.model(**ids, output_hidden_states=True)
    assert out.hidden_states[-1].shape == (2, ids.input_ids.shape[1], 4096)
    assert lm.model.get_input_embeddings()(ids.input_ids).shape[-1] == 4096
