"""The model inputs of each VIST setting, built exactly as the published evaluation builds them.

GILL's ``evals/generate_vist_images.py`` and FROMAGe's ``evals/eval_vist_retrieval.py`` interleave a story as
``[caption1, image1, caption2, image2, caption3, image3, caption4, image4, caption5]`` (each frame's caption
*before* its image) and then force ``[IMG0..7]`` (GILL) / ``[RET]`` (FROMAGe) at the end. The 1-caption and
5-caption settings were never released; we build them as the same list without the images.
"""
from __future__ import annotations

SETTINGS = ("last_caption", "captions", "captions_images")
SETTING_TITLES = {
    "last_caption": "1 caption",
    "captions": "5 captions",
    "captions_images": "5 captions + 4 images",
    "dialogue": "Q/A dialogue",
    "oracle": "true description of the last frame (upper bound)",
}
# The text-to-image baseline reads only text: settings (a) and (b).
BASELINE_SETTINGS = ("last_caption", "captions")


def build_context(captions, images, setting: str) -> list:
    """The interleaved input (list of str | image) for one story and one setting; ``[IMG]`` is added later
    by the model (`gill_lite.inference`), never here.

    captions: the story's captions (5 in VIST); images: its images, of which only the first len-1 are used.
    """
    captions = list(captions)
    if len(captions) < 1:
        raise ValueError("a story needs at least one caption")
    if setting == "last_caption":
        return [captions[-1]]
    if setting == "captions":
        return captions
    if setting == "captions_images":
        if len(images) < len(captions) - 1:
            raise ValueError(f"setting captions_images needs {len(captions) - 1} context images, got {len(images)}")
        return images_after_captions(captions, images, range(len(captions) - 1))
    raise ValueError(f"unknown setting {setting!r}; expected one of {SETTINGS}")


def images_after_captions(captions, images, frames) -> list:
    """The captions with the images of ``frames`` (0-based, context frames only: never the last, whose image is
    the target) each right after its own caption, as the ``captions_images`` setting places all of them."""
    frames = set(frames)
    if any(not 0 <= i < len(captions) - 1 for i in frames):
        raise ValueError(f"frames {sorted(frames)} must be context frames 0..{len(captions) - 2}")
    context: list = []
    for i, caption in enumerate(captions):
        context.append(caption)
        if i in frames:
            context.append(images[i])
    return context


def baseline_prompt(captions, setting: str) -> str:
    """The text the generator baseline reads: the last caption, or the captions joined with spaces.

    The generator's own tokenizer truncates it (77 tokens for SD, 16 for the tiny stand-in), as the paper's
    Stable Diffusion baseline did.
    """
    if setting == "last_caption":
        return captions[-1]
    if setting == "captions":
        return " ".join(captions)
    raise ValueError(f"the text-only baseline has settings {BASELINE_SETTINGS}, not {setting!r}")


def dialogue_text(rounds) -> str:
    """Q/A rounds as GILL's VisDial evaluation writes them: ``Q: ...?\\nA: ...`` joined by newlines."""
    lines = []
    for question, answer in rounds:
        question = question.strip()
        if not question.endswith("?"):
            question += "?"
        lines += [f"Q: {question}", f"A: {answer.strip()}"]
    return "\n".join(lines)
