"""The context chain, link by link: story -> frozen LM -> [IMG] states -> mapper -> drawn image.

For each VIST setting and each attribute of the last frame, only over the stories whose inputs determine that
attribute (``Story.known``), so every figure's ceiling is 1.0 and a link that loses the story shows at once:

- ``describe``: the frozen LM continues the context with an opener (" Now the", the narrator's restatement)
  greedily, and the attributes are parsed from its words;
- ``lm_probe``: a linear probe on the LM's last-layer state at the context's last token;
- ``img_probe``: a linear probe on GILL's 8 [IMG] states after the context (their mean);
- ``mapper``: the mapper's output for those states read as its nearest description: of the generator's
  text-encoder outputs for every shape's caption (`description_space`), the closest by cosine. It needs no
  training and no drawing, so it tells the mapper's loss apart from the generator's;
- ``image``: the world's attribute probe on the image GILL draws from those states;
- ``oracle_image``: the same probe on the image the generator draws from the last frame's *true* caption, over
  the same stories: the image link's ceiling (no mapper can draw better than the generator it feeds).

The probes are fitted on "lm"-stream stories (never the evaluation stories) and scored on evaluation stories.

One diagnostic input beside the VIST settings, ``captions_described`` (`DESCRIBED`): the 5 captions + 4 images
context with each image replaced by its frame's corpus caption, i.e. what GILL would read if the visual prefix
turned an image into exactly its caption. It knows what ``captions_images`` knows; the difference between the two
rows is what the images lose on their way into the LM.
Everything goes through the same `gill_lite.model.functional` calls the evaluation uses (one BOS per context).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..world.attributes import ATTRIBUTES, VALUES
from .contexts import SETTINGS, build_context, images_after_captions

LINKS = ("describe", "lm_probe", "img_probe", "mapper", "image", "oracle_image")
DESCRIBE_OPENER = "Now the"
DESCRIBED = "captions_described"  # diagnostic: captions_images with every image replaced by its description


@dataclass
class ChainStory:
    """What the chain needs of a story: captions, images, the last frame's shape and what each setting knows."""

    captions: list[str]
    images: np.ndarray
    shape: object
    known: dict
    descriptions: list[str] | None = None  # each frame's corpus caption (template 0), for `DESCRIBED`
    events: list[str] | None = None  # frames 2-5 (world stories): `mapper_position_by_last_event`


def chain_stories(stories, image_size: int = 32) -> list[ChainStory]:
    """World `Story` objects (rendered here) or `EvalStory` objects (with ``shape`` and ``known``)."""
    from ..world.captions import caption_shape

    out = []
    for s in stories:
        if hasattr(s, "frames"):  # gill_lite.world.stories.Story
            shapes, images, final, known = [f.main for f in s.frames], s.images(image_size), s.final, s.known
        else:
            shapes, images, final, known = s.frame_shapes, s.images, s.shape, s.known or {}
        known = {k: list(v) for k, v in known.items()}
        if "captions_images" in known:
            known[DESCRIBED] = known["captions_images"]
        described = [caption_shape(x, 0) for x in shapes] if shapes is not None else None
        events = list(s.events) if getattr(s, "events", None) is not None else None
        out.append(ChainStory(list(s.captions), images, final, known, described, events))
    return out


def probe_fit_stories(profile, n: int) -> list[ChainStory]:
    """The stories the chain's probes are fitted on: the first ``n`` "lm"-stream stories, capped at the number the
    LM stand-in read in its pretraining (never evaluation stories)."""
    from ..backbones.recipes import standin_recipe
    from ..world.stories import make_stories

    w = profile.world
    n = min(n, standin_recipe(profile).lm.n_stories)
    return chain_stories(make_stories(n, w.seed, "lm", w.image_size), w.image_size)


def _contexts(stories, setting: str) -> list:
    if setting != DESCRIBED:
        return [build_context(s.captions, s.images, setting) for s in stories]
    if any(s.descriptions is None for s in stories):
        raise ValueError(f"setting {DESCRIBED!r} needs each frame's shape (world stories)")
    return [build_context(s.captions, s.descriptions, "captions_images") for s in stories]


def describe(model, contexts, opener: str = DESCRIBE_OPENER, max_new_tokens: int = 10) -> list[dict]:
    """The attributes the LM names when it continues each context with ``opener`` (greedy)."""
    from ..model.functional import generate_text
    from .stages import parse_caption

    out = []
    for c in contexts:
        c = list(c) if isinstance(c, list) else [c]
        text = generate_text(model, c + [opener], max_new_tokens=max_new_tokens).text
        out.append(parse_caption(opener + " " + text.split("\n")[0]))
    return out


