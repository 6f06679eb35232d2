"""The vocabulary of ShapeStories: what a shape can be, and how an image's contents are recorded."""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

KINDS = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
# A 3x3 grid, row-major; names double as caption words.
POSITIONS = (
    "top left", "top", "top right",
    "left", "middle", "right",
    "bottom left", "bottom", "bottom right",
)
ATTRIBUTES = ("kind", "colour", "size", "position")
VALUES = {"kind": KINDS, "colour": COLOURS, "size": SIZES, "position": POSITIONS}

PALETTE = {  # RGB, far apart so that a nearest-colour probe is exact on renders
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (235, 215, 40),
}


def position_cell(position: str) -> tuple[int, int]:
    """(row, col) of a position in the 3x3 grid."""
    i = POSITIONS.index(position)
    return divmod(i, 3)


def cell_position(row: int, col: int) -> str:
    return POSITIONS[row * 3 + col]


DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}  # one grid step


def shifted_position(position: str, direction: str, steps: int = 1) -> str | None:
    """The position ``steps`` grid steps from ``position`` in ``direction`` ("up", "down", "left", "right"; a
    negative ``steps`` goes back: where a step in ``direction`` started); None off the grid."""
    row, col = position_cell(position)
    dr, dc = DIRECTIONS[direction]
    r, c = row + steps * dr, col + steps * dc
    return cell_position(r, c) if 0 <= r < 3 and 0 <= c < 3 else None


@dataclass(frozen=True, order=True)
class Shape:
    """One object: the four attributes the renderer draws and the probe reads back."""

    kind: str
    colour: str
    size: str
    position: str

    def __post_init__(self):
        for name in ATTRIBUTES:
            value = getattr(self, name)
            if value not in VALUES[name]:
                raise ValueError(f"unknown {name} {value!r}; expected one of {VALUES[name]}")

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "Shape":
        return Shape(**{**self.to_dict(), **changes})


@dataclass(frozen=True)
class Scene:
    """What one image contains: one or two shapes plus the pixel jitter applied to their centres."""

    shapes: tuple[Shape, ...]
    jitter: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        if not 1 <= len(self.shapes) <= 2:
            raise ValueError("a scene holds one or two shapes")
        if self.jitter and len(self.jitter) != len(self.shapes):
            raise ValueError("one jitter per shape")
        if len(self.shapes) == 2 and self.shapes[0].position == self.shapes[1].position:
            raise ValueError("two shapes cannot share a position")

    @property
    def main(self) -> Shape:
        return self.shapes[0]

    def to_dict(self) -> dict:
        return {"shapes": [s.to_dict() for s in self.shapes], "jitter": [list(j) for j in self.jitter]}

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(tuple(Shape(**s) for s in d["shapes"]), tuple(tuple(j) for j in d.get("jitter", ())))


def all_shapes() -> list[Shape]:
    """Every attribute combination (3 kinds x 4 colours x 2 sizes x 9 positions = 216), in a fixed order."""
    return [Shape(k, c, s, p) for k, c, s, p in itertools.product(KINDS, COLOURS, SIZES, POSITIONS)]
