"""Fakes shared by the evaluation tests: tiny images, stories, an encoder and an oracle model."""
import numpy as np

from gill_lite.evaluate.stories import EvalStory


def _img(value, size=8):
    im = np.zeros((size, size, 3), np.uint8)
    im[value % size, (value // size) % size] = 255  # one lit pixel: distinct images are orthogonal
    return im


def _story(i, images=None):
    images = np.stack(images if images is not None else [_img(10 * i + k) for k in range(5)])
    return EvalStory(f"s{i}", [f"cap {i} {k}" for k in range(5)], images, [f"s{i}-{k}" for k in range(5)])


class Flatten:
    def embed_images(self, images):
        x = np.asarray(images, np.float64).reshape(len(images), -1) + 1e-3
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def __init__(self, dim=192):
        self.dim = dim

    def embed_texts(self, texts):  # a text tower that knows nothing
        return np.ones((len(texts), self.dim)) / np.sqrt(self.dim)


class FakePipeline:
    """The evaluation's calls of a `GillPipeline`; remembers every call. With images in the context it
    'generates' the true last image (an oracle). ``parts``: what `evaluate_vist` measures with."""

    def __init__(self, stories, parts=None):
        self.parts = parts
        self.truth = {tuple(s.captions): s.last_image for s in stories}
        self.contexts, self.seeds, self.prompts = [], [], []

    def img_states(self, context):
        self.contexts.append(context)
        return context

    def _oracle(self, context):
        captions = tuple(c for c in context if isinstance(c, str))
        has_images = any(not isinstance(c, str) for c in context)
        return self.truth.get(captions) if has_images else None

    def generate(self, states, seed):
        self.seeds.append(("gill", seed, len(states)))
        out = [self._oracle(c) for c in states]
        return np.stack([o if o is not None else np.zeros_like(next(iter(self.truth.values()))) for o in out])

    def generate_from_text(self, prompts, seed):
        self.seeds.append(("sd", seed, len(prompts)))
        self.prompts.extend(prompts)
        return np.stack([np.full_like(next(iter(self.truth.values())), 7) for _ in prompts])

    def retrieval_queries(self, states):
        ref = Flatten()
        out = []
        for c in states:
            o = self._oracle(c)
            dim = next(iter(self.truth.values())).size
            out.append(ref.embed_images([o])[0] if o is not None else np.ones(dim) / np.sqrt(dim))
        return np.stack(out)

    def embed_images(self, images):
        return Flatten().embed_images(images)