def captions_with_images(story: ChainStory, frames) -> list:
    """A story's captions with the images of ``frames`` (0-based) each after its own caption
    (`contexts.images_after_captions`): ``(0, 1, 2, 3)`` is the ``captions_images`` setting, ``()`` the 5 captions."""
    return images_after_captions(story.captions, story.images, frames)


def describe_with_images(model, stories, frames) -> dict:
    """The ``describe`` link after the captions with the images of ``frames`` inserted (`captions_with_images`),
    per attribute over the stories whose *captions* determine it. There the images add nothing the captions do
    not say, so whatever this falls below the captions alone is what the images disturb in the LM's reading of the
    story, apart from what they fail to add."""
    hits = _matches(describe(model, [captions_with_images(s, frames) for s in stories]), stories)
    return _per_attribute(hits, stories, "captions")


def _labels(stories, attribute: str) -> torch.Tensor:
    values = VALUES[attribute]
    return torch.tensor([values.index(getattr(s.shape, attribute)) for s in stories])


def _determined_mean(hits, stories, setting: str, attribute: str) -> float | None:
    keep = [h for h, s in zip(hits, stories) if attribute in s.known.get(setting, ())]
    return float(np.mean(keep)) if keep else None


@dataclass
class DescriptionSpace:
    """Every shape of the world and the generator's text-encoder output of its caption (template 0), flattened
    and unit-normalised ``(216, max_length * text_width)``: where the ``mapper`` link looks up its nearest."""

    shapes: list
    embeddings: torch.Tensor

    def nearest(self, prompt_embeds: torch.Tensor) -> list:
        """The shape whose caption's encoding is closest (cosine) to each of ``prompt_embeds`` (N, L, W)."""
        x = torch.nn.functional.normalize(prompt_embeds.float().flatten(1).cpu(), dim=1)
        return [self.shapes[i] for i in (x @ self.embeddings.T).argmax(1).tolist()]


def description_space(generator) -> DescriptionSpace:
    """The `DescriptionSpace` of ``generator``'s text encoder."""
    from ..world.attributes import all_shapes
    from ..world.captions import caption_shape

    shapes = list(all_shapes())
    embeddings = generator.encode_text([caption_shape(x, 0) for x in shapes]).float().flatten(1).cpu()
    return DescriptionSpace(shapes, torch.nn.functional.normalize(embeddings, dim=1))


def _per_attribute(hits: dict, stories, setting: str) -> dict:
    """``{attribute: accuracy over the stories whose input determines it}`` from per-story ``hits[attribute]``."""
    return {a: _determined_mean(list(hits[a]), stories, setting, a) for a in ATTRIBUTES}


def _matches(predicted, stories) -> dict:
    """Per attribute, whether each predicted shape (or attribute dict) names the story's last frame's value."""
    get = (lambda p, a: p[a]) if predicted and isinstance(predicted[0], dict) else getattr
    return {a: [get(p, a) == getattr(s.shape, a) for p, s in zip(predicted, stories)] for a in ATTRIBUTES}


