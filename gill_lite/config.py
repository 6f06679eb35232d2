"""Profiles: one dataclass per part, plain values, overridable.

A profile only changes names, sizes and data; the code paths are the same for all of them. It holds what GILL
reads: where its frozen parts are (a hub id or a folder) and how to sample them, its own trainable parts and their
recipe, the data, the evaluation. How the ShapeStories stand-ins of those frozen parts are built and pretrained
(architectures, steps, learning rates) is their recipe, `gill_lite.backbones.recipes`, named by ``Profile.standins``.

    >>> from gill_lite.config import get_profile
    >>> p = get_profile("ci")
    >>> p.world.image_size
    32

`get_profile(None)` reads the ``GILL_PROFILE`` environment variable (so nbval, which cannot inject
parameters, can choose the profile) and falls back to ``tiny``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def runs_root() -> Path:
    """Where every run writes: ``runs/`` in the repository, or ``GILL_RUNS_DIR`` (tests and trials use another
    folder; the benchmarks' JSON files go under it too, so a trial never overwrites the main run's figures)."""
    return Path(os.environ.get("GILL_RUNS_DIR", REPO_ROOT / "runs"))


DEFAULT_PROFILE = "tiny"
PROFILE_NAMES = ("ci", "tiny", "paper")


@dataclass(frozen=True)
class WorldConfig:
    """ShapeStories sizes. ``paper`` keeps a small world for its tests; real data comes from ``data``."""

    image_size: int = 32
    n_train: int = 6000  # captioned corpus (the CC3M stand-in), training split
    n_val: int = 500
    n_test: int = 1000
    n_heldout: int = 500  # images of held-out attribute combinations (novel compositions)
    heldout_fraction: float = 0.15  # share of the attribute combinations never shown in training
    n_stories: int = 500  # evaluation stories (the VIST stand-in)
    n_decision_prompts: int = 1600  # the PartiPrompts stand-in
    n_dialogues: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class LanguageModelConfig:
    """The frozen LM: a hub id or a local folder (the stand-in), loaded in ``dtype``. Its sizes are the loaded
    model's; the stand-in's architecture is its recipe (`gill_lite.backbones.recipes`)."""

    name_or_path: str = "models/tiny/lm"  # relative paths are resolved against the repo root
    dtype: str = "float32"


@dataclass(frozen=True)
class ImageEncoderConfig:
    """The frozen image encoder (open_clip). ``pretrained`` is an open_clip tag (``openai``) or None;
    ``image_size`` the encoder's input size (training images are resized and centre-cropped to it)."""

    name_or_path: str = "models/tiny/clip"
    pretrained: str | None = None
    image_size: int = 32


@dataclass(frozen=True)
class GeneratorConfig:
    """The frozen text-to-image generator (a diffusers StableDiffusionPipeline) and how GILL samples it. Its text
    encoder's length and width (GILL's generation target) are the loaded pipeline's."""

    name_or_path: str = "models/tiny/generator"
    num_inference_steps: int = 20
    guidance_scale: float = 1.0
    dtype: str = "float32"


