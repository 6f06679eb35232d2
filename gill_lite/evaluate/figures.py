"""Pictures of evaluated stories: the true frames, each setting's generated last image, the retrieved one."""
from __future__ import annotations

from .contexts import SETTING_TITLES
from .tables import MODEL_TITLES


def story_results_figure(stories, gen, ret=None, n: int = 4, retrieval_name: str = "gill/captions_images"):
    """One row per story (the first ``n`` with examples): frames 1-5 (the 5th is the target), then the last
    image generated under each setting, then the top retrieved image (never one of the story's own)."""
    from gill_lite.figures import image_grid

    from .vist import retrieval_pool

    names = list(gen.examples)
    n = min(n, len(stories), *(len(gen.examples[k]) for k in names))
    pool = retrieval_pool(stories)[0] if ret is not None else None
    images, titles = [], []
    for i in range(n):
        s = stories[i]
        for k, (frame, caption) in enumerate(zip(s.images, s.captions)):
            images.append(frame)
            titles.append(("target: " if k == len(s.images) - 1 else f"{k + 1}: ") + caption)
        for name in names:
            model, setting = name.split("/", 1)
            images.append(gen.examples[name][i])
            titles.append(f"{MODEL_TITLES.get(model, model).split(' (')[0]}: {SETTING_TITLES.get(setting, setting)}")
        if ret is not None and retrieval_name in ret.top:
            images.append(pool[ret.top[retrieval_name][i][0]])
            titles.append(f"retrieved (rank of target: {int(ret.ranks[retrieval_name][i]) + 1})")
    return image_grid(images, titles, ncols=len(images) // n, size=1.4, title_width=16)


def dialogue_figure(items, results, n: int = 6):
    """One row per dialogue: the true image, then GILL's and the baseline's image from the Q/A text."""
    from gill_lite.figures import image_grid

    names = list(results.examples)
    n = min(n, len(items), *(len(results.examples[k]) for k in names))
    images, titles = [], []
    for i in range(n):
        images.append(items[i].image)
        titles.append(items[i].text.replace("\n", " "))
        for name in names:
            images.append(results.examples[name][i])
            titles.append(MODEL_TITLES.get(name.split("/")[0], name).split(" (")[0])
    return image_grid(images, titles, ncols=1 + len(names), size=1.6, title_width=40)


def sentences_after_figure(by_n: dict):
    """The mapper link's accuracy per attribute against the number of sentences said after the kind
    (`gill_lite.evaluate.chain.mapper_by_sentences_after`): one line per attribute, ceiling 1.0."""
    import matplotlib.pyplot as plt

    ns = sorted(by_n)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for attribute in by_n[ns[0]]:
        ax.plot(ns, [by_n[n][attribute] for n in ns], marker="o", label=attribute)
    ax.set_xlabel("sentences after the caption (each restating colour, size or position)")
    ax.set_ylabel("mapper's nearest description right")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(ns)
    ax.legend(fontsize=8)
    ax.set_title("What the [IMG] states -> mapper link forgets", fontsize=10)
    fig.tight_layout()
    return fig