def measure_chain(model, generator, fit_stories, eval_stories, settings=SETTINGS, seed: int = 0, draw: bool = True, progress: bool = True) -> dict:
    """Every link's accuracy per setting and attribute, where determined (see module docstring).

    Returns ``{setting: {link: {attribute: accuracy}}, "counts": {setting: {attribute: n determined}}}``.
    ``fit_stories`` / ``eval_stories``: `ChainStory` lists (`chain_stories`). ``generator`` reads the mapper's
    output (``mapper``) and draws GILL's images and the true captions' (``image``, ``oracle_image``: skipped with
    ``draw=False``).
    """
    from tqdm.auto import tqdm

    from ..model.functional import img_states_batch, last_states
    from ..world.captions import caption_shape
    from .metrics import attribute_scores
    from .stages import linear_probe_predictions

    fit_shapes, eval_shapes = [s.shape for s in fit_stories], [s.shape for s in eval_stories]
    space = description_space(generator)
    oracle = None
    if draw:  # drawn once: the true caption is the same in every setting, only the stories counted differ
        oracle = attribute_scores(generator.generate_from_text([caption_shape(x, 0) for x in eval_shapes], seed=seed),
                                  eval_shapes)
    out: dict = {"counts": {}}
    for setting in tqdm(settings, desc="context chain", disable=not progress):
        fit_ctx = _contexts(fit_stories, setting)
        eval_ctx = _contexts(eval_stories, setting)
        row: dict = {}
        said = describe(model, eval_ctx)
        row["describe"] = _per_attribute(_matches(said, eval_stories), eval_stories, setting)
        eval_states = img_states_batch(model, eval_ctx)  # read by the img_probe link and drawn by the image link
        features = {"lm_probe": (last_states(model, fit_ctx), last_states(model, eval_ctx)),
                    "img_probe": (img_states_batch(model, fit_ctx).states.mean(1).cpu(),
                                  eval_states.states.mean(1).cpu())}
        for link, (f_fit, f_eval) in features.items():
            predicted = linear_probe_predictions(f_fit, fit_shapes, f_eval, seed=seed)
            hits = {a: (predicted[a] == _labels(eval_stories, a)).tolist() for a in ATTRIBUTES}
            row[link] = _per_attribute(hits, eval_stories, setting)
        mapped = _mapped(model, eval_states.states)
        row["mapper"] = _per_attribute(_matches(space.nearest(mapped), eval_stories), eval_stories, setting)
        if draw:
            images = np.concatenate([generator.generate(mapped[i : i + 64], seed=seed + i)
                                     for i in range(0, len(eval_ctx), 64)])
            row["image"] = _per_attribute(attribute_scores(images, eval_shapes), eval_stories, setting)
            row["oracle_image"] = _per_attribute(oracle, eval_stories, setting)
        out[setting] = row
        out["counts"][setting] = {a: sum(a in s.known.get(setting, ()) for s in eval_stories) for a in ATTRIBUTES}
    return out