@dataclass(frozen=True)
class TrainConfig:
    """GILL's trainable parts and their recipe (gill_spec.md, 'Training recipe')."""

    n_visual_tokens: int = 4
    n_img_tokens: int = 8
    max_text_len: int = 32
    mapper_d_model: int = 512
    mapper_heads: int = 4
    mapper_encoder_layers: int = 4
    mapper_decoder_layers: int = 4
    mapper_ffn: int = 2048
    retrieval_dim: int = 256
    concat_fraction: float = 0.5  # half the examples are concatenated in pairs, in every loss
    # False: the captioning loss reads every example alone (the [IMG] losses still join pairs); a deviation
    # at tiny/ci, where the LM stand-in never read unrelated texts joined without `</s>` (README, CHANGELOG)
    caption_pairs: bool = True
    # False (published): BOS comes with a context's first text, after any image before it, and the captioning
    # loss reads ``[prefix] BOS caption``; True: BOS opens every context, so captioning reads ``BOS [prefix]
    # caption``, as an image inside a story is read: after BOS, and followed by text with no BOS between
    bos_before_images: bool = False
    # 0: new random partners every epoch (published); K > 0: partners from K fixed matchings, so the staged
    # generation and retrieval stages can read cached [IMG] states of the pairs (train/pairs.py)
    pair_matchings: int = 0
    steps: int = 20000
    batch_size: int = 200
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    warmup_steps: int = 2000
    decay_every: int = 10000
    decay_factor: float = 0.1
    mixed_precision: str = "bf16"  # "no" on CPU when bf16 is slower
    checkpoint_every: int = 1000
    seed: int = 0
    # per-stage step counts, ((stage, steps), ...), overriding `steps` (the joint run uses `steps`)
    stage_steps: tuple[tuple[str, int], ...] = ()
    # per-stage decay intervals, ((stage, decay_every), ...), overriding `decay_every` (a longer stage decays later)
    stage_decay_every: tuple[tuple[str, int], ...] = ()
    final_stage: str = "joint"  # the stage whose checkpoint is "the" GILL for decision, evaluation and dialogue
    # None: the joint run starts from fresh parts (the paper's recipe); a stage name: from its finished checkpoint
    joint_from: str | None = None