def _mapped(model, states: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The mapper's output for (N, n_img, d) [IMG] states, in batches: (N, max_length, text_width)."""
    from ..model.functional import prompt_embeds

    return torch.cat([prompt_embeds(model, states[i : i + batch_size]) for i in range(0, len(states), batch_size)])


def _nearest_after(model, space: DescriptionSpace, contexts) -> list:
    """The mapper's output for the [IMG] states after each of ``contexts``, read as its nearest description."""
    from ..model.functional import img_states_batch

    return space.nearest(_mapped(model, img_states_batch(model, contexts).states))


def mapper_kind_by_captions_read(model, generator, eval_stories, progress: bool = True) -> dict[int, float]:
    """The ``mapper`` link's kind accuracy when GILL reads only each story's first ``k`` captions, for every ``k``.

    A story's first caption names its kind and no event changes it, so every prefix determines the kind and every
    figure's ceiling is 1.0: the fall with ``k`` is what the [IMG] states -> mapper link forgets of a word said
    ``k - 1`` sentences before the [IMG] tokens. Returns ``{k: accuracy}`` for k = 1 .. the shortest story's
    number of captions. Raises ValueError if a story's first caption does not name its kind."""
    from tqdm.auto import tqdm

    unnamed = [i for i, s in enumerate(eval_stories) if s.shape.kind not in s.captions[0].lower()]
    if unnamed:
        raise ValueError(f"{len(unnamed)} stories' first caption does not name their kind (first: #{unnamed[0]})")
    space = description_space(generator)
    out = {}
    for k in tqdm(range(1, min(len(s.captions) for s in eval_stories) + 1), desc="mapper kind by captions read",
                  disable=not progress):
        nearest = _nearest_after(model, space, [list(s.captions[:k]) for s in eval_stories])
        out[k] = float(np.mean([p.kind == s.shape.kind for p, s in zip(nearest, eval_stories)]))
    return out


END_WORDS = ("q",)  # besides </s>: a story in the LM's pretraining may end in questions ("Q: ..."; narration.py)


@torch.no_grad()
def lm_end_mass_by_captions_read(model, eval_stories, end_words=END_WORDS) -> dict[int, float]:
    """The frozen LM's next-token probability of ending the story (``</s>``, or a word of ``end_words`` that opens
    what follows a story in its pretraining) after each story's first ``k`` captions, averaged over the stories,
    for every ``k``. GILL's ``[IMG]`` tokens follow that state: an LM that expects the text to end there puts them
    where no ``[IMG]`` text of GILL's training ever put them. Raises ValueError if a word is not one token."""
    from ..model.functional import context_embeds

    ends = [model.bos_id]
    for word in end_words:
        ids = model.tokenize(word)
        if len(ids) != 1:
            raise ValueError(f"end word {word!r} is {len(ids)} tokens, not one")
        ends += ids
    head = model.lm.get_output_embeddings()
    n_k = min(len(s.captions) for s in eval_stories)
    masses = []
    for s in eval_stories:  # the LM is causal: one pass over all captions gives the state after each prefix
        hidden, _, _ = model.lm_forward(context_embeds(model, list(s.captions[:n_k]))[None])
        last = np.cumsum([len(ids) for ids in model.tokenize_batch(s.captions[:n_k])])  # BOS: token 0, so no -1
        masses.append(torch.softmax(head(hidden[0, last]).float(), -1)[:, ends].sum(-1))
    return {k + 1: float(m) for k, m in enumerate(torch.stack(masses).mean(0))}


RESTATEMENTS = {"colour": "It is {colour}.", "size": "It is {size}.", "position": "It is {where}."}


def restated_captions(shapes, n: int, seed: int = 0) -> list[list[str]]:
    """Each shape's corpus caption (template 0) followed by ``n`` sentences that each restate its colour, size or
    position (`RESTATEMENTS`, a seeded choice per sentence), as one context per shape. No sentence changes the
    scene or names the kind again, so the kind stays said ``n`` sentences before the [IMG] tokens."""
    from ..world.captions import WHERE, caption_shape

    rng = np.random.default_rng([seed, n])
    keys = list(RESTATEMENTS)
    out = []
    for shape in shapes:
        fields = {**shape.to_dict(), "where": WHERE[shape.position]}
        extra = [RESTATEMENTS[keys[int(i)]].format(**fields) for i in rng.integers(len(keys), size=n)]
        out.append([caption_shape(shape, 0), *extra])
    return out


def mapper_by_sentences_after(model, generator, max_sentences: int = 6, seed: int = 0) -> dict[int, dict]:
    """The ``mapper`` link on text that is no story: every world shape's caption followed by ``n`` restating
    sentences (`restated_captions`), for n = 0 .. ``max_sentences``. Returns ``{n: {attribute: accuracy}}`` over
    the 216 shapes (every attribute determined, ceiling 1.0).

    It separates what a story's events say from how many sentences it has: if kind falls with ``n`` here, the
    [IMG] states -> mapper link forgets a word with every sentence said after it, whatever the sentences say."""
    from ..world.attributes import all_shapes

    shapes = list(all_shapes())
    space = description_space(generator)
    out = {}
    for n in range(max_sentences + 1):
        nearest = _nearest_after(model, space, restated_captions(shapes, n, seed))
        out[n] = {a: float(np.mean([getattr(p, a) == getattr(x, a) for p, x in zip(nearest, shapes)]))
                  for a in ATTRIBUTES}
    return out


def restated_lines(by_n: dict[int, dict]) -> dict[str, float]:
    """Flat ``chain.restated_<n>.mapper.<attribute>`` figures from `mapper_by_sentences_after`'s output."""
    return {f"chain.restated_{n}.mapper.{a}": round(v, 4) for n, accs in by_n.items() for a, v in accs.items()}


def mapper_kind_without_caption(model, generator, eval_stories, drop: int = 1) -> float:
    """The ``mapper`` link's kind after each story's captions with caption ``drop`` (0-based, not the first, which
    names the kind) left out: the same last captions, one sentence fewer. Beside ``captions_first_<k>`` it tells
    the number of sentences apart from what the last ones say. Raises ValueError if ``drop`` is 0 or past a
    story's last caption."""
    if drop < 1:
        raise ValueError("the first caption names the kind; drop a later one (drop >= 1)")
    short = [i for i, s in enumerate(eval_stories) if len(s.captions) <= drop]
    if short:
        raise ValueError(f"{len(short)} stories have no caption {drop} to leave out (first: #{short[0]})")
    contexts = [[c for i, c in enumerate(s.captions) if i != drop] for s in eval_stories]
    nearest = _nearest_after(model, description_space(generator), contexts)
    return float(np.mean([p.kind == s.shape.kind for p, s in zip(nearest, eval_stories)]))


POSITION_EVENTS = ("move_to", "move_rel", "move_hidden", "reveal")  # the events that set a story's position


def last_position_event(events) -> str:
    """The last of a story's ``events`` that set the position (`POSITION_EVENTS`), or ``"frame1"`` if none did."""
    return next((e for e in reversed(list(events)) if e in POSITION_EVENTS), "frame1")


def mapper_position_by_last_event(model, generator, stories) -> dict[str, tuple[int, float]]:
    """The ``mapper`` link's position after 5 captions, split by the event that last set the story's position.

    ``stories``: `ChainStory` objects of world stories (`chain_stories` keeps their events; a story without them
    raises ValueError). Only stories whose captions determine the position count. Returns ``{event: (stories,
    accuracy)}``: a step ("It moves down.") asks the reader to work the position out from the one before, a
    "slides to" names it, so the two can part where the mapper has read only one of the forms."""
    if any(s.events is None for s in stories):
        raise ValueError("the split needs each story's events (world stories through `chain_stories`)")
    nearest = _nearest_after(model, description_space(generator), _contexts(stories, "captions"))
    hits: dict[str, list[bool]] = {}
    for story, shape in zip(stories, nearest):
        if "position" in story.known.get("captions", ()):
            hits.setdefault(last_position_event(story.events), []).append(shape.position == story.shape.position)
    return {e: (len(h), float(np.mean(h))) for e, h in sorted(hits.items())}


def recentred_states(model, corpus_texts, offset_contexts, eval_contexts) -> torch.Tensor:
    """The [IMG] states after ``eval_contexts``, all moved by one vector per [IMG] position: the mean state after
    ``corpus_texts`` (what the mapper was trained to read) minus the mean after ``offset_contexts``. ``(N, n_img, d)``.

    A diagnostic, not part of GILL: with ``offset_contexts`` from "lm"-stream stories (unlabelled, never the
    evaluation stories) it asks whether the mapper loses a story's attributes or only reads states that lie, on
    average, somewhere its training texts' states never did."""
    from ..model.functional import img_states_batch

    corpus_mean = img_states_batch(model, list(corpus_texts)).states.mean(0)
    offset_mean = img_states_batch(model, list(offset_contexts)).states.mean(0)
    return img_states_batch(model, list(eval_contexts)).states - offset_mean + corpus_mean


def mapper_recentred(model, generator, corpus_texts, offset_stories, eval_stories, setting: str = "captions") -> dict:
    """The ``mapper`` link of ``setting`` on `recentred_states` (offset from ``offset_stories``' contexts):
    ``{attribute: accuracy where determined}``, beside the link as measured (`measure_chain`)."""
    states = recentred_states(model, corpus_texts, _contexts(offset_stories, setting), _contexts(eval_stories, setting))
    nearest = description_space(generator).nearest(_mapped(model, states))
    return _per_attribute(_matches(nearest, eval_stories), eval_stories, setting)


def chain_lines(chain: dict) -> dict[str, float]:
    """Flat ``chain.<setting>.<link>.<attribute>`` figures (and ``chain.<setting>.determined.<attribute>``)."""
    out = {}
    for setting, row in chain.items():
        if setting == "counts":
            continue
        for link, accs in row.items():
            for a, v in accs.items():
                if v is not None:
                    out[f"chain.{setting}.{link}.{a}"] = round(v, 4)
        for a, n in chain["counts"][setting].items():
            out[f"chain.{setting}.determined.{a}"] = n
    return out


def image_link(gen, stories, settings=SETTINGS) -> dict:
    """The ``image`` and ``oracle_image`` links from a VIST generation run already made
    (`GenerationResults.attributes` of ``gill/<setting>`` and ``sd/oracle``), scored where determined: no second
    round of image generation. Returns ``{setting: {link: {attribute: accuracy}}}``."""
    out = {}
    oracle = gen.attributes.get("sd/oracle")
    for setting in settings:
        hits = gen.attributes.get(f"gill/{setting}")
        if hits is None:
            continue
        out[setting] = {"image": _per_attribute(hits, stories, setting)}
        if oracle is not None:
            out[setting]["oracle_image"] = _per_attribute(oracle, stories, setting)
    return out


def chain_table(chain: dict) -> str:
    """A markdown table: one row per (setting, link), one column per attribute (n determined in the header)."""
    rows = ["| input | link | " + " | ".join(ATTRIBUTES) + " |", "|---|---|" + "---|" * len(ATTRIBUTES)]
    for setting in (s for s in (*SETTINGS, DESCRIBED) if s in chain):
        counts = chain["counts"][setting]
        for link in LINKS:
            accs = chain[setting].get(link)
            if accs is None:
                continue
            cells = ["-" if accs[a] is None else f"{accs[a]:.2f}" for a in ATTRIBUTES]
            rows.append(f"| {setting} | {link} | " + " | ".join(cells) + " |")
        rows.append(f"| {setting} | (stories where determined) | " + " | ".join(str(counts[a]) for a in ATTRIBUTES) + " |")
    return "\n".join(rows) + "\n"