@dataclass(frozen=True)
class DecisionConfig:
    """The generate-or-retrieve classifier and its judged data."""

    n_judges: int = 5
    judge_noise: float = 0.25
    judge_tie: float = 0.15  # a judge calls two images "the same" below this score difference (decision/judges.py)
    judge_lapse: float = 0.05  # chance of an arbitrary vote
    judge_clip_weight: float = 0.15  # weight of the evaluation-CLIP difference next to the attribute probe
    collect_batch_size: int = 32  # prompts per batch when collecting generated/retrieved images
    n_train: int = 600  # the first 600 confident examples train, the rest validate
    steps: int = 2000
    lr: float = 1e-3
    dropout: float = 0.5
    standardize: bool = True  # train on standardised [IMG0] states, folded back into the Linear (decision/classifier.py)
    balanced: bool = True  # class-weighted loss (the metric is macro F1); both False = the published recipe
    seed: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocols (VIST contextual generation / retrieval, dialogue)."""

    n_stories: int = 500
    retrieval_pool: int = 1000
    recall_at: tuple[int, ...] = (1, 5, 10)
    bootstrap: int = 1000
    lpips: bool = False  # the lpips package downloads AlexNet weights: paper only
    seed: int = 0


@dataclass(frozen=True)
class DataConfig:
    """Where the real-format data lives. ShapeStories profiles write their own exports under the run dir."""

    cc3m_tsv: str | None = None
    cc3m_images: str | None = None
    vist_sis_json: str | None = None
    vist_images: str | None = None
    decision_tsv: str | None = None
    visdial_json: str | None = None
    visdial_images: str | None = None  # VisualDialog_val2018/ (None: the folder of that name beside visdial_json)


@dataclass(frozen=True)
class Profile:
    name: str
    world: WorldConfig = field(default_factory=WorldConfig)
    lm: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    eval_clip: ImageEncoderConfig = field(default_factory=lambda: ImageEncoderConfig(name_or_path="models/tiny/eval_clip"))
    train: TrainConfig = field(default_factory=TrainConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    uses_world: bool = True  # ShapeStories data and stand-ins (tiny, ci) or hub models and real data (paper)
    standins: str | None = "tiny"  # the recipe that builds the stand-ins (`gill_lite.backbones.recipes`); None: hub

    @property
    def run_dir(self) -> Path:
        """``runs/<profile>``; ``GILL_RUNS_DIR`` moves the parent (tests use a temporary folder)."""
        return runs_root() / self.name

    def resolve(self, name_or_path: str) -> str:
        """A hub id stays as it is; a relative local path is resolved against the repo, else the run dir."""
        for base in (REPO_ROOT, self.run_dir):
            candidate = base / name_or_path
            if candidate.exists():
                return str(candidate)
        if name_or_path.startswith(("models/", "./", "/")):
            return str(REPO_ROOT / name_or_path)
        return name_or_path

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tiny() -> Profile:
    return Profile(
        name="tiny",
        train=TrainConfig(
            mapper_d_model=128,
            mapper_heads=4,
            mapper_encoder_layers=2,
            mapper_decoder_layers=2,
            mapper_ffn=256,
            retrieval_dim=64,
            steps=600,  # the joint run
            batch_size=64,
            lr=2e-3,  # small parts, few steps: a larger rate than the paper's 1e-3 (measured: 1e-3 is slower)
            warmup_steps=50,
            decay_every=400,
            mixed_precision="no",
            checkpoint_every=1000,
            pair_matchings=4,
            # the captioning loss without pairs: joined to an unrelated caption with no `</s>` between, which
            # the LM stand-in never read, the visual prefix learned to cut off what came before it (README,
            # "Captioning without pairs": three seeds, 5 captions + 4 images CLIP +0.107 / +0.041 / +0.058)
            caption_pairs=False,
            # BOS opens every context, so captioning reads `BOS [prefix] caption`: with the published `[prefix] BOS
            # caption` the prefix learned at the position that opens every text, and an image inside a story
            # disturbed what the LM made of the captions after it (README, "This build: BOS before the image")
            bos_before_images=True,
            # per stage, sized so the four take about 5 minutes on 2 idle cores (bench/gill_stages.py). Captioning
            # 600 -> 2400 steps (decay at 1800) raised all-attributes captions 0.58 -> 0.74 on test images with the
            # first CLIP stand-in (0.86 with the retrained one). Retrieval 2000 -> 20000 steps (decay at 15000),
            # affordable once it reads cached [IMG] states (a few ms a step), raised test-pool R@1/5/10
            # 0.089/0.414/0.638 -> 0.160/0.680/0.954 (0.193/0.779/0.990 on the final chain)
            stage_steps=(("captioning", 2400), ("img_tokens", 200), ("generation", 1500), ("retrieval", 20000)),
            stage_decay_every=(("captioning", 1800), ("retrieval", 15000)),
            # the notebooks' stage-by-stage chain, then a short joint run from it in which the [IMG] rows learn
            # from the generation and retrieval losses too, as in the paper's joint run (notebook 04)
            joint_from="retrieval",
            final_stage="joint",
        ),
        # 200 stories (1,000 images to rank) keep the VIST notebook near 3 minutes on 2 cores and the whole
        # pipeline under 15; the bootstrap intervals say what that costs in precision
        eval=EvalConfig(n_stories=200),
    )


def _ci() -> Profile:
    """The smoke-sized twin of tiny: every code path, trained from scratch in CI, in seconds each."""
    return Profile(
        name="ci",
        world=WorldConfig(
            n_train=400, n_val=60, n_test=100, n_heldout=60, n_stories=40, n_decision_prompts=160, n_dialogues=100,
        ),
        # relative folders that are not in the repo resolve under the run dir: built there on first use
        lm=LanguageModelConfig(name_or_path="models/lm"),
        image_encoder=ImageEncoderConfig(name_or_path="models/clip"),
        eval_clip=ImageEncoderConfig(name_or_path="models/eval_clip"),
        generator=GeneratorConfig(name_or_path="models/generator", num_inference_steps=4),
        train=TrainConfig(
            mapper_d_model=32, mapper_heads=2, mapper_encoder_layers=1, mapper_decoder_layers=1,
            mapper_ffn=64, retrieval_dim=32, steps=30, batch_size=16, warmup_steps=5, decay_every=20,
            mixed_precision="no", checkpoint_every=10, final_stage="retrieval", pair_matchings=2,
            caption_pairs=False, bos_before_images=True,  # as tiny
        ),
        decision=DecisionConfig(n_train=40, steps=100),
        eval=EvalConfig(n_stories=20, retrieval_pool=100, bootstrap=100),
        standins="ci",
    )


def _paper() -> Profile:
    """The published recipe (gill_spec.md): hub models, CC3M and VIST. Needs a GPU and the model hub."""
    return Profile(
        name="paper",
        lm=LanguageModelConfig(name_or_path="facebook/opt-6.7b", dtype="bfloat16"),
        # OpenAI's ViT-L/14 weights were trained with QuickGELU: open_clip's "ViT-L-14" builds exact GELU (and
        # only warns), so the QuickGELU config of the same model; the loader refuses the other one
        image_encoder=ImageEncoderConfig(name_or_path="ViT-L-14-quickgelu", pretrained="openai", image_size=224),
        eval_clip=ImageEncoderConfig(name_or_path="ViT-L-14-quickgelu", pretrained="openai", image_size=224),
        generator=GeneratorConfig(
            name_or_path="stable-diffusion-v1-5/stable-diffusion-v1-5", num_inference_steps=50,
            guidance_scale=7.5, dtype="float16",
        ),
        train=TrainConfig(),
        eval=EvalConfig(n_stories=4990, retrieval_pool=0, lpips=True),
        data=DataConfig(
            cc3m_tsv="data/cc3m/cc3m_train.tsv", cc3m_images="data/cc3m/images",
            vist_sis_json="data/vist/sis/val.story-in-sequence.json", vist_images="data/vist/images",
            decision_tsv="data/partiprompts/decisions.tsv", visdial_json="data/visdial/visdial_1.0_val.json",
        ),
        uses_world=False,
        standins=None,
    )


_BUILDERS = {"ci": _ci, "tiny": _tiny, "paper": _paper}


class UnknownProfileError(ValueError):
    pass


def profile_name(name: str | None = None) -> str:
    """Validate a profile name; None means ``GILL_PROFILE`` if set, else ``tiny``."""
    chosen = name or os.environ.get("GILL_PROFILE") or DEFAULT_PROFILE
    if chosen not in _BUILDERS:
        raise UnknownProfileError(
            f"unknown profile {chosen!r}; valid profiles are: {', '.join(PROFILE_NAMES)}"
        )
    return chosen


def notebook_profile(parameter: str = DEFAULT_PROFILE, **overrides) -> Profile:
    """The profile for a notebook: its ``parameters`` cell's ``PROFILE``.

    That cell reads ``PROFILE = os.environ.get("GILL_PROFILE", "tiny")``, so nbval (which cannot inject
    parameters) chooses with ``GILL_PROFILE``, and papermill's ``-p PROFILE ...``, injected after it, wins over
    the environment.
    """
    return get_profile(parameter, **overrides)


def get_profile(name: str | None = None, **overrides) -> Profile:
    """Build a profile by name (see `profile_name`), then apply ``part=dict(...)`` or ``part=dataclass`` overrides.

    ``get_profile("tiny", train={"steps": 10})`` changes one value and keeps the rest.
    """
    return with_overrides(_BUILDERS[profile_name(name)](), **overrides)


def with_overrides(obj, **overrides):
    """A copy of the dataclass ``obj`` (a `Profile`, or a stand-in recipe) with ``part=dict(...)`` or
    ``part=value`` overrides; a dict changes the named fields of that part and keeps the rest. Unknown parts
    or fields are a `TypeError` naming the valid ones."""
    for part, value in overrides.items():
        if not hasattr(obj, part):
            raise TypeError(f"{type(obj).__name__.lower()} has no part {part!r}; parts: "
                            f"{[f.name for f in dataclasses.fields(obj)]}")
        if isinstance(value, dict):
            current = getattr(obj, part)
            unknown = set(value) - {f.name for f in dataclasses.fields(current)}
            if unknown:
                raise TypeError(f"{type(current).__name__} has no field(s) {sorted(unknown)}")
            value = replace(current, **value)
        obj = replace(obj, **{part: value})
    return obj
